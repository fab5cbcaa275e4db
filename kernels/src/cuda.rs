//! The CUDA back end (cudarc with dynamic loading: builds and runs without CUDA installed).
//!
//! The kernels are CUDA C in `src/cuda/*.cu`, compiled by NVRTC to machine code once per process
//! (per compute capability) and loaded into each context. They round as the CPU back end does
//! (no fused multiply-add, the same order of operations), so the elementwise kernels, stencils
//! and SpMV give the CPU's bits; reductions and matmul sum in another order. A [`CudaBackend`]
//! issues work on one stream; [`CudaBackend::fork`] gives a second one (a halo copy beside an
//! interior kernel) and [`CudaBackend::join`] orders them again. cudarc records which stream
//! last used each buffer, so a buffer handed from one stream to the other is waited for
//! correctly.
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DriverError, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use ndarray::{Array, ArrayView, Dimension, Ix1, Ix2, Ix3};

use crate::{cpu::check_block, Csr, Error, Result};

mod block;
pub use block::{DeviceBlock, ExchangeBuffer, Side};

/// Why the CUDA back end is not available, or what went wrong in it.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver (libcuda) found")]
    NoDriver,
    #[error("no CUDA device {ordinal}: the driver sees {count}")]
    NoDevice { ordinal: usize, count: usize },
    #[error("no NVRTC library (libnvrtc) found: the CUDA back end compiles its kernels at run time")]
    NoNvrtc,
    #[error("CUDA driver error: {0}")]
    Driver(String),
    #[error("NVRTC could not compile the kernels: {0}")]
    Compile(String),
}

impl From<DriverError> for CudaError {
    fn from(e: DriverError) -> Self {
        CudaError::Driver(format!("{e:?}"))
    }
}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Self {
        Error::Cuda(e.into())
    }
}

/// Number of visible CUDA devices. Never panics: without a driver it says so.
pub fn device_count() -> Result<usize, CudaError> {
    // cudarc panics when libcuda is missing, so ask first.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::NoDriver);
    }
    match CudaContext::device_count() {
        Ok(n) => Ok(n as usize),
        Err(e) if format!("{e:?}").contains("NO_DEVICE") => Ok(0),
        Err(e) => Err(CudaError::Driver(format!("{e:?}"))),
    }
}

const SOURCES: [&str; 5] = [
    include_str!("cuda/stencil.cu"),
    include_str!("cuda/halo.cu"),
    include_str!("cuda/vector.cu"),
    include_str!("cuda/spmv.cu"),
    include_str!("cuda/gemm.cu"),
];
const FUNCTIONS: [&str; 11] = [
    "stencil_2d",
    "stencil_3d",
    "pack_slab",
    "unpack_slab",
    "axpby",
    "scale",
    "fill",
    "dot_partial",
    "sum_partials",
    "csr_spmv",
    "gemm_tiled",
];
/// Must match `REDUCE_THREADS` in vector.cu.
const REDUCE_THREADS: u32 = 256;
/// Blocks of the first reduction pass (and elementwise grids): enough to fill any current GPU.
const MAX_BLOCKS: u32 = 1024;
/// Must match `GEMM_TILE` and `GEMM_ROWS` in gemm.cu.
const GEMM_TILE: u32 = 32;
const GEMM_ROWS: u32 = 8;

/// How the kernels round a multiply followed by an add.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// As the CPU back end rounds (NVRTC's `--fmad=false`): every product and sum rounded on
    /// its own, in the CPU kernels' order, so the elementwise kernels, stencils and SpMV give
    /// the CPU's bits, and a run can restart from a GPU checkpoint on CPU nodes (or the other
    /// way) bit for bit. Rust never contracts to FMA; NVRTC does by default.
    #[default]
    Cpu,
    /// Multiply-adds contracted into fused multiply-adds (NVRTC's default): one rounding
    /// instead of two, and differences from the CPU in the last bit.
    Fma,
}

impl Rounding {
    fn nvrtc_option(self) -> &'static str {
        match self {
            Rounding::Cpu => "--fmad=false",
            Rounding::Fma => "--fmad=true",
        }
    }
}

/// What NVRTC makes of the kernels: PTX for a virtual architecture (`compute_XY`), or machine
/// code (CUBIN) for a real one (`sm_XY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Ptx,
    Cubin,
}

/// Compiles the kernels for compute capability `cc`. Never panics without NVRTC.
fn nvrtc(cc: (i32, i32), output: Output, rounding: Rounding) -> Result<Vec<u8>, CudaError> {
    use cudarc::nvrtc::{result as nv, sys};
    // cudarc panics when libnvrtc is missing, so ask first.
    if !unsafe { sys::is_culib_present() } {
        return Err(CudaError::NoNvrtc);
    }
    let kind = if output == Output::Cubin { "sm" } else { "compute" };
    let arch = format!("--gpu-architecture={kind}_{}{}", cc.0, cc.1);
    let fail = |what: &str, e: nv::NvrtcError| CudaError::Compile(format!("{what} for {kind}_{}{}: {e}", cc.0, cc.1));
    let src = std::ffi::CString::new(SOURCES.concat()).expect("no NUL in the kernel sources");
    let prog = nv::create_program(&src, Some(c"rankwise_kernels.cu")).map_err(|e| fail("nvrtcCreateProgram", e))?;
    let options = [arch.as_str(), rounding.nvrtc_option()];
    // Safety: `prog` is live until destroyed below; the buffers are sized as NVRTC says.
    let out = unsafe {
        match nv::compile_program(prog, &options) {
            Err(e) => {
                let log: Vec<u8> = nv::get_program_log(prog).unwrap_or_default().iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
                let log = String::from_utf8_lossy(&log);
                Err(CudaError::Compile(format!("{e} for {kind}_{}{}:\n{log}", cc.0, cc.1)))
            }
            Ok(()) if output == Output::Ptx => {
                nv::get_ptx(prog).map(|p| p.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect()).map_err(|e| fail("nvrtcGetPTX", e))
            }
            Ok(()) => {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(prog, &mut size).result().map_err(|e| fail("nvrtcGetCUBINSize", e))?;
                let mut cubin = vec![0u8; size];
                sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast()).result().map_err(|e| fail("nvrtcGetCUBIN", e))?;
                Ok(cubin)
            }
        }
    };
    // Safety: created above, destroyed once.
    let _ = unsafe { nv::destroy_program(prog) };
    out
}

/// The machine code (CUBIN) for one compute capability, compiled on first use and kept for the
/// process. Machine code, not PTX: the driver would reject PTX from an NVRTC newer than itself
/// (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`), and it needs no JIT step at load.
fn cubin(cc: (i32, i32), rounding: Rounding) -> Result<Vec<u8>, CudaError> {
    static CACHE: OnceLock<Mutex<HashMap<((i32, i32), Rounding), Vec<u8>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.get(&(cc, rounding)) {
        return Ok(c.clone());
    }
    let c = nvrtc(cc, Output::Cubin, rounding)?;
    log::info!("compiled the CUDA kernels for sm_{}{}, rounding {rounding:?} ({}; {})", cc.0, cc.1, nvrtc_version()?, driver_version()?);
    cache.insert((cc, rounding), c.clone());
    Ok(c)
}

/// NVRTC's version and the file it was loaded from, e.g. `NVRTC 13.0
/// (/usr/local/cuda/lib64/libnvrtc.so.13)`.
pub fn nvrtc_version() -> Result<String, CudaError> {
    use cudarc::nvrtc::sys;
    if !unsafe { sys::is_culib_present() } {
        return Err(CudaError::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // Safety: two out-parameters.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }.result().map_err(|e| CudaError::Compile(format!("nvrtcVersion: {e}")))?;
    Ok(format!("NVRTC {major}.{minor} ({})", loaded_from("libnvrtc")))
}

/// The CUDA version the driver supports (`cuDriverGetVersion`), e.g. `driver CUDA 13.0
/// (/usr/lib/x86_64-linux-gnu/libcuda.so.1)`.
pub fn driver_version() -> Result<String, CudaError> {
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::NoDriver);
    }
    let mut v = 0;
    // Safety: one out-parameter; needs no cuInit.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) }.result()?;
    Ok(format!("driver CUDA {}.{} ({})", v / 1000, v % 1000 / 10, loaded_from("libcuda")))
}

/// The file of a loaded shared library whose name starts with `name`, from /proc/self/maps.
fn loaded_from(name: &str) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let found = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.rsplit('/').next().is_some_and(|f| f.starts_with(name)));
    found.unwrap_or("path unknown").to_string()
}

/// The UUID of CUDA device `ordinal` (among the visible ones): what tells two ranks whether
/// they drive the same GPU, whatever `CUDA_VISIBLE_DEVICES` shows each of them.
pub fn device_uuid(ordinal: usize) -> Result<[u8; 16], CudaError> {
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::NoDriver);
    }
    use cudarc::driver::result;
    result::init()?;
    let dev = result::device::get(ordinal as i32)?;
    Ok(result::device::get_uuid(dev)?.bytes.map(|b| b as u8))
}

/// An `f64` array in device memory, row-major, with its shape.
pub struct DeviceArray<D: Dimension> {
    data: CudaSlice<f64>,
    dim: D,
}

impl<D: Dimension> DeviceArray<D> {
    pub fn dim(&self) -> &D {
        &self.dim
    }
    pub fn shape(&self) -> &[usize] {
        self.dim.slice()
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The device memory, for a code's own kernels.
    pub fn data(&self) -> &CudaSlice<f64> {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut CudaSlice<f64> {
        &mut self.data
    }
}

/// A CSR matrix in device memory (32-bit indices).
pub struct DeviceCsr {
    nrows: usize,
    ncols: usize,
    indptr: CudaSlice<u32>,
    indices: CudaSlice<u32>,
    values: CudaSlice<f64>,
}

/// The CUDA back end on one device and one stream.
#[derive(Clone)]
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    functions: Arc<HashMap<&'static str, CudaFunction>>,
    /// Per-block partial sums of a reduction, then the total; one per stream.
    scratch: Arc<Mutex<CudaSlice<f64>>>,
}

impl CudaBackend {
    /// Opens device `ordinal` (among the visible ones) and loads the kernels, compiling them
    /// first if this process has not yet. Without a driver, a device or NVRTC: a clear error.
    /// The kernels round as the CPU back end does ([`Rounding::Cpu`]).
    pub fn new(ordinal: usize) -> Result<Self, CudaError> {
        Self::with_rounding(ordinal, Rounding::Cpu)
    }

    /// [`CudaBackend::new`] with the kernels compiled for `rounding`.
    pub fn with_rounding(ordinal: usize, rounding: Rounding) -> Result<Self, CudaError> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(CudaError::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal)?;
        let module = ctx.load_module(Ptx::from_binary(cubin(ctx.compute_capability()?, rounding)?))?;
        let functions = FUNCTIONS
            .iter()
            .map(|&name| Ok((name, module.load_function(name)?)))
            .collect::<Result<HashMap<_, _>, DriverError>>()?;
        Self::on_stream(ctx.new_stream()?, Arc::new(functions))
    }

    fn on_stream(stream: Arc<CudaStream>, functions: Arc<HashMap<&'static str, CudaFunction>>) -> Result<Self, CudaError> {
        let scratch = stream.alloc_zeros::<f64>(MAX_BLOCKS as usize + 1)?;
        Ok(CudaBackend { stream, functions, scratch: Arc::new(Mutex::new(scratch)) })
    }

    /// The same device on a new stream: work issued there may overlap this one's.
    pub fn fork(&self) -> Result<Self, CudaError> {
        Self::on_stream(self.stream.context().new_stream()?, self.functions.clone())
    }

    /// Work issued here from now on waits for what `other` has issued so far.
    pub fn join(&self, other: &CudaBackend) -> Result<(), CudaError> {
        Ok(self.stream.join(&other.stream)?)
    }

    /// Waits until everything issued on this stream is done.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        Ok(self.stream.synchronize()?)
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn device_name(&self) -> Result<String, CudaError> {
        Ok(self.stream.context().name()?)
    }

    pub(crate) fn function(&self, name: &str) -> &CudaFunction {
        &self.functions[name]
    }

    /// Copies a host array to the device.
    pub fn upload<D: Dimension>(&self, a: ArrayView<f64, D>) -> Result<DeviceArray<D>> {
        let a = a.as_standard_layout();
        let data = self.stream.clone_htod(a.as_slice().expect("standard layout"))?;
        Ok(DeviceArray { data, dim: a.raw_dim() })
    }

    /// A zeroed device array of the given shape.
    pub fn zeros<D: Dimension>(&self, dim: D) -> Result<DeviceArray<D>> {
        let data = self.stream.alloc_zeros::<f64>(dim.size())?;
        Ok(DeviceArray { data, dim })
    }

    /// Copies a device array back to the host (waits for the work on it).
    pub fn download<D: Dimension>(&self, a: &DeviceArray<D>) -> Result<Array<f64, D>> {
        let v = self.stream.clone_dtoh(&a.data)?;
        self.stream.synchronize()?;
        Ok(Array::from_shape_vec(a.dim.clone(), v).expect("length matches shape"))
    }

    /// `out = a*u + b*(lap(u) + f)` on the interior of a block with `g` ghost layers, see
    /// `cpu/stencil.rs`.
    #[allow(clippy::too_many_arguments)]
    fn stencil_interior<D: Dimension>(&self, u: &DeviceArray<D>, f: Option<&DeviceArray<D>>, out: &mut DeviceArray<D>, g: usize, h: &[f64], a: f64, b: f64) -> Result<()> {
        if !check_block(u.shape(), &[], &[out.shape(), f.unwrap_or(u).shape()], g)? {
            return Ok(());
        }
        let cells: Vec<Range<usize>> = u.shape().iter().map(|&n| g..n - g).collect();
        self.stencil(u, f, out, &cells, h, a, b)
    }

    /// `out = a*u + b*(lap(u) + f)` on the box `cells` of a 2-D or 3-D block (block indices,
    /// ghosts included), every cell at least one in from the block's edges.
    #[allow(clippy::too_many_arguments)]
    fn stencil<D: Dimension>(&self, u: &DeviceArray<D>, f: Option<&DeviceArray<D>>, out: &mut DeviceArray<D>, cells: &[Range<usize>], h: &[f64], a: f64, b: f64) -> Result<()> {
        let n = u.shape();
        same_shape(n, out.shape())?;
        same_shape(n, f.unwrap_or(u).shape())?;
        if !(2..=3).contains(&n.len()) || cells.len() != n.len() || h.len() != n.len() {
            return Err(Error::Shape(format!("a stencil on {} axes needs a 2-D or 3-D block (block {n:?}, box {cells:?}, {} spacings)", cells.len(), h.len())));
        }
        if cells.iter().zip(n).any(|(c, &n)| c.start < 1 || c.end + 1 > n) {
            return Err(Error::Shape(format!("cells {cells:?} of block {n:?}: a stencil needs one cell beyond the box on every side")));
        }
        if cells.iter().any(|c| c.is_empty()) {
            return Ok(());
        }
        let c: Vec<f64> = h.iter().map(|h| 1.0 / (h * h)).collect();
        let has_f = f.is_some() as i32;
        let f = f.unwrap_or(u);
        let (lo, hi): (Vec<i32>, Vec<i32>) = (cells.iter().map(|c| int(c.start)).collect::<Result<_>>()?, cells.iter().map(|c| int(c.end)).collect::<Result<_>>()?);
        let ext = |k: usize| cells[k].len();
        let (cfg, name) = if n.len() == 2 {
            let (bx, by) = (32, 8);
            (LaunchConfig { grid_dim: (blocks(ext(1), bx), blocks(ext(0), by), 1), block_dim: (bx, by, 1), shared_mem_bytes: 0 }, "stencil_2d")
        } else {
            let (bx, by, bz) = (32, 4, 2);
            let grid_dim = (blocks(ext(2), bx), blocks(ext(1), by), blocks(ext(0), bz));
            (LaunchConfig { grid_dim, block_dim: (bx, by, bz), shared_mem_bytes: 0 }, "stencil_3d")
        };
        let sizes: Vec<i32> = n[1..].iter().map(|&n| int(n)).collect::<Result<_>>()?;
        let mut l = self.stream.launch_builder(self.function(name));
        l.arg(&u.data).arg(&f.data).arg(&has_f).arg(&mut out.data);
        for s in &sizes {
            l.arg(s);
        }
        for k in 0..n.len() {
            l.arg(&lo[k]).arg(&hi[k]);
        }
        for ck in &c {
            l.arg(ck);
        }
        l.arg(&a).arg(&b);
        // Safety: the argument list matches stencil.cu's signatures (2-D: ny; 3-D: ny, nz) and
        // the box, checked above, keeps every access inside the block.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    /// `dst = lap(src)` on the interior, see [`crate::cpu::laplacian_2d`].
    pub fn laplacian_2d(&self, src: &DeviceArray<Ix2>, dst: &mut DeviceArray<Ix2>, g: usize, h: [f64; 2]) -> Result<()> {
        self.stencil_interior(src, None, dst, g, &h, 0.0, 1.0)
    }
    /// `dst = lap(src)` on the interior, see [`crate::cpu::laplacian_3d`].
    pub fn laplacian_3d(&self, src: &DeviceArray<Ix3>, dst: &mut DeviceArray<Ix3>, g: usize, h: [f64; 3]) -> Result<()> {
        self.stencil_interior(src, None, dst, g, &h, 0.0, 1.0)
    }
    /// See [`crate::cpu::heat_step_2d`].
    pub fn heat_step_2d(&self, src: &DeviceArray<Ix2>, dst: &mut DeviceArray<Ix2>, g: usize, h: [f64; 2], nu_dt: f64) -> Result<()> {
        self.stencil_interior(src, None, dst, g, &h, 1.0, nu_dt)
    }
    /// See [`crate::cpu::heat_step_3d`].
    pub fn heat_step_3d(&self, src: &DeviceArray<Ix3>, dst: &mut DeviceArray<Ix3>, g: usize, h: [f64; 3], nu_dt: f64) -> Result<()> {
        self.stencil_interior(src, None, dst, g, &h, 1.0, nu_dt)
    }
    /// See [`crate::cpu::jacobi_2d`].
    pub fn jacobi_2d(&self, u: &DeviceArray<Ix2>, f: &DeviceArray<Ix2>, dst: &mut DeviceArray<Ix2>, g: usize, h: [f64; 2], omega: f64) -> Result<()> {
        let diag = jacobi_diagonal(&h);
        self.stencil_interior(u, Some(f), dst, g, &h, 1.0, omega / diag)
    }
    /// See [`crate::cpu::jacobi_3d`].
    pub fn jacobi_3d(&self, u: &DeviceArray<Ix3>, f: &DeviceArray<Ix3>, dst: &mut DeviceArray<Ix3>, g: usize, h: [f64; 3], omega: f64) -> Result<()> {
        let diag = jacobi_diagonal(&h);
        self.stencil_interior(u, Some(f), dst, g, &h, 1.0, omega / diag)
    }

    /// `dst = src + nu_dt lap(src)` on the box `cells` only (block indices, ghosts included;
    /// one cell beyond it on every side must lie in the block), 2-D or 3-D: a split-phase step
    /// updates the cells that need no ghost while the halo exchange runs, then the shell.
    pub fn heat_step_cells<D: Dimension>(&self, src: &DeviceArray<D>, dst: &mut DeviceArray<D>, cells: &[Range<usize>], h: &[f64], nu_dt: f64) -> Result<()> {
        self.stencil(src, None, dst, cells, h, 1.0, nu_dt)
    }
    /// `dst = lap(src)` on the box `cells` only, see [`CudaBackend::heat_step_cells`].
    pub fn laplacian_cells<D: Dimension>(&self, src: &DeviceArray<D>, dst: &mut DeviceArray<D>, cells: &[Range<usize>], h: &[f64]) -> Result<()> {
        self.stencil(src, None, dst, cells, h, 0.0, 1.0)
    }

    /// `y = a x + b y`.
    pub fn axpby<D: Dimension>(&self, a: f64, x: &DeviceArray<D>, b: f64, y: &mut DeviceArray<D>) -> Result<()> {
        same_shape(x.shape(), y.shape())?;
        let n = x.len() as u64;
        let mut l = self.stream.launch_builder(self.function("axpby"));
        l.arg(&n).arg(&a).arg(&x.data).arg(&b).arg(&mut y.data);
        // Safety: matches vector.cu; grid-stride loop bounded by n.
        unsafe { l.launch(elementwise(x.len())) }?;
        Ok(())
    }
    /// `y = a x + y`.
    pub fn axpy<D: Dimension>(&self, a: f64, x: &DeviceArray<D>, y: &mut DeviceArray<D>) -> Result<()> {
        self.axpby(a, x, 1.0, y)
    }
    /// `x = a x`.
    pub fn scale<D: Dimension>(&self, a: f64, x: &mut DeviceArray<D>) -> Result<()> {
        self.in_place("scale", a, x)
    }
    /// `x = a` everywhere.
    pub fn fill<D: Dimension>(&self, a: f64, x: &mut DeviceArray<D>) -> Result<()> {
        self.in_place("fill", a, x)
    }
    fn in_place<D: Dimension>(&self, name: &str, a: f64, x: &mut DeviceArray<D>) -> Result<()> {
        let (n, cfg) = (x.len() as u64, elementwise(x.len()));
        let mut l = self.stream.launch_builder(self.function(name));
        l.arg(&n).arg(&a).arg(&mut x.data);
        // Safety: matches vector.cu; grid-stride loop bounded by n.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }
    /// `y = x` (a device-to-device copy).
    pub fn copy<D: Dimension>(&self, x: &DeviceArray<D>, y: &mut DeviceArray<D>) -> Result<()> {
        same_shape(x.shape(), y.shape())?;
        Ok(self.stream.memcpy_dtod(&x.data, &mut y.data)?)
    }

    /// `x . y`, summed in a fixed order (the same result every call).
    pub fn dot<D: Dimension>(&self, x: &DeviceArray<D>, y: &DeviceArray<D>) -> Result<f64> {
        same_shape(x.shape(), y.shape())?;
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let n = x.len() as u64;
        let nblocks = MAX_BLOCKS.min(blocks(x.len(), REDUCE_THREADS));
        let cfg = LaunchConfig { grid_dim: (nblocks, 1, 1), block_dim: (REDUCE_THREADS, 1, 1), shared_mem_bytes: 0 };
        let mut l = self.stream.launch_builder(self.function("dot_partial"));
        l.arg(&n).arg(&x.data).arg(&y.data).arg(&mut *scratch);
        // Safety: matches vector.cu; scratch holds MAX_BLOCKS + 1 >= nblocks + 1 values.
        unsafe { l.launch(cfg) }?;
        let mut l = self.stream.launch_builder(self.function("sum_partials"));
        l.arg(&nblocks).arg(&mut *scratch);
        let one = LaunchConfig { grid_dim: (1, 1, 1), ..cfg };
        // Safety: as above; one block of REDUCE_THREADS.
        unsafe { l.launch(one) }?;
        let mut total = [0.0];
        self.stream.memcpy_dtoh(&scratch.slice(nblocks as usize..nblocks as usize + 1), &mut total)?;
        self.stream.synchronize()?;
        Ok(total[0])
    }
    /// `sqrt(x . x)`.
    pub fn norm2<D: Dimension>(&self, x: &DeviceArray<D>) -> Result<f64> {
        Ok(self.dot(x, x)?.sqrt())
    }

    /// Copies a CSR matrix to the device (its indices must fit in 32 bits).
    pub fn upload_csr(&self, a: &Csr<f64>) -> Result<DeviceCsr> {
        let narrow = |v: &[usize]| -> Result<Vec<u32>> {
            v.iter().map(|&i| u32::try_from(i).map_err(|_| Error::Shape(format!("CSR index {i} does not fit in 32 bits")))).collect()
        };
        narrow(&[a.nrows(), a.ncols()])?; // the kernel indexes rows and columns in 32 bits too
        Ok(DeviceCsr {
            nrows: a.nrows(),
            ncols: a.ncols(),
            indptr: self.stream.clone_htod(&narrow(a.indptr())?)?,
            indices: self.stream.clone_htod(&narrow(a.indices())?)?,
            values: self.stream.clone_htod(a.values())?,
        })
    }

    /// `y = A x`.
    pub fn spmv(&self, a: &DeviceCsr, x: &DeviceArray<Ix1>, y: &mut DeviceArray<Ix1>) -> Result<()> {
        if x.len() != a.ncols || y.len() != a.nrows {
            return Err(Error::Shape(format!("{}x{} matrix times a vector of {} into a vector of {}", a.nrows, a.ncols, x.len(), y.len())));
        }
        let nrows = a.nrows as u32; // checked in upload_csr
        let cfg = LaunchConfig { grid_dim: (blocks(a.nrows, 256), 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        let mut l = self.stream.launch_builder(self.function("csr_spmv"));
        l.arg(&nrows).arg(&a.indptr).arg(&a.indices).arg(&a.values).arg(&x.data).arg(&mut y.data);
        // Safety: matches spmv.cu; indices were checked against ncols when the Csr was built.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    /// `c = a b` (a tiled kernel in double precision).
    pub fn matmul(&self, a: &DeviceArray<Ix2>, b: &DeviceArray<Ix2>, c: &mut DeviceArray<Ix2>) -> Result<()> {
        let (m, k, n) = (a.dim[0], a.dim[1], b.dim[1]);
        if b.dim[0] != k || c.dim[0] != m || c.dim[1] != n {
            return Err(Error::Shape(format!("{:?} times {:?} into {:?}", a.shape(), b.shape(), c.shape())));
        }
        let (m, n, k) = (int(m)?, int(n)?, int(k)?);
        let cfg = LaunchConfig {
            grid_dim: (blocks(n as usize, GEMM_TILE), blocks(m as usize, GEMM_TILE), 1),
            block_dim: (GEMM_TILE, GEMM_ROWS, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.stream.launch_builder(self.function("gemm_tiled"));
        l.arg(&a.data).arg(&b.data).arg(&mut c.data).arg(&m).arg(&n).arg(&k);
        // Safety: matches gemm.cu; every access is bounds-checked against m, n, k.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }
}

/// The diagonal of the Jacobi sweep, summed as `cpu/stencil.rs` sums it (the same bits).
fn jacobi_diagonal(h: &[f64]) -> f64 {
    h.iter().map(|h| (h * h).recip()).fold(0.0, |s, c| s + c + c)
}

fn same_shape(x: &[usize], y: &[usize]) -> Result<()> {
    if x != y {
        return Err(Error::Shape(format!("arrays of shape {x:?} and {y:?}")));
    }
    Ok(())
}

/// A size as the `int` the kernels take.
pub(crate) fn int(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::Shape(format!("extent {n} too large for the CUDA kernels")))
}

/// Blocks to cover `n` items (at least one, so that a launch is never empty).
fn blocks(n: usize, per_block: u32) -> u32 {
    u32::try_from(n.div_ceil(per_block as usize)).unwrap_or(u32::MAX).max(1)
}

/// A grid-stride launch: enough blocks to keep every SM busy, no more.
pub(crate) fn elementwise(n: usize) -> LaunchConfig {
    let nblocks = blocks(n, 256).min(64 * MAX_BLOCKS);
    LaunchConfig { grid_dim: (nblocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}

/// Compiling and assembling the kernels needs no GPU: these run wherever NVRTC and ptxas are
/// installed, as scripts/setup.sh does, and fail where they are not.
#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Ampere, Hopper (H100, H200) and Blackwell.
    const GENERATIONS: [(i32, i32); 3] = [(8, 0), (9, 0), (10, 0)];
    const INSTALL: &str = "run scripts/setup.sh (it installs NVRTC and ptxas into target/cuda-tools) and . scripts/env.sh (it puts them on the paths)";

    fn compiled(cc: (i32, i32), output: Output) -> Vec<u8> {
        match nvrtc(cc, output, Rounding::Cpu) {
            Err(CudaError::NoNvrtc) => panic!("no libnvrtc found: {INSTALL}"),
            r => r.unwrap_or_else(|e| panic!("sm_{}{}: {e}", cc.0, cc.1)),
        }
    }

    fn ptx(cc: (i32, i32)) -> String {
        String::from_utf8(compiled(cc, Output::Ptx)).expect("PTX is text")
    }

    #[test]
    fn every_kernel_compiles_with_nvrtc() {
        for cc in GENERATIONS {
            let ptx = ptx(cc);
            for f in FUNCTIONS {
                assert!(ptx.contains(&format!(".entry {f}(")), "compute_{}{}: no kernel {f} in the PTX", cc.0, cc.1);
            }
        }
    }

    /// The CPU's rounding: no fused multiply-add in the PTX of any kernel but the matmul (whose
    /// sums run in another order than OpenBLAS's anyway), and every double-precision add,
    /// subtract and multiply carries an explicit rounding mode, which ptxas may not contract
    /// into an FMA either (PTX ISA: only those without one "may be optimized aggressively").
    #[test]
    fn the_kernels_round_like_the_cpu_no_fma() {
        for cc in GENERATIONS {
            let ptx = ptx(cc);
            for kernel in ptx.split(".entry ").skip(1) {
                let name = kernel.split('(').next().unwrap();
                let lines = kernel.lines().map(str::trim);
                let loose: Vec<&str> = lines.filter(|l| ["add.f64", "sub.f64", "mul.f64"].iter().any(|op| l.starts_with(op)) || (l.starts_with("fma.") && name != "gemm_tiled")).collect();
                assert!(loose.is_empty(), "compute_{}{} {name}: instructions that may round unlike the CPU: {loose:?}", cc.0, cc.1);
            }
            assert!(ptx.contains("add.rn.f64") && ptx.contains("mul.rn.f64"), "compute_{}{}: no rounded double arithmetic found", cc.0, cc.1);
        }
    }

    /// What `CudaBackend::new` loads: machine code for the device's sm_XY, every kernel in it.
    #[test]
    fn every_kernel_compiles_to_machine_code() {
        for cc in GENERATIONS {
            let cubin = compiled(cc, Output::Cubin);
            assert_eq!(&cubin[..4], b"\x7fELF", "sm_{}{}: NVRTC's CUBIN is no ELF file", cc.0, cc.1);
            for f in FUNCTIONS {
                let name = format!(".text.{f}");
                assert!(cubin.windows(name.len()).any(|w| w == name.as_bytes()), "sm_{}{}: no kernel {f} in the CUBIN", cc.0, cc.1);
            }
        }
        assert!(nvrtc_version().unwrap().starts_with("NVRTC 1"), "{:?}", nvrtc_version());
    }

    /// ptxas turns the PTX into machine code as NVRTC does for the CUBIN: no kernel may spill
    /// registers (a spill costs a memory-bound kernel bandwidth) or use more shared memory than
    /// a block has.
    #[test]
    fn every_kernel_assembles_without_spills() {
        if Command::new("ptxas").arg("--version").output().is_err() {
            panic!("no ptxas on PATH: {INSTALL}");
        }
        for (major, minor) in GENERATIONS {
            let file = std::env::temp_dir().join(format!("rankwise-kernels-{}-{major}{minor}.ptx", std::process::id()));
            std::fs::write(&file, ptx((major, minor))).unwrap();
            let out = Command::new("ptxas").args([&format!("-arch=sm_{major}{minor}"), "-v", "-o", "/dev/null"]).arg(&file).output().unwrap();
            std::fs::remove_file(&file).unwrap();
            let report = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "ptxas sm_{major}{minor} failed:\n{report}");
            for f in FUNCTIONS {
                // ptxas -v: "Compiling entry function 'f' for 'sm_90'", then the frame and
                // spill figures and the registers and memory used, up to the next function.
                let at = report.find(&format!("function '{f}'")).unwrap_or_else(|| panic!("sm_{major}{minor}: ptxas did not assemble {f}"));
                let section = report[at..].split("Compiling entry").next().unwrap();
                assert!(section.contains(" 0 bytes spill stores, 0 bytes spill loads"), "sm_{major}{minor}: {f} spills:\n{section}");
                let used = section.lines().find_map(|l| l.split_once("Used ")).map_or("", |(_, u)| u);
                eprintln!("sm_{major}{minor} {f}: {used}");
            }
        }
    }
}
