#!/usr/bin/env bash
# Checkpoint write/read bandwidth vs a raw sequential write/read of the same bytes, same run.
# usage: scripts/bench-ckpt.sh [GIB (default 1)] [RANKS (default "1 2 4")]
# The files go to target/bench-ckpt: point CKPT_BENCH_DIR at the filesystem you care about.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
gib=${1:-1}
ranks=${2:-1 2 4}
cargo build --release --example ckpt-bench >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples/ckpt-bench
for np in $ranks; do
  OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo \
    ${RANKWISE_MPIRUN:-mpirun} -np "$np" "$bin" --set gib="$gib" --set dir="${CKPT_BENCH_DIR:-target/bench-ckpt}"
done
