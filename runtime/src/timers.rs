//! Region timers with one report over all ranks, in the spirit of AMReX's TinyProfiler and
//! PETSc's `-log_view`: per region, calls and min/avg/max seconds over ranks.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::traits::*;

use crate::field::counts_and_offsets;

/// Accumulated wall time per named region on this rank.
#[derive(Default)]
pub struct Timers {
    regions: RefCell<BTreeMap<String, (u64, f64)>>,
}

/// Started by [`Timers::start`]; adds its elapsed time to the region when dropped.
pub struct TimerGuard<'a> {
    timers: &'a Timers,
    name: &'a str,
    start: Instant,
}

impl Drop for TimerGuard<'_> {
    fn drop(&mut self) {
        self.timers.add(self.name, self.start.elapsed().as_secs_f64());
    }
}

impl Timers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Time `f` under region `name`.
    pub fn time<R>(&self, name: &str, f: impl FnOnce() -> R) -> R {
        let _g = self.start(name);
        f()
    }

    /// Time until the guard is dropped.
    pub fn start<'a>(&'a self, name: &'a str) -> TimerGuard<'a> {
        TimerGuard { timers: self, name, start: Instant::now() }
    }

    /// Add `seconds` and one call to region `name`.
    pub fn add(&self, name: &str, seconds: f64) {
        let mut r = self.regions.borrow_mut();
        let e = r.entry(name.to_string()).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += seconds;
    }

    /// This rank's (calls, seconds) of a region.
    pub fn get(&self, name: &str) -> Option<(u64, f64)> {
        self.regions.borrow().get(name).copied()
    }

    /// Collective. Min/avg/max over ranks for every region timed on any rank (a rank that never
    /// entered a region counts 0 s for it).
    pub fn report(&self, comm: &impl Communicator) -> TimerReport {
        let local = self.regions.borrow();
        let union = union_of_names(comm, local.keys());
        if union.is_empty() {
            // Same on every rank.
            return TimerReport { ranks: comm.size() as usize, rows: vec![] };
        }
        let secs: Vec<f64> = union.iter().map(|n| local.get(n).map_or(0.0, |e| e.1)).collect();
        let calls: Vec<u64> = union.iter().map(|n| local.get(n).map_or(0, |e| e.0)).collect();
        let (mut min, mut max, mut sum) = (vec![0.0; secs.len()], vec![0.0; secs.len()], vec![0.0; secs.len()]);
        let mut max_calls = vec![0u64; calls.len()];
        comm.all_reduce_into(&secs[..], &mut min[..], SystemOperation::min());
        comm.all_reduce_into(&secs[..], &mut max[..], SystemOperation::max());
        comm.all_reduce_into(&secs[..], &mut sum[..], SystemOperation::sum());
        comm.all_reduce_into(&calls[..], &mut max_calls[..], SystemOperation::max());
        let n = comm.size() as f64;
        let rows = union
            .into_iter()
            .enumerate()
            .map(|(i, name)| TimerRow { name, calls: max_calls[i], min: min[i], avg: sum[i] / n, max: max[i] })
            .collect();
        TimerReport { ranks: comm.size() as usize, rows }
    }
}

/// Collective. The union of every rank's region names, sorted. Rank 0 broadcasts its names;
/// only names it lacks travel in an all-gather, and only when some rank has any: in the common
/// case (every rank timed the same regions) each rank handles its own names, not P times them.
fn union_of_names<'a>(comm: &impl Communicator, mine: impl Iterator<Item = &'a String> + Clone) -> Vec<String> {
    let split = |bytes: &[u8]| -> Vec<String> {
        std::str::from_utf8(bytes).unwrap_or_default().split('\n').filter(|n| !n.is_empty()).map(str::to_string).collect()
    };
    let root = comm.process_at_rank(0);
    let mut text = if comm.rank() == 0 { mine.clone().cloned().collect::<Vec<_>>().join("\n").into_bytes() } else { Vec::new() };
    let mut len = text.len() as u64;
    root.broadcast_into(&mut len);
    text.resize(len as usize, 0);
    if len > 0 {
        // Open MPI rejects a broadcast of nothing.
        root.broadcast_into(&mut text[..]);
    }
    let mut union: BTreeSet<String> = split(&text).into_iter().collect();
    let extra = mine.filter(|n| !union.contains(*n)).cloned().collect::<Vec<_>>().join("\n").into_bytes();
    let mut most = 0u64;
    comm.all_reduce_into(&(extra.len() as u64), &mut most, SystemOperation::max());
    if most > 0 {
        let mut counts = vec![0i32; comm.size() as usize];
        let n = i32::try_from(extra.len()).expect("timer names of less than 2 GiB");
        comm.all_gather_into(&n, &mut counts[..]);
        let (counts, displs) = counts_and_offsets(counts.iter().map(|&c| c as usize)).unwrap_or_else(|e| panic!("timer names: {e}"));
        let mut all = vec![0u8; counts.iter().map(|&c| c as usize).sum()];
        comm.all_gather_varcount_into(&extra[..], &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]));
        union.extend(split(&all));
    }
    union.into_iter().collect()
}

/// One region of a [`TimerReport`]; seconds are totals per rank.
#[derive(Clone, Debug)]
pub struct TimerRow {
    pub name: String,
    /// The most calls any rank made.
    pub calls: u64,
    pub min: f64,
    pub avg: f64,
    pub max: f64,
}

/// The job-wide timing table, printed by [`crate::Runtime::finalize`] on rank 0.
#[derive(Clone, Debug)]
pub struct TimerReport {
    pub ranks: usize,
    pub rows: Vec<TimerRow>,
}

impl TimerReport {
    pub fn row(&self, name: &str) -> Option<&TimerRow> {
        self.rows.iter().find(|r| r.name == name)
    }
}

impl std::fmt::Display for TimerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
        writeln!(f, "timers over {} ranks (seconds per rank)", self.ranks)?;
        writeln!(f, "{:<w$} {:>9} {:>11} {:>11} {:>11} {:>6}", "region", "calls", "min", "avg", "max", "imbal")?;
        for r in &self.rows {
            let imbalance = if r.avg > 0.0 { r.max / r.avg } else { 1.0 };
            writeln!(
                f,
                "{:<w$} {:>9} {:>11.6} {:>11.6} {:>11.6} {:>6.2}",
                r.name, r.calls, r.min, r.avg, r.max, imbalance
            )?;
        }
        Ok(())
    }
}
