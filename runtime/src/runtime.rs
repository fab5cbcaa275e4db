//! Start-up and shut-down of one rank, and the job-wide failure policy.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mpi::environment::{Threading, Universe};
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};

use crate::error::is_bad_input;
use crate::{logging, Error, GpuBinding, Result, Timers};

/// Exit code of a job that failed (a rank panicked or returned an error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of a job stopped by bad input (an unknown key, a wrong option, an impossible shape).
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code of a job that saved a checkpoint and stopped early (signal or time limit): "requeue me".
/// 75 is EX_TEMPFAIL from sysexits.h: a temporary failure, try again.
pub const EXIT_REQUEUE: i32 = rankwise_slurm::EXIT_REQUEUE;

/// How a run ended, as returned by the program body given to [`run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The run is complete.
    Done,
    /// A checkpoint was written and the run stopped before its end; relaunch to continue.
    Requeue,
}

/// Options for [`Runtime::init_with`].
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The thread level the program needs. `Funneled` (default) suits rayon inside a rank with MPI
    /// called from the main thread only.
    pub threading: Threading,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions { threading: Threading::Funneled }
    }
}

// The panic hook runs outside any Runtime borrow, so it reads these.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static RANK: AtomicUsize = AtomicUsize::new(0);

/// One rank's view of the job: MPI, where it runs, its GPU, its timers.
///
/// Dropping it (or [`Runtime::finalize`]) shuts MPI down; any MPI or HDF5 object must be dropped
/// before.
pub struct Runtime {
    world: SimpleCommunicator,
    node: SimpleCommunicator,
    rank: usize,
    size: usize,
    local_rank: usize,
    local_size: usize,
    host: String,
    threading: Threading,
    gpu: GpuBinding,
    timers: Timers,
    // Last, so MPI_Finalize runs after the communicators above are freed. None when the program
    // initialised MPI itself ([`Runtime::adopt`]): then it finalises MPI too.
    _universe: Option<Universe>,
}

impl Runtime {
    /// Collective. Initialise MPI with the default options; see [`Runtime::init_with`].
    pub fn init() -> Result<Runtime> {
        Runtime::init_with(InitOptions::default())
    }

    /// Collective. Initialise MPI at the requested thread level, split the world by shared memory
    /// into node communicators, bind a GPU, set up rank-prefixed logging, and make a panic on any
    /// rank abort the whole job instead of leaving the others waiting.
    pub fn init_with(opts: InitOptions) -> Result<Runtime> {
        crate::stop::catch_warning_early();
        let (universe, provided) =
            mpi::initialize_with_threading(opts.threading).ok_or(Error::AlreadyInitialised)?;
        if provided < opts.threading {
            return Err(Error::ThreadLevel { requested: opts.threading, provided });
        }
        let world = universe.world();
        RANK.store(world.rank() as usize, Ordering::Relaxed);
        ACTIVE.store(true, Ordering::SeqCst);
        install_panic_hook();
        Ok(Runtime::on(world, provided, Some(universe)))
    }

    /// Collective over `comm`. Run on a communicator of a program that initialised MPI itself
    /// (a C, Fortran or Python program): the runtime neither initialises nor finalises MPI, and
    /// installs no panic hook (the caller's boundary catches panics). `comm` becomes the
    /// runtime's world and is freed with it, so pass a duplicate (`MPI_Comm_dup`) of the
    /// caller's communicator, and drop the runtime before the program calls `MPI_Finalize`.
    ///
    /// # Errors
    /// [`Error::NotInitialised`] when MPI is not running, [`Error::InterCommunicator`] for an
    /// inter-communicator.
    pub fn adopt(comm: SimpleCommunicator) -> Result<Runtime> {
        if !mpi::environment::is_initialized() || mpi::environment::is_finalized() {
            return Err(Error::NotInitialised);
        }
        let mut inter = 0;
        // SAFETY: MPI runs, and `comm` is a valid communicator handle.
        unsafe { mpi::ffi::MPI_Comm_test_inter(comm.as_raw(), &mut inter) };
        if inter != 0 {
            return Err(Error::InterCommunicator);
        }
        crate::stop::catch_warning_early();
        Ok(Runtime::on(comm, mpi::environment::threading_support(), None))
    }

    fn on(world: SimpleCommunicator, provided: Threading, universe: Option<Universe>) -> Runtime {
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        logging::init(rank, size);

        let node = world.split_shared(rank as i32);
        let local_rank = node.rank() as usize;
        let local_size = node.size() as usize;
        let host = mpi::environment::processor_name().unwrap_or_else(|_| "unknown".into());
        let gpu = GpuBinding::probe(local_rank, local_size);
        if let GpuBinding::Device { shared_with, .. } = &gpu {
            if *shared_with > 1 && local_rank == 0 {
                log::warn!("{local_size} ranks on {host} share its GPUs: {gpu}");
            }
        }
        Runtime {
            world,
            node,
            rank,
            size,
            local_rank,
            local_size,
            host,
            threading: provided,
            gpu,
            timers: Timers::new(),
            _universe: universe,
        }
    }

    /// All ranks of the job. Anything rsmpi offers works on it.
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }
    /// The ranks on this node (they share memory).
    pub fn node(&self) -> &SimpleCommunicator {
        &self.node
    }
    pub fn rank(&self) -> usize {
        self.rank
    }
    pub fn size(&self) -> usize {
        self.size
    }
    /// This rank's index among the ranks of its node.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }
    /// How many ranks run on this node.
    pub fn local_size(&self) -> usize {
        self.local_size
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The thread level MPI actually provides.
    pub fn threading(&self) -> Threading {
        self.threading
    }
    pub fn gpu(&self) -> &GpuBinding {
        &self.gpu
    }
    pub fn timers(&self) -> &Timers {
        &self.timers
    }
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Collective. Print the timer report on rank 0 (if any region was timed) and shut MPI down.
    pub fn finalize(self) {
        let report = self.timers.report(&self.world);
        if self.rank == 0 && !report.rows.is_empty() {
            emit(report.to_string());
        }
        ACTIVE.store(false, Ordering::SeqCst);
    }

    /// Abort every rank of the job with `code`, after printing `msg` with this rank's number.
    pub fn abort(&self, code: i32, msg: &str) -> ! {
        emit(format!("rank {}: {msg}; aborting the job", self.rank));
        self.world.abort(code)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
    }
}

/// A panic on one rank must not leave the others waiting in a collective: print where and why,
/// then MPI_Abort the whole job.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let rank = RANK.load(Ordering::Relaxed);
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".into());
        let at = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
        emit(format!("rank {rank}: panicked{at}: {msg}"));
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            emit(format!("{bt}"));
        }
        if ACTIVE.load(Ordering::SeqCst) {
            emit(format!("rank {rank}: aborting the job"));
            // SAFETY: MPI is initialised and not finalised (ACTIVE); MPI_Abort may be called from
            // any thread and does not return.
            unsafe { mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 101) };
        }
    }));
}

/// Run an SPMD program body and turn its outcome into the job's exit code.
///
/// `Ok(Exit::Done)` exits 0 and `Ok(Exit::Requeue)` exits [`EXIT_REQUEUE`] after a clean
/// shut-down. An error that is the user's input ([`BadInput`](crate::BadInput), a
/// [`ConfigError`](crate::ConfigError)) is the same on every rank: rank 0 prints it on one line
/// and every rank exits [`EXIT_BAD_INPUT`]. Any other error may be on one rank only, so it is
/// printed with the rank and the job is aborted.
pub fn run<F, E>(opts: InitOptions, body: F) -> !
where
    F: FnOnce(&mut Runtime) -> std::result::Result<Exit, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut rt = match Runtime::init_with(opts) {
        Ok(rt) => rt,
        Err(e) => {
            emit(format!("error: {e}"));
            std::process::exit(EXIT_FAILURE);
        }
    };
    let code = match body(&mut rt) {
        Ok(Exit::Done) => 0,
        Ok(Exit::Requeue) => EXIT_REQUEUE,
        Err(e) => {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            if is_bad_input(e.as_ref()) {
                if rt.is_root() {
                    emit(format!("error: {}", chain(e.as_ref())));
                }
                EXIT_BAD_INPUT
            } else {
                rt.abort(EXIT_FAILURE, &format!("error: {}", chain(e.as_ref())));
            }
        }
    };
    rt.finalize();
    std::process::exit(code)
}

/// Write to stderr in one piece: Rust's unbuffered stderr would otherwise split a line into
/// several writes, and mpirun's output forwarding tags and interleaves each one.
pub(crate) fn emit(mut text: String) {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes()).ok();
}

/// "outer: inner: innermost", skipping sources whose text the outer message already contains.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}
