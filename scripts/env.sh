# Sourced by the Makefile: select the MPI and HDF5 to build against and run with.
# A cluster user who did `module load` keeps their MPICC / MPI_PKG_CONFIG / HDF5_DIR /
# PKG_CONFIG_PATH: nothing here overrides a variable that is already set.
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
case "${RANKWISE_MPI:-openmpi}" in
  mpich)
    # Debian keeps OpenMPI as the default when both are installed: point every tool at MPICH,
    # and build into its own target folder (mpi-sys does not notice MPICC changing).
    export MPICC=${MPICC:-mpicc.mpich}
    export RANKWISE_MPIRUN=${RANKWISE_MPIRUN:-mpirun.mpich}
    pc="$PWD/target/pkgconfig-mpich"
    mkdir -p "$pc"
    for d in /usr/lib/x86_64-linux-gnu/pkgconfig /usr/lib/aarch64-linux-gnu/pkgconfig; do
      [ -f "$d/hdf5-mpich.pc" ] && ln -sf "$d/hdf5-mpich.pc" "$pc/hdf5.pc"
    done
    export PKG_CONFIG_PATH="$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/mpich}
    ;;
esac
# Ranks fill the cores: keep OpenBLAS single-threaded inside each.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# NVRTC and ptxas from scripts/setup.sh, for the kernel compile tests, after any the machine
# already has on its paths (a GPU machine's own CUDA, a loaded module).
cuda_tools="$PWD/target/cuda-tools/nvidia/cu13"
if [ -d "$cuda_tools/lib" ]; then
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$cuda_tools/lib" PATH="$PATH:$cuda_tools/bin"
fi
