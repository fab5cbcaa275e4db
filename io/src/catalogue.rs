//! A directory of checkpoints: naming, the newest valid one, keeping the last K, and the serial
//! calls behind `rankwise ckpt list|verify|inspect` (plain processes, no MPI).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mpi::topology::SimpleCommunicator;
use ndarray::ArrayD;
use rankwise_runtime::Field;
use mpi::traits::*;

use crate::checkpoint::{agree, Checkpoint, CheckpointWriter, Mode};
use crate::checksum::{self, Element};
use crate::error::{IoError, Result};
use crate::flush::Snapshot;
use crate::local::Block;
use crate::meta::CheckpointInfo;

const PREFIX: &str = "ckpt-";
const SUFFIX: &str = ".h5";

/// Where a run keeps its checkpoints, as `ckpt-<step>.h5` (with `ckpt-<step>.xmf` beside each),
/// and, with [`CheckpointDir::local`], a node-local level beside them.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    root: PathBuf,
    keep: usize,
    asynchronous: bool,
    local: Option<PathBuf>,
    flush_every: u64,
    /// Snapshots submitted so far (clones count together).
    taken: Arc<AtomicU64>,
    /// The last written snapshot's buffers, for the next one to copy into (clones share them).
    spare: Arc<Spare>,
}

#[derive(Default)]
struct Spare(Mutex<Vec<Box<dyn Block>>>);

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spare")
    }
}

/// What [`CheckpointDir::restore`] found.
#[derive(Debug)]
pub struct Restored<T> {
    pub info: CheckpointInfo,
    /// What the restore closure returned.
    pub value: T,
    /// Newer checkpoints that were damaged and skipped, one message each.
    pub skipped: Vec<String>,
}

impl CheckpointDir {
    /// A catalogue in `root` that keeps every checkpoint.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CheckpointDir { root: root.into(), keep: 0, asynchronous: false, local: None, flush_every: 1, taken: Arc::default(), spare: Arc::default() }
    }

    /// Write the shared file of a [`Snapshot`] in the background ([`crate::flush`]).
    pub fn asynchronous(mut self, on: bool) -> Self {
        self.asynchronous = on;
        self
    }

    /// A node-local level in `dir` (each rank's blocks, and a partner's copy: [`crate::local`]):
    /// every [`Snapshot`] goes there, and only every `flush_every`-th (at least 1), and one marked
    /// [`Snapshot::shared`], to the shared file too. `dir` must be private to this run; `%h` in it
    /// stands for the host's name (for a folder that is not node-local on every node).
    pub fn local(mut self, dir: impl Into<PathBuf>, flush_every: u64) -> Self {
        let dir: PathBuf = dir.into();
        self.local = Some(match dir.to_str() {
            Some(d) if d.contains("%h") => d.replace("%h", &hostname()).into(),
            _ => dir,
        });
        self.flush_every = flush_every.max(1);
        self
    }

    pub(crate) fn is_async(&self) -> bool {
        self.asynchronous
    }

    pub(crate) fn local_root(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// A buffer of `shape` that a written snapshot left, if there is one.
    pub(crate) fn spare_buffer<T: Element>(&self, shape: &[usize]) -> Option<ArrayD<T>> {
        let mut spare = self.spare.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = spare.iter().position(|b| b.dtype() == T::DTYPE && b.shape() == shape)?;
        spare.swap_remove(i).into_any().downcast::<ArrayD<T>>().ok().map(|b| *b)
    }

    /// Collective with a node-local level. Allocate and touch now the buffer the first
    /// [`Snapshot`] of `field` will copy it into (asynchronous or node-local directories only),
    /// and the node-local files the first two will be written into, as far as the disk has room
    /// for them on every rank: those copies then cost the loop no page faults (on a VM, as long
    /// again as the copy itself).
    pub fn reserve<T: Element>(&self, field: &Field<T>) {
        if self.asynchronous || self.local.is_some() {
            let mut buffer = crate::flush::buffer::<T>(field.interior().shape());
            buffer.fill(T::default());
            self.spare.0.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(buffer));
        }
        if let Some(root) = &self.local {
            crate::local::reserve(field.decomposition().comm(), root, field.interior().len() * std::mem::size_of::<T>());
        }
    }

    /// Keep a written snapshot's buffers (in place of older ones) for the next snapshot.
    pub(crate) fn keep_buffers(&self, buffers: Vec<Box<dyn Block>>) {
        *self.spare.0.lock().unwrap_or_else(|p| p.into_inner()) = buffers;
    }

    /// Whether the `n`-th snapshot (from 1) goes to the shared file too.
    pub(crate) fn shared_due(&self, forced: bool) -> bool {
        let n = self.taken.fetch_add(1, Ordering::Relaxed) + 1;
        self.local.is_none() || forced || n % self.flush_every == 0
    }

    /// Collective. Create the directory, and the node-local one, where missing, and check that
    /// this run can write in them ([`make_dir`]). A run calls it before anything else, so that a
    /// directory that cannot be used is one line of bad input before the first step, not a
    /// failed job at the first checkpoint.
    pub fn make(&self, comm: &SimpleCommunicator) -> Result<()> {
        make_dir(comm, &self.root, "checkpoint directory", false)?;
        match &self.local {
            Some(local) => make_dir(comm, local, "node-local checkpoint directory", true),
            None => Ok(()),
        }
    }

    /// Collective. Remove this rank's node-local files (a run that completed keeps none).
    pub fn clear_local(&self, comm: &SimpleCommunicator) -> Result<()> {
        crate::flush::wait()?;
        if let Some(root) = &self.local {
            crate::local::prune(root, None);
        }
        comm.barrier();
        Ok(())
    }

    /// Keep only the newest `k` checkpoints (0: keep all); older ones go when a new one commits.
    pub fn keep(mut self, k: usize) -> Self {
        self.keep = k;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file name of the checkpoint of `step`.
    pub fn path_for(&self, step: u64) -> PathBuf {
        self.root.join(format!("{PREFIX}{step:010}{SUFFIX}"))
    }

    /// The committed checkpoints, oldest first (none if the directory does not exist).
    pub fn checkpoints(&self) -> Result<Vec<(u64, PathBuf)>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => return Err(IoError::File { path: self.root.clone(), source }),
        };
        let mut found: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let step = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()?;
                Some((step, e.path()))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// The newest committed checkpoint, valid or not.
    pub fn newest(&self) -> Result<Option<PathBuf>> {
        Ok(self.checkpoints()?.pop().map(|(_, p)| p))
    }

    /// A checkpoint of `step` at simulation `time` to be written in the background: the fields are
    /// copied as they are given, and [`Snapshot::submit`] returns at once ([`crate::flush`]).
    pub fn snapshot(&self, step: u64, time: f64) -> Snapshot {
        Snapshot::new(self, step, time)
    }

    /// Collective. Start writing the checkpoint of `step` at simulation `time`.
    pub fn create<'c>(&self, comm: &'c SimpleCommunicator, step: u64, time: f64) -> Result<CheckpointWriter<'c>> {
        CheckpointWriter::create(comm, self, step, time)
    }

    /// Collective. Restart from the newest checkpoint that `load` reads without finding damage.
    ///
    /// `load` reads what the program needs (fields with [`Checkpoint::read_field`],
    /// [`Checkpoint::read_block_into`] or [`Checkpoint::read_block`], which verify checksums) and
    /// checks parameters ([`Checkpoint::expect_param`]). It is called twice per checkpoint: first
    /// its reads go to buffers of the checkpoint's own and are verified, then, once every rank has
    /// read everything without damage, again, and the same reads hand those buffers over (no I/O;
    /// [`Checkpoint::read_field`] makes its buffer the field's storage, without a copy). So the
    /// program's memory receives a checkpoint's data only when all of it verified, and is
    /// untouched when this returns `Ok(None)` or an error. `load` must therefore make the
    /// same reads each time and change nothing else; a value it computes from owned reads
    /// ([`Checkpoint::read_block`]) is best returned, which arrives as [`Restored::value`].
    /// The buffers hold one copy of what is read, for the time of one checkpoint's reads.
    ///
    /// A damaged file (truncated, unreadable, damaged metadata, a checksum mismatch) is reported,
    /// alike on every rank, and the previous checkpoint is tried. Any other error (a missing field,
    /// a wrong shape, another run's parameters, a file from a newer Rankwise) is returned: the
    /// program and the file disagree. `None`: no usable checkpoint.
    pub fn restore<'c, T>(
        &self,
        comm: &'c SimpleCommunicator,
        mut load: impl FnMut(&Checkpoint<'c>) -> Result<T>,
    ) -> Result<Option<Restored<T>>> {
        crate::flush::wait()?;
        // Rank 0's listing for everyone: the ranks must try the same files in the same order.
        let listed = if comm.rank() == 0 { self.checkpoints().map(|c| c.into_iter().map(|(s, _)| s).collect()) } else { Ok(vec![]) };
        let mut steps: Vec<u64> = agree(comm, "listing checkpoints", listed)?;
        let mut n = steps.len() as u64;
        comm.process_at_rank(0).broadcast_into(&mut n);
        steps.resize(n as usize, 0);
        comm.process_at_rank(0).broadcast_into(&mut steps[..]);

        // The node-local level: the steps any rank holds, newest first, tried before the shared
        // file of the same step.
        let local_steps = match &self.local {
            Some(root) => all_steps(comm, crate::local::steps(root)),
            None => vec![],
        };
        let mut candidates: Vec<(u64, bool)> = steps.iter().map(|&s| (s, false)).chain(local_steps.iter().map(|&s| (s, true))).collect();
        candidates.sort_by(|a, b| b.cmp(a));

        let mut skipped = Vec::new();
        for (step, local) in candidates {
            let outcome = match (local, self.local.as_deref()) {
                (true, Some(root)) => match crate::local::fetch(comm, root, step) {
                    Ok(Some((path, bytes))) => {
                        let parsed = crate::local::RankFile::parse(path, bytes, comm.rank() as usize, comm.size() as usize);
                        agree(comm, "checking the node-local checkpoint", parsed).and_then(|f| load_all(comm, &Checkpoint::local(comm, f), &mut load))
                    }
                    Ok(None) => continue,
                    Err(e) => Err(e),
                },
                _ => Checkpoint::open(comm, &self.path_for(step)).and_then(|ck| load_all(comm, &ck, &mut load)),
            };
            match outcome {
                Ok((info, value)) => return Ok(Some(Restored { info, value, skipped })),
                Err(e) if e.is_corrupt() => {
                    if comm.rank() == 0 {
                        log::warn!("{e}; trying the previous checkpoint");
                    }
                    skipped.push(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The metadata of every committed checkpoint, oldest first, each read in this process alone
    /// (for `rankwise ckpt list`); a damaged one comes with its error.
    pub fn list(&self) -> Result<Vec<(PathBuf, Result<CheckpointInfo>)>> {
        Ok(self.checkpoints()?.into_iter().map(|(_, p)| (p.clone(), inspect(&p))).collect())
    }

    /// The newest checkpoint whose data match their checksums, read in this process alone; the
    /// damaged newer ones come back as errors beside it.
    pub fn newest_valid(&self) -> Result<(Option<CheckpointInfo>, Vec<IoError>)> {
        let mut bad = Vec::new();
        for (_, p) in self.checkpoints()?.into_iter().rev() {
            match verify(&p) {
                Ok(info) => return Ok((Some(info), bad)),
                Err(e) if e.is_corrupt() => bad.push(e),
                Err(e) => return Err(e),
            }
        }
        Ok((None, bad))
    }

    /// Make the directory and clear what crashed writers left behind.
    pub(crate) fn prepare(&self) -> Result<()> {
        let io = |source| IoError::File { path: self.root.clone(), source };
        std::fs::create_dir_all(&self.root).map_err(io)?;
        for e in std::fs::read_dir(&self.root).map_err(io)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(PREFIX) && name.ends_with(".partial") {
                std::fs::remove_file(e.path()).map_err(io)?;
            }
        }
        Ok(())
    }

    /// Delete all but the newest `keep` checkpoints.
    pub(crate) fn prune(&self) -> Result<()> {
        let all = self.checkpoints()?;
        if self.keep == 0 || all.len() <= self.keep {
            return Ok(());
        }
        for (_, p) in &all[..all.len() - self.keep] {
            std::fs::remove_file(p).map_err(|source| IoError::File { path: p.clone(), source })?;
            let _ = std::fs::remove_file(p.with_extension("xmf"));
        }
        Ok(())
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok { String::from_utf8_lossy(&buf[..end]).into_owned() } else { "unknown-host".into() }
}

/// Collective. Run `load` twice on `ck`: staged and verified, then delivered (see
/// [`CheckpointDir::restore`]).
fn load_all<'c, T>(comm: &SimpleCommunicator, ck: &Checkpoint<'c>, load: &mut impl FnMut(&Checkpoint<'c>) -> Result<T>) -> Result<(CheckpointInfo, T)> {
    ck.set_mode(Mode::Stage);
    let staged = load(ck).map(drop);
    agree(comm, "reading the checkpoint", staged)?;
    ck.set_mode(Mode::Deliver);
    let value = load(ck)?;
    ck.delivered()?;
    Ok((ck.info().clone(), value))
}

/// Collective. The union of the ranks' `mine` (the newest 16 of each), sorted.
fn all_steps(comm: &SimpleCommunicator, mine: Vec<u64>) -> Vec<u64> {
    const N: usize = 16;
    let mut row = [u64::MAX; N];
    for (slot, s) in row.iter_mut().zip(mine.iter().rev()) {
        *slot = *s;
    }
    let mut all = vec![0u64; N * comm.size() as usize];
    comm.all_gather_into(&row[..], &mut all[..]);
    all.retain(|&s| s != u64::MAX);
    all.sort_unstable();
    all.dedup();
    all
}

/// A checkpoint's metadata, read in this process alone (for `rankwise ckpt inspect`).
pub fn inspect(path: &Path) -> Result<CheckpointInfo> {
    Checkpoint::open_serial(path).map(|c| c.info().clone())
}

/// Read every field of a checkpoint in this process alone and check it against its checksum (for
/// `rankwise ckpt verify`). Any damage is an [`IoError::Corrupt`].
pub fn verify(path: &Path) -> Result<CheckpointInfo> {
    let ck = Checkpoint::open_serial(path)?;
    for f in &ck.info().fields {
        let sum = match f.dtype.as_str() {
            "f32" => field_sum::<f32>(&ck, &f.name, &f.shape)?,
            _ => field_sum::<f64>(&ck, &f.name, &f.shape)?,
        };
        if sum != f.checksum {
            return Err(IoError::Corrupt {
                path: path.into(),
                reason: format!("field `{}` has checksum {sum:016x}, the file says {:016x}", f.name, f.checksum),
            });
        }
    }
    Ok(ck.info().clone())
}

/// The checksum of a whole field, read in slabs of whole rows along the first axis (C order).
fn field_sum<T: Element>(ck: &Checkpoint<'_>, name: &str, shape: &[usize]) -> Result<u64> {
    let row: usize = shape[1..].iter().product();
    let rows_per_slab = ((64 << 20) / (row * std::mem::size_of::<T>()).max(1)).max(1);
    let mut sum = 0u64;
    let mut r0 = 0;
    while r0 < shape[0] {
        let r1 = (r0 + rows_per_slab).min(shape[0]);
        let mut start = vec![0; shape.len()];
        start[0] = r0;
        let mut count = shape.to_vec();
        count[0] = r1 - r0;
        let slab = ck.read_slab::<T>(name, &start, &count)?;
        sum = sum.wrapping_add(checksum::block_sum(shape, &start, &slab.view()));
        r0 = r1;
    }
    Ok(sum)
}

/// Collective. Create the directory `dir` (the program's `what`) where it is missing and check
/// that a file can be written in it, by rank 0 alone (a shared directory) or by every rank
/// (`every_rank`: one on each node's own disk). Every rank returns the same verdict:
/// [`IoError::Directory`], the user's input, naming the first rank's reason.
pub fn make_dir(comm: &SimpleCommunicator, dir: &Path, what: &str, every_rank: bool) -> Result<()> {
    let mine = (every_rank || comm.rank() == 0).then(|| writable(dir, what).err()).flatten();
    match crate::checkpoint::lowest_message(comm, mine) {
        Some(msg) => Err(IoError::Directory(rankwise_runtime::BadInput(msg))),
        None => Ok(()),
    }
}

/// Why this process cannot create `dir` (the program's `what`) or write a file in it, if it cannot.
fn writable(dir: &Path, what: &str) -> std::result::Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make the {what} {}: {e}", dir.display()))?;
    let probe = dir.join(format!(".rankwise-probe-{}-{}", hostname(), std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).map_err(|e| format!("cannot write in the {what} {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
