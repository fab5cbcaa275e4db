//! The node-local level: each rank keeps its own blocks of a checkpoint in a file on node-local
//! storage, and a copy of its partner's (a rank on another node, as SCR's Partner scheme), so that
//! one lost node is survived without the shared filesystem.
//!
//! `LOCAL/ckpt-<step>.rank-<r>-of-<n>.bin` holds rank r's blocks (of n ranks);
//! `LOCAL/ckpt-<step>.copy-<r>-of-<n>.bin` the same bytes on r's partner. A file is the blocks,
//! each on a page boundary, then a trailer: a header (step, time, ranks, this rank, parameters, and
//! per field its name, type, global shape, this rank's block, the field's checksum and the block's,
//! and where the block is), the header's digest, its length and a magic. Any damage is
//! [`IoError::Corrupt`]. (Files of version 1, still read, had the header first.) Only the same rank
//! count with the same blocks can restore from this level; otherwise the shared file serves.
//!
//! The files are written through mappings that stay from one checkpoint to the next: each
//! checkpoint is written over the files of the one it makes obsolete, so a RAM disk's pages are
//! used again and take no page fault; a snapshot taken in the step loop copies its blocks
//! straight into this rank's file ([`Target`]), and the partner's copy is received straight into
//! its file.

use std::marker::PhantomData;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};

use crate::checkpoint::{agree, partial_name, stream_rows_sum};
use crate::checksum::{self, Digest, Element};
use crate::error::{IoError, Result};
use crate::meta::{self, CheckpointInfo, FieldInfo, Param};

/// The trailer's magic (version 2); version 1 began with its own.
const MAGIC: &[u8; 8] = b"RWLOCAL2";
const MAGIC_V1: &[u8; 8] = b"RWLOCAL1";
const PAGE: usize = 4096;

/// One field's block, in memory, as a snapshot holds it.
pub(crate) trait Block: Send {
    fn dtype(&self) -> &'static str;
    fn shape(&self) -> &[usize];
    /// The elements in C order, as bytes.
    fn bytes(&self) -> &[u8];
    /// Copy the elements to `dst` (room for [`Block::bytes`], page-aligned) and return their sum.
    ///
    /// # Safety
    /// `dst` is valid for writes of `self.bytes().len()` bytes that nothing else touches.
    unsafe fn copy_sum(&self, dst: *mut u8, global: &[usize], start: &[usize]) -> u64;
    fn write(&self, w: &mut crate::CheckpointWriter, name: &str, global: &[usize], start: &[usize]) -> Result<()>;
    /// Whether it lives in a node-local file (and is no buffer to keep for the next snapshot).
    fn mapped(&self) -> bool;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

/// A block's elements, wherever they live: a buffer of the snapshot's, or a node-local file.
trait Elements: Send + 'static {
    type T: Element;
    fn elements(&self) -> ArrayViewD<'_, Self::T>;
    fn dims(&self) -> &[usize];
    fn in_file(&self) -> bool;
}

impl<B: Elements> Block for B {
    fn dtype(&self) -> &'static str {
        B::T::DTYPE
    }
    fn shape(&self) -> &[usize] {
        self.dims()
    }
    fn bytes(&self) -> &[u8] {
        let s = self.elements().to_slice().expect("snapshots are in standard layout");
        // SAFETY: f64 and f32 (the only Elements) are plain bytes.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), std::mem::size_of_val(s)) }
    }
    unsafe fn copy_sum(&self, dst: *mut u8, global: &[usize], start: &[usize]) -> u64 {
        copy_sum_view(&self.elements(), dst, global, start)
    }
    fn write(&self, w: &mut crate::CheckpointWriter, name: &str, global: &[usize], start: &[usize]) -> Result<()> {
        w.write_block(name, global, start, self.elements()).map(drop)
    }
    fn mapped(&self) -> bool {
        self.in_file()
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// # Safety
/// As [`Block::copy_sum`], for a block of `shape`.
unsafe fn copy_sum_view<T: Element>(src: &ArrayViewD<T>, dst: *mut u8, global: &[usize], start: &[usize]) -> u64 {
    let dst = ArrayViewMutD::from_shape_ptr(IxDyn(src.shape()), dst.cast::<T>());
    stream_rows_sum(dst, src, global, start)
}

impl<T: Element> Elements for ndarray::ArrayD<T> {
    type T = T;
    fn elements(&self) -> ArrayViewD<'_, T> {
        self.view()
    }
    fn dims(&self) -> &[usize] {
        ndarray::ArrayBase::shape(self)
    }
    fn in_file(&self) -> bool {
        false
    }
}

/// A snapshot's block that was copied straight into this rank's node-local file ([`Target`]).
struct MappedBlock<T> {
    map: Arc<Mapping>,
    offset: usize,
    shape: Vec<usize>,
    _t: PhantomData<T>,
}

impl<T: Element> Elements for MappedBlock<T> {
    type T = T;
    fn elements(&self) -> ArrayViewD<'_, T> {
        // SAFETY: the block was copied to `offset` (page-aligned) of the mapping, which `map`
        // keeps alive and which has room for it (Target::copy_in).
        unsafe { ArrayViewD::from_shape_ptr(IxDyn(&self.shape), self.map.ptr.add(self.offset).cast::<T>()) }
    }
    fn dims(&self) -> &[usize] {
        &self.shape
    }
    fn in_file(&self) -> bool {
        true
    }
}

/// A field of a snapshot: this rank's block at `start` of `global`, and its sum if known.
pub(crate) struct Item {
    pub name: String,
    pub global: Vec<usize>,
    pub start: Vec<usize>,
    pub block: Box<dyn Block>,
    pub sum: Option<u64>,
}

/// A shared mapping of a node-local file.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: plain memory. Who writes it, when, is this module's rule: the one checkpoint being
// written, on one thread; readers (a snapshot's blocks, the partner's receive) come after.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(file: &std::fs::File, len: usize) -> std::io::Result<Mapping> {
        let len = len.max(1);
        // SAFETY: a fresh shared mapping of an open file; MAP_POPULATE faults it in at once,
        // several times faster than page by page.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_POPULATE, file.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped in `new`, and no block points into it any more (they hold the Arc).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A node-local file of this process and its mapping, kept from one checkpoint to the next
/// ([`KEPT`]): the next checkpoint but one is written over it through the same mapping (on a
/// RAM disk, mapping a file anew cost more than writing it).
struct Mapped {
    path: PathBuf,
    file: std::fs::File,
    /// Device and inode, to tell that `path` is still this file.
    id: (u64, u64),
    map: Arc<Mapping>,
    len: usize,
    /// Where its blocks are (offset, length), as last written.
    blocks: Vec<(usize, usize)>,
}

static KEPT: Mutex<Vec<Mapped>> = Mutex::new(Vec::new());

fn kept() -> std::sync::MutexGuard<'static, Vec<Mapped>> {
    KEPT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unmap the kept files that are gone (pruned, removed by hand): their pages go back now.
fn forget_gone() {
    kept().retain(Mapped::still_there);
}

impl Mapped {
    /// `file` (at `path`), made `len` bytes long and mapped.
    fn new(path: PathBuf, file: std::fs::File, len: usize) -> std::io::Result<Mapped> {
        let meta = file.metadata()?;
        allocate(&file, len)?;
        let map = Arc::new(Mapping::new(&file, len)?);
        Ok(Mapped { path, file, id: (meta.dev(), meta.ino()), map, len, blocks: vec![] })
    }

    fn still_there(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    /// Make the file `len` bytes long, its space reserved (`posix_fallocate`: a full disk is an
    /// error here, never a SIGBUS in a copy), and mapped as far.
    fn resize(&mut self, len: usize) -> std::io::Result<()> {
        if len == self.len {
            return Ok(());
        }
        allocate(&self.file, len)?;
        if len > self.map.len {
            self.map = Arc::new(Mapping::new(&self.file, len)?);
        }
        self.len = len;
        Ok(())
    }

    /// Where `bytes` lie in this file, if they lie in its mapping.
    fn offset_of(&self, bytes: &[u8]) -> Option<usize> {
        let at = (bytes.as_ptr() as usize).checked_sub(self.map.ptr as usize)?;
        (at + bytes.len() <= self.len).then_some(at)
    }

    /// # Safety
    /// Nothing else reads or writes `range` meanwhile.
    unsafe fn slice_mut(&self, range: std::ops::Range<usize>) -> &mut [u8] {
        assert!(range.end <= self.len);
        std::slice::from_raw_parts_mut(self.map.ptr.add(range.start), range.len())
    }
}

/// Make `file` `len` bytes long with its space reserved (`posix_fallocate`): a full disk is an
/// error here, never a SIGBUS in a copy into its mapping.
fn allocate(file: &std::fs::File, len: usize) -> std::io::Result<()> {
    file.set_len(len as u64)?;
    // SAFETY: a plain call on an open file.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len.max(1) as libc::off_t) } {
        0 => Ok(()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// A file made before the step loop for one of the first checkpoints to be written over (its
/// name is no checkpoint's): the two before any is obsolete, each this rank's own and a copy.
fn reserved_path(root: &Path, own: bool, k: usize, rank: usize, ranks: usize) -> PathBuf {
    root.join(format!("reserved-{k}.{}-{rank}-of-{ranks}.bin", if own { "rank" } else { "copy" }))
}

/// The bytes this process reserved so far in each directory, field by field.
static RESERVED: Mutex<Vec<(PathBuf, usize)>> = Mutex::new(Vec::new());

/// Collective. Make this rank's reserved files `bytes` larger (a field's block, and a page for
/// the trailer with the first), their pages allocated now, not at the first checkpoints in the
/// step loop (where, on a VM, the first touch of fresh memory cost several times the copy). The
/// first checkpoint's files on every rank, then the second's: a disk with room for the first
/// only keeps those (the second checkpoint fails there as it would have), one without room for
/// them keeps none.
pub(crate) fn reserve(comm: &SimpleCommunicator, root: &Path, bytes: usize) {
    let (rank, ranks) = (comm.rank() as usize, comm.size() as usize);
    reserve_with(root, rank, ranks, bytes, |made| {
        let (mine, mut everyone) = (made as u8, 0u8);
        comm.all_reduce_into(&mine, &mut everyone, mpi::collective::SystemOperation::min());
        everyone == 1
    })
}

/// [`reserve`], with `everyone` telling whether every rank made its files.
fn reserve_with(root: &Path, rank: usize, ranks: usize, bytes: usize, everyone: impl Fn(bool) -> bool) {
    let mut all = RESERVED.lock().unwrap_or_else(|p| p.into_inner());
    let i = all.iter().position(|(r, _)| r == root).unwrap_or_else(|| {
        all.push((root.into(), PAGE));
        all.len() - 1
    });
    let total = &mut all[i].1;
    *total += bytes.next_multiple_of(PAGE);
    let slot = |k: usize| [reserved_path(root, true, k, rank, ranks), reserved_path(root, false, k, rank, ranks)];
    for k in 0..2 {
        let made = slot(k).iter().try_for_each(|p| allocate(&std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(p)?, *total));
        if !everyone(made.is_ok()) {
            (k..2).flat_map(slot).for_each(|p| drop(std::fs::remove_file(p)));
            return;
        }
    }
}

/// A reserved file of this rank's, its own or for a copy, if one is left.
fn reserved(root: &Path, own: bool, rank: usize, ranks: usize) -> Option<PathBuf> {
    (0..2).map(|k| reserved_path(root, own, k, rank, ranks)).find(|p| p.exists())
}

/// The file `path` of `len` bytes, mapped, named `path.partial` until [`commit`]: the file
/// `reuse` written over (through its kept mapping if there is one) when given, else a new one.
fn open(path: &Path, reuse: Option<&Path>, len: usize) -> std::io::Result<Mapped> {
    let partial = partial_name(path);
    let held = reuse.and_then(|r| {
        let mut k = kept();
        let i = k.iter().position(|m| m.path == r && m.still_there())?;
        Some(k.swap_remove(i))
    });
    if let Some(old) = reuse {
        std::fs::rename(old, &partial)?;
    }
    match held {
        Some(mut m) => {
            m.path = partial;
            m.resize(len)?;
            Ok(m)
        }
        None => {
            let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&partial)?;
            Mapped::new(partial, file, len)
        }
    }
}

/// Give `m` its name `path` (its `.partial` name until now) and keep it for a later checkpoint.
fn commit(mut m: Mapped, path: &Path) -> std::io::Result<()> {
    std::fs::rename(&m.path, path)?;
    m.path = path.into();
    kept().push(m);
    Ok(())
}

/// For a checkpoint taken in the step loop: this rank's own file of the checkpoint it makes
/// obsolete, still mapped and renamed to the new one's `.partial`, so that the snapshot copies its
/// blocks straight into it ([`Target::copy_in`]) where the file had the same blocks last time.
pub(crate) struct Target {
    file: Option<Mapped>,
    /// The file's name once written.
    path: PathBuf,
    next: usize,
}

/// The [`Target`] for a checkpoint of `step` in `root`, if this process holds a file it makes
/// obsolete.
pub(crate) fn target(root: &Path, step: u64) -> Option<Target> {
    let older = obsolete(root, step);
    let mut m = {
        let mut k = kept();
        let i = k.iter().position(|m| older.iter().any(|f| f.own && f.path == m.path) && m.still_there())?;
        k.swap_remove(i)
    };
    let (_, rank, ranks, _) = parse_name(&m.path.file_name()?.to_string_lossy())?;
    let path = own_path(root, step, rank, ranks);
    let partial = partial_name(&path);
    std::fs::rename(&m.path, &partial).ok()?;
    m.path = partial;
    Some(Target { file: Some(m), path, next: 0 })
}

impl Target {
    /// Copy the snapshot's next block into the file, with its sum, where the file held a block
    /// of the same size last time; `None` when it has no such room (the block is then copied
    /// into a buffer, and into the file when written).
    pub(crate) fn copy_in<T: Element>(&mut self, block: &ArrayViewD<T>, global: &[usize], start: &[usize]) -> Option<(Box<dyn Block>, u64)> {
        let m = self.file.as_ref()?;
        let i = self.next;
        self.next += 1;
        let (offset, len) = *m.blocks.get(i)?;
        if len != block.len() * std::mem::size_of::<T>() || offset + len > m.len {
            return None;
        }
        // SAFETY: the range lies in the mapping (checked), page-aligned, and is this block's alone.
        let sum = unsafe { copy_sum_view(block, m.map.ptr.add(offset), global, start) };
        let b = MappedBlock::<T> { map: m.map.clone(), offset, shape: block.shape().to_vec(), _t: PhantomData };
        Some((Box::new(b), sum))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Never written (a snapshot dropped, a file for other ranks): not left as a `.partial`.
        if let Some(m) = &self.file {
            let _ = std::fs::remove_file(&m.path);
        }
    }
}

pub(crate) fn own_path(root: &Path, step: u64, rank: usize, ranks: usize) -> PathBuf {
    root.join(format!("ckpt-{step:010}.rank-{rank}-of-{ranks}.bin"))
}

fn copy_path(root: &Path, step: u64, rank: usize, ranks: usize) -> PathBuf {
    root.join(format!("ckpt-{step:010}.copy-{rank}-of-{ranks}.bin"))
}

/// One file of the node-local level, as its name says.
struct Entry {
    step: u64,
    rank: usize,
    ranks: usize,
    own: bool,
    path: PathBuf,
}

/// (step, rank whose blocks, of how many, own file?) of a local file name.
fn parse_name(name: &str) -> Option<(u64, usize, usize, bool)> {
    let rest = name.strip_prefix("ckpt-")?.strip_suffix(".bin")?;
    let (step, who) = rest.split_once('.')?;
    let (kind, who) = who.split_once('-')?;
    let (rank, ranks) = who.split_once("-of-")?;
    let own = match kind {
        "rank" => true,
        "copy" => false,
        _ => return None,
    };
    Some((step.parse().ok()?, rank.parse().ok()?, ranks.parse().ok()?, own))
}

fn listing(root: &Path) -> Vec<Entry> {
    let Ok(entries) = std::fs::read_dir(root) else { return vec![] };
    entries
        .flatten()
        .filter_map(|e| {
            let (step, rank, ranks, own) = parse_name(&e.file_name().to_string_lossy())?;
            Some(Entry { step, rank, ranks, own, path: e.path() })
        })
        .collect()
}

/// One file of the node-local level as `rankwise ckpt list --local` shows it.
pub struct LocalFile {
    pub step: u64,
    pub rank: usize,
    pub ranks: usize,
    /// The rank's own file, or its partner's copy.
    pub own: bool,
    pub path: PathBuf,
    /// Whether its header and every block verify.
    pub valid: Result<()>,
}

/// The node-local files in `root` that this process sees, oldest step first, each checked.
pub fn list(root: &Path) -> Vec<LocalFile> {
    let mut files: Vec<LocalFile> = listing(root)
        .into_iter()
        .map(|e| {
            let valid = std::fs::read(&e.path)
                .map_err(|source| IoError::File { path: e.path.clone(), source })
                .and_then(|b| RankFile::parse(e.path.clone(), b, e.rank, e.ranks))
                .and_then(|f| f.check());
            LocalFile { step: e.step, rank: e.rank, ranks: e.ranks, own: e.own, path: e.path, valid }
        })
        .collect();
    files.sort_by_key(|f| (f.step, f.rank, !f.own));
    files
}

/// The steps of which this process holds some rank's blocks in `root`, oldest first.
pub fn steps(root: &Path) -> Vec<u64> {
    let mut s: Vec<u64> = listing(root).into_iter().map(|f| f.step).collect();
    s.sort_unstable();
    s.dedup();
    s
}

/// The rank whose partner this rank is, and this rank's partner: the rank as many places on as a
/// node has ranks (so on another node when ranks fill nodes in order), or the next one on one node.
fn partners(comm: &SimpleCommunicator) -> (usize, usize) {
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    let node = comm.split_shared(rank as i32).size() as u64;
    let mut per_node = 0u64;
    comm.all_reduce_into(&node, &mut per_node, mpi::collective::SystemOperation::min());
    let shift = match per_node as usize % size {
        0 => 1 % size,
        s => s,
    };
    ((rank + size - shift) % size, (rank + shift) % size)
}

/// Collective. Write this rank's blocks, and its partner's copy, for the checkpoint of `step`:
/// into `target` where the snapshot copied them there.
pub(crate) fn write(comm: &SimpleCommunicator, root: &Path, step: u64, time: f64, params: &[(String, Param)], items: &[Item], target: Option<Target>) -> Result<()> {
    // Its own communicator, so that no message of the program's can meet these.
    let comm = &comm.duplicate();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    forget_gone();
    let prepared = std::fs::create_dir_all(root).map_err(|source| IoError::File { path: root.into(), source });
    let (from, to) = partners(comm);
    // This rank's files of the step this one makes obsolete are written over, not deleted:
    // their pages (a RAM disk's memory) are used again instead of being allocated afresh.
    let older = obsolete(root, step);
    let spare = |own: bool, whose: usize| {
        let obsolete = older.iter().find(|f| (f.own, f.rank, f.ranks) == (own, whose, size)).map(|f| f.path.clone());
        obsolete.or_else(|| reserved(root, own, rank, size))
    };
    let (own, copy) = (own_path(root, step, rank, size), copy_path(root, step, from, size));
    let written = (|| {
        // The header's length does not depend on the values in it.
        let trailer = encode(step, time, size, rank, params, items, &vec![(0, 0, 0); items.len()]).len() + 24;
        let placed = prepared.and_then(|()| place(&own, spare(true, rank), target, items, trailer));
        let (mine, sums) = agree(comm, "writing the node-local checkpoint", placed)?;
        let mut totals = vec![0u64; sums.len()];
        comm.all_reduce_into(&sums[..], &mut totals[..], mpi::collective::SystemOperation::sum());
        let table: Vec<(u64, u64, u64)> = totals.iter().zip(&sums).zip(&mine.blocks).map(|((&t, &s), &(o, _))| (t, s, o as u64)).collect();
        let end = mine.len - trailer;
        // SAFETY: the trailer's room, past the blocks, written by this thread alone.
        unsafe { mine.slice_mut(end..mine.len) }.copy_from_slice(&frame(&encode(step, time, size, rank, params, items, &table)));
        // Sent from its mapping, which this Arc keeps whatever becomes of the file.
        let (map, len) = (mine.map.clone(), mine.len);
        let done = commit(mine, &own).map_err(|source| file_error(&own, source));
        agree(comm, "writing the node-local checkpoint", done)?;
        // SAFETY: the file's bytes, written above, only read from here on.
        let bytes = unsafe { std::slice::from_raw_parts(map.ptr, len) };
        let copied = exchange(comm, bytes, to, from, &copy, spare(false, from));
        agree(comm, "writing the partner copy", copied)
    })();
    if written.is_err() {
        // A step some rank could not write is no checkpoint: its files go (a full disk is not
        // left full); the step before it stays.
        for p in [&own, &copy] {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(partial_name(p));
        }
        forget_gone();
        return written;
    }
    // Every rank has this step now: older ones than the one before it go (two at most, each
    // with its copies, however many come between shared flushes: node-local disks are small).
    for f in obsolete(root, step) {
        let _ = std::fs::remove_file(f.path);
    }
    forget_gone();
    Ok(())
}

fn file_error(path: &Path, source: std::io::Error) -> IoError {
    crate::checkpoint::short_of_space(IoError::File { path: path.into(), source }, path)
}

/// This rank's file for `items`, with room for a trailer of `trailer` bytes at its end, and each
/// block's sum: the blocks the snapshot copied into `target` stay where they are, the others are
/// copied in now, each on a page boundary after them; the file is `target`'s, else `reuse`
/// written over, else a new one.
fn place(path: &Path, reuse: Option<PathBuf>, target: Option<Target>, items: &[Item], trailer: usize) -> Result<(Mapped, Vec<u64>)> {
    let held = target.filter(|t| t.path == path).and_then(|mut t| t.file.take());
    // Where the snapshot copied (and summed) each block, if it did.
    let at: Vec<Option<usize>> = items.iter().map(|i| i.sum.and(held.as_ref()?.offset_of(i.block.bytes()))).collect();
    let mut end = items.iter().zip(&at).filter_map(|(i, a)| a.map(|a| a + i.block.bytes().len())).max().unwrap_or(0);
    let blocks: Vec<(usize, usize)> = items
        .iter()
        .zip(&at)
        .map(|(i, a)| {
            let len = i.block.bytes().len();
            let offset = a.unwrap_or_else(|| {
                let o = end.next_multiple_of(PAGE);
                end = o + len;
                o
            });
            (offset, len)
        })
        .collect();
    let len = end + trailer;
    let partial = partial_name(path);
    let opened = match held {
        Some(mut m) => m.resize(len).map(|()| m),
        None => open(path, reuse.as_deref(), len),
    };
    let mut m = opened.map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        file_error(path, source)
    })?;
    // What lies between the blocks is zeros, whatever the file held before.
    let mut order: Vec<(usize, usize)> = blocks.clone();
    order.sort_unstable();
    let mut from = 0;
    for &(o, l) in order.iter().chain([(end, 0)].iter()) {
        // SAFETY: a gap between blocks, in the file, touched by nothing else.
        unsafe { m.slice_mut(from..o.max(from)) }.fill(0);
        from = from.max(o + l);
    }
    let sums = items
        .iter()
        .zip(&at)
        .zip(&blocks)
        .map(|((i, a), &(o, l))| match (a, i.sum) {
            (Some(_), Some(sum)) => sum,
            // SAFETY: the block's own range of the file (placed above, apart from every block
            // already in it), page-aligned.
            _ => unsafe { i.block.copy_sum(m.slice_mut(o..o + l).as_mut_ptr(), &i.global, &i.start) },
        })
        .collect();
    m.blocks = blocks;
    Ok((m, sums))
}

/// The local files older than the newest step before `step`: the ones a write of `step` leaves
/// behind.
fn obsolete(root: &Path, step: u64) -> Vec<Entry> {
    let files = listing(root);
    let previous = files.iter().map(|f| f.step).filter(|&s| s < step).max();
    files.into_iter().filter(|f| previous.is_some_and(|p| f.step < p)).collect()
}

/// Messages of at most this many bytes (an MPI count is an int).
const CHUNK: usize = 2 << 20;

/// Send `mine` to `to` while receiving `from`'s file straight into the mapped file `path` (over
/// `reuse`), in messages of at most [`CHUNK`] bytes. A rank that cannot open its file still
/// receives everything, so that `from` is never left waiting.
fn exchange(comm: &SimpleCommunicator, mine: &[u8], to: usize, from: usize, path: &Path, reuse: Option<PathBuf>) -> Result<()> {
    let (to, from) = (comm.process_at_rank(to as i32), comm.process_at_rank(from as i32));
    let head = [mine.len() as u64];
    mpi::request::scope(|s| {
        let head = to.immediate_send(s, &head[..]);
        let sends: Vec<_> = mine.chunks(CHUNK).map(|m| to.immediate_send(s, m)).collect();
        let len = from.receive::<u64>().0 as usize;
        let opened = open(path, reuse.as_deref(), len);
        let mut scratch = vec![];
        for a in (0..len).step_by(CHUNK) {
            let b = (a + CHUNK).min(len);
            match &opened {
                // SAFETY: this piece of the file, written by this receive alone.
                Ok(m) => from.receive_into(unsafe { m.slice_mut(a..b) }),
                Err(_) => {
                    scratch.resize(CHUNK.min(len), 0u8);
                    from.receive_into(&mut scratch[..b - a])
                }
            };
        }
        head.wait();
        sends.into_iter().for_each(|r| {
            r.wait();
        });
        opened.and_then(|m| commit(m, path)).map_err(|source| {
            let _ = std::fs::remove_file(partial_name(path));
            file_error(path, source)
        })
    })
}

/// Collective. Every rank's blocks of the checkpoint of `step` back with the rank they belong
/// to, from its own file or from its partner's copy; `None` when some rank's blocks are nowhere
/// (another rank count, a lost node and its partner). Damage is found later, by [`RankFile::parse`].
pub(crate) fn fetch(comm: &SimpleCommunicator, root: &Path, step: u64) -> Result<Option<(PathBuf, Vec<u8>)>> {
    let comm = &comm.duplicate();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    // What each rank holds of this step: bit 0 its own file, bit 1 a copy of its source's.
    let (from, to) = partners(comm);
    let files = listing(root);
    let has = |r: usize, own: bool| files.iter().any(|f| (f.step, f.rank, f.ranks, f.own) == (step, r, size, own));
    let mine = (has(rank, true) as u8) | ((has(from, false) as u8) << 1);
    let mut all = vec![0u8; size];
    comm.all_gather_into(&mine, &mut all[..]);
    // Rank r's blocks: its own file, else the copy on its partner r + shift.
    let holder = |r: usize| -> Option<usize> {
        let partner = (r + (to + size - rank) % size) % size;
        if all[r] & 1 != 0 {
            Some(r)
        } else if all[partner] & 2 != 0 {
            Some(partner)
        } else {
            None
        }
    };
    if (0..size).any(|r| holder(r).is_none()) {
        return Ok(None);
    }
    let read = |p: PathBuf| std::fs::read(&p).map(|b| (p.clone(), b)).map_err(|e| IoError::Corrupt { path: p, reason: e.to_string() });
    let own = if holder(rank) == Some(rank) { Some(read(own_path(root, step, rank, size))) } else { None };
    // My source's copy, if I serve it.
    let serve = if holder(from) == Some(rank) && from != rank { Some(read(copy_path(root, step, from, size))) } else { None };
    let serve = agree(comm, "reading node-local checkpoints", serve.transpose())?;
    let own = agree(comm, "reading node-local checkpoints", own.transpose())?;
    let got = match (own, serve) {
        (Some(o), s) => {
            // Still answer my source, which is waiting for its copy.
            if let Some((_, bytes)) = s {
                exchange_one(comm, Some(&bytes), from, None);
            }
            o
        }
        (None, s) => {
            let holder = holder(rank).expect("checked above");
            let bytes = exchange_one(comm, s.as_ref().map(|(_, b)| &b[..]), from, Some(holder));
            (copy_path(root, step, rank, size), bytes)
        }
    };
    Ok(Some(got))
}

/// Send `bytes` (if any) to `to`, and receive from `holder` (if any).
fn exchange_one(comm: &SimpleCommunicator, bytes: Option<&[u8]>, to: usize, holder: Option<usize>) -> Vec<u8> {
    let mut got = vec![];
    mpi::request::scope(|s| {
        let sent = bytes.map(|b| comm.process_at_rank(to as i32).immediate_send(s, b));
        if let Some(h) = holder {
            got = comm.process_at_rank(h as i32).receive_vec::<u8>().0;
        }
        if let Some(r) = sent {
            r.wait();
        }
    });
    got
}

/// Delete this process's local files of steps up to `upto` (all, and the reserved ones, with
/// `None`).
pub(crate) fn prune(root: &Path, upto: Option<u64>) {
    for f in listing(root) {
        if upto.map_or(true, |u| f.step <= u) {
            let _ = std::fs::remove_file(f.path);
        }
    }
    if upto.is_none() {
        for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("reserved-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    forget_gone();
}

/// The header: per field its (field checksum, block checksum, offset in the file) from `table`.
fn encode(step: u64, time: f64, ranks: usize, rank: usize, params: &[(String, Param)], items: &[Item], table: &[(u64, u64, u64)]) -> Vec<u8> {
    let mut h = Writer::default();
    h.u64(step).u64(time.to_bits()).u64(ranks as u64).u64(rank as u64).u64(params.len() as u64);
    for (k, v) in params {
        h.str(k);
        match v {
            Param::Int(x) => h.u64(0).u64(*x as u64),
            Param::Float(x) => h.u64(1).u64(x.to_bits()),
            Param::Bool(x) => h.u64(2).u64(*x as u64),
            Param::Str(x) => h.u64(3).str(x),
        };
    }
    h.u64(items.len() as u64);
    for (item, &(total, sum, offset)) in items.iter().zip(table) {
        h.str(&item.name).str(item.block.dtype()).u64(item.global.len() as u64);
        for v in item.global.iter().chain(&item.start).chain(item.block.shape()) {
            h.u64(*v as u64);
        }
        h.u64(total).u64(sum).u64(offset).u64(item.block.bytes().len() as u64);
    }
    h.0
}

/// The trailer after the blocks: the header, its digest, its length, the magic.
fn frame(header: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.extend(digest(header).to_le_bytes());
    out.extend((header.len() as u64).to_le_bytes());
    out.extend(MAGIC);
    out
}

fn digest(header: &[u8]) -> u64 {
    let mut d = Digest::new();
    for c in header.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        d.word(u64::from_le_bytes(w));
    }
    d.word(header.len() as u64).finish()
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend(s.as_bytes());
        self
    }
}

/// A field's block in a rank file.
pub(crate) struct LocalBlock {
    start: Vec<usize>,
    shape: Vec<usize>,
    sum: u64,
    data: std::ops::Range<usize>,
}

/// One rank's blocks of a checkpoint, parsed and checked.
pub(crate) struct RankFile {
    pub info: CheckpointInfo,
    blocks: Vec<LocalBlock>,
    bytes: Vec<u8>,
}

impl RankFile {
    /// Check and parse the bytes of a rank file, for `rank` of `ranks`.
    pub(crate) fn parse(path: PathBuf, bytes: Vec<u8>, rank: usize, ranks: usize) -> Result<RankFile> {
        let corrupt = |reason: String| IoError::Corrupt { path: path.clone(), reason };
        let bad = |what: &str| corrupt(format!("node-local file: {what}"));
        // Where the header is, and the blocks' offsets are counted from: a trailer whose digest
        // holds, else a version 1 head (a block may end in the one magic or begin with the other).
        let trailer = (bytes.len() >= 24 && bytes.ends_with(MAGIC))
            .then(|| {
                let n = bytes.len() - 24;
                let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
                let start = n.checked_sub(usize::try_from(word(n + 8)).ok()?)?;
                Some((&bytes[start..n], word(n), 0, start))
            })
            .flatten();
        let head = || {
            let mut r = Reader { b: &bytes, at: 8 };
            let hlen = r.u64()? as usize;
            let header = r.take(hlen)?;
            Some((header, r.u64()?, r.at, bytes.len()))
        };
        let (header, stored, data_at, data_end) = match trailer {
            Some(t) if t.1 == digest(t.0) || !bytes.starts_with(MAGIC_V1) => t,
            _ if bytes.starts_with(MAGIC_V1) => head().ok_or_else(|| bad("truncated header"))?,
            _ if bytes.len() < 24 => return Err(bad("too short")),
            _ => return Err(bad("not a node-local checkpoint")),
        };
        if stored != digest(header) {
            return Err(bad("header digest mismatch"));
        }
        let mut h = Reader { b: header, at: 0 };
        let short = || bad("header too short");
        let (step, time, file_ranks, file_rank) = (h.u64().ok_or_else(short)?, f64::from_bits(h.u64().ok_or_else(short)?), h.u64().ok_or_else(short)?, h.u64().ok_or_else(short)?);
        if (file_ranks, file_rank) != (ranks as u64, rank as u64) {
            return Err(corrupt(format!("node-local file of rank {file_rank} of {file_ranks}, read as rank {rank} of {ranks}")));
        }
        let mut params = vec![];
        for _ in 0..h.u64().ok_or_else(short)? {
            let name = h.str().ok_or_else(short)?;
            let v = match h.u64().ok_or_else(short)? {
                0 => Param::Int(h.u64().ok_or_else(short)? as i64),
                1 => Param::Float(f64::from_bits(h.u64().ok_or_else(short)?)),
                2 => Param::Bool(h.u64().ok_or_else(short)? != 0),
                3 => Param::Str(h.str().ok_or_else(short)?),
                _ => return Err(bad("unknown parameter type")),
            };
            params.push((name, v));
        }
        params.sort_by(|a, b| a.0.cmp(&b.0)); // as HDF5 lists them
        let (mut fields, mut blocks) = (vec![], vec![]);
        for _ in 0..h.u64().ok_or_else(short)? {
            let name = h.str().ok_or_else(short)?;
            let dtype = h.str().ok_or_else(short)?;
            let size = match dtype.as_str() {
                "f64" => 8,
                "f32" => 4,
                _ => return Err(bad("unknown element type")),
            };
            let ndim = h.u64().ok_or_else(short)? as usize;
            if ndim == 0 || ndim > 8 {
                return Err(bad("bad rank of a field"));
            }
            let mut dims = vec![];
            for _ in 0..3 * ndim {
                dims.push(h.u64().ok_or_else(short)? as usize);
            }
            let (global, start, shape) = (dims[..ndim].to_vec(), dims[ndim..2 * ndim].to_vec(), dims[2 * ndim..].to_vec());
            let (total, sum, offset, len) = (h.u64().ok_or_else(short)?, h.u64().ok_or_else(short)?, h.u64().ok_or_else(short)?, h.u64().ok_or_else(short)?);
            let elems = shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
            let fits = (0..ndim).all(|d| start[d].checked_add(shape[d]).is_some_and(|e| e <= global[d]) || shape[d] == 0);
            let range = (data_at as u64).checked_add(offset).and_then(|a| Some(a as usize..a.checked_add(len)? as usize));
            match (elems, range) {
                (Some(n), Some(range)) if fits && n.checked_mul(size) == Some(len as usize) && range.end <= data_end => {
                    blocks.push(LocalBlock { start, shape, sum, data: range });
                }
                _ => return Err(bad("a block that does not fit")),
            }
            fields.push(FieldInfo { name, shape: global, dtype, checksum: total, blocks: ranks, blocks_checksum: 0 });
        }
        if h.at != header.len() {
            return Err(bad("trailing header bytes"));
        }
        let info = CheckpointInfo {
            path: path.clone(),
            step,
            time,
            format_version: meta::FORMAT_VERSION,
            rankwise_version: env!("CARGO_PKG_VERSION").into(),
            ranks: ranks as u64,
            params,
            fields,
        };
        Ok(RankFile { info, blocks, bytes })
    }

    /// Every block against its checksum.
    fn check(&self) -> Result<()> {
        for (i, (b, f)) in self.blocks.iter().zip(&self.info.fields).enumerate() {
            let dims = ndarray::IxDyn(&b.shape);
            match f.dtype.as_str() {
                "f32" => self.read::<f32>(i, &b.start.clone(), ndarray::ArrayD::zeros(dims).view_mut())?,
                _ => self.read::<f64>(i, &b.start.clone(), ndarray::ArrayD::zeros(dims).view_mut())?,
            }
        }
        Ok(())
    }

    /// This rank's block of field `i` into `out`, which must be exactly that block.
    pub(crate) fn read<T: Element>(&self, i: usize, start: &[usize], mut out: ndarray::ArrayViewMutD<T>) -> Result<()> {
        let (b, f) = (&self.blocks[i], &self.info.fields[i]);
        if b.start != start || b.shape != out.shape() {
            // Another decomposition: the shared file serves it.
            return Err(IoError::Corrupt {
                path: self.info.path.clone(),
                reason: format!("node-local block of `{}` is {:?} at {:?}, {:?} at {start:?} asked for", f.name, b.shape, b.start, out.shape()),
            });
        }
        let raw = &self.bytes[b.data.clone()];
        if let Some(o) = out.as_slice_mut() {
            // SAFETY: T is f64 or f32, plain bytes; `raw` has exactly the block's bytes (parsed).
            unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), o.as_mut_ptr().cast::<u8>(), raw.len()) };
        } else {
            let mut vals = raw.chunks_exact(std::mem::size_of::<T>()).map(|c| {
                let mut v = T::default();
                // SAFETY: as above, one element.
                unsafe { std::ptr::copy_nonoverlapping(c.as_ptr(), (&mut v as *mut T).cast::<u8>(), c.len()) };
                v
            });
            out.iter_mut().for_each(|o| *o = vals.next().expect("sized above"));
        }
        let sum = checksum::block_sum(&f.shape, start, &out.view());
        if sum != b.sum {
            return Err(IoError::Corrupt {
                path: self.info.path.clone(),
                reason: format!("node-local block of `{}` has checksum {sum:016x}, the file says {:016x}", f.name, b.sum),
            });
        }
        Ok(())
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|s| u64::from_le_bytes(s.try_into().unwrap()))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u64()? as usize;
        self.take(n).and_then(|s| String::from_utf8(s.to_vec()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_not_ours() {
        assert_eq!(parse_name("ckpt-0000000040.rank-3-of-4.bin"), Some((40, 3, 4, true)));
        assert_eq!(parse_name("ckpt-0000000040.copy-12-of-16.bin"), Some((40, 12, 16, false)));
        for other in ["ckpt-0000000040.h5", "ckpt-x.rank-1-of-2.bin", "ckpt-1.rank-1-of-2.bin.partial", "ckpt-1.peer-1-of-2.bin", "ckpt-1.rank-1.bin"] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_rank_file_parses_back_and_any_flipped_bit_of_its_trailer_is_damage() {
        let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[3, 4]), |i| (i[0] * 4 + i[1]) as f64 * 0.5);
        let items = [Item { name: "u".into(), global: vec![6, 4], start: vec![3, 0], block: Box::new(a.clone()), sum: None }];
        let params = [("n".to_string(), Param::Int(6)), ("tag".to_string(), Param::Str("x".into()))];
        let sum = checksum::block_sum(&[6, 4], &[3, 0], &a.view());
        // The block at 8, after a gap (as on a page boundary), then the trailer.
        let trailer = frame(&encode(9, 0.5, 2, 1, &params, &items, &[(sum ^ 1, sum, 8)]));
        let bytes = [vec![0u8; 8], items[0].block.bytes().to_vec(), trailer.clone()].concat();
        let f = RankFile::parse("x".into(), bytes.clone(), 1, 2).unwrap();
        assert_eq!((f.info.step, f.info.time, f.info.params.len(), f.info.fields[0].checksum), (9, 0.5, 2, sum ^ 1));
        let mut back = ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[3, 4]));
        f.read(0, &[3, 0], back.view_mut()).unwrap();
        assert_eq!(back, a);
        assert!(f.read(0, &[2, 0], back.view_mut()).is_err(), "another block");
        assert!(RankFile::parse("x".into(), bytes.clone(), 0, 2).is_err(), "another rank's file");
        let trailer_at = bytes.len() - trailer.len();
        for bit in trailer_at * 8..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(RankFile::parse("x".into(), b, 1, 2).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(RankFile::parse("x".into(), bytes[..len].to_vec(), 1, 2).is_err(), "truncated to {len}");
        }
        // A block said to reach into the trailer does not fit.
        let over = [vec![0u8; 8], items[0].block.bytes().to_vec(), frame(&encode(9, 0.5, 2, 1, &params, &items, &[(sum, sum, 16)]))].concat();
        assert!(RankFile::parse("x".into(), over, 1, 2).is_err());
        // Version 1 (the header first) still reads.
        let header = encode(9, 0.5, 2, 1, &params, &items, &[(sum, sum, 0)]);
        let v1 = [MAGIC_V1.to_vec(), (header.len() as u64).to_le_bytes().to_vec(), header.clone(), digest(&header).to_le_bytes().to_vec(), items[0].block.bytes().to_vec()].concat();
        let f = RankFile::parse("x".into(), v1, 1, 2).unwrap();
        f.read(0, &[3, 0], back.view_mut()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn a_file_written_over_an_older_one_holds_exactly_its_own_bytes_in_the_same_file() {
        let dir = std::env::temp_dir().join(format!("rankwise-local-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let write = |path: &Path, reuse: Option<&Path>, bytes: &[u8]| {
            let m = open(path, reuse, bytes.len()).unwrap();
            // SAFETY: the whole file, this test's alone.
            unsafe { m.slice_mut(0..bytes.len()) }.copy_from_slice(bytes);
            commit(m, path).unwrap();
        };
        // A new file; then written over, kept mapped, longer, shorter and of the same length,
        // each time named anew, with exactly its own bytes in the same inode.
        write(&a, None, &[1u8; 5000]);
        let inode = ino(&a);
        let mut at = a.clone();
        for (i, len) in [9000usize, 3, 3, 4096].into_iter().enumerate() {
            let next = dir.join(format!("{i}.bin"));
            let bytes: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8).collect();
            write(&next, Some(&at), &bytes);
            assert_eq!(std::fs::read(&next).unwrap(), bytes);
            assert_eq!(ino(&next), inode, "not written over the older file");
            assert!(!at.exists() && !partial_name(&next).exists());
            at = next;
        }
        // A file this process does not hold mapped (another run's) is written over too.
        std::fs::write(&b, vec![9u8; 100]).unwrap();
        let inode = ino(&b);
        write(&dir.join("c.bin"), Some(&b), &[5u8; 10]);
        assert_eq!((std::fs::read(dir.join("c.bin")).unwrap(), ino(&dir.join("c.bin"))), (vec![5u8; 10], inode));
        // Removed files are let go.
        std::fs::remove_dir_all(&dir).unwrap();
        forget_gone();
        assert!(kept().iter().all(|m| !m.path.starts_with(&dir)));
    }

    #[test]
    fn reserved_files_grow_field_by_field_serve_as_spares_and_go_with_the_run() {
        let root = std::env::temp_dir().join(format!("rankwise-local-reserve-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        reserve_with(&root, 0, 1, 100, |made| made);
        reserve_with(&root, 0, 1, PAGE + 1, |made| made);
        for own in [true, false] {
            for k in 0..2 {
                let m = std::fs::metadata(reserved_path(&root, own, k, 0, 1)).unwrap();
                // Whole pages (the blocks' and one for the trailer), allocated (not sparse).
                assert_eq!((m.len(), m.blocks() * 512 >= m.len()), (4 * PAGE as u64, true));
            }
            assert!(reserved(&root, own, 0, 1).is_some() && reserved(&root, own, 1, 1).is_none());
        }
        assert!(steps(&root).is_empty(), "no checkpoint");
        // Another rank without room for the second checkpoint's files: only the first's stay.
        let calls = std::cell::Cell::new(0);
        reserve_with(&root, 0, 1, 1, |made| {
            calls.set(calls.get() + 1);
            made && calls.get() == 1
        });
        for own in [true, false] {
            assert!(reserved_path(&root, own, 0, 0, 1).exists() && !reserved_path(&root, own, 1, 0, 1).exists());
        }
        prune(&root, None);
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_snapshot_copies_into_the_file_it_makes_obsolete_where_the_blocks_fit() {
        let root = std::env::temp_dir().join(format!("rankwise-local-target-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[5, 3]), |i| (i[0] * 3 + i[1]) as f64);
        // Steps 10 and 20 written (as `write` leaves them: mapped, with their blocks' places).
        for step in [10, 20] {
            let path = own_path(&root, step, 0, 1);
            let (mut m, sums) = place(&path, None, None, &[Item { name: "u".into(), global: vec![5, 3], start: vec![0, 0], block: Box::new(a.clone()), sum: None }], 0).unwrap();
            assert_eq!(sums, vec![checksum::block_sum(&[5, 3], &[0, 0], &a.view())]);
            m.blocks = vec![(0, 120)];
            commit(m, &path).unwrap();
        }
        assert!(target(&root, 20).is_none(), "10 is not obsolete before 30");
        let mut t = target(&root, 30).expect("10's file, obsolete for 30");
        assert!(!own_path(&root, 10, 0, 1).exists() && partial_name(&own_path(&root, 30, 0, 1)).exists());
        let b = a.mapv(|x| -x);
        let (block, sum) = t.copy_in(&b.view(), &[5, 3], &[0, 0]).expect("room for the first block");
        assert_eq!((block.bytes(), sum), (Block::bytes(&b), checksum::block_sum(&[5, 3], &[0, 0], &b.view())));
        assert!(t.copy_in(&b.view(), &[5, 3], &[0, 0]).is_none(), "no second block last time");
        // Dropped unwritten, its partial goes.
        drop(t);
        assert!(!partial_name(&own_path(&root, 30, 0, 1)).exists());
        std::fs::remove_dir_all(&root).unwrap();
        forget_gone();
    }
}
