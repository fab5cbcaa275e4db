//! The runtime on an mpi4py communicator: the run's inputs, the decomposition, fields whose blocks
//! are numpy views of Rankwise's memory, halo exchange, reproducible reductions, checksums,
//! timers, the stop policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::raw::FromRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use numpy::{IntoPyArray, PyArrayDyn};
use pyo3::prelude::*;
use pyo3::types::PyList;
use rankwise_runtime::{overlap_boxes as boxes, reduce, Config as RConfig, Decomposition as RDecomposition, Field as RField, GpuBinding, HaloExchange, Runtime as RRuntime, Stencil, StopOptions, StopPolicy as RStopPolicy, StopReason};

use crate::kernels::array_in;
use crate::{collective, local, mpi_running, InputError, MpiError, MpiOwned, RankwiseError, ShapeError};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Runtime>()?;
    m.add_class::<Timer>()?;
    m.add_class::<Config>()?;
    m.add_class::<Decomposition>()?;
    m.add_class::<Field>()?;
    m.add_class::<Exchange>()?;
    m.add_class::<StopPolicy>()?;
    m.add_class::<StopAction>()?;
    m.add_class::<StopDecision>()?;
    m.add_function(wrap_pyfunction!(overlap_boxes, m)?)?;
    m.add_function(wrap_pyfunction!(field_checksum, m)?)?;
    m.add("EXIT_REQUEUE", rankwise_runtime::EXIT_REQUEUE)?;
    m.add("EXIT_BAD_INPUT", rankwise_runtime::EXIT_BAD_INPUT)?;
    Ok(())
}

fn input(e: impl std::fmt::Display) -> PyErr {
    InputError::new_err(e.to_string())
}

/// The raw handle of an mpi4py communicator (`comm.handle` in mpi4py 4, `MPI._handleof` before).
fn raw_comm(py: Python<'_>, comm: Option<&Bound<'_, PyAny>>) -> PyResult<mpi::ffi::MPI_Comm> {
    let mpi4py = py.import("mpi4py.MPI").map_err(|e| MpiError::new_err(format!("Rankwise needs mpi4py: {e}")))?;
    let comm = match comm {
        Some(c) => c.clone(),
        None => mpi4py.getattr("COMM_WORLD")?,
    };
    if !comm.is_instance(&mpi4py.getattr("Comm")?)? {
        return Err(MpiError::new_err(format!("an mpi4py communicator (mpi4py.MPI.Comm) was expected, not {}", comm.get_type().name()?)));
    }
    let handle: u64 = match comm.getattr("handle") {
        Ok(h) => h.extract()?,
        Err(_) => mpi4py.call_method1("_handleof", (&comm,))?.extract()?,
    };
    // MPI_Comm is a pointer in Open MPI and an int in MPICH: the handle is its value either way.
    // SAFETY: plain integers or pointers of the size checked.
    Ok(unsafe {
        match std::mem::size_of::<mpi::ffi::MPI_Comm>() {
            8 => std::mem::transmute_copy::<u64, mpi::ffi::MPI_Comm>(&handle),
            4 => std::mem::transmute_copy::<u32, mpi::ffi::MPI_Comm>(&(handle as u32)),
            n => return Err(MpiError::new_err(format!("an MPI_Comm of {n} bytes is not supported"))),
        }
    })
}

/// One rank's runtime on a duplicate of an mpi4py intra-communicator (``MPI.COMM_WORLD`` when none
/// is given). mpi4py initialises and finalises MPI; Rankwise does neither.
///
/// Collective over ``comm``.
#[pyclass(unsendable, module = "rankwise")]
pub struct Runtime {
    pub(crate) rt: Option<MpiOwned<RRuntime>>,
}

impl Runtime {
    pub(crate) fn get(&self) -> PyResult<&RRuntime> {
        self.rt.as_deref().ok_or_else(|| RankwiseError::new_err("the runtime was closed"))
    }
}

#[pymethods]
impl Runtime {
    #[new]
    #[pyo3(signature = (comm = None))]
    fn new(py: Python<'_>, comm: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let raw = raw_comm(py, comm)?;
        collective(|| {
            if !mpi_running() {
                return Err(MpiError::new_err("MPI is not running: import mpi4py.MPI (which initialises it) before Rankwise, and keep it running"));
            }
            if raw == unsafe { mpi::ffi::RSMPI_COMM_NULL } {
                return Err(MpiError::new_err("the communicator is MPI.COMM_NULL"));
            }
            let mut inter = 0;
            // SAFETY: MPI runs and `raw` is a communicator handle from mpi4py.
            unsafe { mpi::ffi::MPI_Comm_test_inter(raw, &mut inter) };
            if inter != 0 {
                return Err(MpiError::new_err("an inter-communicator was given; Rankwise needs an intra-communicator"));
            }
            // Rankwise frees its communicator when it is done: it keeps a duplicate, never the caller's.
            let mut dup = unsafe { mpi::ffi::RSMPI_COMM_NULL };
            // SAFETY: as above.
            unsafe { mpi::ffi::MPI_Comm_dup(raw, &mut dup) };
            // SAFETY: `dup` is a new communicator that nothing else owns.
            let rt = RRuntime::adopt(unsafe { SimpleCommunicator::from_raw(dup) }).map_err(|e| MpiError::new_err(e.to_string()))?;
            Ok(Runtime { rt: Some(MpiOwned::new(rt)) })
        })
    }
    /// This rank's number.
    #[getter]
    fn rank(&self) -> PyResult<usize> {
        Ok(self.get()?.rank())
    }
    /// The number of ranks.
    #[getter]
    fn size(&self) -> PyResult<usize> {
        Ok(self.get()?.size())
    }
    /// This rank's index among the ranks of its node.
    #[getter]
    fn local_rank(&self) -> PyResult<usize> {
        Ok(self.get()?.local_rank())
    }
    /// The host this rank runs on.
    #[getter]
    fn host(&self) -> PyResult<String> {
        Ok(self.get()?.host().to_string())
    }
    /// The CUDA device this rank is bound to (node-local rank over the visible devices), or None.
    #[getter]
    fn gpu(&self) -> PyResult<Option<usize>> {
        Ok(match self.get()?.gpu() {
            GpuBinding::Device { ordinal, .. } => Some(*ordinal),
            _ => None,
        })
    }
    /// A timer for a ``with`` block: ``with rt.timer("step"): ...``; the times add up per name.
    fn timer(slf: Py<Self>, name: String) -> Timer {
        Timer { rt: slf, name, started: None }
    }
    /// How often timer ``name`` ran on this rank and its total seconds (``(0, 0.0)`` if never).
    fn timer_get(&self, name: &str) -> PyResult<(u64, f64)> {
        Ok(self.get()?.timers().get(name).unwrap_or((0, 0.0)))
    }
    /// Collective. The timers' min/avg/max over ranks, as text ("" when nothing was timed).
    fn timers_report(&self) -> PyResult<String> {
        let rt = self.get()?;
        collective(|| {
            let report = rt.timers().report(rt.world());
            Ok(if report.rows.is_empty() { String::new() } else { report.to_string() })
        })
    }
    /// Collective. Print the timer report on rank 0 (stderr, if anything was timed) and free the
    /// runtime's communicators. Call it before MPI is finalised; later calls do nothing.
    fn close(&mut self) -> PyResult<()> {
        let Some(mut rt) = self.rt.take() else { return Ok(()) };
        collective(|| {
            if !mpi_running() {
                return Err(MpiError::new_err("Runtime.close: MPI was finalised before the runtime was closed"));
            }
            // SAFETY: taken out of the wrapper, which is forgotten.
            let inner = unsafe { std::mem::ManuallyDrop::take(&mut rt.0) };
            std::mem::forget(rt);
            inner.finalize();
            Ok(())
        })
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __exit__(&mut self, _t: Option<&Bound<'_, PyAny>>, _v: Option<&Bound<'_, PyAny>>, _tb: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }
    /// Not Collective. Log ``message`` the way Rankwise programs do (stderr, ``[rank N] LEVEL``):
    /// rank 0 from ``"info"`` up, the others warnings and errors only (``RANKWISE_LOG_ALL=1``:
    /// every rank); ``level`` is ``"error"``, ``"warn"``, ``"info"`` or ``"debug"``.
    #[pyo3(signature = (message, level = "info"))]
    fn log(&self, message: &str, level: &str) -> PyResult<()> {
        self.get()?;
        let level = match level {
            "error" => log::Level::Error,
            "warn" => log::Level::Warn,
            "info" => log::Level::Info,
            "debug" => log::Level::Debug,
            _ => return Err(InputError::new_err(format!("Runtime.log: level {level:?}: expected error, warn, info or debug"))),
        };
        log::log!(target: "rankwise", level, "{message}");
        Ok(())
    }
    /// Not Collective. Abort every rank of the job with exit code ``code`` after printing
    /// ``message`` with this rank's number: for a rank that cannot go on alone.
    #[pyo3(signature = (message, code = 1))]
    fn abort(&self, message: &str, code: i32) -> PyResult<()> {
        self.get()?.abort(code, message)
    }
    fn __repr__(&self) -> String {
        match self.rt.as_deref() {
            Some(rt) => format!("rankwise.Runtime(rank={}, size={}, host={:?})", rt.rank(), rt.size(), rt.host()),
            None => "rankwise.Runtime(closed)".into(),
        }
    }
}

/// A timer in a ``with`` block (:meth:`Runtime.timer`).
#[pyclass(unsendable, module = "rankwise")]
pub struct Timer {
    rt: Py<Runtime>,
    name: String,
    started: Option<Instant>,
}

#[pymethods]
impl Timer {
    fn __enter__(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        slf.started = Some(Instant::now());
        slf
    }
    fn __exit__(&mut self, py: Python<'_>, _t: Option<&Bound<'_, PyAny>>, _v: Option<&Bound<'_, PyAny>>, _tb: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        if let Some(t0) = self.started.take() {
            self.rt.borrow(py).get()?.timers().add(&self.name, t0.elapsed().as_secs_f64());
        }
        Ok(false)
    }
}

/// A run's inputs: an inputs file (TOML, ``--inputs FILE`` or ``-i FILE``) and ``--set
/// key=value`` overrides, as every Rankwise program reads them. ``args`` defaults to
/// ``sys.argv[1:]``; with ``runtime`` rank 0 reads the file and shares it (collective).
#[pyclass(unsendable, module = "rankwise")]
pub struct Config {
    cfg: RConfig,
}

impl Config {
    fn typed<T: serde::de::DeserializeOwned>(&self, key: &str) -> PyResult<Option<T>> {
        local(|| self.cfg.get::<T>(key).map_err(input))
    }
}

#[pymethods]
impl Config {
    #[new]
    #[pyo3(signature = (args = None, runtime = None))]
    fn new(py: Python<'_>, args: Option<Vec<String>>, runtime: Option<PyRef<'_, Runtime>>) -> PyResult<Self> {
        let args = match args {
            Some(a) => a,
            None => py.import("sys")?.getattr("argv")?.extract::<Vec<String>>()?.into_iter().skip(1).collect(),
        };
        let cfg = match runtime {
            Some(rt) => {
                let rt = rt.get()?;
                collective(|| RConfig::from_args_on(rt.world(), args).map_err(input))?
            }
            None => local(|| RConfig::from_args(args).map_err(input))?,
        };
        Ok(Config { cfg })
    }
    /// The inputs from TOML text (``name`` is where it came from, for messages).
    #[staticmethod]
    #[pyo3(signature = (text, name = "<string>"))]
    fn from_toml(text: &str, name: &str) -> PyResult<Self> {
        local(|| Ok(Config { cfg: RConfig::from_toml(text, name).map_err(input)? }))
    }
    /// Apply one ``key=value`` override.
    fn set(&mut self, arg: &str) -> PyResult<()> {
        local(|| self.cfg.set(arg).map_err(input))
    }
    /// The value of ``key``, of the type of ``default`` (bool, int, float or str), or ``default``
    /// when it is not given. A value of another type raises :class:`InputError` naming where it
    /// was given.
    fn get<'py>(&self, py: Python<'py>, key: &str, default: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let v = if default.is_instance_of::<pyo3::types::PyBool>() {
            self.typed::<bool>(key)?.map(|v| v.into_pyobject(py).map(|b| b.to_owned().into_any()))
        } else if default.is_instance_of::<pyo3::types::PyInt>() {
            self.typed::<i64>(key)?.map(|v| v.into_pyobject(py).map(|b| b.into_any()))
        } else if default.is_instance_of::<pyo3::types::PyFloat>() {
            self.typed::<f64>(key)?.map(|v| v.into_pyobject(py).map(|b| b.into_any()))
        } else if default.is_instance_of::<pyo3::types::PyString>() {
            self.typed::<String>(key)?.map(|v| v.into_pyobject(py).map(|b| b.into_any()))
        } else {
            return Err(InputError::new_err(format!("Config.get({key:?}): the default must be a bool, int, float or str (its type is the value's), not {}", default.get_type().name()?)));
        };
        match v {
            Some(v) => Ok(v?),
            None => Ok(default.clone()),
        }
    }
    /// The integer ``key``, or None when it is not given.
    fn get_int(&self, key: &str) -> PyResult<Option<i64>> {
        self.typed(key)
    }
    /// The real ``key`` (an integer is taken too), or None.
    fn get_float(&self, key: &str) -> PyResult<Option<f64>> {
        self.typed(key)
    }
    /// The boolean ``key``, or None.
    fn get_bool(&self, key: &str) -> PyResult<Option<bool>> {
        self.typed(key)
    }
    /// The string ``key``, or None.
    fn get_str(&self, key: &str) -> PyResult<Option<String>> {
        self.typed(key)
    }
    /// Whether ``key`` is given.
    fn __contains__(&self, key: &str) -> bool {
        self.cfg.contains(key)
    }
    /// An :class:`InputError` "``key`` = value: ``message``" naming where ``key`` was given, to
    /// raise for a value of the right type that the program cannot accept.
    fn invalid(&self, key: &str, message: &str) -> PyErr {
        input(self.cfg.invalid(key, message))
    }
    /// Raise :class:`InputError` for the first input the program never asked for (most likely a
    /// typo).
    fn finish(&self) -> PyResult<()> {
        local(|| self.cfg.finish().map_err(input))
    }
    /// The inputs as TOML.
    fn dump(&self) -> String {
        self.cfg.dump()
    }
}

/// Which ranks own which blocks of a global index space of 1 to 3 dimensions (C order), on a
/// balanced rank grid or the given one. Collective.
#[pyclass(unsendable, module = "rankwise")]
pub struct Decomposition {
    pub(crate) d: MpiOwned<Arc<RDecomposition>>,
}

#[pymethods]
impl Decomposition {
    #[new]
    #[pyo3(signature = (runtime, shape, periodic = None, grid = None))]
    fn new(runtime: PyRef<'_, Runtime>, shape: Vec<usize>, periodic: Option<Vec<bool>>, grid: Option<Vec<usize>>) -> PyResult<Self> {
        let rt = runtime.get()?;
        collective(|| {
            let n = shape.len();
            if !(1..=3).contains(&n) {
                return Err(ShapeError::new_err(format!("Decomposition: a shape of 1 to 3 dimensions, not {shape:?}")));
            }
            let periodic = periodic.unwrap_or_else(|| vec![false; n]);
            if periodic.len() != n {
                return Err(ShapeError::new_err(format!("Decomposition: periodic needs {n} entries, not {}", periodic.len())));
            }
            let d = match grid {
                Some(g) => RDecomposition::with_grid(rt, &shape, &g, &periodic),
                None => RDecomposition::new(rt, &shape, &periodic),
            }
            .map_err(input)?;
            #[allow(clippy::arc_with_non_send_sync)]
            Ok(Decomposition { d: MpiOwned::new(Arc::new(d)) })
        })
    }
    #[getter]
    fn ndim(&self) -> usize {
        self.d.ndim()
    }
    /// The global shape.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.d.global_shape().to_vec()
    }
    /// The rank grid.
    #[getter]
    fn grid(&self) -> Vec<usize> {
        self.d.grid().to_vec()
    }
    #[getter]
    fn periodic(&self) -> Vec<bool> {
        self.d.periodic().to_vec()
    }
    /// This rank's place on the rank grid.
    #[getter]
    fn coords(&self) -> Vec<usize> {
        self.d.coords().to_vec()
    }
    /// This rank's owned block: one ``range`` of global indices per dimension.
    #[getter]
    fn owned<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let range = py.import("builtins")?.getattr("range")?;
        self.d.owned().iter().map(|r| range.call1((r.start, r.end))).collect()
    }
    /// The owned block of ``rank``.
    fn owned_by<'py>(&self, py: Python<'py>, rank: usize) -> PyResult<Vec<Bound<'py, PyAny>>> {
        if rank >= self.d.size() {
            return Err(InputError::new_err(format!("owned_by: rank {rank} of {}", self.d.size())));
        }
        let range = py.import("builtins")?.getattr("range")?;
        self.d.owned_by(rank).iter().map(|r| range.call1((r.start, r.end))).collect()
    }
    /// The owned block's shape (no ghosts).
    #[getter]
    fn local_shape(&self) -> Vec<usize> {
        self.d.local_shape()
    }
    /// The rank at ``offset`` (each -1, 0 or 1) from this one on the rank grid, periodic images
    /// included; None past a non-periodic edge.
    fn neighbour(&self, offset: Vec<isize>) -> PyResult<Option<usize>> {
        if offset.len() != self.d.ndim() || offset.iter().any(|o| o.abs() > 1) {
            return Err(ShapeError::new_err(format!("neighbour: one offset of -1, 0 or 1 per dimension ({}), not {offset:?}", self.d.ndim())));
        }
        Ok(self.d.neighbour(&offset))
    }
    fn __repr__(&self) -> String {
        let periodic: Vec<&str> = self.d.periodic().iter().map(|&p| if p { "True" } else { "False" }).collect();
        format!("rankwise.Decomposition(shape={:?}, grid={:?}, periodic=[{}])", self.d.global_shape(), self.d.grid(), periodic.join(", "))
    }
}

fn stencil(s: &str) -> PyResult<Stencil> {
    match s {
        "star" => Ok(Stencil::Star),
        "box" => Ok(Stencil::Box),
        _ => Err(InputError::new_err(format!("stencil {s:?}: expected \"star\" (faces) or \"box\" (faces, edges and corners)"))),
    }
}

/// One rank's block of a distributed float64 array over a :class:`Decomposition`, with
/// ``ghost`` layers on every side, zero at first. :attr:`data` and :attr:`interior` are numpy
/// views of Rankwise's memory (no copies): write them, and exchanges fill their ghosts.
#[pyclass(unsendable, module = "rankwise")]
pub struct Field {
    pub(crate) field: MpiOwned<RField<f64>>,
}

impl Field {
    fn same_blocks(&self, other: &Field, what: &str) -> PyResult<()> {
        let (a, b) = (self.field.decomposition(), other.field.decomposition());
        if a.global_shape() != b.global_shape() || a.owned() != b.owned() {
            return Err(ShapeError::new_err(format!("{what}: the two fields are on different decompositions")));
        }
        Ok(())
    }
}

#[pymethods]
impl Field {
    #[new]
    #[pyo3(signature = (decomposition, ghost = 1))]
    fn new(decomposition: PyRef<'_, Decomposition>, ghost: usize) -> PyResult<Self> {
        if ghost > 64 {
            return Err(ShapeError::new_err(format!("Field: a ghost width of 0 to 64 layers, not {ghost}")));
        }
        Ok(Field { field: MpiOwned::new(RField::new(&decomposition.d, ghost)) })
    }
    /// The whole local block, ghosts included: a numpy view of the field's memory.
    #[getter]
    fn data(slf: Bound<'_, Self>) -> Bound<'_, PyArrayDyn<f64>> {
        let f = slf.borrow();
        // SAFETY: the block is never reallocated while the field lives, and the array keeps the
        // field alive (its base).
        unsafe { PyArrayDyn::borrow_from_array(&f.field.data(), slf.clone().into_any()) }
    }
    /// The owned cells (no ghosts): a numpy view of the field's memory.
    #[getter]
    fn interior(slf: Bound<'_, Self>) -> Bound<'_, PyArrayDyn<f64>> {
        let f = slf.borrow();
        // SAFETY: as in `data`.
        unsafe { PyArrayDyn::borrow_from_array(&f.field.interior(), slf.clone().into_any()) }
    }
    /// Ghost layers on each side.
    #[getter]
    fn ghost(&self) -> usize {
        self.field.ghost()
    }
    /// The global index of ``data[0, 0, ...]`` (the first ghost cell; negative past the low edge).
    #[getter]
    fn origin(&self) -> Vec<isize> {
        self.field.origin()
    }
    /// The decomposition's global shape.
    #[getter]
    fn global_shape(&self) -> Vec<usize> {
        self.field.decomposition().global_shape().to_vec()
    }
    /// The first global index of the owned block per dimension.
    #[getter]
    fn start(&self) -> Vec<usize> {
        self.field.decomposition().owned().iter().map(|r| r.start).collect()
    }
    /// Collective. Fill the ghost cells from their owners, periodic images included: ``"star"``
    /// faces only (5- and 7-point stencils), ``"box"`` faces, edges and corners.
    #[pyo3(signature = (stencil = "star"))]
    fn exchange(&mut self, stencil: &str) -> PyResult<()> {
        let s = self::stencil(stencil)?;
        collective(|| {
            let ex = self.field.begin_exchange(s);
            ex.finish(&mut self.field).map_err(|e| MpiError::new_err(e.to_string()))
        })
    }
    /// Collective. Split phase: send the faces and return at once; update the cells that need no
    /// ghost meanwhile, then call :meth:`Exchange.finish`.
    #[pyo3(signature = (stencil = "star"))]
    fn begin_exchange(slf: Bound<'_, Self>, stencil: &str) -> PyResult<Exchange> {
        let s = self::stencil(stencil)?;
        collective(|| {
            let ex = slf.borrow().field.begin_exchange(s);
            Ok(Exchange { ex: Some(ex), field: slf.clone().unbind() })
        })
    }
    /// Collective. The exact sum of the owned cells, rounded once: the same bits on any rank count.
    fn sum(&self) -> PyResult<f64> {
        collective(|| Ok(reduce::reproducible_sum(&self.field)))
    }
    /// Collective. ``sum(self * other)`` over the owned cells, each product rounded and the
    /// products summed exactly: the same bits on any rank count.
    fn dot(&self, other: PyRef<'_, Field>) -> PyResult<f64> {
        self.same_blocks(&other, "Field.dot")?;
        collective(|| Ok(reduce::reproducible_dot(&self.field, &other.field)))
    }
    /// Collective. The smallest owned value.
    fn min(&self) -> PyResult<f64> {
        collective(|| Ok(reduce::min(&self.field)))
    }
    /// Collective. The largest owned value.
    fn max(&self) -> PyResult<f64> {
        collective(|| Ok(reduce::max(&self.field)))
    }
    /// Collective. The field's position-keyed checksum (``rankwise_io::checksum``): equal on any
    /// rank count exactly when the field's bits are; print it as 16 hex digits.
    fn checksum(&self) -> PyResult<u64> {
        collective(|| Ok(rankwise_io::checksum::field_checksum(&self.field)))
    }
    /// Collective. The whole global array (owned cells) on rank ``root``, None elsewhere: for
    /// small fields (``root`` holds it all).
    #[pyo3(signature = (root = 0))]
    fn gather<'py>(&self, py: Python<'py>, root: usize) -> PyResult<Option<Bound<'py, PyArrayDyn<f64>>>> {
        let size = self.field.decomposition().size();
        if root >= size {
            return Err(InputError::new_err(format!("gather: root {root} of {size} ranks")));
        }
        collective(|| Ok(self.field.gather(root).map(|a| a.into_pyarray(py))))
    }
    /// Collective. Set the owned cells from ``array``, the global array given on rank ``root``
    /// (ignored elsewhere): the inverse of :meth:`gather`.
    #[pyo3(signature = (array, root = 0))]
    fn scatter(&mut self, array: Option<&Bound<'_, PyAny>>, root: usize) -> PyResult<()> {
        let d = self.field.decomposition().clone();
        if root >= d.size() {
            return Err(InputError::new_err(format!("scatter: root {root} of {} ranks", d.size())));
        }
        let global = match (d.rank() == root, array) {
            (true, Some(a)) => {
                let a = array_in(a, "scatter: array")?;
                if a.as_array().shape() != d.global_shape() {
                    // Every rank must learn it, or the others would wait in the scatter.
                    return collective(|| self.scatter_failed(&d, root, format!("scatter: an array of shape {:?} was given; the field's global shape is {:?}", a.as_array().shape(), d.global_shape())));
                }
                Some(a.as_array().to_owned())
            }
            (true, None) => return collective(|| self.scatter_failed(&d, root, "scatter: the root rank must give the array".into())),
            (false, _) => None,
        };
        collective(|| {
            let mut ok = global.is_some() as u8;
            d.comm().process_at_rank(root as i32).broadcast_into(&mut ok);
            if ok == 0 {
                return Err(ShapeError::new_err("scatter: the root rank's array did not fit (see its error)"));
            }
            self.field.scatter(root, global.as_ref());
            Ok(())
        })
    }
    fn __repr__(&self) -> String {
        let d = self.field.decomposition();
        format!("rankwise.Field(global_shape={:?}, local_shape={:?}, ghost={})", d.global_shape(), d.local_shape(), self.field.ghost())
    }
}

impl Field {
    /// The root's half of a failed scatter: tell the others, so that nobody waits.
    fn scatter_failed(&self, d: &RDecomposition, root: usize, msg: String) -> PyResult<()> {
        let mut ok = 0u8;
        d.comm().process_at_rank(root as i32).broadcast_into(&mut ok);
        Err(ShapeError::new_err(msg))
    }
}

/// A halo exchange in flight (:meth:`Field.begin_exchange`). Dropped unfinished, it waits for its
/// messages and leaves the ghosts as they were.
#[pyclass(unsendable, module = "rankwise")]
pub struct Exchange {
    ex: Option<HaloExchange<f64>>,
    field: Py<Field>,
}

#[pymethods]
impl Exchange {
    /// Collective. Wait for the messages and fill the field's ghost cells.
    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(ex) = self.ex.take() else { return Err(MpiError::new_err("Exchange.finish: this exchange was finished already")) };
        let mut f = self.field.borrow_mut(py);
        collective(|| ex.finish(&mut f.field).map_err(|e| MpiError::new_err(e.to_string())))
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __exit__(&mut self, py: Python<'_>, t: Option<&Bound<'_, PyAny>>, _v: Option<&Bound<'_, PyAny>>, _tb: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        if t.is_none() && self.ex.is_some() {
            self.finish(py)?;
        }
        Ok(false)
    }
}

/// The owned cells of a block of ``shape`` split for a split-phase update by a stencil that
/// reaches ``reach`` cells: the inner box (needs no ghost: compute it while the exchange runs) and
/// the boxes that cover the shell next to the ghosts (after it). Each box is a tuple of ``slice``
/// of owned-cell indices (no ghosts); empty boxes are left out.
#[pyfunction]
#[pyo3(signature = (shape, reach = 1))]
#[allow(clippy::type_complexity)]
fn overlap_boxes<'py>(py: Python<'py>, shape: Vec<usize>, reach: usize) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyList>)> {
    let slice = py.import("builtins")?.getattr("slice")?;
    let to_py = |b: &Vec<std::ops::Range<usize>>| -> PyResult<Bound<'py, PyAny>> {
        let parts = b.iter().map(|r| slice.call1((r.start, r.end))).collect::<PyResult<Vec<_>>>()?;
        Ok(pyo3::types::PyTuple::new(py, parts)?.into_any())
    };
    let (inner, shell) = boxes(&shape, reach);
    let shell = shell.iter().map(to_py).collect::<PyResult<Vec<_>>>()?;
    Ok((to_py(&inner)?, PyList::new(py, shell)?))
}

/// Collective. :meth:`Field.checksum` (``rankwise_io::checksum::field_checksum``).
#[pyfunction]
fn field_checksum(field: PyRef<'_, Field>) -> PyResult<u64> {
    field.checksum()
}

/// What all ranks agreed at one :meth:`StopPolicy.check`.
#[pyclass(eq, eq_int, module = "rankwise")]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StopAction {
    /// Go on with the next step.
    CarryOn,
    /// Write a checkpoint now, then go on (the time limit is near, with time left).
    Checkpoint,
    /// Write a checkpoint and stop; exit with ``EXIT_REQUEUE`` so that the job is requeued.
    CheckpointAndStop,
}

/// One decision of the stop policy.
#[pyclass(module = "rankwise")]
pub struct StopDecision {
    #[pyo3(get)]
    action: StopAction,
    /// ``"time_limit"``, ``"preemption"`` or None.
    #[pyo3(get)]
    reason: Option<&'static str>,
}

#[pymethods]
impl StopDecision {
    /// Write a checkpoint now.
    #[getter]
    fn checkpoint(&self) -> bool {
        self.action != StopAction::CarryOn
    }
    /// Stop after the checkpoint.
    #[getter]
    fn stop(&self) -> bool {
        self.action == StopAction::CheckpointAndStop
    }
    fn __repr__(&self) -> String {
        let a = match self.action {
            StopAction::CarryOn => "CarryOn",
            StopAction::Checkpoint => "Checkpoint",
            StopAction::CheckpointAndStop => "CheckpointAndStop",
        };
        format!("rankwise.StopDecision(action=StopAction.{a}, reason={:?})", self.reason)
    }
}

/// Collective. Watches for stop requests (SIGUSR2 warns of the time limit, SIGTERM stops, the
/// Slurm job's end, a wall-time limit) and turns them into one decision that every rank shares.
/// ``margin`` seconds are kept before the deadline for the last checkpoint (plus two steps).
#[pyclass(unsendable, module = "rankwise")]
pub struct StopPolicy {
    policy: RStopPolicy,
    rt: Py<Runtime>,
}

#[pymethods]
impl StopPolicy {
    #[new]
    #[pyo3(signature = (runtime, margin = 30.0, wall_time = None))]
    fn new(runtime: Bound<'_, Runtime>, margin: f64, wall_time: Option<f64>) -> PyResult<Self> {
        if !(0.0..=86400.0).contains(&margin) || wall_time.is_some_and(|w| !(w.is_finite() && w > 0.0)) {
            return Err(InputError::new_err(format!("StopPolicy: a margin of 0 to 86400 seconds and a positive wall time, not {margin} and {wall_time:?}")));
        }
        let r = runtime.borrow();
        let rt = r.get()?;
        let opts = StopOptions { margin: Duration::from_secs_f64(margin), wall_time: wall_time.map(Duration::from_secs_f64), ..StopOptions::default() };
        let policy = collective(|| RStopPolicy::new(rt, opts).map_err(input))?;
        drop(r);
        Ok(StopPolicy { policy, rt: runtime.unbind() })
    }
    /// Collective. After step ``step``: carry on, checkpoint, or checkpoint and stop.
    fn check(&self, py: Python<'_>, step: u64) -> PyResult<StopDecision> {
        let r = self.rt.borrow(py);
        let rt = r.get()?;
        collective(|| {
            let d = self.policy.check(rt, step);
            let action = match (d.checkpoint, d.stop) {
                (_, true) => StopAction::CheckpointAndStop,
                (true, false) => StopAction::Checkpoint,
                _ => StopAction::CarryOn,
            };
            let reason = d.reason.map(|r| match r {
                StopReason::TimeLimit => "time_limit",
                StopReason::Preemption => "preemption",
            });
            Ok(StopDecision { action, reason })
        })
    }
    /// Seconds left before the deadline (the margin taken off), or None without one.
    fn time_left(&self) -> Option<f64> {
        self.policy.time_left().map(|d| d.as_secs_f64())
    }
}
