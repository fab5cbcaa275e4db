//! Asynchronous checkpoints: the step loop only copies its fields ([`Snapshot`]); a thread of the
//! rank writes the node-local level and the shared file, collectively with the other ranks'
//! threads on a duplicate of the communicator, in the same format with the same checksums and
//! atomic commit. The thread works on a one-thread pool of its own, so that its checksums never
//! queue in front of the step loop's work on the rank's threads; and the snapshot's buffers are
//! kept for the next snapshot, whose copy then touches no fresh memory.
//!
//! At most one flush is in flight per process. Debian's parallel HDF5 is not thread-safe, so the
//! io crate waits for it before any HDF5 call of its own ([`wait`]): the next checkpoint, a restore,
//! a final output file, and the runtime's shut-down ([`rankwise_runtime::at_finalize`]). A failed
//! flush is returned by the next of those calls, on every rank alike (its writer agreed on it).

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;

use mpi::environment::Threading;
use mpi::topology::{CommunicatorRelation, SimpleCommunicator};
use mpi::traits::*;
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rankwise_runtime::Field;

use crate::catalogue::CheckpointDir;
use crate::checkpoint::{stream_rows, Layout};
use crate::local::Item;
use crate::checksum::Element;
use crate::error::{IoError, Result};
use crate::meta::Param;

static IN_FLIGHT: Mutex<Option<JoinHandle<Result<PathBuf>>>> = Mutex::new(None);

thread_local! {
    /// Set on the flushing thread, which must not wait for itself.
    static FLUSHING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this is the thread that writes a checkpoint in the background.
pub(crate) fn in_background() -> bool {
    FLUSHING.with(Cell::get)
}

/// Wait for this process's checkpoint in flight, if any: its path, or the error it ended with.
pub fn wait() -> Result<Option<PathBuf>> {
    if FLUSHING.with(Cell::get) {
        return Ok(None);
    }
    let handle = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner()).take();
    match handle.map(JoinHandle::join) {
        None => Ok(None),
        Some(Ok(done)) => done.map(Some),
        // The runtime's panic hook has already aborted the job; without a runtime, say so.
        Some(Err(_)) => Err(IoError::Flush("the checkpoint thread panicked".into())),
    }
}

/// At shut-down: a flush still in flight finishes while MPI runs; a failure is shown; the
/// flushing thread's communicator is freed.
fn wait_at_finalize() {
    if let Err(e) = wait() {
        log::error!("the last checkpoint failed in the background: {e}");
    }
    drop(KEPT.lock().unwrap_or_else(|p| p.into_inner()).take());
}

/// A communicator handed to the flushing thread, the only one that uses it while it runs.
struct Owned(SimpleCommunicator);
// SAFETY: MPI runs with MPI_THREAD_MULTIPLE (checked before one is made), under which an MPI
// handle may be used from any thread; this one is used by one flushing thread at a time.
unsafe impl Send for Owned {}

/// The flushing thread's duplicate of the communicator, kept from one flush to the next:
/// `MPI_Comm_dup` is collective, and in the step loop it made every checkpoint wait for the
/// slowest rank (0.1-4 ms at 4 ranks on 2 cores).
static KEPT: Mutex<Option<Owned>> = Mutex::new(None);

/// Collective where it must duplicate. A duplicate of `comm`: the kept one if it is `comm`'s.
fn duplicate(comm: &SimpleCommunicator) -> Owned {
    let kept = KEPT.lock().unwrap_or_else(|p| p.into_inner()).take();
    match kept {
        Some(k) if k.0.compare(comm) == CommunicatorRelation::Congruent => k,
        _ => Owned(comm.duplicate()),
    }
}

/// A snapshot's buffer of `shape`, zeros, its first element on a page boundary: streaming stores
/// to part of a cache line cost a whole one (from malloc's 16-byte alignment every row of a 3-D
/// block, 1.5 KiB at 192^3, began and ended mid-line: its copy took 40% longer), and a page-aligned
/// block goes to the disk past the page cache without a copy ([`crate::direct`]).
pub(crate) fn buffer<T: Element>(shape: &[usize]) -> ArrayD<T> {
    let n: usize = shape.iter().product();
    let pad = crate::direct::ALIGN / std::mem::size_of::<T>().max(1);
    let v = vec![T::default(); n + pad];
    let k = v.as_ptr().align_offset(crate::direct::ALIGN).min(pad);
    let mut a = ndarray::Array1::from_vec(v);
    a.slice_collapse(ndarray::s![k..k + n]);
    a.into_shape_with_order(IxDyn(shape)).expect("a contiguous block takes any shape of its size")
}

/// A checkpoint taken now, written when submitted to the levels its [`CheckpointDir`] has:
/// [`CheckpointDir::snapshot`].
pub struct Snapshot {
    dir: CheckpointDir,
    step: u64,
    time: f64,
    layout: Layout,
    params: Vec<(String, Param)>,
    fields: Vec<Item>,
    shared: bool,
    /// In the step loop with a node-local level: this rank's file to copy the blocks into.
    target: Option<crate::local::Target>,
}

impl Snapshot {
    pub(crate) fn new(dir: &CheckpointDir, step: u64, time: f64) -> Self {
        // Not in the background: the file a checkpoint makes obsolete is the fallback while the
        // one before it is still being written.
        let target = match (dir.is_async(), dir.local_root()) {
            (false, Some(root)) => crate::local::target(root, step),
            _ => None,
        };
        Snapshot { dir: dir.clone(), step, time, layout: Layout::default(), params: vec![], fields: vec![], shared: false, target }
    }

    /// Write this one to the shared file too, whatever `flush_every` says (the last checkpoint
    /// before a stop).
    pub fn shared(&mut self) -> &mut Self {
        self.shared = true;
        self
    }

    /// Chunking and compression of the fields in the file.
    pub fn layout(&mut self, layout: Layout) -> &mut Self {
        self.layout = layout;
        self
    }

    /// A scalar parameter (the same value on every rank).
    pub fn param(&mut self, name: &str, value: impl Into<Param>) -> &mut Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Copy this rank's `block` of field `name` (see [`CheckpointWriter::write_block`]), on the
    /// rank's threads: straight into this rank's node-local file when written in the step loop
    /// (summed on the way), else into a buffer the previous snapshot of this directory used if
    /// it fits.
    pub fn write_block<T: Element>(&mut self, name: &str, global: &[usize], start: &[usize], block: ArrayViewD<T>) -> &mut Self {
        if let Some((b, sum)) = self.target.as_mut().and_then(|t| t.copy_in(&block, global, start)) {
            self.fields.push(Item { name: name.into(), global: global.into(), start: start.into(), block: b, sum: Some(sum) });
            return self;
        }
        // Small pages, unlike a field's (rankwise_runtime::memory): a buffer not reserved is first
        // touched inside the step loop, where a huge page's first touch costs more than it saves.
        let mut copy = self.dir.spare_buffer::<T>(block.shape()).unwrap_or_else(|| buffer(block.shape()));
        stream_rows(copy.view_mut(), &block);
        self.fields.push(Item { name: name.into(), global: global.into(), start: start.into(), block: Box::new(copy), sum: None });
        self
    }

    /// Copy `field`'s interior (see [`CheckpointWriter::write_field`]).
    pub fn write_field<T: Element>(&mut self, name: &str, field: &Field<T>) -> &mut Self {
        let d = field.decomposition();
        let start: Vec<usize> = d.owned().iter().map(|r| r.start).collect();
        self.write_block(name, d.global_shape(), &start, field.interior())
    }

    /// Collective. Wait for the previous checkpoint's background flush (returning its error, if it
    /// failed); write the node-local level, if the directory has one; then the shared file when
    /// due, in the background if the directory is [asynchronous](CheckpointDir::asynchronous)
    /// (which needs MPI initialised with `MPI_THREAD_MULTIPLE`). Returns where the checkpoint is
    /// (or will be, when written in the background).
    pub fn submit(self, comm: &SimpleCommunicator) -> Result<PathBuf> {
        wait()?;
        let shared = self.dir.shared_due(self.shared);
        let path = match (shared, self.dir.local_root()) {
            (false, Some(root)) => crate::local::own_path(root, self.step, comm.rank() as usize, comm.size() as usize),
            _ => self.dir.path_for(self.step),
        };
        if !self.dir.is_async() {
            return self.write(comm, shared).map(|()| path);
        }
        let provided = mpi::environment::threading_support();
        if provided != Threading::Multiple {
            return Err(IoError::Threading(provided));
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).thread_name(|_| "rankwise-checkpoint".into()).build().map_err(|e| IoError::Flush(e.to_string()))?;
        let comm = duplicate(comm);
        rankwise_runtime::at_finalize(wait_at_finalize);
        let done = path.clone();
        let flush = move || {
            pool.install(move || {
                FLUSHING.with(|f| f.set(true));
                let written = self.write(&comm.0, shared);
                *KEPT.lock().unwrap_or_else(|p| p.into_inner()) = Some(comm);
                written
            })
            .map(|()| done)
        };
        let handle = std::thread::Builder::new().name("rankwise-flush".into()).spawn(flush).map_err(|e| IoError::Flush(e.to_string()))?;
        *IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(path)
    }

    /// Collective. The node-local level, if the directory has one, then the shared file if due;
    /// the buffers go back to the directory for the next snapshot.
    fn write(self, comm: &SimpleCommunicator, shared: bool) -> Result<()> {
        let Snapshot { dir, step, time, layout, params, fields, target, .. } = self;
        let written = (|| {
            if let Some(root) = dir.local_root() {
                crate::local::write(comm, root, step, time, &params, &fields, target)?;
            }
            if shared {
                let mut w = dir.create(comm, step, time)?;
                w.layout(layout);
                for (k, v) in &params {
                    w.param(k, v.clone())?;
                }
                for f in &fields {
                    f.block.write(&mut w, &f.name, &f.global, &f.start)?;
                }
                w.commit()?;
            }
            Ok(())
        })();
        dir.keep_buffers(fields.into_iter().map(|f| f.block).filter(|b| !b.mapped()).collect());
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_buffers_start_on_a_page_and_hold_zeros() {
        fn check<T: Element + PartialEq + std::fmt::Debug>() {
            for shape in [vec![0], vec![1], vec![3, 5], vec![96, 192, 192], vec![2, 0, 7]] {
                for _ in 0..4 {
                    let b = buffer::<T>(&shape);
                    assert_eq!(b.shape(), &shape[..]);
                    assert!(b.is_standard_layout());
                    assert!(b.is_empty() || b.as_ptr() as usize % crate::direct::ALIGN == 0, "{shape:?}");
                    assert!(b.iter().all(|x| *x == T::default()));
                }
            }
        }
        check::<f64>();
        check::<f32>();
    }
}
