#!/usr/bin/env bash
# Every benchmark, each against its reference measured in the same run (release builds).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
echo "== kernels: stencils and vector ops vs a STREAM triad, dense GFLOP/s"; cargo bench -p rankwise-kernels
echo "== 2-D heat step (bench_heat2d and the heat example) vs the C + MPI reference"; scripts/bench-heat.sh
echo "== time per CG iteration: the poisson example vs a hand-written C + MPI CG and PETSc KSPCG"; scripts/bench-poisson.sh
echo "== messages: ping-pong vs IMB's PingPong loop, halo exchange vs ping-pong"; scripts/bench-comm.sh
echo "== dense matrix product: SUMMA at 1, 2, 4 ranks vs one rank's dgemm"; scripts/bench-matmul.sh
echo "== checkpoint write/read vs raw sequential I/O"; scripts/bench-ckpt.sh
echo "== rankwise run vs bare mpirun"; scripts/bench-launcher.sh
echo "== the C API: the 2-D heat kernel called from C vs from Rust"; scripts/bench-capi.sh
echo "== the Python package: a heat step and a halo exchange from Python vs from Rust"; scripts/bench-python.sh
echo "== scale model: messages, allreduce, checkpoints, heat kernels; predictions to 1,000 nodes"; scripts/bench-scaling.sh
