//! The node-local level: each rank keeps its own blocks of a checkpoint in a file on node-local
//! storage, and a copy of its partner's (a rank on another node, as SCR's Partner scheme), so that
//! one lost node is survived without the shared filesystem.
//!
//! `LOCAL/ckpt-<step>.rank-<r>-of-<n>.bin` holds rank r's blocks (of n ranks);
//! `LOCAL/ckpt-<step>.copy-<r>-of-<n>.bin` the same bytes on r's partner. A file is a header (step, time, ranks, this rank, parameters, and per
//! field its name, type, global shape, this rank's block, the field's checksum and the block's),
//! the blocks, and a digest of the header: any damage is [`IoError::Corrupt`]. Only the same rank
//! count with the same blocks can restore from this level; otherwise the shared file serves.

use std::io::Write;
use std::path::{Path, PathBuf};

use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use crate::checkpoint::agree;
use crate::checksum::{self, Digest, Element};
use crate::error::{IoError, Result};
use crate::meta::{self, CheckpointInfo, FieldInfo, Param};

const MAGIC: &[u8; 8] = b"RWLOCAL1";

/// One field's block, in memory, as a snapshot holds it.
pub(crate) trait Block: Send {
    fn dtype(&self) -> &'static str;
    fn shape(&self) -> &[usize];
    /// The elements in C order, as bytes.
    fn bytes(&self) -> &[u8];
    fn sum(&self, global: &[usize], start: &[usize]) -> u64;
    fn write(&self, w: &mut crate::CheckpointWriter, name: &str, global: &[usize], start: &[usize]) -> Result<()>;
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

impl<T: Element> Block for ndarray::ArrayD<T> {
    fn dtype(&self) -> &'static str {
        T::DTYPE
    }
    fn shape(&self) -> &[usize] {
        ndarray::ArrayBase::shape(self)
    }
    fn bytes(&self) -> &[u8] {
        let s = self.as_slice().expect("snapshots are in standard layout");
        // SAFETY: f64 and f32 (the only Elements) are plain bytes.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), std::mem::size_of_val(s)) }
    }
    fn sum(&self, global: &[usize], start: &[usize]) -> u64 {
        checksum::block_sum(global, start, &self.view())
    }
    fn write(&self, w: &mut crate::CheckpointWriter, name: &str, global: &[usize], start: &[usize]) -> Result<()> {
        w.write_block(name, global, start, self.view()).map(drop)
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// A field of a snapshot: this rank's block at `start` of `global`.
pub(crate) struct Item {
    pub name: String,
    pub global: Vec<usize>,
    pub start: Vec<usize>,
    pub block: Box<dyn Block>,
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

/// Collective. Write this rank's blocks, and its partner's copy, for the checkpoint of `step`.
pub(crate) fn write(comm: &SimpleCommunicator, root: &Path, step: u64, time: f64, params: &[(String, Param)], items: &[Item]) -> Result<()> {
    // Its own communicator, so that no message of the program's can meet these.
    let comm = &comm.duplicate();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    let sums: Vec<u64> = items.iter().map(|i| i.block.sum(&i.global, &i.start)).collect();
    let mut totals = vec![0u64; sums.len()];
    comm.all_reduce_into(&sums[..], &mut totals[..], mpi::collective::SystemOperation::sum());
    // The file is the header and then the blocks as they are in memory: written and sent from
    // there, never gathered into one buffer.
    let header = encode(step, time, size, rank, params, items, &sums, &totals);
    let pieces: Vec<&[u8]> = std::iter::once(&header[..]).chain(items.iter().map(|i| i.block.bytes())).collect();
    let prepared = std::fs::create_dir_all(root).map_err(|source| IoError::File { path: root.into(), source });
    let (from, to) = partners(comm);
    // This rank's files of the step this one makes obsolete are written over, not deleted:
    // their pages (a RAM disk's memory) are used again instead of being allocated afresh.
    let older = obsolete(root, step);
    let spare = |own: bool, whose: usize| older.iter().find(|f| (f.own, f.rank, f.ranks) == (own, whose, size)).map(|f| f.path.clone());
    let (own, copy) = (own_path(root, step, rank, size), copy_path(root, step, from, size));
    let written = (|| {
        let mine = prepared.and_then(|()| put(&own, spare(true, rank), |f| pieces.iter().try_for_each(|p| f.write_all(p))));
        agree(comm, "writing the node-local checkpoint", mine)?;
        let copied = exchange(comm, &pieces, to, from, &copy, spare(false, from));
        agree(comm, "writing the partner copy", copied)
    })();
    if written.is_err() {
        // A step some rank could not write is no checkpoint: its files go (a full disk is not
        // left full); the step before it stays.
        let _ = std::fs::remove_file(own);
        let _ = std::fs::remove_file(copy);
        return written;
    }
    // Every rank has this step now: older ones than the one before it go (two at most, each
    // with its copies, however many come between shared flushes: node-local disks are small).
    for f in obsolete(root, step) {
        let _ = std::fs::remove_file(f.path);
    }
    Ok(())
}

/// The local files older than the newest step before `step`: the ones a write of `step` leaves
/// behind.
fn obsolete(root: &Path, step: u64) -> Vec<Entry> {
    let files = listing(root);
    let previous = files.iter().map(|f| f.step).filter(|&s| s < step).max();
    files.into_iter().filter(|f| previous.is_some_and(|p| f.step < p)).collect()
}

/// Messages of at most this many bytes: a received one is written to its file while still in cache.
const CHUNK: usize = 2 << 20;

/// Send `pieces` to `to` while receiving `from`'s into the file `path` (over `reuse`), in
/// messages of at most [`CHUNK`] bytes. A failed write still receives everything, so that `from`
/// is never left waiting.
fn exchange(comm: &SimpleCommunicator, pieces: &[&[u8]], to: usize, from: usize, path: &Path, reuse: Option<PathBuf>) -> Result<()> {
    let (to, from) = (comm.process_at_rank(to as i32), comm.process_at_rank(from as i32));
    let messages: Vec<&[u8]> = pieces.iter().flat_map(|p| p.chunks(CHUNK)).collect();
    let sizes: Vec<u64> = messages.iter().map(|m| m.len() as u64).collect();
    mpi::request::scope(|s| {
        let head = to.immediate_send(s, &sizes[..]);
        let sends: Vec<_> = messages.iter().map(|m| to.immediate_send(s, *m)).collect();
        let (incoming, _) = from.receive_vec::<u64>();
        let mut buf = vec![0u8; incoming.iter().copied().max().unwrap_or(0) as usize];
        let mut left = &incoming[..];
        let written = put(path, reuse, |f| {
            while let Some((&n, rest)) = left.split_first() {
                left = rest;
                from.receive_into(&mut buf[..n as usize]);
                f.write_all(&buf[..n as usize])?;
            }
            Ok(())
        });
        for &n in left {
            from.receive_into(&mut buf[..n as usize]);
        }
        head.wait();
        sends.into_iter().for_each(|r| {
            r.wait();
        });
        written
    })
}

/// Write `path` through `write`, over the file `reuse` if given (its pages are reused), as
/// `path.partial` renamed when whole.
fn put(path: &Path, reuse: Option<PathBuf>, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<()> {
    use std::io::Seek;
    let partial = crate::checkpoint::partial_name(path);
    let written = (|| {
        if let Some(old) = reuse {
            std::fs::rename(old, &partial)?;
        }
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&partial)?;
        write(&mut f)?;
        let end = f.stream_position()?;
        f.set_len(end)?;
        std::fs::rename(&partial, path)
    })();
    written.map_err(|source| {
        let e = crate::checkpoint::short_of_space(IoError::File { path: path.into(), source }, path);
        // A full node-local disk is not left full.
        let _ = std::fs::remove_file(&partial);
        e
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

/// Delete this process's local files of steps up to `upto` (all with `None`).
pub(crate) fn prune(root: &Path, upto: Option<u64>) {
    for f in listing(root) {
        if upto.map_or(true, |u| f.step <= u) {
            let _ = std::fs::remove_file(f.path);
        }
    }
}

/// A file's head: magic, header length, header, the header's digest. The blocks follow it.
#[allow(clippy::too_many_arguments)]
fn encode(step: u64, time: f64, ranks: usize, rank: usize, params: &[(String, Param)], items: &[Item], sums: &[u64], totals: &[u64]) -> Vec<u8> {
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
    let mut offset = 0u64;
    for ((item, sum), total) in items.iter().zip(sums).zip(totals) {
        h.str(&item.name).str(item.block.dtype()).u64(item.global.len() as u64);
        for v in item.global.iter().chain(&item.start).chain(item.block.shape()) {
            h.u64(*v as u64);
        }
        let len = item.block.bytes().len() as u64;
        h.u64(*total).u64(*sum).u64(offset).u64(len);
        offset += len;
    }
    let mut out = MAGIC.to_vec();
    out.extend((h.0.len() as u64).to_le_bytes());
    out.extend(&h.0);
    out.extend(digest(&h.0).to_le_bytes());
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
        let mut r = Reader { b: &bytes, at: 0 };
        let bad = |what: &str| corrupt(format!("node-local file: {what}"));
        if r.take(8).ok_or_else(|| bad("too short"))? != MAGIC {
            return Err(bad("not a node-local checkpoint"));
        }
        let hlen = r.u64().ok_or_else(|| bad("too short"))? as usize;
        let header = r.take(hlen).ok_or_else(|| bad("truncated header"))?;
        let stored = r.u64().ok_or_else(|| bad("truncated header"))?;
        if stored != digest(header) {
            return Err(bad("header digest mismatch"));
        }
        let data_at = r.at;
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
                (Some(n), Some(range)) if fits && n.checked_mul(size) == Some(len as usize) && range.end <= bytes.len() => {
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
    fn a_rank_file_parses_back_and_any_flipped_bit_of_its_header_is_damage() {
        let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[3, 4]), |i| (i[0] * 4 + i[1]) as f64 * 0.5);
        let items = [Item { name: "u".into(), global: vec![6, 4], start: vec![3, 0], block: Box::new(a.clone()) }];
        let params = [("n".to_string(), Param::Int(6)), ("tag".to_string(), Param::Str("x".into()))];
        let sum = items[0].block.sum(&[6, 4], &[3, 0]);
        let bytes = [encode(9, 0.5, 2, 1, &params, &items, &[sum], &[sum ^ 1]), items[0].block.bytes().to_vec()].concat();
        let f = RankFile::parse("x".into(), bytes.clone(), 1, 2).unwrap();
        assert_eq!((f.info.step, f.info.time, f.info.params.len(), f.info.fields[0].checksum), (9, 0.5, 2, sum ^ 1));
        let mut back = ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[3, 4]));
        f.read(0, &[3, 0], back.view_mut()).unwrap();
        assert_eq!(back, a);
        assert!(f.read(0, &[2, 0], back.view_mut()).is_err(), "another block");
        assert!(RankFile::parse("x".into(), bytes.clone(), 0, 2).is_err(), "another rank's file");
        let header_end = 16 + u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize + 8;
        for bit in 0..header_end * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(RankFile::parse("x".into(), b, 1, 2).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(RankFile::parse("x".into(), bytes[..len].to_vec(), 1, 2).is_err(), "truncated to {len}");
        }
    }

    #[test]
    fn a_file_written_over_an_older_one_holds_exactly_its_own_bytes_in_the_same_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("rankwise-local-put-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old.bin"), dir.join("new.bin"));
        // Over a longer file, a shorter one, and none.
        for (before, after) in [(vec![0xAAu8; 5000], vec![1u8, 2, 3]), (vec![7u8; 3], vec![9u8; 6000]), (vec![], vec![4u8; 10])] {
            let reuse = (!before.is_empty()).then(|| {
                std::fs::write(&old, &before).unwrap();
                old.clone()
            });
            let inode = reuse.as_ref().map(|o| std::fs::metadata(o).unwrap().ino());
            put(&new, reuse, |f| f.write_all(&after[..1]).and_then(|()| f.write_all(&after[1..]))).unwrap();
            assert_eq!(std::fs::read(&new).unwrap(), after);
            assert!(!old.exists() && !crate::checkpoint::partial_name(&new).exists());
            if let Some(i) = inode {
                assert_eq!(std::fs::metadata(&new).unwrap().ino(), i, "not written over the older file");
            }
        }
        // A failed write leaves neither the file nor its partial; the older one is gone either way.
        std::fs::write(&old, b"older").unwrap();
        let failed = put(&new.with_extension("x"), Some(old.clone()), |_| Err(std::io::Error::other("full")));
        assert!(matches!(failed, Err(IoError::File { .. })));
        assert!(!old.exists() && !new.with_extension("x").exists() && !crate::checkpoint::partial_name(&new.with_extension("x")).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
