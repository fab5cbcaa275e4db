//! Region timers with one report over all ranks, in the spirit of AMReX's TinyProfiler and
//! PETSc's `-log_view`: per region, calls and min/avg/max seconds over ranks.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::traits::*;

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
        // Agree on the union of region names: everyone contributes its names, joined by '\n'.
        let names = local.keys().cloned().collect::<Vec<_>>().join("\n").into_bytes();
        let counts = all_gather_counts(comm, names.len());
        let displs: Vec<i32> = counts.iter().scan(0, |acc, &c| { let d = *acc; *acc += c; Some(d) }).collect();
        let mut all = vec![0u8; counts.iter().sum::<i32>() as usize];
        if all.is_empty() {
            // Same on every rank; and MPI rejects an all-gather of nothing.
            return TimerReport { ranks: comm.size() as usize, rows: vec![] };
        }
        comm.all_gather_varcount_into(&names[..], &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]));
        let mut union = std::collections::BTreeSet::new();
        for (&c, &d) in counts.iter().zip(&displs) {
            let s = std::str::from_utf8(&all[d as usize..(d + c) as usize]).unwrap_or_default();
            union.extend(s.split('\n').filter(|n| !n.is_empty()).map(str::to_string));
        }
        let union: Vec<String> = union.into_iter().collect();
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

fn all_gather_counts(comm: &impl Communicator, mine: usize) -> Vec<i32> {
    let mut counts = vec![0i32; comm.size() as usize];
    comm.all_gather_into(&(mine as i32), &mut counts[..]);
    counts
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
