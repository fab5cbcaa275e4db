#!/usr/bin/env bash
# Overhead of `rankwise run` over bare mpirun: the same job (examples/hello on NP ranks, the exact
# mpirun command that `rankwise run --dry-run` prints) launched REPS times each, interleaved so
# that drift in the machine's load hits both alike. Prints median and mean wall times and ratios.
# Usage: scripts/bench-launcher.sh [REPS] [NP]   (PROFILE=debug to use a debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-30} np=${2:-4} profile=${PROFILE:-release}
flag=""; [ "$profile" = release ] && flag=--release
cargo build -q $flag -p rankwise-launcher
cargo build -q $flag --example hello
dir=${CARGO_TARGET_DIR:-target}/$profile
rankwise=$dir/rankwise
# Keep the single-host job on shared memory and loopback, like the tests.
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader} OMPI_MCA_oob_tcp_if_include=${OMPI_MCA_oob_tcp_if_include:-lo}
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1
read -ra bare <<< "$("$rankwise" run -n "$np" --dry-run hello)"
# The env assignments at the front of the dry-run line go through `env`.
bare=(env "${bare[@]}")
now() { date +%s.%N; }
: > /tmp/bench-launcher.$$
for i in $(seq "$reps"); do
  t0=$(now); "${bare[@]}" > /dev/null; t1=$(now)
  "$rankwise" run -n "$np" hello > /dev/null; t2=$(now)
  echo "$t0 $t1 $t2" >> /tmp/bench-launcher.$$
done
python3 - "$reps" "$np" "${bare[*]}" /tmp/bench-launcher.$$ <<'PY'
import sys, statistics as st
reps, np, cmd, data = sys.argv[1:5]
rows = [list(map(float, l.split())) for l in open(data) if l.strip()]
bare = [b - a for a, b, c in rows]
rw = [c - b for a, b, c in rows]
print(f"launch of examples/hello on {np} ranks, {reps} repetitions each, interleaved")
print(f"reference (bare): {cmd}")
for name, f in (("median", st.median), ("mean", st.mean)):
    print(f"{name:6}  bare mpirun {f(bare):.3f} s   rankwise run {f(rw):.3f} s   ratio {f(rw) / f(bare):.3f}")
print(f"min     bare mpirun {min(bare):.3f} s   rankwise run {min(rw):.3f} s   ratio {min(rw) / min(bare):.3f}")
PY
rm -f /tmp/bench-launcher.$$
