#!/usr/bin/env bash
# Dense matrix product: SUMMA (examples/matmul.rs) at 1, 2 and 4 ranks next to one rank's
# OpenBLAS dgemm on the whole matrix, timed by the same run (best of REPS products each).
#   scripts/bench-matmul.sh          N=2048 at 1, 2 and 4 ranks
#   N=4096 BLOCK=512 RANKS="2 4" REPS=2 scripts/bench-matmul.sh
#   OVERLAP=false scripts/bench-matmul.sh    SUMMA without its broadcasts overlapped
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
N=${N:-2048} BLOCK=${BLOCK:-256} RANKS=${RANKS:-"1 2 4"} REPS=${REPS:-2} OVERLAP=${OVERLAP:-true}

cargo build --release --quiet --example matmul
target=${CARGO_TARGET_DIR:-target}/release
# Shared memory and loopback only; one OpenBLAS thread per rank; ranks beyond the cores give
# theirs away while waiting.
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1 \
  OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1
mpirun=${RANKWISE_MPIRUN:-mpirun}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "matmul: ${N}x${N} doubles, panels of $BLOCK (overlap=$OVERLAP), best of $REPS products, $(nproc) cores"
for np in $RANKS; do
  out=$($mpirun -np "$np" "$target/examples/matmul" --set n="$N" --set block="$BLOCK" --set reps="$REPS" \
    --set summa.overlap="$OVERLAP" --set reference=true --set check.gather_max=0)
  echo "$out"
  summa=$(grep '^summa ' <<<"$out") ref=$(grep '^reference ' <<<"$out")
  echo "np=$np SUMMA $(field gflops "$summa") GFLOP/s (grid $(field grid "$summa")), one-rank dgemm $(field gflops "$ref") GFLOP/s, SUMMA/dgemm $(field ratio "$ref")"
done
