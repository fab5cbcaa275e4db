#!/usr/bin/env bash
# Install what Rankwise needs on Debian/Ubuntu, once: MPI, parallel HDF5, OpenBLAS, libclang,
# pkg-config, the HDF5 command-line tools and h5py (independent readers for the tests), Slurm and
# munge (the test suite starts its own one-node cluster; no service is started on install).
# RANKWISE_MPI=mpich selects MPICH instead of OpenMPI (default). Idempotent and quick when done.
set -euo pipefail
mpi=${RANKWISE_MPI:-openmpi}
case "$mpi" in
  openmpi) pkgs="libopenmpi-dev openmpi-bin libhdf5-openmpi-dev" ;;
  mpich)   pkgs="libmpich-dev mpich libhdf5-mpich-dev" ;;
  *) echo "error: RANKWISE_MPI must be openmpi or mpich, not '$mpi'" >&2; exit 2 ;;
esac
pkgs="$pkgs libopenblas-dev libclang-dev clang pkg-config gcc make hdf5-tools python3-h5py python3-numpy slurm-wlm munge ${RANKWISE_EXTRA_PACKAGES:-}"

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
