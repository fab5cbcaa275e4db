//! Compute kernels with one API over a CPU back end and a CUDA back end. No MPI.
//!
//! - [`cpu`]: plain functions on ndarray views (rayon-parallel), callable directly from a
//!   simulation code: `kernels::cpu::laplacian_2d(src.view(), dst.view_mut(), 1, [h, h])`.
//! - [`cuda`]: the same kernels on device memory, compiled once per process by NVRTC; streams
//!   that overlap ([`CudaBackend::fork`]); [`DeviceBlock`], a field block with ghost layers in
//!   device memory whose faces pack into contiguous buffers for a halo exchange.
//! - [`Backend`] and [`Buffer`]: pick the back end at run time and write the code once; the
//!   same call gives the same answer on both, to rounding.
//!
//! Stencils take a block with `g` ghost layers on every side and write only its interior;
//! boundary conditions are whatever the caller put in the ghosts.
pub mod backend;
pub mod cpu;
pub mod csr;
pub mod cuda;

pub use backend::{Backend, Buffer, Sparse};
/// cudarc, re-exported so that codes name the device types (`CudaSlice`, ...) of the same version.
pub use cudarc;
pub use csr::Csr;
pub use cuda::{CudaBackend, CudaError, DeviceArray, DeviceBlock, ExchangeBuffer, Rounding};

/// What a kernel call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Arrays whose shapes do not fit together, or a block too small for its ghosts.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An array whose last axis is not contiguous where a kernel needs it to be.
    #[error("layout: {0}")]
    Layout(String),
    /// A factorisation failed (singular or not positive definite matrix, ...).
    #[error("linear algebra: {0}")]
    Linalg(String),
    /// An unknown back-end name, or a buffer given to a back end it does not live on.
    #[error("backend: {0}")]
    Backend(String),
    #[error(transparent)]
    Cuda(#[from] CudaError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
