#!/usr/bin/env bash
# Messages against IMB's measure, 2 ranks on shared memory: comm-bench's ping-pong
# (benchmarks/comm.rs, rsmpi's send/receive) against IMB-MPI1's PingPong loop in C
# (benchmarks/pingpong.c), both timing the same iterations together; and comm-bench's halo
# exchange (Field::exchange, one message each way) against that ping-pong for the same bytes.
# The C loop runs twice: as IMB does (MPI_Init, MPI_THREAD_SINGLE) and at MPI_THREAD_FUNNELED,
# the level comm-bench (any rankwise program) runs at, where Open MPI takes its locks: the
# second ratio is the Rust side's own cost. The C program also times a C halo exchange of the
# same bytes (MPI_Irecv, MPI_Isend, MPI_Waitall), the exchange's own floor at that level. The
# programs take turns in every round; each figure is the median over REPEAT rounds of each
# round's fastest sample. Targets: ping-pong / IMB <= 1.10 at 8 B and <= 1.02 from 64 KiB on;
# exchange / ping-pong <= 1.2.
#   scripts/bench-comm.sh             REPEAT=3
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
REPEAT=${REPEAT:-3}
cargo build --release --quiet --example comm-bench
target=${CARGO_TARGET_DIR:-target}/release
mpicc -O3 -o "$target/pingpong-c" benchmarks/pingpong.c
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1 RAYON_NUM_THREADS=1
mpirun=${RANKWISE_MPIRUN:-mpirun}

points=""
for _ in $(seq "$REPEAT"); do
  points+=$($mpirun -np 2 "$target/pingpong-c")$'\n'
  points+=$($mpirun -np 2 "$target/pingpong-c" funneled)$'\n'
  points+=$($mpirun -np 2 "$target/examples/comm-bench" --set parts=pingpong,exchange | grep '^POINT')$'\n'
done
echo "messages: 2 ranks, shared memory, median of $REPEAT rounds, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
# Per series and size: the median of the rounds' fastest seconds per message (one way).
awk '$1 == "POINT" {
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  k = f["series"] SUBSEP f["bytes"]; n[k]++; v[k, n[k]] = f["seconds"]; sizes[f["bytes"]] = 1
}
function median(k,    m, i, j, t, a) {
  m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]
  for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
  nsizes = 0; for (b in sizes) list[++nsizes] = b + 0
  for (i = 1; i <= nsizes; i++) for (j = i + 1; j <= nsizes; j++) if (list[j] < list[i]) { t = list[i]; list[i] = list[j]; list[j] = t }
  for (i = 1; i <= nsizes; i++) {
    b = list[i]; imb = "pingpong_imb" SUBSEP b; pp = "pingpong" SUBSEP b; ex = "exchange" SUBSEP b
    fun = "pingpong_imb_funneled" SUBSEP b; exc = "exchange_c_funneled" SUBSEP b
    if ((imb in n) && (pp in n))
      printf "bytes=%d pingpong/imb = %.3f (%.3f us / %.3f us one way)\n", b, median(pp) / median(imb), 1e6 * median(pp), 1e6 * median(imb)
    if ((fun in n) && (pp in n))
      printf "bytes=%d pingpong/imb_funneled = %.3f (%.3f us / %.3f us one way)\n", b, median(pp) / median(fun), 1e6 * median(pp), 1e6 * median(fun)
    if ((ex in n) && (pp in n))
      printf "bytes=%d exchange/pingpong = %.3f (%.3f us / %.3f us)\n", b, median(ex) / median(pp), 1e6 * median(ex), 1e6 * median(pp)
    if ((ex in n) && (exc in n))
      printf "bytes=%d exchange/exchange_c_funneled = %.3f (%.3f us / %.3f us)\n", b, median(ex) / median(exc), 1e6 * median(ex), 1e6 * median(exc)
  }
}' <<<"$points"
