//! Stop requests: signals and time limits turned into one decision that every rank shares.
//!
//! A signal handler only counts signals; [`StopPolicy::check`] (collective, at a step
//! boundary) reduces the counts, the time left and the observed step time over all ranks, so
//! every rank takes the same decision at the same step. The rules, after SCR and submitit:
//! - time runs out (less than a margin plus two steps left): checkpoint and stop;
//! - the warning signal (USR2, sent by Slurm `--signal=B:USR2@N` up to a minute early) near the
//!   end: checkpoint now, then carry on while there is time (the rule above stops later);
//! - the warning signal far from the end, or a stop signal (TERM): checkpoint and stop.
//!
//! Time-out or preemption is told by the time left when it happened, as submitit does.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::traits::*;
use rankwise_slurm::{Job, Slurm};

use crate::{BadInput, Exit, Result, Runtime};

/// USR2 counted from [`Runtime::init`] on. Slurm sends it by the clock, so it may come while a
/// program still starts up (MPI, a restore), before its [`StopPolicy`] exists: its default action
/// would kill the rank; counted here, the first check sees it.
static EARLY_WARNINGS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn catch_warning_early() {
    // SAFETY: the handler only increments an atomic, which is async-signal-safe.
    let _ = unsafe { signal_hook::low_level::register(libc::SIGUSR2, || { EARLY_WARNINGS.fetch_add(1, Ordering::SeqCst); }) };
}

/// Why a run checkpoints or stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The job's time limit (or the wall-time limit) is near.
    TimeLimit,
    /// A signal far from the time limit: the job is being preempted, cancelled or requeued.
    Preemption,
}

/// What all ranks agreed at one [`StopPolicy::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopDecision {
    /// Write a checkpoint now.
    pub checkpoint: bool,
    /// Stop after it, and exit asking to be requeued.
    pub stop: bool,
    pub reason: Option<StopReason>,
}

impl StopDecision {
    pub const CARRY_ON: StopDecision = StopDecision { checkpoint: false, stop: false, reason: None };

    /// `Some(Exit::Requeue)` when the run must stop, to return from the program body.
    pub fn exit(&self) -> Option<Exit> {
        self.stop.then_some(Exit::Requeue)
    }
}

/// Options of a [`StopPolicy`].
#[derive(Clone, Debug)]
pub struct StopOptions {
    /// Signals that warn of the time limit: checkpoint, and carry on if there is time.
    pub warning_signals: Vec<i32>,
    /// Signals that mean "stop now" (after a checkpoint).
    pub stop_signals: Vec<i32>,
    /// Time kept free at the end for the last checkpoint and shut-down, on top of two steps.
    pub margin: Duration,
    /// A warning signal this close to the end is the time limit's; further away, a preemption.
    /// Slurm sends it `N` seconds before the limit and up to 60 s earlier: keep this above N + 60.
    pub warning_window: Duration,
    /// A wall-time limit counted from [`StopPolicy::new`], for runs outside Slurm (or shorter
    /// than the job's).
    pub wall_time: Option<Duration>,
    /// Ask Slurm for the job's end time (when running in a job).
    pub slurm: bool,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions {
            warning_signals: vec![libc::SIGUSR2],
            stop_signals: vec![libc::SIGTERM],
            margin: Duration::from_secs(30),
            warning_window: Duration::from_secs(300),
            wall_time: None,
            slurm: true,
        }
    }
}

/// Watches for stop requests; see the module documentation for the rules.
pub struct StopPolicy {
    warnings: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
    handlers: Vec<signal_hook::SigId>,
    deadline: Option<Instant>,
    last: Cell<Option<(Instant, u64)>>,
    rules: RefCell<Rules>,
}

impl StopPolicy {
    /// Collective. Install the signal handlers and learn the deadline: the Slurm job's end time
    /// (asked once, by rank 0, and shared as a duration so that node clocks do not matter) or
    /// the wall-time limit, whichever comes first.
    pub fn new(rt: &Runtime, opts: StopOptions) -> Result<StopPolicy> {
        let (warnings, stops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut handlers = Vec::new();
        for (sigs, count) in [(&opts.warning_signals, &warnings), (&opts.stop_signals, &stops)] {
            for &sig in sigs {
                let count = count.clone();
                // SAFETY: the handler only increments an atomic, which is async-signal-safe.
                let id = unsafe { signal_hook::low_level::register(sig, move || { count.fetch_add(1, Ordering::SeqCst); }) }
                    .map_err(|e| BadInput(format!("cannot handle signal {sig}: {e}")))?;
                handlers.push(id);
            }
        }
        if opts.warning_signals.contains(&libc::SIGUSR2) {
            warnings.fetch_add(EARLY_WARNINGS.swap(0, Ordering::SeqCst), Ordering::SeqCst);
        }
        let mut left = f64::INFINITY;
        if rt.is_root() && opts.slurm {
            left = slurm_time_left().map_or(f64::INFINITY, |d| d.as_secs_f64());
        }
        rt.world().process_at_rank(0).broadcast_into(&mut left);
        let now = Instant::now();
        let deadline = [left.is_finite().then(|| now + Duration::from_secs_f64(left)), opts.wall_time.map(|w| now + w)]
            .into_iter()
            .flatten()
            .min();
        Ok(StopPolicy {
            warnings,
            stops,
            handlers,
            deadline,
            last: Cell::new(None),
            rules: RefCell::new(Rules::new(opts.margin.as_secs_f64(), opts.warning_window.as_secs_f64())),
        })
    }

    /// Time until the deadline, if there is one (zero once it has passed).
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Collective. Decide, the same on every rank, whether to checkpoint now and whether to
    /// stop. Call it at a step boundary; `step` counts steps so the step time can be measured.
    pub fn check(&self, rt: &Runtime, step: u64) -> StopDecision {
        let now = Instant::now();
        let step_secs = match self.last.get() {
            Some((t, s)) if step > s => (now - t).as_secs_f64() / (step - s) as f64,
            _ => 0.0,
        };
        self.last.set(Some((now, step)));
        // One all-reduce (max) for everything: counts, the slowest step, the least time left.
        let local = [
            self.warnings.load(Ordering::SeqCst) as f64,
            self.stops.load(Ordering::SeqCst) as f64,
            step_secs,
            self.time_left().map_or(f64::NEG_INFINITY, |t| -t.as_secs_f64()),
        ];
        let mut all = [0.0; 4];
        rt.world().all_reduce_into(&local[..], &mut all[..], SystemOperation::max());
        let seen = Seen { warnings: all[0] as u64, stops: all[1] as u64, step_secs: all[2], time_left: (all[3] > f64::NEG_INFINITY).then_some(-all[3]) };
        let d = self.rules.borrow_mut().decide(seen);
        if d.checkpoint && rt.is_root() {
            let left = seen.time_left.map_or("no time limit".into(), |t| format!("{t:.0} s left"));
            log::info!("step {step}: {:?}, {left}: checkpoint{}", d.reason.unwrap(), if d.stop { " and stop" } else { ", then carry on" });
        }
        d
    }
}

impl Drop for StopPolicy {
    fn drop(&mut self) {
        for id in self.handlers.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Time left in the Slurm job this process runs in, if any and if Slurm can tell.
fn slurm_time_left() -> Option<Duration> {
    let job = match Job::from_env() {
        Ok(j) => j?,
        Err(e) => {
            log::warn!("cannot read the Slurm job's environment ({e}); no time limit");
            return None;
        }
    };
    match job.time_left(&Slurm::new()) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("cannot learn job {}'s end time ({e}); no time limit", job.id);
            None
        }
    }
}

/// What the ranks saw together at one check.
#[derive(Clone, Copy, Debug)]
struct Seen {
    warnings: u64,
    stops: u64,
    step_secs: f64,
    time_left: Option<f64>,
}

/// The decision logic, apart from MPI and clocks so it can be tested alone.
#[derive(Clone, Debug)]
struct Rules {
    margin: f64,
    window: f64,
    warnings: u64,
    stops: u64,
    step_secs: f64,
}

impl Rules {
    fn new(margin: f64, window: f64) -> Rules {
        Rules { margin, window, warnings: 0, stops: 0, step_secs: 0.0 }
    }

    fn decide(&mut self, s: Seen) -> StopDecision {
        // The slowest step so far (a checkpoint step included): conservative on purpose.
        self.step_secs = self.step_secs.max(s.step_secs);
        let (new_warning, new_stop) = (s.warnings > self.warnings, s.stops > self.stops);
        (self.warnings, self.stops) = (s.warnings, s.stops);
        let within = |secs: f64| s.time_left.is_some_and(|t| t <= secs);
        let reason = if within(self.window) { StopReason::TimeLimit } else { StopReason::Preemption };
        let decision = |stop, reason| StopDecision { checkpoint: true, stop, reason: Some(reason) };
        // The next check comes a step from now and the checkpoint after it takes time too.
        if within(self.margin + 2.0 * self.step_secs) {
            return decision(true, StopReason::TimeLimit);
        }
        if new_stop {
            return decision(true, reason);
        }
        if new_warning {
            return decision(reason == StopReason::Preemption, reason);
        }
        StopDecision::CARRY_ON
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(warnings: u64, stops: u64, step_secs: f64, time_left: Option<f64>) -> Seen {
        Seen { warnings, stops, step_secs, time_left }
    }
    fn stop(reason: StopReason) -> StopDecision {
        StopDecision { checkpoint: true, stop: true, reason: Some(reason) }
    }

    #[test]
    fn nothing_happens_without_a_signal_or_a_close_deadline() {
        let mut r = Rules::new(30.0, 300.0);
        assert_eq!(r.decide(seen(0, 0, 1.0, None)), StopDecision::CARRY_ON);
        assert_eq!(r.decide(seen(0, 0, 1.0, Some(100.0))), StopDecision::CARRY_ON);
    }

    #[test]
    fn the_deadline_stops_with_room_for_two_steps_and_the_margin() {
        let mut r = Rules::new(30.0, 300.0);
        assert_eq!(r.decide(seen(0, 0, 10.0, Some(50.1))), StopDecision::CARRY_ON);
        assert_eq!(r.decide(seen(0, 0, 10.0, Some(49.9))), stop(StopReason::TimeLimit));
        // A slow step is remembered: the margin grows with it and does not shrink back.
        let mut r = Rules::new(30.0, 300.0);
        r.decide(seen(0, 0, 40.0, Some(1000.0)));
        assert_eq!(r.decide(seen(0, 0, 1.0, Some(105.0))), stop(StopReason::TimeLimit));
    }

    #[test]
    fn an_early_warning_checkpoints_then_carries_on_until_the_deadline() {
        let mut r = Rules::new(30.0, 300.0);
        let d = r.decide(seen(1, 0, 1.0, Some(170.0)));
        assert_eq!(d, StopDecision { checkpoint: true, stop: false, reason: Some(StopReason::TimeLimit) });
        // Counted once: the same signal does not checkpoint again.
        assert_eq!(r.decide(seen(1, 0, 1.0, Some(120.0))), StopDecision::CARRY_ON);
        assert_eq!(r.decide(seen(1, 0, 1.0, Some(31.0))), stop(StopReason::TimeLimit));
    }

    #[test]
    fn a_signal_far_from_the_end_is_a_preemption() {
        assert_eq!(Rules::new(30.0, 300.0).decide(seen(1, 0, 1.0, Some(3600.0))), stop(StopReason::Preemption));
        assert_eq!(Rules::new(30.0, 300.0).decide(seen(1, 0, 1.0, None)), stop(StopReason::Preemption));
        assert_eq!(Rules::new(30.0, 300.0).decide(seen(0, 1, 1.0, None)), stop(StopReason::Preemption));
    }

    #[test]
    fn term_near_the_end_is_the_time_limit_and_always_stops() {
        let mut r = Rules::new(30.0, 300.0);
        assert_eq!(r.decide(seen(0, 2, 1.0, Some(200.0))), stop(StopReason::TimeLimit));
        assert_eq!(stop(StopReason::TimeLimit).exit(), Some(Exit::Requeue));
        assert_eq!(StopDecision::CARRY_ON.exit(), None);
    }
}
