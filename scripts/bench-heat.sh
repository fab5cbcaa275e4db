#!/usr/bin/env bash
# 2-D heat benchmark: the C + MPI reference (benchmarks/heat2d.c, built here with mpicc -O3) against
# Rankwise twice: examples/bench_heat2d.rs (the same computation, checksums compared) and the heat
# example itself (examples/heat.rs: periodic, its own initial state, the split-phase step every
# user runs; its time per step is its step loop's wall time on rank 0, from its progress line,
# which includes the per-step stop check that waits for the slowest rank; its "step" timer, the
# slowest rank's time inside the step, is printed beside it). Rankwise keeps large blocks on
# transparent huge pages (runtime/src/memory.rs), the C code as written does not: it runs a second
# time with glibc's malloc asking for them too (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), and heat
# is printed against both. Same grid, steps and rank counts; the programs take turns in every
# round so that load on the machine hits all of them, and each figure is the median of REPEAT rounds.
#   scripts/bench-heat.sh            N=4096 STEPS=200 at 1, 2 and 4 ranks, median of REPEAT=3
#   N=2048 STEPS=50 RANKS="1 2" REPEAT=5 scripts/bench-heat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
N=${N:-4096} STEPS=${STEPS:-200} RANKS=${RANKS:-"1 2 4"} REPEAT=${REPEAT:-3}

cargo build --release --quiet --example bench_heat2d --example heat
target=${CARGO_TARGET_DIR:-target}/release
mpicc -O3 -o "$target/heat2d-c" benchmarks/heat2d.c
rust="$target/examples/bench_heat2d" heat="$target/examples/heat"

# Shared memory and loopback only; ranks beyond the cores give theirs away while waiting.
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1 \
  OMPI_MCA_mpi_yield_when_idle=1 RAYON_NUM_THREADS=1
mpirun=${RANKWISE_MPIRUN:-mpirun}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
per_step() { # the seconds per step of each RESULT line in $1
  awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^s_per_step=/) { split($i, a, "="); print a[2] } }' <<<"$1"
}

echo "heat2d: ${N}x${N} doubles, $STEPS steps, median of $REPEAT rounds, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
for np in $RANKS; do
  c_lines="" ch_lines="" r_lines="" heat_secs="" heat_step="" sum_line="" final=""
  for _ in $(seq "$REPEAT"); do
    c_lines+=$($mpirun -np "$np" "$target/heat2d-c" "$N" "$STEPS" | grep '^RESULT')$'\n'
    ch_lines+=$(GLIBC_TUNABLES=glibc.malloc.hugetlb=1 $mpirun -np "$np" "$target/heat2d-c" "$N" "$STEPS" | grep '^RESULT')$'\n'
    out=$($mpirun -np "$np" "$rust" --set n="$N" --set steps="$STEPS")
    r_lines+=$(grep '^RESULT' <<<"$out")$'\n'
    sum_line=$(grep '^SUM' <<<"$out")
    # heat: its final line on stdout; on stderr its progress line at the last step ("... R
    # steps/s, ..." since the loop began) and the timer table ("step" row: calls min avg max).
    out=$($mpirun -np "$np" "$heat" --set n="$N" --set steps="$STEPS" --set progress.every="$STEPS" 2>&1)
    final=$(grep '^final' <<<"$out")
    heat_secs+=$(awk '{ for (i = 2; i <= NF; i++) if ($i == "steps/s,") printf "%.6f\n", 1 / $(i - 1) }' <<<"$out")$'\n'
    heat_step+=$(awk '$1 == "step" { printf "%.6f\n", $5 / $2 }' <<<"$out")$'\n'
  done
  c_lines=${c_lines%$'\n'} r_lines=${r_lines%$'\n'}
  printf '%s\n%s\n%s\n%s\n' "$c_lines" "$r_lines" "$sum_line" "$final"
  c=$(per_step "$c_lines" | median) ch=$(per_step "$ch_lines" | median) r=$(per_step "$r_lines" | median)
  h=$(median <<<"${heat_secs%$'\n'}") hs=$(median <<<"${heat_step%$'\n'}")
  if ! awk -v a="$(field checksum "$(head -1 <<<"$c_lines")")" -v b="$(field checksum "$(head -1 <<<"$r_lines")")" \
    'BEGIN { d = a - b; exit !(d * d <= 1e-20 * a * a) }'; then
    echo "error: checksums differ at $np ranks: not the same computation" >&2; exit 1
  fi
  awk -v np="$np" -v r="$r" -v c="$c" -v ch="$ch" -v h="$h" -v hs="$hs" 'BEGIN {
    printf "np=%s bench_heat2d/c = %.3f (%.4f s / %.4f s per step)\n", np, r / c, r, c
    printf "np=%s heat/c = %.3f (%.4f s / %.4f s per step; inside the step, slowest rank: %.4f s, %.3f)\n", np, h / c, h, c, hs, hs / c
    printf "np=%s heat/c_huge_pages = %.3f (%.4f s / %.4f s per step)\n", np, h / ch, h, ch }'
done
