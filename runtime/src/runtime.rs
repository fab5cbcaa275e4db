//! Start-up and shut-down of one rank, and the job-wide failure policy.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mpi::environment::{Threading, Universe};
use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};

use crate::error::is_bad_input;
use crate::threads::{self, Threads};
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
    /// The thread level the program needs (an error when MPI provides less). `Funneled` (default)
    /// suits rayon inside a rank with MPI called from the main thread only.
    pub threading: Threading,
    /// A higher level to ask for, taken when the MPI has it: asynchronous checkpoints need
    /// `Multiple` ([`Runtime::threading`] tells what was provided).
    pub preferred: Option<Threading>,
    /// Make the calling thread one of rayon's pool: a kernel called from it then runs there at
    /// once instead of waking a pool thread (some 10 us a call). Off by default: with it, work
    /// that other threads hand the pool waits while this thread is outside rayon.
    pub join_pool: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions { threading: Threading::Funneled, preferred: None, join_pool: false }
    }
}

static AT_FINALIZE: std::sync::Mutex<Vec<fn()>> = std::sync::Mutex::new(Vec::new());

/// Have `f` run when the [`Runtime`] shuts down, while MPI still runs: a library that keeps work in
/// a thread of its own (an asynchronous checkpoint) finishes it there. Registered once per `f`.
pub fn at_finalize(f: fn()) {
    let mut hooks = AT_FINALIZE.lock().unwrap_or_else(|p| p.into_inner());
    if !hooks.contains(&f) {
        hooks.push(f);
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
    threads: Threads,
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
    /// into node communicators, size the rank's thread pools ([`Runtime::threads`]), bind a GPU,
    /// set up rank-prefixed logging, and make a panic on any rank abort the whole job instead of
    /// leaving the others waiting.
    pub fn init_with(opts: InitOptions) -> Result<Runtime> {
        crate::stop::catch_warning_early();
        let ask = match opts.preferred {
            Some(p) if p > opts.threading => p,
            _ => opts.threading,
        };
        let (universe, provided) = mpi::initialize_with_threading(ask).ok_or(Error::AlreadyInitialised)?;
        if provided < opts.threading {
            return Err(Error::ThreadLevel { requested: opts.threading, provided });
        }
        let world = universe.world();
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        if size == 1 {
            if let Some(e) = foreign_launcher() {
                return Err(e);
            }
        }
        RANK.store(rank, Ordering::Relaxed);
        ACTIVE.store(true, Ordering::SeqCst);
        install_panic_hook();
        Ok(Runtime::on(world, provided, Some(universe), Some(opts.join_pool)))
    }

    /// Collective over `comm`. Run on a communicator of a program that initialised MPI itself
    /// (a C, Fortran or Python program): the runtime neither initialises nor finalises MPI, and
    /// installs no panic hook (the caller's boundary catches panics). `comm` becomes the
    /// runtime's world and is freed with it, so pass a duplicate (`MPI_Comm_dup`) of the
    /// caller's communicator, and drop the runtime before the program calls `MPI_Finalize`.
    /// Rayon's pool is sized as under [`Runtime::init`] (unless the program built it already);
    /// the program's OpenBLAS is left as it is.
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
        Ok(Runtime::on(comm, mpi::environment::threading_support(), None, None))
    }

    /// `own`: this process is ours (not a C, Fortran or Python program's): Some(join rayon's pool).
    fn on(world: SimpleCommunicator, provided: Threading, universe: Option<Universe>, own: Option<bool>) -> Runtime {
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        logging::init(rank, size);

        let node = world.split_shared(rank as i32);
        let local_rank = node.rank() as usize;
        let local_size = node.size() as usize;
        let threads = threads::apply(threads::choose(&node), own.unwrap_or(false), own.is_some());
        let host = mpi::environment::processor_name().unwrap_or_else(|_| "unknown".into());
        let gpu = GpuBinding::probe_node(&node);
        if let GpuBinding::Device { shared_with, .. } = &gpu {
            if *shared_with > 1 && local_rank == 0 {
                log::warn!("{shared_with} ranks on {host} share one GPU: {gpu}");
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
            threads,
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
    /// How many threads this rank's rayon pool (and OpenBLAS) has, and why: see [`threads`].
    pub fn threads(&self) -> &Threads {
        &self.threads
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
        let hooks = std::mem::take(&mut *AT_FINALIZE.lock().unwrap_or_else(|p| p.into_inner()));
        for f in hooks {
            f();
        }
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

/// Print `msg` with this rank's number and MPI_Abort the whole job (or abort the process when MPI
/// is not running): what a library inside a foreign program (the C API, the Python package) does
/// when a collective call fails on one rank, so that the others are not left waiting.
pub fn abort_job(msg: &str) -> ! {
    if mpi::environment::is_initialized() && !mpi::environment::is_finalized() {
        let mut rank = -1;
        // SAFETY: MPI runs; rank of the world communicator.
        unsafe { mpi::ffi::MPI_Comm_rank(mpi::ffi::RSMPI_COMM_WORLD, &mut rank) };
        emit(format!("rank {rank}: {msg}; aborting the job"));
        // SAFETY: MPI runs; MPI_Abort does not return.
        unsafe { mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 1) };
    }
    emit(format!("{msg}; aborting"));
    std::process::abort()
}

/// How long a rank that hit bad input alone waits for the others to reach the end of the run
/// before it aborts the job: they may be waiting for it in a collective that it never joins.
pub const BAD_INPUT_GRACE: Duration = Duration::from_secs(10);

/// Run an SPMD program body and turn its outcome into the job's exit code.
///
/// `Ok(Exit::Done)` exits 0 and `Ok(Exit::Requeue)` exits [`EXIT_REQUEUE`] after a clean
/// shut-down. An error that is the user's input ([`BadInput`](crate::BadInput), a
/// [`ConfigError`](crate::ConfigError)) may be found by every rank or by some only (one rank's
/// block fails a check): the ranks agree on it at the end of the body, the lowest failing rank
/// prints its error once, on one line, and every rank exits [`EXIT_BAD_INPUT`]. If the other
/// ranks do not reach the end within [`BAD_INPUT_GRACE`] (they wait for the failed rank in a
/// collective), the failed rank prints its error and aborts the job with [`EXIT_BAD_INPUT`].
/// Any other error is printed with its rank and aborts the job.
pub fn run<F, E>(opts: InitOptions, body: F) -> !
where
    F: FnOnce(&mut Runtime) -> std::result::Result<Exit, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut rt = match Runtime::init_with(opts) {
        Ok(rt) => rt,
        Err(Error::ForeignLauncher { message, first }) => {
            if first {
                emit(format!("error: {message}"));
            } else {
                // A launcher tears the job down at the first non-zero exit: let rank 0 say why.
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            std::process::exit(EXIT_BAD_INPUT);
        }
        Err(e) => {
            emit(format!("error: {e}"));
            std::process::exit(EXIT_FAILURE);
        }
    };
    // The verdict's own communicator: the body may have left anything in flight on the world.
    let verdict = rt.world().duplicate();
    let (code, bad_input) = match body(&mut rt) {
        Ok(Exit::Done) => (0, None),
        Ok(Exit::Requeue) => (EXIT_REQUEUE, None),
        Err(e) => {
            let e: Box<dyn std::error::Error + Send + Sync> = e.into();
            if !is_bad_input(e.as_ref()) {
                rt.abort(EXIT_FAILURE, &format!("error: {}", chain(e.as_ref())));
            }
            (EXIT_BAD_INPUT, Some(chain(e.as_ref())))
        }
    };
    let first_failed = agree(&verdict, rt.rank, bad_input.is_some(), BAD_INPUT_GRACE);
    let code = match first_failed {
        Ok(None) => code,
        Ok(Some(r)) => {
            if let (true, Some(msg)) = (r == rt.rank, &bad_input) {
                emit(if r == 0 { format!("error: {msg}") } else { format!("error: rank {r}: {msg}") });
            }
            EXIT_BAD_INPUT
        }
        Err(waited) => {
            let msg = bad_input.expect("only a failed rank stops waiting");
            rt.abort(EXIT_BAD_INPUT, &format!("error: {msg} (the other ranks did not stop with it within {waited:?})"));
        }
    };
    drop(verdict);
    rt.finalize();
    std::process::exit(code)
}

/// Collective over `comm`. The lowest rank that `failed` (None if none did). A rank that failed
/// waits at most `grace` for the others and then gives up (`Err` with the time it waited); the
/// others wait as long as it takes.
fn agree(comm: &SimpleCommunicator, rank: usize, failed: bool, grace: Duration) -> std::result::Result<Option<usize>, Duration> {
    let size = comm.size();
    let mine: c_int = if failed { rank as c_int } else { size };
    let mut lowest: c_int = size;
    let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
    let start = Instant::now();
    // SAFETY: both buffers outlive the request: it completes below, or the job is aborted.
    unsafe {
        ffi::MPI_Iallreduce(
            &mine as *const c_int as *const c_void,
            &mut lowest as *mut c_int as *mut c_void,
            1,
            ffi::RSMPI_INT32_T,
            ffi::RSMPI_MIN,
            comm.as_raw(),
            &mut req,
        )
    };
    loop {
        let mut done: c_int = 0;
        // SAFETY: `req` is the request posted above.
        unsafe { ffi::MPI_Test(&mut req, &mut done, ffi::RSMPI_STATUS_IGNORE) };
        if done != 0 {
            return Ok((lowest < size).then_some(lowest as usize));
        }
        if failed && start.elapsed() >= grace {
            return Err(grace);
        }
        // Ranks that wait for slower ones give their core away.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A launcher that is not this MPI's: every rank is the only one of its own job (rank 0 of 1)
/// while the launcher's variables say it started several. An error naming both, if so; only
/// the process the launcher calls rank 0 says it (the others would repeat it).
fn foreign_launcher() -> Option<Error> {
    const LAUNCHERS: [(&str, &str, &str); 3] = [
        ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "Open MPI's mpirun"),
        ("PMI_SIZE", "PMI_RANK", "a PMI launcher (MPICH's mpirun, or srun --mpi=pmi2)"),
        ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "srun"),
    ];
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<usize>().ok());
    let (size_var, rank_var, who) = LAUNCHERS.into_iter().find(|(size, _, _)| var(size).is_some_and(|n| n > 1))?;
    let n = var(size_var)?;
    let hint = if who == "srun" {
        " (srun's --mpi plugin must match: pmix for Open MPI, pmi2 for MPICH)"
    } else {
        ""
    };
    Some(Error::ForeignLauncher {
        message: format!(
            "this program is linked with {}, but {who} started it ({size_var}={n}){hint}: it ran as {n} separate jobs of one rank. \
             Start it with the launcher of {} (or `rankwise run`, which chooses it)",
            mpi_library(),
            mpi_family(),
        ),
        first: var(rank_var).unwrap_or(0) == 0,
    })
}

/// `Open MPI`, `MPICH` or `Intel MPI`: the family of [`mpi_library`].
fn mpi_family() -> String {
    let lib = mpi_library();
    ["Open MPI", "MPICH", "Intel"].iter().find(|f| lib.contains(*f)).map_or(lib.clone(), |f| f.replace("Intel", "Intel MPI"))
}

/// The MPI library this process links, as it names itself: `Open MPI v4.1.4`,
/// `MPICH Version: 4.0.2`. Not collective; callable before MPI starts.
pub fn mpi_library() -> String {
    let version = mpi::environment::library_version().unwrap_or_else(|_| "?".into());
    let first = version.lines().next().unwrap_or("?").split(',').next().unwrap_or("?");
    first.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Write to stderr in one piece: Rust's unbuffered stderr would otherwise split a line into
/// several writes, and mpirun's output forwarding tags and interleaves each one.
pub fn emit(text: impl Into<String>) {
    let mut text = text.into();
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
