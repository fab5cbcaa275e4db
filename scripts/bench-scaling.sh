#!/usr/bin/env bash
# The scale model of docs/scaling.md: measure here (benchmarks/comm.rs) over shared memory and over
# TCP on loopback (a stand-in for a network), at 1, 2 and 4 ranks, then fit and predict
# (benchmarks/scale_model.rs), and check the model against the heat example run here (3-D, 192^3,
# 2 ranks). Arguments are passed to the model, e.g. --set net.bandwidth_GBs=25.
#   scripts/bench-scaling.sh                     measure and predict; points in target/bench-scaling
#   POINTS=docs/scaling-points.txt scripts/bench-scaling.sh --model-only   predict from saved points
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release --quiet --example comm-bench --example scale-model --example heat
bin=${CARGO_TARGET_DIR:-target}/release/examples
dir=target/bench-scaling
points=${POINTS:-$dir/points.txt}

if [ "${1:-}" = --model-only ]; then
  shift
else
  mkdir -p "$dir"
  # Ranks beyond the cores give theirs away while waiting; kernels single-threaded in each rank.
  export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_mpi_yield_when_idle=1 \
    RAYON_NUM_THREADS=1 OMPI_MCA_btl_tcp_if_include=lo
  mpirun=${RANKWISE_MPIRUN:-mpirun}
  measure() { # BTL NP PARTS
    OMPI_MCA_btl=$1 $mpirun -np "$2" "$bin/comm-bench" --set parts="$3" --set dir="$dir"
  }
  {
    echo "# comm-bench on $(hostname), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
    measure self,vader 1 allreduce,heat
    measure self,vader 2 pingpong,exchange,allreduce,heat,ckpt
    measure self,vader 4 allreduce
    measure self,tcp 2 pingpong,exchange,allreduce
    measure self,tcp 4 allreduce
    # The heat example itself, for the model's check (CHECK below): its step timer, slowest rank.
    OMPI_MCA_btl=self,vader $mpirun -np 2 "$bin/heat" --set dim=3 --set n=192 --set steps=40 2>&1 >/dev/null |
      awk '$1 == "step" { printf "HEAT example dim=3 n=192 ranks=2 step_ms=%.3f (measured: max over ranks)\n", 1000 * $5 / $2 }'
  } | tee "$points"
  echo
fi
"$bin/scale-model" --set points="$points" --set check.n=192 "$@"
grep '^HEAT' "$points" || true
