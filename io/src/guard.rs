//! Judging a checkpoint file before any collective HDF5 call on it.
//!
//! libhdf5 trusts the bytes it parses: a damaged superblock or object header can make it fail on
//! one rank and not another (and a collective call then waits for ever), loop, or crash. So one
//! process reads all of a file's metadata first, in a child process that a crash or a hang cannot
//! take down (killed after a time-out), and every rank then takes that one verdict.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::checkpoint::Checkpoint;
use crate::checksum;
use crate::error::{IoError, Result};
use crate::meta;

/// How long the check of one file may take (`RANKWISE_CKPT_CHECK_TIMEOUT`, seconds, overrides).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Check `path` in a child process: its metadata and checksums of metadata, the place of every
/// field's data inside the file, and the block tables. `Ok` means every rank may open it
/// collectively; the data themselves are verified as they are read.
pub(crate) fn check(path: &Path) -> Result<()> {
    let timeout = std::env::var("RANKWISE_CKPT_CHECK_TIMEOUT").ok().and_then(|s| s.parse().ok()).map_or(TIMEOUT, Duration::from_secs_f64);
    match in_child(path, timeout) {
        Some(verdict) => verdict,
        // No child to be had (fork refused): check here, unprotected.
        None => inspect(path),
    }
}

/// Collective. Every rank takes rank 0's verdict `mine` (the other ranks pass `Ok`).
pub(crate) fn share(comm: &SimpleCommunicator, path: &Path, mine: Result<()>) -> Result<()> {
    let mut msg = if comm.rank() == 0 { encode(&mine) } else { vec![] };
    let mut len = msg.len() as u64;
    let root = comm.process_at_rank(0);
    root.broadcast_into(&mut len);
    msg.resize(len as usize, 0);
    root.broadcast_into(&mut msg[..]);
    match mine {
        Err(e) if comm.rank() == 0 => Err(e),
        _ => decode(path, &msg),
    }
}

/// The check itself, in this process.
fn inspect(path: &Path) -> Result<()> {
    let ck = Checkpoint::open_unguarded(path)?;
    let corrupt = |reason: String| IoError::Corrupt { path: path.into(), reason };
    let len = std::fs::metadata(path).map_err(|e| corrupt(e.to_string()))?.len();
    let info = ck.info();
    for f in &info.fields {
        let ds = ck.file().dataset(&f.name).map_err(|e| corrupt(format!("field `{}`: {e}", f.name)))?;
        let bytes = f.shape.iter().product::<usize>() as u64 * if f.dtype == "f32" { 4 } else { 8 };
        // Where the data lie: (address, size) of each piece.
        let pieces: Vec<(u64, u64)> = if ds.is_chunked() {
            let n = ds.num_chunks().ok_or_else(|| corrupt(format!("field `{}`: unreadable chunk index", f.name)))?;
            (0..n)
                .map(|i| ds.chunk_info(i).map(|c| (c.addr, c.size)).ok_or_else(|| corrupt(format!("field `{}`: chunk {i} unreadable", f.name))))
                .collect::<Result<_>>()?
        } else if bytes == 0 {
            vec![]
        } else {
            let at = ds.offset().ok_or_else(|| corrupt(format!("field `{}`: no data", f.name)))?;
            if ds.storage_size() != bytes {
                return Err(corrupt(format!("field `{}`: {} bytes stored for {bytes}", f.name, ds.storage_size())));
            }
            vec![(at, bytes)]
        };
        if pieces.iter().any(|&(at, n)| at.checked_add(n).map_or(true, |end| end > len)) {
            return Err(corrupt(format!("field `{}`: its data lie beyond the end of the file ({len} bytes)", f.name)));
        }
        if info.format_version >= 2 {
            let table = ck.file().dataset(&format!("{}/{}", meta::TABLES, f.name)).and_then(|t| t.read_raw::<u64>());
            let table = table.map_err(|e| corrupt(format!("block table of `{}`: {e}", f.name)))?;
            if checksum::bits_sum(0, table.iter().copied()) != f.blocks_checksum {
                return Err(corrupt(format!("block table of `{}`: checksum mismatch", f.name)));
            }
        }
    }
    Ok(())
}

/// Run [`inspect`] in a forked child; `None` if there is no child to be had.
fn in_child(path: &Path, timeout: Duration) -> Option<Result<()>> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors that we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child only runs the check, writes to the pipe and leaves with _exit: no atexit
    // handlers, no flushing of the parent's HDF5 files or stdio, no MPI call (MPI_Abort from the
    // runtime's panic hook would end the parent's job, hence the silent hook).
    match unsafe { libc::fork() } {
        -1 => None,
        0 => {
            drop(rd);
            std::panic::set_hook(Box::new(|_| {}));
            let verdict = std::panic::catch_unwind(|| inspect(path))
                .unwrap_or_else(|_| Err(IoError::Corrupt { path: path.into(), reason: "the HDF5 library failed on it".into() }));
            let msg = encode(&verdict);
            let mut f = std::fs::File::from(wr);
            let _ = std::io::Write::write_all(&mut f, &msg);
            unsafe { libc::_exit(0) }
        }
        pid => {
            drop(wr);
            let msg = read_until(rd, Instant::now() + timeout);
            let status = finish(pid, msg.is_none());
            let crashed = |why: String| Err(IoError::Corrupt { path: path.into(), reason: why });
            Some(match (msg, status) {
                (None, _) => crashed(format!("checking it took more than {} s (libhdf5 hangs on it)", timeout.as_secs_f64())),
                (Some(m), Some(0)) if !m.is_empty() => decode(path, &m),
                (_, Some(s)) if libc::WIFSIGNALED(s) => crashed(format!("checking it crashed libhdf5 (signal {})", libc::WTERMSIG(s))),
                _ => crashed("checking it failed in libhdf5".into()),
            })
        }
    }
}

/// Everything the child wrote, or `None` when it is still writing at `deadline`.
fn read_until(rd: OwnedFd, deadline: Instant) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut msg = Vec::new();
    let mut f = std::fs::File::from(rd);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut p, 1, ms) };
        if ready < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if ready <= 0 {
            return None;
        }
        let mut buf = [0u8; 4096];
        match f.read(&mut buf) {
            Ok(0) => return Some(msg),
            Ok(n) => msg.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some(msg),
        }
    }
}

/// Reap the child (killed first when `kill`); its wait status.
fn finish(pid: libc::pid_t, kill: bool) -> Option<i32> {
    if kill {
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    loop {
        // SAFETY: as above.
        match unsafe { libc::waitpid(pid, &mut status, 0) } {
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            -1 => return None,
            _ => return Some(status),
        }
    }
}

/// A verdict as bytes: `O`, `C` + reason, or `V` + the newer format's version.
fn encode(v: &Result<()>) -> Vec<u8> {
    match v {
        Ok(()) => b"O".to_vec(),
        Err(IoError::Version { found, .. }) => [&b"V"[..], &found.to_le_bytes()].concat(),
        Err(IoError::Corrupt { reason, .. }) => [b"C", reason.as_bytes()].concat(),
        Err(e) => [b"C", e.to_string().as_bytes()].concat(),
    }
}

fn decode(path: &Path, msg: &[u8]) -> Result<()> {
    match msg.split_first() {
        Some((b'O', [])) => Ok(()),
        Some((b'V', v)) if v.len() == 4 => {
            Err(IoError::Version { path: path.into(), found: u32::from_le_bytes(v.try_into().unwrap()), known: meta::FORMAT_VERSION })
        }
        Some((b'C', reason)) => Err(IoError::Corrupt { path: path.into(), reason: String::from_utf8_lossy(reason).into_owned() }),
        _ => Err(IoError::Corrupt { path: path.into(), reason: "checking it gave no verdict".into() }),
    }
}
