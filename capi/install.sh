#!/bin/bash
# `make install PREFIX=DIR`: the C API library (shared and static), its header, the Fortran module
# and rankwise.pc into DIR/lib, DIR/include and DIR/lib/pkgconfig. RANKWISE_PROFILE picks the
# cargo profile (release by default; the tests use their own to save a build).
set -euo pipefail
prefix=${1:?usage: capi/install.sh PREFIX}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
profile=${RANKWISE_PROFILE:-release}
cargo build --profile "$profile" -p rankwise-capi
case "$profile" in dev|test) out=debug ;; bench) out=release ;; *) out=$profile ;; esac
lib=${CARGO_TARGET_DIR:-target}/$out
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 755 "$lib/librankwise_capi.so" "$prefix/lib/librankwise.so"
install -m 644 "$lib/librankwise_capi.a" "$prefix/lib/librankwise.a"
install -m 644 capi/include/rankwise.h "$prefix/include/rankwise.h"
# The Fortran module: rankwise.mod beside the header, its procedures in librankwisef.a.
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
${MPIFORT:-mpifort} -O2 -fPIC -c capi/fortran/rankwise.f90 -J "$build" -o "$build/rankwise_f.o"
install -m 644 "$build/rankwise.mod" "$prefix/include/rankwise.mod"
rm -f "$prefix/lib/librankwisef.a"
ar rcs "$prefix/lib/librankwisef.a" "$build/rankwise_f.o"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" capi/rankwise.pc.in > "$prefix/lib/pkgconfig/rankwise.pc"
echo "installed Rankwise $version for C, C++ and Fortran in $prefix"
