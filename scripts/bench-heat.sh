#!/usr/bin/env bash
# 2-D heat benchmark: Rankwise (examples/bench_heat2d.rs) against the C + MPI reference
# (benchmarks/heat2d.c, built here with mpicc -O3), same grid, steps and rank counts, in one run.
#   scripts/bench-heat.sh            N=4096 STEPS=100 at 1, 2 and 4 ranks, best of REPEAT=2 runs
#   N=2048 STEPS=50 RANKS="1 2" REPEAT=3 scripts/bench-heat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
N=${N:-4096} STEPS=${STEPS:-100} RANKS=${RANKS:-"1 2 4"} REPEAT=${REPEAT:-2}

cargo build --release --quiet --example bench_heat2d
target=${CARGO_TARGET_DIR:-target}/release
mpicc -O3 -o "$target/heat2d-c" benchmarks/heat2d.c
rust="$target/examples/bench_heat2d"

# Shared memory and loopback only; ranks beyond the cores give theirs away while waiting.
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1 \
  OMPI_MCA_mpi_yield_when_idle=1 RAYON_NUM_THREADS=1
mpirun=${RANKWISE_MPIRUN:-mpirun}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
best() { # the RESULT line with the fewest seconds per step
  awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^s_per_step=/) { split($i, a, "="); print a[2], $0 } }' <<<"$1" |
    sort -g | head -1 | cut -d' ' -f2-
}

echo "heat2d: ${N}x${N} doubles, $STEPS steps, best of $REPEAT runs each, $(nproc) cores"
for np in $RANKS; do
  c_lines="" r_lines="" sum_line=""
  for _ in $(seq "$REPEAT"); do
    c_lines+=$($mpirun -np "$np" "$target/heat2d-c" "$N" "$STEPS" | grep '^RESULT')$'\n'
    out=$($mpirun -np "$np" "$rust" --set n="$N" --set steps="$STEPS")
    r_lines+=$(grep '^RESULT' <<<"$out")$'\n'
    sum_line=$(grep '^SUM' <<<"$out")
  done
  c=$(best "${c_lines%$'\n'}") r=$(best "${r_lines%$'\n'}")
  echo "$c"
  echo "$r"
  echo "$sum_line"
  if ! awk -v a="$(field checksum "$c")" -v b="$(field checksum "$r")" 'BEGIN { d = a - b; exit !(d * d <= 1e-20 * a * a) }'; then
    echo "error: checksums differ at $np ranks: not the same computation" >&2; exit 1
  fi
  awk -v np="$np" -v r="$(field s_per_step "$r")" -v c="$(field s_per_step "$c")" \
    'BEGIN { printf "np=%s rankwise/c = %.3f (%.4f s / %.4f s per step)\n", np, r / c, r, c }'
done
