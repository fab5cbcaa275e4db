#!/usr/bin/env bash
# The GPU check, on a machine with a GPU: first what the machine has (driver, NVRTC, mpirun) and
# whether the kernels load there, then the CUDA kernel tests (the CUDA back end against the CPU
# one, bit for bit where they round alike), the runtime tests (tests/runtime.rs, which must pass
# there too), the GPU tests under mpirun (tests/gpu.rs: device-field halo exchanges, heat on
# the GPU against the CPU bit for bit, GPU restarts, matmul), the kernel benchmarks and the heat
# example's time per step on the GPU and the CPU. Every step writes its whole log; a failing
# step prints its failures and the check goes on to the next, except when the kernels cannot
# run at all (then it stops at once: the rest would fail for the same reason).
#
#   scripts/gpu-check.sh              build and run here (a GPU machine with Rust and setup.sh
#                                     done); the results are appended to kernels/GPU-RESULTS.md
#   scripts/gpu-check.sh build [DIR]  only build, into DIR (default target/gpu-check): the test,
#                                     benchmark and example binaries, the shared libraries they
#                                     need beyond glibc, Open MPI's mpirun with its plugins, and
#                                     this script; carry DIR to a GPU machine with no toolchain
#   DIR/gpu-check.sh run [DIR] [OUT]  run what `build` left in DIR; the logs and results.md (the
#                                     section for kernels/GPU-RESULTS.md) go to OUT (default:
#                                     $OUT, where the device tool takes files back, else DIR/out)
set -euo pipefail

build() {
  local dir=$1
  . scripts/env.sh
  rm -rf "$dir" && mkdir -p "$dir/lib" "$dir/examples"
  # cargo names the executables it built in its JSON messages.
  exe() { grep -o '"executable":"[^"]*"' | cut -d'"' -f4; }
  cp "$(cargo test --release -p rankwise-kernels --test cuda --no-run --message-format=json | exe)" "$dir/cuda-tests"
  cp "$(cargo bench -p rankwise-kernels --bench kernels --no-run --message-format=json | exe)" "$dir/kernels-bench"
  cp "$(cargo test --release --test gpu --no-run --message-format=json | exe)" "$dir/gpu-tests"
  cp "$(cargo test --release --test runtime --no-run --message-format=json | exe)" "$dir/runtime-tests"
  # The programs the tests launch (their harness takes them from RANKWISE_TEST_PROGRAMS).
  local programs=(heat device-fields matmul rt-basics hello)
  cargo build --release "${programs[@]/#/--example=}"
  for p in "${programs[@]}"; do cp "target/release/examples/$p" "$dir/examples/"; done
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

# One step: `step NAME SECONDS COMMAND...`, its output to $out/NAME.log; prints one line, and
# the failures (or the end of the log) when it fails.
step() {
  local name=$1 limit=$2 t0=$SECONDS rc=0
  shift 2
  timeout -k 10 "$limit" "$@" >"$out/$name.log" 2>&1 || rc=$?
  local how="passed"
  [ "$rc" -eq 0 ] || how="FAILED (exit code $rc$([ "$rc" -ne 124 ] || echo ", over its $limit s"))"
  summary+=("gpu-check: $name $how in $((SECONDS - t0)) s")
  echo "${summary[-1]}"
  if [ "$rc" -ne 0 ]; then
    failed+=("$name")
    [ "$name" != preflight ] || return 0 # its caller shows it whole
    # Each failing test's message and the list of them (captured or not); else the log's end.
    if grep -q 'panicked at' "$out/$name.log"; then
      grep -A 12 'panicked at' "$out/$name.log" | grep -vE '^    [a-z_:]+$' | head -c 4000
      sed -n '/^failures:$/,$p' "$out/$name.log" | grep -E '^    [a-z_:]+$|^test result' | sort -u
    else
      tail -c 2000 "$out/$name.log"
    fi
    echo
  fi
  return 0
}

# The heat example, one rank, 2-D n = 4096, as GB/s of the 16 bytes a cell moves per step: on
# the GPU the time per step that heat reports from the wall clock to the final synchronise (a
# timer around a step would measure its kernel launches), on the CPU (every core) its step timer.
heat_figures() {
  local n=4096 heat=$1/examples/heat gpu cpu
  local cuda_log cpu_log
  cuda_log=$(mpirun -np 1 --bind-to none "$heat" --set n=$n --set steps=1000 --set backend=cuda 2>&1) || { echo "$cuda_log"; return 1; }
  cpu_log=$(mpirun -np 1 --bind-to none "$heat" --set n=$n --set steps=100 --set backend=cpu 2>&1) || { echo "$cpu_log"; return 1; }
  printf '%s\n' "$cuda_log" "$cpu_log"
  gpu=$(grep -o '[0-9.e+-]* s/step' <<<"$cuda_log" | cut -d' ' -f1 || true)
  cpu=$(awk '$1 == "step" { print $4 / $2 }' <<<"$cpu_log")
  [ -n "$gpu" ] && [ -n "$cpu" ] || { echo "heat example: no time per step found"; return 1; }
  awk -v n=$n -v g="$gpu" -v c="$cpu" 'BEGIN {
    printf "heat example 2-D %d^2 cuda %.6e s/step %7.1f GB/s\n", n, g, 16 * n * n / g / 1e9
    printf "heat example 2-D %d^2 cpu  %.6e s/step %7.1f GB/s\n", n, c, 16 * n * n / c / 1e9 }'
}

# What the machine has: a few seconds, and every answer printed even when one is missing.
preflight() {
  local dir=$1
  echo "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -3 | tr '\n' ';' || true)"
  echo "mpirun: $(command -v mpirun) ($(mpirun --version 2>&1 | head -1 || true)); OPAL_PREFIX=${OPAL_PREFIX:-}"
  echo "libnvrtc: ${NVRTC_FOUND:-none found}"
  # Driver and NVRTC versions, the device, and the kernels compiled for it and loaded.
  "$dir/cuda-tests" --include-ignored --exact toolchain_driver_and_device --nocapture --test-threads=1
}

run() {
  local dir=$1 self
  out=$2
  mkdir -p "$out"
  dir=$(cd "$dir" && pwd) out=$(cd "$out" && pwd) self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
  failed=() summary=()
  unpacked=$(mktemp -d) && trap 'rm -rf "$unpacked"' EXIT && tar -C "$unpacked" -xzf "$dir/lib.tar.gz"
  export LD_LIBRARY_PATH="$unpacked/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" RANKWISE_TEST_PROGRAMS="$dir/examples"
  # Always the carried Open MPI, with its own prefix: a machine's mpirun of another version or
  # another MPI with the carried libraries fails to start, or starts every rank as rank 0.
  # Plugins whose libraries are missing there (UCX, ...) are skipped.
  export OPAL_PREFIX="$dir/ompi" PMIX_INSTALL_PREFIX="$dir/ompi/lib/x86_64-linux-gnu/pmix2" PATH="$dir/ompi/bin:$PATH"
  export RANKWISE_MPIRUN="$dir/ompi/bin/mpirun" OMPI_MCA_mca_base_component_show_load_errors=0 OMPI_MCA_pml=ob1
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo
  # Containers often forbid the cross-process reads (CMA) of shared-memory single copies.
  export OMPI_MCA_btl_vader_single_copy_mechanism=none RUST_BACKTRACE=0
  # NVRTC may be off the loader's path there (in a Python package of the image, say).
  local d
  NVRTC_FOUND=$( { ldconfig -p 2>/dev/null || true; } | awk '/libnvrtc\.so\.13 / { print $NF; exit }')
  for d in ${LD_LIBRARY_PATH//:/ }; do
    [ -n "$NVRTC_FOUND" ] || [ ! -e "$d/libnvrtc.so.13" ] || NVRTC_FOUND=$d/libnvrtc.so.13
  done
  if [ -z "$NVRTC_FOUND" ]; then
    NVRTC_FOUND=$( { find /usr/local /opt /usr/lib -name 'libnvrtc.so.13' 2>/dev/null || true; } | head -1)
    [ -z "$NVRTC_FOUND" ] || export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$NVRTC_FOUND")"
  fi
  export NVRTC_FOUND
  local t0=$SECONDS
  step preflight 20 "$self" preflight "$dir"
  if [ ${#failed[@]} -gt 0 ]; then
    grep -vE '^(running |test result|failures:|    [a-z_]+$)|^$' "$out/preflight.log"
    echo "gpu-check: FAILED: the CUDA kernels cannot run on this machine (above); stopped before the other steps" >&2
    exit 1
  fi
  cat "$out/preflight.log"
  step cuda-tests 45 "$dir/cuda-tests" --include-ignored --test-threads=1 --show-output
  step runtime-tests 45 "$dir/runtime-tests" --include-ignored --test-threads=1
  step gpu-tests 150 "$dir/gpu-tests" --include-ignored --test-threads=1
  step bench 50 "$dir/kernels-bench"
  step heat 40 "$self" heat "$dir"
  {
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi')"
    echo
    echo '```'
    grep -vE '^(running |test |successes:|failures:|---- )|^$' "$out/preflight.log" || true
    printf '%s\n' "${summary[@]}"
    grep -hE '^test .*(ok|FAILED|ignored.*)$|^test result' "$out"/{cuda,runtime,gpu}-tests.log || true
    grep -h 'cuIpcGetMemHandle' "$out/cuda-tests.log" || true
    cat "$out/bench.log"
    grep '^heat example' "$out/heat.log" || true
    echo '```'
  } >"$out/results.md"
  cat "$out/results.md"
  echo "gpu-check: $((SECONDS - t0)) s; logs and results.md in $out" >&2
  if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu-check: FAILED: ${failed[*]}" >&2
    exit 1
  fi
  echo "gpu-check: passed" >&2
}

here=$(cd "$(dirname "$0")" && pwd)
case "${1:-all}" in
  build) build "${2:-target/gpu-check}" ;;
  run) run "${2:-$here}" "${3:-${OUT:-${2:-$here}/out}}" ;;
  all)
    build target/gpu-check
    rc=0 && target/gpu-check/gpu-check.sh run target/gpu-check target/gpu-check/out || rc=$?
    if [ "$rc" -eq 0 ]; then
      printf '%s\n\n' "$(cat target/gpu-check/out/results.md)" >>kernels/GPU-RESULTS.md
      echo "gpu-check: results appended to kernels/GPU-RESULTS.md" >&2
    fi
    exit "$rc"
    ;;
  # The steps that run as their own process (under timeout).
  preflight) preflight "$2" ;;
  heat) heat_figures "$2" ;;
  *) echo "usage: $0 [build [DIR] | run [DIR] [OUT]]" >&2; exit 2 ;;
esac
