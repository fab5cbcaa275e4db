#!/usr/bin/env bash
# What a checkpoint costs the step loop: the heat example with no checkpoints, with synchronous
# and with asynchronous ones (checkpoint.mode), and with a node-local level (checkpoint.local, the
# shared file every 10th time), written in the step loop (local) and in the background
# (local+async), same inputs, same run. Prints per case the stall
# of the step loop per checkpoint (the `checkpoint` timer, slowest rank), async/sync, and the
# whole run against the run without checkpoints: the best of REPS runs of each (the modes taken
# in turn, so that a slow spell of the machine falls on all of them).
#   scripts/bench-ckpt-async.sh                 2-D n=2048 and 3-D n=192, at 2 and 4 ranks
#   CASES="2:1024" RANKS=2 STEPS=200 EVERY=50 REPS=5 scripts/bench-ckpt-async.sh
# The files go to target/bench-ckpt-async (CKPT_BENCH_DIR), the node-local level to /dev/shm.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
CASES=${CASES:-"2:2048 3:192"} RANKS=${RANKS:-"2 4"} STEPS=${STEPS:-400} EVERY=${EVERY:-100} REPS=${REPS:-3}
dir=${CKPT_BENCH_DIR:-target/bench-ckpt-async}
# The node-local level on a RAM disk, as SCR's cache usually is (CKPT_LOCAL_DIR to change it).
local=${CKPT_LOCAL_DIR:-/dev/shm/rankwise-bench-local-$$}
cargo build --release --quiet --example heat
heat=${CARGO_TARGET_DIR:-target}/release/examples/heat
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1
mpirun=${RANKWISE_MPIRUN:-mpirun}

# "calls max" of timer $1 in a timer report.
timer() { awk -v t="$1" '$1 == t { print $2, $5 }' <<<"$2"; }

echo "heat, $STEPS steps, a checkpoint every $EVERY; seconds are the slowest rank's, best of $REPS; $(nproc) cores"
for case in $CASES; do
  dim=${case%%:*} n=${case##*:}
  for np in $RANKS; do
    declare -A loop=() stall=()
    for rep in $(seq "$REPS"); do
    for mode in none sync async local local+async; do
      rm -rf "$dir" "$local"
      sets=(--set dim="$dim" --set n="$n" --set steps="$STEPS")
      case $mode in
        none) ;;
        local) sets+=(--set checkpoint.dir="$dir" --set checkpoint.every="$EVERY" --set checkpoint.local="$local") ;;
        local+async) sets+=(--set checkpoint.dir="$dir" --set checkpoint.every="$EVERY" --set checkpoint.local="$local" --set checkpoint.mode=async) ;;
        *) sets+=(--set checkpoint.dir="$dir" --set checkpoint.every="$EVERY" --set checkpoint.mode="$mode") ;;
      esac
      # The interval's checkpoints only: the one at the end (a shared write) is not the loop's stall.
      [ "$mode" = none ] || sets+=(--set checkpoint.at_end=false)
      out=$($mpirun -np "$np" "$heat" "${sets[@]}" 2>&1)
      read -r _ step_s <<<"$(timer step "$out")"
      read -r calls ck_s <<<"$(timer checkpoint "$out")"
      loop[$mode]=$(awk -v a="$step_s" -v b="${ck_s:-0}" -v m="${loop[$mode]:-}" 'BEGIN { t = a + b; print (m == "" || t < m) ? t : m }')
      stall[$mode]=$(awk -v c="${calls:-0}" -v s="${ck_s:-0}" -v m="${stall[$mode]:-}" 'BEGIN { t = c ? s / c : 0; print (m == "" || t < m) ? t : m }')
      [ "$rep" -gt 1 ] || grep '^final' <<<"$out" | sed "s/^/  $mode: /"
    done
    done
    awk -v d="$dim" -v n="$n" -v np="$np" -v ss="${stall[sync]}" -v sa="${stall[async]}" -v sl="${stall[local]}" -v sla="${stall[local+async]}" \
      -v ln="${loop[none]}" -v ls="${loop[sync]}" -v la="${loop[async]}" -v ll="${loop[local]}" -v lla="${loop[local+async]}" 'BEGIN {
      printf "dim=%s n=%s ranks=%s stall per checkpoint: sync %.4f s, async %.4f s (%.2f of sync), local %.4f s (%.2f), local+async %.4f s (%.2f); ", d, n, np, ss, sa, sa / ss, sl, sl / ss, sla, sla / ss
      printf "loop: none %.3f s, sync x%.3f, async x%.3f, local x%.3f, local+async x%.3f\n", ln, ls / ln, la / ln, ll / ln, lla / ln }'
  done
done
rm -rf "$dir" "$local"
