#!/usr/bin/env bash
# Install what Rankwise needs on Debian/Ubuntu, once: MPI, parallel HDF5, OpenBLAS, libclang,
# pkg-config, the HDF5 command-line tools and h5py (independent readers for the tests), Slurm and
# munge (the test suite starts its own one-node cluster; no service is started on install).
# RANKWISE_MPI=mpich selects MPICH instead of OpenMPI (default; MPICH is installed beside it for
# tests/mpich.rs). Idempotent and quick when done.
set -euo pipefail
mpi=${RANKWISE_MPI:-openmpi}
case "$mpi" in
  # MPICH beside it (Debian keeps Open MPI the default): the MPICH smoke set (tests/mpich.rs).
  openmpi) pkgs="libopenmpi-dev openmpi-bin libhdf5-openmpi-dev libmpich-dev mpich libhdf5-mpich-dev" ;;
  mpich)   pkgs="libmpich-dev mpich libhdf5-mpich-dev" ;;
  *) echo "error: RANKWISE_MPI must be openmpi or mpich, not '$mpi'" >&2; exit 2 ;;
esac
# The other MPI beside it (Debian keeps Open MPI the default): the tests start programs with the
# wrong MPI's launcher on purpose, and `rankwise run` picks the launcher of the program's MPI.
pkgs="$pkgs libopenmpi-dev openmpi-bin mpich libmpich-dev libhdf5-mpich-dev"
pkgs="$pkgs libopenblas-dev libclang-dev clang pkg-config gcc g++ gfortran make hdf5-tools python3-h5py python3-numpy python3-pip python3-mpi4py python3-pytest python3-venv python3-dev slurm-wlm munge ${RANKWISE_EXTRA_PACKAGES:-}"

# Network namespaces for the multi-host tests (scripts/hosts.sh: ip, nsenter, unshare).
pkgs="$pkgs iproute2 util-linux"
missing=()
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "setup: no Rust toolchain; installing one with rustup" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
fi
# NVIDIA's CUDA compilers as Python wheels, into target/cuda-tools: NVRTC (the library the CUDA
# back end compiles its kernels with) and ptxas. Neither needs a GPU, so the test suite compiles
# and assembles every kernel here too. Optional: without them (no PyPI) those tests skip.
cuda_tools="$(cd "$(dirname "$0")/.." && pwd)/target/cuda-tools"
if [ ! -x "$cuda_tools/nvidia/cu13/bin/ptxas" ] || [ ! -e "$cuda_tools/nvidia/cu13/lib/libnvrtc.so.13" ]; then
  echo "setup: installing NVRTC and ptxas 13.0 (pip wheels) into $cuda_tools" >&2
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --target "$cuda_tools" "nvidia-cuda-nvrtc==13.0.88" "nvidia-cuda-nvcc==13.0.88" >&2 ||
    echo "setup: warning: could not install NVRTC/ptxas; the kernel compile tests will fail until they are" >&2
fi
# maturin, which builds the Python package (`pip install ./python`), into target/python-tools:
# tests/python.rs builds the package with it and installs it beside the build, not into the system.
py_tools="$(cd "$(dirname "$0")/.." && pwd)/target/python-tools"
if [ ! -x "$py_tools/bin/maturin" ]; then
  echo "setup: installing maturin (pip wheel) into $py_tools" >&2
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore /usr/bin/python3 -m pip install --quiet --disable-pip-version-check \
    --target "$py_tools" "maturin>=1.5,<2" >&2 ||
    echo "setup: warning: could not install maturin; the Python package's tests will fail until it is" >&2
fi
