#!/usr/bin/env bash
# The long fuzzing campaigns (`make test` runs short ones): damaged checkpoints through
# `rankwise_io::verify` and `rankwise ckpt verify`, through 2- and 4-rank restores, and the
# parsers (inputs file, --set, command line, status file, Slurm host lists, counts, times).
# Prints each campaign's counts and every failure with its seed; exit 1 if anything failed.
# Sizes: FUZZ_VERIFY (10000) FUZZ_RESTORE (500 at 2 ranks) FUZZ_RESTORE4 (100 at 4 ranks)
# FUZZ_PARSER (10^6 inputs per parser) FUZZ_SEED (first seed, 0). Replay one checkpoint case:
#   target/release/examples/ckpt-fuzz campaign-restore DIR np=2 from=SEED cases=1
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
verify=${FUZZ_VERIFY:-10000} restore=${FUZZ_RESTORE:-500} restore4=${FUZZ_RESTORE4:-100}
parser=${FUZZ_PARSER:-1000000} seed=${FUZZ_SEED:-0}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p rankwise --example ckpt-fuzz -p rankwise-launcher || exit 1
work="$target/fuzz"
rm -rf "$work"
mkdir -p "$work"
fuzz="$target/release/examples/ckpt-fuzz"
# A file that makes libhdf5 loop is judged damaged after this long, within the harness's time-outs.
export RANKWISE_CKPT_CHECK_TIMEOUT=${RANKWISE_CKPT_CHECK_TIMEOUT:-2}
status=0
summary=()
run() { # NAME COMMAND...: run, keep its summary lines, note a failure
  local name=$1; shift
  echo "== $name"
  "$@" 2>&1 | tee "$work/$name.log" | grep -E "campaign|failure|fuzz:|test result|panicked|minimal failing" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  summary+=("$name: $(grep -E ' campaign: |^test result' "$work/$name.log" | tail -1)")
}
[ "$verify" -gt 0 ] && run verify "$fuzz" campaign-verify "$work/ckpt" cases="$verify" from="$seed" every=4 timeout=6 rankwise="$target/release/rankwise"
[ "$restore" -gt 0 ] && run restore-2 "$fuzz" campaign-restore "$work/ckpt" np=2 cases="$restore" from="$seed"
[ "$restore4" -gt 0 ] && run restore-4 "$fuzz" campaign-restore "$work/ckpt" np=4 cases="$restore4" from="$seed"
export RANKWISE_FUZZ_CASES=$parser RANKWISE_FUZZ_SEED=$((seed + 1))
if [ "$parser" -gt 0 ]; then
  run parsers-runtime cargo test --release -p rankwise-runtime --test fuzz -- --nocapture --test-threads=2
  run parsers-slurm cargo test --release -p rankwise-slurm --test fuzz -- --nocapture --test-threads=2
fi
echo "== summary"
printf '%s\n' "${summary[@]}"
echo "parsers: $parser inputs for each never-panic property, $((parser / 10)) for each round trip"
exit $status
