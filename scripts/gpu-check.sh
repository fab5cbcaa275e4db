#!/usr/bin/env bash
# The GPU check: the CUDA kernel tests (the CUDA back end against the CPU one), the GPU tests of
# the runtime and examples under mpirun (device-field halo exchanges against host ones at 1-4
# ranks, the heat example on the GPU against the CPU) and the kernel benchmarks, run on a
# machine with a GPU; the results (date, device, figures) are appended to
# kernels/GPU-RESULTS.md, to be committed.
#
#   scripts/gpu-check.sh              build and run here (a GPU machine with Rust and setup.sh done)
#   scripts/gpu-check.sh build [DIR]  only build, into DIR (default target/gpu-check): the test,
#                                     benchmark and example binaries, the shared libraries they
#                                     need beyond glibc, Open MPI's mpirun with its plugins, and
#                                     this script; carry DIR to a GPU machine with no toolchain
#   DIR/gpu-check.sh run [DIR] [FILE] run what `build` left in DIR, appending to FILE
# A GPU machine where the tests skip (no driver, no device, no NVRTC) fails the check.
set -euo pipefail

build() {
  local dir=$1
  . scripts/env.sh
  rm -rf "$dir" && mkdir -p "$dir/lib"
  # cargo names the executables it built in its JSON messages.
  exe() { grep -o '"executable":"[^"]*"' | cut -d'"' -f4; }
  cp "$(cargo test --release -p rankwise-kernels --test cuda --no-run --message-format=json | exe)" "$dir/cuda-tests"
  cp "$(cargo bench -p rankwise-kernels --bench kernels --no-run --message-format=json | exe)" "$dir/kernels-bench"
  cp "$(cargo test --release --test gpu --no-run --message-format=json | exe)" "$dir/gpu-tests"
  # The programs tests/gpu.rs launches (its harness takes them from RANKWISE_TEST_PROGRAMS).
  cargo build --release --example heat --example device-fields
  mkdir -p "$dir/examples" && cp target/release/examples/{heat,device-fields} "$dir/examples/"
  # mpirun, relocated under OPAL_PREFIX: the same folders below it as below /usr.
  local ompi=$dir/ompi arch=lib/x86_64-linux-gnu
  mkdir -p "$ompi/bin" "$ompi/$arch/openmpi/lib" "$ompi/$arch/pmix2/lib" "$ompi/share"
  cp -L /usr/bin/orterun /usr/bin/orted "$ompi/bin/" && ln -s orterun "$ompi/bin/mpirun"
  cp -a "/usr/$arch/openmpi/lib/openmpi3" "$ompi/$arch/openmpi/lib/"
  cp -a "/usr/$arch/pmix2/lib/pmix" "$ompi/$arch/pmix2/lib/"
  cp -a /usr/share/openmpi "$ompi/share/"
  # Their libraries (OpenBLAS, HDF5, MPI, ...) may be missing there; glibc and libgcc are not.
  ldd "$dir"/*-tests "$dir/kernels-bench" "$dir"/examples/* "$ompi"/bin/orte* "$ompi"/bin/orted $(find "$ompi" -name '*.so') 2>/dev/null |
    awk '/=> \// {print $3}' | sort -u |
    grep -vE '/(libc|libm|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$dir/lib/"; done
  # Without debug info, and the libraries compressed, the folder fits what a device run can
  # carry (64 MiB).
  strip --strip-debug "$dir"/*-tests "$dir/kernels-bench" "$dir"/examples/*
  tar -C "$dir" -czf "$dir/lib.tar.gz" lib && rm -r "$dir/lib"
  cp "$0" "$dir/gpu-check.sh"
  echo "gpu-check: built into $dir ($(du -sh "$dir" | cut -f1))" >&2
}

# The heat example, one rank, 2-D n = 4096: time per step (the timer report's total over its
# calls) on the GPU and on the CPU (every core), as GB/s of the 16 bytes a cell moves.
heat_figures() {
  local n=4096 backend
  for backend in cuda cpu; do
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
      mpirun -np 1 --bind-to none "$1" --set n=$n --set steps=100 --set backend=$backend 2>&1 |
      awk -v n=$n -v b=$backend '$1 == "step" { t = $4 / $2; printf "heat example 2-D %d^2 %-5s %9.6f s/step %7.1f GB/s\n", n, b, t, 16 * n * n / t / 1e9; ok = 1 }
                                 END { exit !ok }' || { echo "heat example on $backend failed"; return 1; }
  done
}

run() {
  local dir=$1 results=$2
  unpacked=$(mktemp -d) && trap 'rm -rf "$unpacked"' EXIT && tar -C "$unpacked" -xzf "$dir/lib.tar.gz"
  export LD_LIBRARY_PATH="$unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" RANKWISE_TEST_PROGRAMS="$dir/examples"
  if ! command -v mpirun >/dev/null; then
    # The carried Open MPI: plugins whose libraries are missing there (UCX, ...) are skipped.
    export OPAL_PREFIX="$dir/ompi" PMIX_INSTALL_PREFIX="$dir/ompi/lib/x86_64-linux-gnu/pmix2" PATH="$dir/ompi/bin:$PATH"
    export OMPI_MCA_mca_base_component_show_load_errors=0 OMPI_MCA_pml=ob1
  fi
  # NVRTC may be off the loader's path there (in a Python package of the image, say): without
  # it every CUDA test would skip and the device time would be lost.
  if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so\.13'; then
    local nvrtc
    nvrtc=$(find /usr/local /opt /usr/lib -name 'libnvrtc.so.13' 2>/dev/null | head -1)
    [ -z "$nvrtc" ] || export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$nvrtc")"
  fi
  local device tests bench report rc=0
  device=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || true)
  tests=$("$dir/cuda-tests" --test-threads=1 --nocapture 2>&1) || rc=$?
  tests+=$'\n'$("$dir/gpu-tests" --test-threads=1 --nocapture 2>&1) || rc=$?
  bench=$("$dir/kernels-bench" 2>&1) || rc=$?
  bench+=$'\n'$(heat_figures "$dir/examples/heat") || rc=$?
  report=$(
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), ${device:-no nvidia-smi}"
    echo '```'
    echo "$tests" | grep -E '^test |^test result|skipping|panicked|relative error' || true
    echo "$bench"
    echo '```'
  )
  echo "$report"
  if grep -q 'skipping CUDA test' <<<"$tests"; then
    echo "gpu-check: FAILED: the CUDA tests skipped on this machine (see above); nothing recorded" >&2
    exit 1
  fi
  [ "$rc" -eq 0 ] || { echo "gpu-check: FAILED (exit code $rc); nothing recorded" >&2; exit "$rc"; }
  printf '%s\n\n' "$report" >>"$results"
  echo "gpu-check: passed; results appended to $results" >&2
}

here=$(cd "$(dirname "$0")" && pwd)
case "${1:-all}" in
  build) build "${2:-target/gpu-check}" ;;
  run) run "${2:-$here}" "${3:-kernels/GPU-RESULTS.md}" ;;
  all) build target/gpu-check && run target/gpu-check kernels/GPU-RESULTS.md ;;
  *) echo "usage: $0 [build [DIR] | run [DIR] [RESULTS]]" >&2; exit 2 ;;
esac
