//! Compute kernels with one API over a CPU back end and a CUDA back end. No MPI.
pub mod cuda;
