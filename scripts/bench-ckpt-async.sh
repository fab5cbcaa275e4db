#!/usr/bin/env bash
# What a checkpoint costs the step loop: the heat example with no checkpoints, with synchronous
# and with asynchronous ones (checkpoint.mode), same inputs, same run. Prints per case the stall
# of the step loop per checkpoint (the `checkpoint` timer, slowest rank), async/sync, and the
# whole run against the run without checkpoints.
#   scripts/bench-ckpt-async.sh                 2-D n=2048 and 3-D n=192, at 2 and 4 ranks
#   CASES="2:1024" RANKS=2 STEPS=200 EVERY=50 scripts/bench-ckpt-async.sh
# The files go to target/bench-ckpt-async: point CKPT_BENCH_DIR at the filesystem you care about.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
CASES=${CASES:-"2:2048 3:192"} RANKS=${RANKS:-"2 4"} STEPS=${STEPS:-400} EVERY=${EVERY:-100}
dir=${CKPT_BENCH_DIR:-target/bench-ckpt-async}
cargo build --release --quiet --example heat
heat=${CARGO_TARGET_DIR:-target}/release/examples/heat
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1
mpirun=${RANKWISE_MPIRUN:-mpirun}

# "calls max" of timer $1 in a timer report.
timer() { awk -v t="$1" '$1 == t { print $2, $5 }' <<<"$2"; }

echo "heat, $STEPS steps, a checkpoint every $EVERY; seconds are the slowest rank's; $(nproc) cores"
for case in $CASES; do
  dim=${case%%:*} n=${case##*:}
  for np in $RANKS; do
    declare -A loop=() stall=()
    for mode in none sync async; do
      rm -rf "$dir"
      sets=(--set dim="$dim" --set n="$n" --set steps="$STEPS")
      [ "$mode" = none ] || sets+=(--set checkpoint.dir="$dir" --set checkpoint.every="$EVERY" --set checkpoint.mode="$mode")
      out=$($mpirun -np "$np" "$heat" "${sets[@]}" 2>&1)
      read -r _ step_s <<<"$(timer step "$out")"
      read -r calls ck_s <<<"$(timer checkpoint "$out")"
      loop[$mode]=$(awk -v a="$step_s" -v b="${ck_s:-0}" 'BEGIN { print a + b }')
      stall[$mode]=$(awk -v c="${calls:-0}" -v s="${ck_s:-0}" 'BEGIN { print c ? s / c : 0 }')
      grep '^final' <<<"$out" | sed "s/^/  $mode: /"
    done
    awk -v d="$dim" -v n="$n" -v np="$np" -v ss="${stall[sync]}" -v sa="${stall[async]}" \
      -v ln="${loop[none]}" -v ls="${loop[sync]}" -v la="${loop[async]}" 'BEGIN {
      printf "dim=%s n=%s ranks=%s stall per checkpoint: sync %.4f s, async %.4f s (async/sync %.2f); ", d, n, np, ss, sa, sa / ss
      printf "loop: none %.3f s, sync %.3f s (x%.3f), async %.3f s (x%.3f)\n", ln, ls, ls / ln, la, la / ln }'
  done
done
rm -rf "$dir"
