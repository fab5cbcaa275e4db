//! The runtime on the caller's communicator: the run's inputs, the decomposition, fields over the
//! caller's or Rankwise's memory, halo exchange, reductions, checksums, timers, the stop policy.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::ffi::{MPI_Comm, RSMPI_Fint as MPI_Fint};
use mpi::raw::FromRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn, Slice};
use ::rankwise_runtime::reduce::ExactSum;
use ::rankwise_runtime::{overlap_boxes, Config, Decomposition, Field, HaloExchange, Runtime, Stencil, StopOptions, StopPolicy};

use crate::boundary::*;

/// One rank's runtime on a duplicate of the caller's communicator.
pub struct rankwise_runtime {
    pub(crate) rt: Runtime,
    /// Timers started and not yet stopped, by name.
    started: RefCell<HashMap<String, Instant>>,
}
impl Handle for rankwise_runtime {
    const KIND: &'static str = "rankwise_runtime";
}

/// Collective over `comm`. Start Rankwise on a duplicate of the caller's intra-communicator
/// `comm`. MPI must be initialised by the caller, who also finalises it after
/// [`rankwise_runtime_destroy`].
///
/// # Errors
/// `RANKWISE_ERR_MPI` when MPI is not running or `comm` is null or an inter-communicator.
///
/// # Safety
/// `comm` must be a valid communicator handle (or `MPI_COMM_NULL`).
#[no_mangle]
pub unsafe extern "C" fn rankwise_runtime_create(comm: MPI_Comm, out: *mut *mut rankwise_runtime) -> c_int {
    collective(|| {
        out_ptr(out, "rankwise_runtime_create")?;
        let rt = adopt(comm)?;
        give(out, rankwise_runtime { rt, started: RefCell::default() })
    })
}

/// Collective over `comm`. [`rankwise_runtime_create`] for a Fortran communicator (`MPI_Fint`,
/// e.g. `MPI_COMM_WORLD` from `use mpi`).
///
/// # Safety
/// `comm` must be a valid Fortran communicator handle.
#[no_mangle]
pub unsafe extern "C" fn rankwise_runtime_create_f(comm: MPI_Fint, out: *mut *mut rankwise_runtime) -> c_int {
    if !mpi_running() {
        return collective(|| Err(not_running()));
    }
    rankwise_runtime_create(mpi::ffi::RSMPI_Comm_f2c(comm), out)
}

fn mpi_running() -> bool {
    mpi::environment::is_initialized() && !mpi::environment::is_finalized()
}

fn not_running() -> Failure {
    fail(RANKWISE_ERR_MPI, "MPI is not running: call MPI_Init before Rankwise, and MPI_Finalize after destroying its handles")
}

unsafe fn adopt(comm: MPI_Comm) -> Res<Runtime> {
    if !mpi_running() {
        return Err(not_running());
    }
    if comm == mpi::ffi::RSMPI_COMM_NULL {
        return Err(fail(RANKWISE_ERR_MPI, "rankwise_runtime_create: the communicator is MPI_COMM_NULL"));
    }
    let mut inter = 0;
    mpi::ffi::MPI_Comm_test_inter(comm, &mut inter);
    if inter != 0 {
        return Err(fail(RANKWISE_ERR_MPI, "rankwise_runtime_create: an inter-communicator was given; Rankwise needs an intra-communicator"));
    }
    // Rankwise frees its communicator when it is done: it keeps a duplicate, never the caller's.
    let mut dup = mpi::ffi::RSMPI_COMM_NULL;
    mpi::ffi::MPI_Comm_dup(comm, &mut dup);
    Runtime::adopt(SimpleCommunicator::from_raw(dup)).map_err(|e| fail(RANKWISE_ERR_MPI, e.to_string()))
}

/// Collective. Print the timer report on rank 0 (if anything was timed), free the runtime and set
/// `*rt` to null. Call it before `MPI_Finalize`. A null `*rt` is nothing to do.
///
/// # Safety
/// `rt` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_runtime_destroy(rt: *mut *mut rankwise_runtime) -> c_int {
    collective(|| {
        let Some(r) = take(rt, "rankwise_runtime_destroy")? else { return Ok(()) };
        if !mpi_running() {
            // Its communicators can no longer be freed: leave them to the process's end.
            std::mem::forget(r);
            return Err(fail(RANKWISE_ERR_MPI, "rankwise_runtime_destroy: MPI was finalised before the runtime was destroyed"));
        }
        r.rt.finalize();
        Ok(())
    })
}

/// This rank's number and the number of ranks. Not Collective.
///
/// # Safety
/// Pointers as documented: `rank` and `size` may each be null (not wanted).
#[no_mangle]
pub unsafe extern "C" fn rankwise_runtime_rank(rt: *const rankwise_runtime, rank: *mut c_int, size: *mut c_int) -> c_int {
    local(|| {
        let r = get(rt, "rankwise_runtime_rank")?;
        if let Some(x) = rank.as_mut() {
            *x = r.rt.rank() as c_int;
        }
        if let Some(x) = size.as_mut() {
            *x = r.rt.size() as c_int;
        }
        Ok(())
    })
}

/// Not Collective. Abort every rank of the job with exit code `code` after printing `message`
/// with this rank's number: for a rank that cannot go on, so that the others do not wait forever.
///
/// # Safety
/// `message` must be null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_abort(rt: *const rankwise_runtime, code: c_int, message: *const c_char) -> c_int {
    let msg = text(message, "rankwise_abort").unwrap_or("(no message)").to_string();
    match get(rt, "rankwise_abort") {
        Ok(r) => r.rt.abort(code, &msg),
        Err(_) => abort_job(&msg),
    }
}

/// Not Collective. The CUDA device this rank is bound to (node-local rank over the visible
/// devices), for [`crate::kernels::rankwise_backend_create`]; -1 when it has none.
///
/// # Safety
/// `device` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_runtime_gpu(rt: *const rankwise_runtime, device: *mut c_int) -> c_int {
    local(|| {
        let r = get(rt, "rankwise_runtime_gpu")?;
        *out_ptr(device, "rankwise_runtime_gpu")? = match r.rt.gpu() {
            ::rankwise_runtime::GpuBinding::Device { ordinal, .. } => *ordinal as c_int,
            _ => -1,
        };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Timers

/// Not Collective. Start the timer `name` (stopped with [`rankwise_timer_stop`]; several starts
/// and stops add up).
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_timer_start(rt: *const rankwise_runtime, name: *const c_char) -> c_int {
    local(|| {
        let r = get(rt, "rankwise_timer_start")?;
        let name = text(name, "rankwise_timer_start")?;
        r.started.borrow_mut().insert(name.to_string(), Instant::now());
        Ok(())
    })
}

/// Not Collective. Stop the timer `name` and add the time since its start.
///
/// # Safety
/// `name` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_timer_stop(rt: *const rankwise_runtime, name: *const c_char) -> c_int {
    local(|| {
        let r = get(rt, "rankwise_timer_stop")?;
        let name = text(name, "rankwise_timer_stop")?;
        let t0 = r.started.borrow_mut().remove(name).ok_or_else(|| fail(RANKWISE_ERR_INPUT, format!("rankwise_timer_stop: timer {name:?} was not started")))?;
        r.rt.timers().add(name, t0.elapsed().as_secs_f64());
        Ok(())
    })
}

/// Not Collective. How often timer `name` ran on this rank and its total seconds (0 and 0 for a
/// timer never stopped).
///
/// # Safety
/// `name` a NUL-terminated string; `count` and `seconds` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_timer_get(rt: *const rankwise_runtime, name: *const c_char, count: *mut u64, seconds: *mut f64) -> c_int {
    local(|| {
        let r = get(rt, "rankwise_timer_get")?;
        let (c, s) = r.rt.timers().get(text(name, "rankwise_timer_get")?).unwrap_or((0, 0.0));
        *out_ptr(count, "rankwise_timer_get")? = c;
        *out_ptr(seconds, "rankwise_timer_get")? = s;
        Ok(())
    })
}

/// Collective. Print the timers' min/avg/max over ranks on rank 0 (stderr).
#[no_mangle]
pub extern "C" fn rankwise_timers_report(rt: *const rankwise_runtime) -> c_int {
    collective(|| {
        let r = get(rt, "rankwise_timers_report")?;
        let report = r.rt.timers().report(r.rt.world());
        if r.rt.is_root() && !report.rows.is_empty() {
            emit(format!("{}\n", report.to_string().trim_end()));
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The run's inputs

/// A run's inputs: an inputs file (TOML) and `--set key=value` overrides.
pub struct rankwise_config {
    cfg: Config,
}
impl Handle for rankwise_config {
    const KIND: &'static str = "rankwise_config";
}

fn input(e: impl std::fmt::Display) -> Failure {
    fail(RANKWISE_ERR_INPUT, e.to_string())
}

/// Not Collective (every rank reads the same). The inputs named on the command line
/// `argv[1..argc]`: `--inputs FILE` (`-i FILE`) and any number of `--set key=value`.
///
/// # Errors
/// `RANKWISE_ERR_INPUT` for an unknown argument, an unreadable or malformed file.
///
/// # Safety
/// `argv` must hold `argc` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn rankwise_config_from_args(argc: c_int, argv: *const *const c_char, out: *mut *mut rankwise_config) -> c_int {
    local(|| {
        out_ptr(out, "rankwise_config_from_args")?;
        let args = slice(argv, argc.max(0) as usize, "rankwise_config_from_args")?;
        let args = args.iter().skip(1).map(|&a| text(a, "rankwise_config_from_args").map(str::to_string)).collect::<Res<Vec<_>>>()?;
        give(out, rankwise_config { cfg: Config::from_args(args).map_err(input)? })
    })
}

/// Not Collective. [`rankwise_config_from_args`] on this process's own command line (for Fortran,
/// whose main program has no argv).
#[no_mangle]
pub extern "C" fn rankwise_config_from_command_line(out: *mut *mut rankwise_config) -> c_int {
    local(|| {
        out_ptr(out, "rankwise_config_from_command_line")?;
        give(out, rankwise_config { cfg: Config::from_args(std::env::args().skip(1)).map_err(input)? })
    })
}

/// Not Collective. Free the inputs and set `*cfg` to null.
///
/// # Safety
/// `cfg` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_config_destroy(cfg: *mut *mut rankwise_config) -> c_int {
    local(|| take(cfg, "rankwise_config_destroy").map(drop))
}

unsafe fn config_get<T: serde::de::DeserializeOwned>(cfg: *const rankwise_config, key: *const c_char, given: *mut c_int, what: &str) -> Res<Option<T>> {
    let c = get(cfg, what)?;
    let key = text(key, what)?;
    let v: Option<T> = c.cfg.get(key).map_err(input)?;
    if let Some(g) = given.as_mut() {
        *g = v.is_some() as c_int;
    }
    Ok(v)
}

/// Not Collective. The integer input `key`, or `fallback` when it is not given; `*given` (if not
/// null) tells which.
///
/// # Errors
/// `RANKWISE_ERR_INPUT` when the value is not an integer (the message names where it was given).
///
/// # Safety
/// `key` a NUL-terminated string, `value` writable, `given` null or writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_config_int(cfg: *const rankwise_config, key: *const c_char, fallback: i64, value: *mut i64, given: *mut c_int) -> c_int {
    local(|| {
        let v = config_get::<i64>(cfg, key, given, "rankwise_config_int")?;
        *out_ptr(value, "rankwise_config_int")? = v.unwrap_or(fallback);
        Ok(())
    })
}

/// Not Collective. The real input `key` (an integer is taken too), or `fallback`.
///
/// # Safety
/// As [`rankwise_config_int`].
#[no_mangle]
pub unsafe extern "C" fn rankwise_config_real(cfg: *const rankwise_config, key: *const c_char, fallback: f64, value: *mut f64, given: *mut c_int) -> c_int {
    local(|| {
        let v = config_get::<f64>(cfg, key, given, "rankwise_config_real")?;
        *out_ptr(value, "rankwise_config_real")? = v.unwrap_or(fallback);
        Ok(())
    })
}

/// Not Collective. The boolean input `key` (0 or 1), or `fallback`.
///
/// # Safety
/// As [`rankwise_config_int`].
#[no_mangle]
pub unsafe extern "C" fn rankwise_config_bool(cfg: *const rankwise_config, key: *const c_char, fallback: c_int, value: *mut c_int, given: *mut c_int) -> c_int {
    local(|| {
        let v = config_get::<bool>(cfg, key, given, "rankwise_config_bool")?;
        *out_ptr(value, "rankwise_config_bool")? = v.map_or(fallback, |b| b as c_int);
        Ok(())
    })
}

/// Not Collective. The string input `key`, or `fallback` (may be null: then "" and `*given` = 0),
/// copied into `buf` of `len` bytes with its NUL.
///
/// # Errors
/// `RANKWISE_ERR_SHAPE` when `buf` is too short.
///
/// # Safety
/// `key` (and `fallback` unless null) NUL-terminated strings; `buf` `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn rankwise_config_string(
    cfg: *const rankwise_config,
    key: *const c_char,
    fallback: *const c_char,
    buf: *mut c_char,
    len: usize,
    given: *mut c_int,
) -> c_int {
    local(|| {
        let v = config_get::<String>(cfg, key, given, "rankwise_config_string")?;
        let fb = if fallback.is_null() { "" } else { text(fallback, "rankwise_config_string")? };
        copy_out(v.as_deref().unwrap_or(fb), buf, len, "rankwise_config_string")
    })
}

/// Not Collective. The input error "`key` = value: `message`" naming where `key` was given, as
/// the last error; returns `RANKWISE_ERR_INPUT`. For values of the right type that the program
/// cannot accept.
///
/// # Safety
/// `key` and `message` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn rankwise_config_invalid(cfg: *const rankwise_config, key: *const c_char, message: *const c_char) -> c_int {
    local(|| {
        let c = get(cfg, "rankwise_config_invalid")?;
        Err(input(c.cfg.invalid(text(key, "rankwise_config_invalid")?, text(message, "rankwise_config_invalid")?)))
    })
}

/// Not Collective. Fail on the first input the program never asked for (most likely a typo).
#[no_mangle]
pub extern "C" fn rankwise_config_finish(cfg: *const rankwise_config) -> c_int {
    local(|| get(cfg, "rankwise_config_finish")?.cfg.finish().map_err(input))
}

// ---------------------------------------------------------------------------------------------
// Decomposition

/// Which ranks own which blocks of a global index space (1 to 3 dimensions, C order: the last
/// index varies fastest).
pub struct rankwise_decomposition {
    pub(crate) d: Arc<Decomposition>,
}
impl Handle for rankwise_decomposition {
    const KIND: &'static str = "rankwise_decomposition";
}

/// Collective. Split the global shape `global[0..ndim]` over all ranks on a balanced rank grid
/// (`grid` null) or the caller's (`grid[0..ndim]`, whose product is the rank count).
/// `periodic[d]` non-zero makes dimension `d` periodic (null: none is).
///
/// # Errors
/// `RANKWISE_ERR_INPUT` for an impossible shape or grid.
///
/// # Safety
/// `global` (and `grid`, `periodic` unless null) hold `ndim` elements.
#[no_mangle]
pub unsafe extern "C" fn rankwise_decomposition_create(
    rt: *const rankwise_runtime,
    ndim: c_int,
    global: *const usize,
    grid: *const usize,
    periodic: *const c_int,
    out: *mut *mut rankwise_decomposition,
) -> c_int {
    collective(|| {
        const W: &str = "rankwise_decomposition_create";
        let r = get(rt, W)?;
        out_ptr(out, W)?;
        if !(1..=3).contains(&ndim) {
            return Err(fail(RANKWISE_ERR_SHAPE, format!("{W}: a decomposition has 1 to 3 dimensions, not {ndim}")));
        }
        let n = ndim as usize;
        let global = slice(global, n, W)?;
        let periodic: Vec<bool> = if periodic.is_null() { vec![false; n] } else { slice(periodic, n, W)?.iter().map(|&p| p != 0).collect() };
        let d = if grid.is_null() { Decomposition::new(&r.rt, global, &periodic) } else { Decomposition::with_grid(&r.rt, global, slice(grid, n, W)?, &periodic) };
        // As `Field` holds it: the handle is used from one thread at a time.
        #[allow(clippy::arc_with_non_send_sync)]
        let d = Arc::new(d.map_err(input)?);
        give(out, rankwise_decomposition { d })
    })
}

/// Not Collective. Free the handle and set `*d` to null; fields made on it keep what they need.
///
/// # Safety
/// `d` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_decomposition_destroy(d: *mut *mut rankwise_decomposition) -> c_int {
    local(|| take(d, "rankwise_decomposition_destroy").map(drop))
}

/// Not Collective. The number of dimensions.
///
/// # Safety
/// `ndim` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_decomposition_ndim(d: *const rankwise_decomposition, ndim: *mut c_int) -> c_int {
    local(|| {
        *out_ptr(ndim, "rankwise_decomposition_ndim")? = get(d, "rankwise_decomposition_ndim")?.d.ndim() as c_int;
        Ok(())
    })
}

/// Not Collective. This rank's owned block: per dimension its first global index `start[d]` and
/// its length `count[d]` (0 for a rank that owns nothing), and the rank grid `grid[d]` (each
/// may be null).
///
/// # Safety
/// Each non-null pointer holds `ndim` writable elements.
#[no_mangle]
pub unsafe extern "C" fn rankwise_decomposition_owned(d: *const rankwise_decomposition, start: *mut usize, count: *mut usize, grid: *mut usize) -> c_int {
    local(|| {
        const W: &str = "rankwise_decomposition_owned";
        let d = &get(d, W)?.d;
        let n = d.ndim();
        if !start.is_null() {
            slice_mut(start, n, W)?.iter_mut().zip(d.owned()).for_each(|(s, r)| *s = r.start);
        }
        if !count.is_null() {
            slice_mut(count, n, W)?.iter_mut().zip(d.owned()).for_each(|(s, r)| *s = r.len());
        }
        if !grid.is_null() {
            slice_mut(grid, n, W)?.copy_from_slice(d.grid());
        }
        Ok(())
    })
}

/// Not Collective. The rank that owns the block at `offset[0..ndim]` (each -1, 0 or 1) from this
/// rank's on the rank grid, periodic images included; -1 past a non-periodic edge.
///
/// # Safety
/// `offset` holds `ndim` elements; `rank` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_decomposition_neighbour(d: *const rankwise_decomposition, offset: *const c_int, rank: *mut c_int) -> c_int {
    local(|| {
        const W: &str = "rankwise_decomposition_neighbour";
        let d = &get(d, W)?.d;
        let off: Vec<isize> = slice(offset, d.ndim(), W)?.iter().map(|&o| o as isize).collect();
        if off.iter().any(|o| o.abs() > 1) {
            return Err(fail(RANKWISE_ERR_SHAPE, format!("{W}: offsets are -1, 0 or 1, not {off:?}")));
        }
        *out_ptr(rank, W)? = d.neighbour(&off).map_or(-1, |r| r as c_int);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Fields

/// One rank's block of a distributed `double` array with `ghost` layers on every side, in C
/// order, in Rankwise's memory or the caller's.
pub struct rankwise_field {
    /// Rankwise's memory; for a caller's block, where its faces are exchanged through.
    pub(crate) field: Field<f64>,
    /// The caller's block, the same shape as `field`'s.
    caller: Option<*mut f64>,
}
impl Handle for rankwise_field {
    const KIND: &'static str = "rankwise_field";
}

impl rankwise_field {
    /// The whole local block, ghosts included.
    pub(crate) fn view(&self) -> ArrayViewD<'_, f64> {
        match self.caller {
            // SAFETY: the caller promised a block of this shape for the field's life.
            Some(p) => unsafe { ArrayViewD::from_shape_ptr(IxDyn(self.field.data().shape()), p) },
            None => self.field.data(),
        }
    }
    pub(crate) fn view_mut(&mut self) -> ArrayViewMutD<'_, f64> {
        match self.caller {
            // SAFETY: as in `view`.
            Some(p) => unsafe { ArrayViewMutD::from_shape_ptr(IxDyn(self.field.data().shape()), p) },
            None => self.field.data_mut(),
        }
    }
    /// The owned cells.
    pub(crate) fn interior(&self) -> ArrayViewD<'_, f64> {
        let r = self.owned_ranges();
        let mut v = self.view();
        v.slice_each_axis_inplace(|ax| Slice::from(r[ax.axis.index()].clone()));
        v
    }
    pub(crate) fn interior_mut(&mut self) -> ArrayViewMutD<'_, f64> {
        let r = self.owned_ranges();
        let mut v = self.view_mut();
        v.slice_each_axis_inplace(|ax| Slice::from(r[ax.axis.index()].clone()));
        v
    }
    fn owned_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let g = self.field.ghost();
        self.field.decomposition().local_shape().iter().map(|&n| g..g + n).collect()
    }

    /// Rankwise's block with the owned cells of the caller's (for what reads a `Field` whole).
    pub(crate) fn synced(&mut self) -> &Field<f64> {
        if self.caller.is_some() {
            let owned = self.interior().to_owned();
            self.field.interior_mut().assign(&owned);
        }
        &self.field
    }

    /// For a caller's block: copy the owned cells within `ghost` of a face (all that any
    /// neighbour's ghosts can need) into Rankwise's block, which the exchange sends from.
    fn stage_faces(&mut self) {
        let Some(p) = self.caller else { return };
        let g = self.field.ghost();
        let (_, shell) = overlap_boxes(&self.field.decomposition().local_shape(), g);
        // SAFETY: as in `view`; the caller's block and Rankwise's never overlap.
        let src = unsafe { ArrayViewD::from_shape_ptr(IxDyn(self.field.data().shape()), p) };
        let mut dst = self.field.data_mut();
        for cells in &shell {
            let at = |ax: ndarray::AxisDescription| Slice::from(cells[ax.axis.index()].start + g..cells[ax.axis.index()].end + g);
            dst.slice_each_axis_mut(at).assign(&src.slice_each_axis(at));
        }
    }

    /// For a caller's block: copy the ghost cells the exchange filled back to the caller.
    fn unstage_ghosts(&mut self) {
        let Some(p) = self.caller else { return };
        let ndim = self.field.decomposition().ndim();
        // SAFETY: as in `stage_faces`.
        let mut dst = unsafe { ArrayViewMutD::from_shape_ptr(IxDyn(self.field.data().shape()), p) };
        let mut side = vec![-1isize; ndim];
        loop {
            if side.iter().any(|&s| s != 0) {
                let r = ranges(&self.field, &side);
                dst.slice_each_axis_mut(|ax| Slice::from(r[ax.axis.index()].clone())).assign(&self.field.region(&side));
            }
            // Next of the 3^ndim sides.
            let Some(d) = (0..ndim).rev().find(|&d| side[d] < 1) else { break };
            side[d] += 1;
            side[d + 1..].iter_mut().for_each(|s| *s = -1);
        }
    }
}

/// The index ranges of `field`'s region `side` (see `Field::region`).
fn ranges(field: &Field<f64>, side: &[isize]) -> Vec<std::ops::Range<usize>> {
    let g = field.ghost();
    side.iter()
        .zip(field.decomposition().local_shape())
        .map(|(s, n)| match s {
            -1 => 0..g,
            0 => g..g + n,
            _ => g + n..2 * g + n,
        })
        .collect()
}

unsafe fn field_create(d: *const rankwise_decomposition, ghost: c_int, caller: Option<*mut f64>, out: *mut *mut rankwise_field, what: &str) -> Res {
    let d = get(d, what)?;
    out_ptr(out, what)?;
    if !(0..=64).contains(&ghost) {
        return Err(fail(RANKWISE_ERR_SHAPE, format!("{what}: a ghost width of 0 to 64 layers, not {ghost}")));
    }
    give(out, rankwise_field { field: Field::new(&d.d, ghost as usize), caller })
}

/// Not Collective. A field on `d` with `ghost` layers, zero, in Rankwise's memory (see
/// [`rankwise_field_data`]).
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_create(d: *const rankwise_decomposition, ghost: c_int, out: *mut *mut rankwise_field) -> c_int {
    local(|| field_create(d, ghost, None, out, "rankwise_field_create"))
}

/// Not Collective. A field on `d` with `ghost` layers over the caller's block `data` of
/// `shape[0..ndim]` (C order), which must be the local shape plus `2 ghost` per dimension; the
/// block stays alive and in place until the field is destroyed. Halo exchanges stage its faces
/// through a block of the same size that Rankwise keeps.
///
/// # Errors
/// `RANKWISE_ERR_SHAPE` when `shape` is not the block's.
///
/// # Safety
/// `data` must point to the whole block; `shape` holds `ndim` elements.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_wrap(d: *const rankwise_decomposition, ghost: c_int, data: *mut f64, shape: *const usize, out: *mut *mut rankwise_field) -> c_int {
    local(|| {
        const W: &str = "rankwise_field_wrap";
        if data.is_null() {
            return Err(fail(RANKWISE_ERR_NULL, format!("{W}: the caller's block is null")));
        }
        let dd = &get(d, W)?.d;
        let given = slice(shape, dd.ndim(), W)?;
        let g = ghost.max(0) as usize;
        let want: Vec<usize> = dd.local_shape().iter().map(|n| n + 2 * g).collect();
        if given != want.as_slice() {
            return Err(fail(RANKWISE_ERR_SHAPE, format!("{W}: a block of shape {given:?} was given; this rank's block with {ghost} ghost layers is {want:?}")));
        }
        field_create(d, ghost, Some(data), out, W)
    })
}

/// Not Collective. Free the field and set `*f` to null (the caller's block stays the caller's).
///
/// # Safety
/// `f` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_destroy(f: *mut *mut rankwise_field) -> c_int {
    local(|| take(f, "rankwise_field_destroy").map(drop))
}

/// Not Collective. The local block's shape with ghosts `shape[0..ndim]` (C order) and the
/// ghost width (each output may be null).
///
/// # Safety
/// `shape` null or `ndim` writable elements; `ghost` null or writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_shape(f: *const rankwise_field, shape: *mut usize, ghost: *mut c_int) -> c_int {
    local(|| {
        let f = get(f, "rankwise_field_shape")?;
        let s = f.field.data().shape().to_vec();
        if !shape.is_null() {
            slice_mut(shape, s.len(), "rankwise_field_shape")?.copy_from_slice(&s);
        }
        if let Some(g) = ghost.as_mut() {
            *g = f.field.ghost() as c_int;
        }
        Ok(())
    })
}

/// Not Collective. The local block (C order, ghosts included, shape from
/// [`rankwise_field_shape`]): Rankwise's memory, valid until the field is destroyed, or the
/// caller's own block.
///
/// # Safety
/// `data` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_data(f: *mut rankwise_field, data: *mut *mut f64) -> c_int {
    local(|| {
        let f = get_mut(f, "rankwise_field_data")?;
        *out_ptr(data, "rankwise_field_data")? = match f.caller {
            Some(p) => p,
            None => f.field.data_mut().as_mut_ptr(),
        };
        Ok(())
    })
}

fn stencil(s: c_int, what: &str) -> Res<Stencil> {
    match s {
        RANKWISE_STENCIL_STAR => Ok(Stencil::Star),
        RANKWISE_STENCIL_BOX => Ok(Stencil::Box),
        _ => Err(fail(RANKWISE_ERR_INPUT, format!("{what}: stencil {s} is neither RANKWISE_STENCIL_STAR nor RANKWISE_STENCIL_BOX"))),
    }
}

/// Exchange faces only (5- and 7-point stencils).
pub const RANKWISE_STENCIL_STAR: c_int = 0;
/// Exchange faces, edges and corners (9- and 27-point stencils).
pub const RANKWISE_STENCIL_BOX: c_int = 1;

/// Collective. Fill the field's ghost cells from their owners (periodic images included); ghosts
/// past a non-periodic edge are left to the program.
#[no_mangle]
pub extern "C" fn rankwise_field_exchange(f: *mut rankwise_field, stencil_kind: c_int) -> c_int {
    collective(|| {
        let f = get_mut(f, "rankwise_field_exchange")?;
        let s = stencil(stencil_kind, "rankwise_field_exchange")?;
        f.stage_faces();
        f.field.exchange(s);
        f.unstage_ghosts();
        Ok(())
    })
}

/// A halo exchange in flight.
pub struct rankwise_exchange {
    ex: Option<HaloExchange<f64>>,
    field: *mut rankwise_field,
}
impl Handle for rankwise_exchange {
    const KIND: &'static str = "rankwise_exchange";
}

/// Collective. Split phase: send the field's faces and return at once; update the cells that need
/// no ghost meanwhile, then call [`rankwise_exchange_finish`].
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_exchange_begin(f: *mut rankwise_field, stencil_kind: c_int, out: *mut *mut rankwise_exchange) -> c_int {
    collective(|| {
        const W: &str = "rankwise_exchange_begin";
        let field = get_mut(f, W)?;
        out_ptr(out, W)?;
        let s = stencil(stencil_kind, W)?;
        field.stage_faces();
        let ex = field.field.begin_exchange(s);
        give(out, rankwise_exchange { ex: Some(ex), field: f })
    })
}

/// Collective. Wait for the exchange begun by [`rankwise_exchange_begin`], fill the field's
/// ghost cells, free the exchange and set `*ex` to null.
///
/// # Errors
/// `RANKWISE_ERR_HANDLE` when the field was destroyed meanwhile (the messages are still waited for).
///
/// # Safety
/// `ex` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_exchange_finish(ex: *mut *mut rankwise_exchange) -> c_int {
    collective(|| {
        const W: &str = "rankwise_exchange_finish";
        let Some(mut e) = take(ex, W)? else { return Err(fail(RANKWISE_ERR_NULL, format!("{W}: a null rankwise_exchange handle"))) };
        let field = get_mut(e.field, W)?;
        let finished = e.ex.take().expect("an exchange is finished once").finish(&mut field.field);
        finished.map_err(|err| fail(RANKWISE_ERR_MPI, format!("{W}: {err}")))?;
        field.unstage_ghosts();
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Reductions and checksums

fn same_blocks(a: &rankwise_field, b: &rankwise_field, what: &str) -> Res {
    let (da, db) = (a.field.decomposition(), b.field.decomposition());
    if da.global_shape() != db.global_shape() || da.owned() != db.owned() {
        return Err(fail(RANKWISE_ERR_SHAPE, format!("{what}: the two fields are on different decompositions")));
    }
    Ok(())
}

fn comm(f: &rankwise_field) -> &SimpleCommunicator {
    f.field.decomposition().comm()
}

/// Collective. The exact sum of the owned cells, rounded once: the same bits on any rank count
/// and decomposition.
///
/// # Safety
/// `sum` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_sum(f: *const rankwise_field, sum: *mut f64) -> c_int {
    collective(|| {
        let f = get(f, "rankwise_field_sum")?;
        let out = out_ptr(sum, "rankwise_field_sum")?;
        let mut acc = ExactSum::new();
        f.interior().iter().for_each(|&x| acc.add(x));
        *out = acc.all_reduce(comm(f));
        Ok(())
    })
}

/// Collective. `sum(a * b)` over the owned cells, each product rounded and the products summed
/// exactly: the same bits on any rank count and decomposition.
///
/// # Safety
/// `dot` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_dot(a: *const rankwise_field, b: *const rankwise_field, dot: *mut f64) -> c_int {
    collective(|| {
        const W: &str = "rankwise_field_dot";
        let (a, b) = (get(a, W)?, get(b, W)?);
        let out = out_ptr(dot, W)?;
        same_blocks(a, b, W)?;
        let mut acc = ExactSum::new();
        a.interior().iter().zip(b.interior().iter()).for_each(|(&x, &y)| acc.add(x * y));
        *out = acc.all_reduce(comm(a));
        Ok(())
    })
}

/// Collective. The field's position-keyed checksum (see `rankwise_io::checksum`): each rank sums
/// its block, the ranks' sums are added modulo 2^64. Equal on any rank count exactly when the
/// field's bits are; the checksum a checkpoint stores for the field. Print it as 16 hex digits.
///
/// # Safety
/// `checksum` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_checksum(f: *const rankwise_field, checksum: *mut u64) -> c_int {
    collective(|| {
        let f = get(f, "rankwise_field_checksum")?;
        let out = out_ptr(checksum, "rankwise_field_checksum")?;
        let d = f.field.decomposition();
        let start: Vec<usize> = d.owned().iter().map(|r| r.start).collect();
        let mine = rankwise_io::checksum::block_sum(d.global_shape(), &start, &f.interior());
        // A wrapping sum over ranks: gathered, then added in rank order.
        let mut all = vec![0u64; d.comm().size() as usize];
        d.comm().all_gather_into(&mine, &mut all[..]);
        *out = all.into_iter().fold(0u64, u64::wrapping_add);
        Ok(())
    })
}

/// Collective. The largest and smallest owned value (either output may be null).
///
/// # Safety
/// `min`, `max` null or writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_minmax(f: *const rankwise_field, min: *mut f64, max: *mut f64) -> c_int {
    collective(|| {
        let f = get(f, "rankwise_field_minmax")?;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        f.interior().iter().for_each(|&x| {
            lo = lo.min(x);
            hi = hi.max(x);
        });
        let (mut glo, mut ghi) = (0.0, 0.0);
        comm(f).all_reduce_into(&lo, &mut glo, SystemOperation::min());
        comm(f).all_reduce_into(&hi, &mut ghi, SystemOperation::max());
        if let Some(m) = min.as_mut() {
            *m = glo;
        }
        if let Some(m) = max.as_mut() {
            *m = ghi;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The stop policy

/// Watches for stop requests (signals, the Slurm job's end, a wall-time limit) and turns them
/// into one decision that every rank shares.
pub struct rankwise_stop {
    policy: StopPolicy,
    rt: *const rankwise_runtime,
}
impl Handle for rankwise_stop {
    const KIND: &'static str = "rankwise_stop";
}

/// Go on with the next step.
pub const RANKWISE_CARRY_ON: c_int = 0;
/// Write a checkpoint now, then go on (a warning came: the time limit is near, with time left).
pub const RANKWISE_CHECKPOINT: c_int = 1;
/// Write a checkpoint now and stop; exit with `RANKWISE_EXIT_REQUEUE` so the job is requeued.
pub const RANKWISE_CHECKPOINT_AND_STOP: c_int = 2;
/// The exit code of a run that checkpointed and stopped early: "requeue me" (EX_TEMPFAIL).
pub const RANKWISE_EXIT_REQUEUE: c_int = 75;

/// Collective. Install the signal handlers (SIGUSR2 warns of the time limit, SIGTERM stops) and
/// learn the deadline: the Slurm job's end, or `wall_seconds` from now when positive. `margin_seconds`
/// are kept free before it for the last checkpoint (plus two steps).
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_stop_create(rt: *const rankwise_runtime, margin_seconds: f64, wall_seconds: f64, out: *mut *mut rankwise_stop) -> c_int {
    collective(|| {
        const W: &str = "rankwise_stop_create";
        let r = get(rt, W)?;
        out_ptr(out, W)?;
        if !(0.0..=86400.0).contains(&margin_seconds) || !(wall_seconds.is_finite()) {
            return Err(fail(RANKWISE_ERR_INPUT, format!("{W}: a margin of 0 to 86400 seconds and a finite wall time, not {margin_seconds} and {wall_seconds}")));
        }
        let opts = StopOptions {
            margin: Duration::from_secs_f64(margin_seconds),
            wall_time: (wall_seconds > 0.0).then(|| Duration::from_secs_f64(wall_seconds)),
            ..StopOptions::default()
        };
        let policy = StopPolicy::new(&r.rt, opts).map_err(|e| fail(RANKWISE_ERR_INPUT, e.to_string()))?;
        give(out, rankwise_stop { policy, rt })
    })
}

/// Collective. After step `step`: one of `RANKWISE_CARRY_ON`, `RANKWISE_CHECKPOINT`,
/// `RANKWISE_CHECKPOINT_AND_STOP`, the same on every rank.
///
/// # Safety
/// `action` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_stop_check(s: *const rankwise_stop, step: u64, action: *mut c_int) -> c_int {
    collective(|| {
        const W: &str = "rankwise_stop_check";
        let s = get(s, W)?;
        let r = get(s.rt, W)?;
        let d = s.policy.check(&r.rt, step);
        *out_ptr(action, W)? = match (d.checkpoint, d.stop) {
            (_, true) => RANKWISE_CHECKPOINT_AND_STOP,
            (true, false) => RANKWISE_CHECKPOINT,
            _ => RANKWISE_CARRY_ON,
        };
        Ok(())
    })
}

/// Not Collective. Remove the signal handlers, free the policy and set `*s` to null.
///
/// # Safety
/// `s` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_stop_destroy(s: *mut *mut rankwise_stop) -> c_int {
    local(|| take(s, "rankwise_stop_destroy").map(drop))
}
