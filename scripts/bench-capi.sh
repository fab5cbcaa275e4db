#!/usr/bin/env bash
# The C API's call overhead: the 2-D heat kernel on 64x64 and 1024x1024 interiors called from C
# (capi/benchmarks/stencil.c against the installed library) and from Rust
# (capi/examples/stencil_bench.rs), in one run, alternating, best of ROUNDS per run.
#   scripts/bench-capi.sh          ROUNDS=5 REPEAT=3
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ROUNDS=${ROUNDS:-5} REPEAT=${REPEAT:-3}
target=${CARGO_TARGET_DIR:-target}/release
prefix="$target/capi-bench"
capi/install.sh "$prefix" >/dev/null
cargo build --release --quiet -p rankwise-capi --example stencil_bench
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" mpicc -O2 -o "$target/capi-stencil-c" capi/benchmarks/stencil.c \
  $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs rankwise)
export RAYON_NUM_THREADS=1
out=""
for _ in $(seq "$REPEAT"); do
  out+=$("$target/capi-stencil-c" "$ROUNDS")$'\n'
  out+=$("$target/examples/stencil_bench" "$ROUNDS")$'\n'
done
echo "2-D heat step, one thread, best of $((ROUNDS * REPEAT)) rounds each ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
echo "(C ABI from Rust: the C API function through a pointer, interleaved with the direct calls)"
printf '%6s %14s %14s %9s %18s %9s\n' n "C API ns/call" "Rust ns/call" "C/Rust" "C ABI from Rust" "ABI/Rust"
for n in 64 1024; do
  best() { grep "lang=$1 n=$n " <<<"$out" | sed 's/.*ns_per_call=\([^ ]*\).*/\1/' | sort -g | head -1; }
  c=$(best c) r=$(best rust) a=$(best c-abi)
  awk -v n="$n" -v c="$c" -v r="$r" -v a="$a" 'BEGIN { printf "%6d %14.1f %14.1f %8.3fx %18.1f %8.3fx\n", n, c, r, c / r, a, a / r }'
done
