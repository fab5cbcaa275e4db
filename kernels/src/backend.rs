//! One API over both back ends: the caller picks one at run time and writes the code once.
//!
//! ```no_run
//! use rankwise_kernels::{Backend, Buffer};
//! let be = Backend::from_name("auto")?; // CUDA when a GPU is usable, else the CPU
//! let u0 = ndarray::Array2::<f64>::ones((66, 66));
//! let (mut u, mut v) = (be.upload(u0.view())?, be.upload(u0.view())?);
//! for _ in 0..100 {
//!     be.heat_step_2d(&u, &mut v, 1, [0.1, 0.1], 1e-3)?;
//!     std::mem::swap(&mut u, &mut v);
//! }
//! let u_host = be.download(&u)?;
//! # Ok::<(), rankwise_kernels::Error>(())
//! ```
use ndarray::{Array, ArrayView, ArrayViewMut, Dimension, Ix1, Ix2, Ix3};

use crate::cuda::{CudaBackend, DeviceArray, DeviceCsr};
use crate::{cpu, Csr, Error, Result};

/// Where the kernels run.
#[derive(Clone)]
pub enum Backend {
    Cpu,
    Cuda(CudaBackend),
}

/// An `f64` array in the memory of a back end: the host for [`Backend::Cpu`], the device for
/// [`Backend::Cuda`].
pub enum Buffer<D: Dimension> {
    Host(Array<f64, D>),
    Device(DeviceArray<D>),
}

/// A CSR matrix in the memory of a back end.
pub enum Sparse {
    Host(Csr<f64>),
    Device(DeviceCsr),
}

impl<D: Dimension> Buffer<D> {
    pub fn shape(&self) -> &[usize] {
        match self {
            Buffer::Host(a) => a.shape(),
            Buffer::Device(a) => a.shape(),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A buffer handed to a back end it does not live on.
fn misplaced(be: &Backend) -> Error {
    Error::Backend(format!("a buffer given to the {} back end lives in the other back end's memory", be.name()))
}

// The memory of a buffer, checked against the back end it is given to.
fn host<'a, D: Dimension>(be: &Backend, b: &'a Buffer<D>) -> Result<ArrayView<'a, f64, D>> {
    match b {
        Buffer::Host(a) => Ok(a.view()),
        Buffer::Device(_) => Err(misplaced(be)),
    }
}
fn host_mut<'a, D: Dimension>(be: &Backend, b: &'a mut Buffer<D>) -> Result<ArrayViewMut<'a, f64, D>> {
    match b {
        Buffer::Host(a) => Ok(a.view_mut()),
        Buffer::Device(_) => Err(misplaced(be)),
    }
}
fn dev<'a, D: Dimension>(be: &Backend, b: &'a Buffer<D>) -> Result<&'a DeviceArray<D>> {
    match b {
        Buffer::Device(a) => Ok(a),
        Buffer::Host(_) => Err(misplaced(be)),
    }
}
fn dev_mut<'a, D: Dimension>(be: &Backend, b: &'a mut Buffer<D>) -> Result<&'a mut DeviceArray<D>> {
    match b {
        Buffer::Device(a) => Ok(a),
        Buffer::Host(_) => Err(misplaced(be)),
    }
}

impl Backend {
    /// `"cpu"`, `"cuda"` (device 0 of the visible ones; an error when CUDA is unusable) or
    /// `"auto"` (CUDA when usable, else the CPU).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::select(name, 0)
    }

    /// Like [`Backend::from_name`], on CUDA device `ordinal` (the runtime's GPU binding).
    pub fn select(name: &str, ordinal: usize) -> Result<Self> {
        match name {
            "cpu" => Ok(Backend::Cpu),
            "cuda" => Ok(Backend::Cuda(CudaBackend::new(ordinal)?)),
            "auto" => Ok(Self::auto(ordinal)),
            _ => Err(Error::Backend(format!("unknown back end '{name}': expected cpu, cuda or auto"))),
        }
    }

    /// CUDA on device `ordinal` when it is usable, else the CPU (and the reason is logged).
    pub fn auto(ordinal: usize) -> Self {
        match CudaBackend::new(ordinal) {
            Ok(c) => Backend::Cuda(c),
            Err(e) => {
                log::info!("using the CPU back end: {e}");
                Backend::Cpu
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda(_) => "cuda",
        }
    }

    /// Copies a host array into this back end's memory.
    pub fn upload<D: Dimension>(&self, a: ArrayView<f64, D>) -> Result<Buffer<D>> {
        Ok(match self {
            Backend::Cpu => Buffer::Host(a.to_owned()),
            Backend::Cuda(c) => Buffer::Device(c.upload(a)?),
        })
    }

    /// A zeroed buffer.
    pub fn zeros<D: Dimension>(&self, dim: D) -> Result<Buffer<D>> {
        Ok(match self {
            Backend::Cpu => Buffer::Host(Array::zeros(dim)),
            Backend::Cuda(c) => Buffer::Device(c.zeros(dim)?),
        })
    }

    /// Copies a buffer to the host (after the work issued on it is done).
    pub fn download<D: Dimension>(&self, b: &Buffer<D>) -> Result<Array<f64, D>> {
        match (self, b) {
            (Backend::Cpu, Buffer::Host(a)) => Ok(a.clone()),
            (Backend::Cuda(c), Buffer::Device(a)) => c.download(a),
            _ => Err(misplaced(self)),
        }
    }

    /// Waits until every kernel issued so far is done (a no-op on the CPU).
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Backend::Cpu => Ok(()),
            Backend::Cuda(c) => Ok(c.synchronize()?),
        }
    }

    /// Copies a CSR matrix into this back end's memory.
    pub fn upload_csr(&self, a: &Csr<f64>) -> Result<Sparse> {
        Ok(match self {
            Backend::Cpu => Sparse::Host(a.clone()),
            Backend::Cuda(c) => Sparse::Device(c.upload_csr(a)?),
        })
    }

    /// `dst = lap(src)` on the interior, see [`cpu::laplacian_2d`].
    pub fn laplacian_2d(&self, src: &Buffer<Ix2>, dst: &mut Buffer<Ix2>, g: usize, h: [f64; 2]) -> Result<()> {
        match self {
            Backend::Cpu => cpu::laplacian_2d(host(self, src)?, host_mut(self, dst)?, g, h),
            Backend::Cuda(c) => c.laplacian_2d(dev(self, src)?, dev_mut(self, dst)?, g, h),
        }
    }

    /// `dst = lap(src)` on the interior, see [`cpu::laplacian_3d`].
    pub fn laplacian_3d(&self, src: &Buffer<Ix3>, dst: &mut Buffer<Ix3>, g: usize, h: [f64; 3]) -> Result<()> {
        match self {
            Backend::Cpu => cpu::laplacian_3d(host(self, src)?, host_mut(self, dst)?, g, h),
            Backend::Cuda(c) => c.laplacian_3d(dev(self, src)?, dev_mut(self, dst)?, g, h),
        }
    }

    /// `dst = src + nu_dt lap(src)`, see [`cpu::heat_step_2d`].
    pub fn heat_step_2d(&self, src: &Buffer<Ix2>, dst: &mut Buffer<Ix2>, g: usize, h: [f64; 2], nu_dt: f64) -> Result<()> {
        match self {
            Backend::Cpu => cpu::heat_step_2d(host(self, src)?, host_mut(self, dst)?, g, h, nu_dt),
            Backend::Cuda(c) => c.heat_step_2d(dev(self, src)?, dev_mut(self, dst)?, g, h, nu_dt),
        }
    }

    /// `dst = src + nu_dt lap(src)`, see [`cpu::heat_step_3d`].
    pub fn heat_step_3d(&self, src: &Buffer<Ix3>, dst: &mut Buffer<Ix3>, g: usize, h: [f64; 3], nu_dt: f64) -> Result<()> {
        match self {
            Backend::Cpu => cpu::heat_step_3d(host(self, src)?, host_mut(self, dst)?, g, h, nu_dt),
            Backend::Cuda(c) => c.heat_step_3d(dev(self, src)?, dev_mut(self, dst)?, g, h, nu_dt),
        }
    }

    /// One weighted Jacobi sweep for `-lap(u) = f`, see [`cpu::jacobi_2d`].
    pub fn jacobi_2d(&self, u: &Buffer<Ix2>, f: &Buffer<Ix2>, dst: &mut Buffer<Ix2>, g: usize, h: [f64; 2], omega: f64) -> Result<()> {
        match self {
            Backend::Cpu => cpu::jacobi_2d(host(self, u)?, host(self, f)?, host_mut(self, dst)?, g, h, omega),
            Backend::Cuda(c) => c.jacobi_2d(dev(self, u)?, dev(self, f)?, dev_mut(self, dst)?, g, h, omega),
        }
    }

    /// One weighted Jacobi sweep for `-lap(u) = f`, see [`cpu::jacobi_3d`].
    pub fn jacobi_3d(&self, u: &Buffer<Ix3>, f: &Buffer<Ix3>, dst: &mut Buffer<Ix3>, g: usize, h: [f64; 3], omega: f64) -> Result<()> {
        match self {
            Backend::Cpu => cpu::jacobi_3d(host(self, u)?, host(self, f)?, host_mut(self, dst)?, g, h, omega),
            Backend::Cuda(c) => c.jacobi_3d(dev(self, u)?, dev(self, f)?, dev_mut(self, dst)?, g, h, omega),
        }
    }

    /// `y = a x + y`.
    pub fn axpy<D: Dimension>(&self, a: f64, x: &Buffer<D>, y: &mut Buffer<D>) -> Result<()> {
        match self {
            Backend::Cpu => cpu::axpy(a, host(self, x)?, host_mut(self, y)?),
            Backend::Cuda(c) => c.axpy(a, dev(self, x)?, dev_mut(self, y)?),
        }
    }

    /// `y = a x + b y`.
    pub fn axpby<D: Dimension>(&self, a: f64, x: &Buffer<D>, b: f64, y: &mut Buffer<D>) -> Result<()> {
        match self {
            Backend::Cpu => cpu::axpby(a, host(self, x)?, b, host_mut(self, y)?),
            Backend::Cuda(c) => c.axpby(a, dev(self, x)?, b, dev_mut(self, y)?),
        }
    }

    /// `x = a x`.
    pub fn scale<D: Dimension>(&self, a: f64, x: &mut Buffer<D>) -> Result<()> {
        match self {
            Backend::Cpu => {
                cpu::scale(a, host_mut(self, x)?);
                Ok(())
            }
            Backend::Cuda(c) => c.scale(a, dev_mut(self, x)?),
        }
    }

    /// `x = a` everywhere.
    pub fn fill<D: Dimension>(&self, a: f64, x: &mut Buffer<D>) -> Result<()> {
        match self {
            Backend::Cpu => {
                cpu::fill(a, host_mut(self, x)?);
                Ok(())
            }
            Backend::Cuda(c) => c.fill(a, dev_mut(self, x)?),
        }
    }

    /// `y = x`.
    pub fn copy<D: Dimension>(&self, x: &Buffer<D>, y: &mut Buffer<D>) -> Result<()> {
        match self {
            Backend::Cpu => cpu::copy(host(self, x)?, host_mut(self, y)?),
            Backend::Cuda(c) => c.copy(dev(self, x)?, dev_mut(self, y)?),
        }
    }

    /// `x . y`.
    pub fn dot<D: Dimension>(&self, x: &Buffer<D>, y: &Buffer<D>) -> Result<f64> {
        match self {
            Backend::Cpu => cpu::dot(host(self, x)?, host(self, y)?),
            Backend::Cuda(c) => c.dot(dev(self, x)?, dev(self, y)?),
        }
    }

    /// `sqrt(x . x)`.
    pub fn norm2<D: Dimension>(&self, x: &Buffer<D>) -> Result<f64> {
        Ok(self.dot(x, x)?.sqrt())
    }

    /// `y = A x`.
    pub fn spmv(&self, a: &Sparse, x: &Buffer<Ix1>, y: &mut Buffer<Ix1>) -> Result<()> {
        match (self, a) {
            (Backend::Cpu, Sparse::Host(a)) => cpu::spmv(a, host(self, x)?, host_mut(self, y)?),
            (Backend::Cuda(c), Sparse::Device(a)) => c.spmv(a, dev(self, x)?, dev_mut(self, y)?),
            _ => Err(misplaced(self)),
        }
    }

    /// `c = a b`: OpenBLAS on the CPU, a tiled kernel on the GPU.
    pub fn matmul(&self, a: &Buffer<Ix2>, b: &Buffer<Ix2>, c: &mut Buffer<Ix2>) -> Result<()> {
        match self {
            Backend::Cpu => cpu::matmul(host(self, a)?, host(self, b)?, host_mut(self, c)?),
            Backend::Cuda(g) => g.matmul(dev(self, a)?, dev(self, b)?, dev_mut(self, c)?),
        }
    }
}
