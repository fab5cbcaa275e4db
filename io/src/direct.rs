//! Writing large runs of a checkpoint past the page cache (`O_DIRECT`), as HPC I/O libraries do for
//! checkpoints nobody reads again soon: the kernel sends the data to the device from our buffer
//! instead of copying it into cache pages first and writing those back later. That copy is most
//! of the CPU a background write takes from the step loop (on this project's VM, where the host
//! takes back freed memory, the writing thread spent 46 ms of CPU on a 16 MiB checkpoint through
//! the cache, 15 ms this way).
//!
//! `O_DIRECT` needs file offsets, lengths and memory aligned to the device's blocks: the bytes
//! of a run go straight from the caller's memory where it is aligned as the file is (a snapshot's
//! buffers are), else through one aligned buffer; the unaligned ends of a run (under 4 KiB each)
//! and the whole run on a filesystem without `O_DIRECT` go through the cache. On a filesystem in
//! memory ([`helps`]) the runs are written as they come, from the caller's memory: one copy, into
//! the file's pages.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

/// Alignment of direct transfers: a page, a multiple of every common device block.
pub(crate) const ALIGN: usize = 4096;
const BUFFER: usize = 8 << 20;

/// Whether writing past the page cache helps on the filesystem of `path` (which exists): not on
/// one that lives in memory (tmpfs, ramfs), where the cache is the file and the aligned buffer
/// one copy more.
fn helps(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: a NUL-terminated path and a statfs the call fills.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    const RAMFS_MAGIC: libc::__fsword_t = 0x8584_58f6;
    st.f_type != libc::TMPFS_MAGIC && st.f_type != RAMFS_MAGIC
}

/// One aligned buffer kept for the next writer: a fresh one would be first touched every time.
static SPARE: Mutex<Option<Aligned>> = Mutex::new(None);

/// `BUFFER` bytes at an `ALIGN` boundary, inside a slightly larger vector.
struct Aligned(Vec<u8>);

impl Aligned {
    fn new() -> Aligned {
        Aligned(vec![0; BUFFER + ALIGN])
    }

    fn bytes(&mut self) -> &mut [u8] {
        let at = self.0.as_ptr().align_offset(ALIGN);
        &mut self.0[at..at + BUFFER]
    }
}

/// Writes runs of bytes, each fed in order from its start offset, into an existing file.
pub(crate) struct DirectWriter {
    plain: File,
    direct: Option<File>,
    buf: Option<Aligned>,
    /// File offset of `buf[0]` (aligned once the run's unaligned head is written).
    at: u64,
    fill: usize,
}

impl DirectWriter {
    /// Open `path` for writing (it must exist); `O_DIRECT` where the filesystem has it and it
    /// [`helps`]; elsewhere every piece is written as it comes, from the caller's memory.
    pub(crate) fn open(path: &Path) -> io::Result<DirectWriter> {
        Self::with(path, helps(path))
    }

    fn with(path: &Path, direct: bool) -> io::Result<DirectWriter> {
        let plain = File::options().write(true).open(path)?;
        let direct = direct.then(|| File::options().write(true).custom_flags(libc::O_DIRECT).open(path).ok()).flatten();
        Ok(DirectWriter { plain, direct, buf: None, at: 0, fill: 0 })
    }

    /// Start a run at file offset `at` (the previous one is written out).
    pub(crate) fn seek(&mut self, at: u64) -> io::Result<()> {
        self.write_out()?;
        self.at = at;
        Ok(())
    }

    /// Whether `bytes`, pushed now, go to the device straight from the caller's memory: on the
    /// direct path, at an aligned file offset with nothing buffered, from aligned memory.
    pub(crate) fn takes(&self, bytes: &[u8]) -> bool {
        self.direct.is_some() && self.fill == 0 && self.at as usize % ALIGN == 0 && bytes.as_ptr() as usize % ALIGN == 0 && bytes.len() >= ALIGN
    }

    /// The next bytes of the current run.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.takes(bytes) {
                // No copy: the aligned part straight from the caller's memory.
                let n = bytes.len() / ALIGN * ALIGN;
                put_aligned(&mut self.direct, &self.plain, &bytes[..n], self.at)?;
                self.at += n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let misaligned = self.at as usize % ALIGN;
            if self.direct.is_none() || (self.fill == 0 && misaligned != 0) {
                // No direct path, or the head up to the run's first aligned offset.
                let n = if self.direct.is_none() { bytes.len() } else { bytes.len().min(ALIGN - misaligned) };
                self.plain.write_all_at(&bytes[..n], self.at)?;
                self.at += n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let (fill, buf) = (self.fill, self.buf.get_or_insert_with(|| SPARE.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_else(Aligned::new)));
            let n = bytes.len().min(BUFFER - fill);
            buf.bytes()[fill..fill + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            bytes = &bytes[n..];
            if self.fill == BUFFER {
                self.write_out()?;
            }
        }
        Ok(())
    }

    /// The buffer's aligned part directly, the rest (a run's tail) through the cache.
    fn write_out(&mut self) -> io::Result<()> {
        let (Some(buf), fill) = (self.buf.as_mut(), self.fill) else { return Ok(()) };
        let aligned = fill / ALIGN * ALIGN;
        let bytes = &buf.bytes()[..fill];
        if aligned > 0 {
            put_aligned(&mut self.direct, &self.plain, &bytes[..aligned], self.at)?;
        }
        self.plain.write_all_at(&bytes[aligned..], self.at + aligned as u64)?;
        self.at += fill as u64;
        self.fill = 0;
        Ok(())
    }

    /// Write out what is left and make the data durable (each rank its own: on a filesystem
    /// shared between nodes, one node's fsync does not cover another's cache).
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.write_out()?;
        self.plain.sync_data()
    }
}

/// Aligned `bytes` at aligned `at` through `direct`, or through `plain` where the filesystem opens
/// with O_DIRECT but takes no such transfer (EINVAL; then `direct` is dropped for what follows).
fn put_aligned(direct: &mut Option<File>, plain: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    let d = direct.as_ref().expect("aligned transfers are made only on the direct path");
    match d.write_all_at(bytes, at) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            *direct = None;
            plain.write_all_at(bytes, at)
        }
        r => r,
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            *SPARE.lock().unwrap_or_else(|p| p.into_inner()) = Some(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of every alignment and length, adjacent or not, fed in pieces of every size, from
    /// memory aligned as the file is and not, with and without O_DIRECT: the file holds exactly
    /// those bytes, and zeros between the runs.
    #[test]
    fn runs_land_exactly_where_written() {
        let dir = std::env::temp_dir().join(format!("rankwise-odirect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let len = 3 * BUFFER + 5 * ALIGN + 123;
        // The same bytes at a page boundary, where the file offsets are, and one byte off.
        let mut storage = vec![0u8; len + ALIGN];
        let page = storage.as_ptr().align_offset(ALIGN);
        for (i, b) in storage[page..page + len].iter_mut().enumerate() {
            *b = (i * 7 + i / 4099) as u8;
        }
        let mut shifted = vec![0u8; len + ALIGN + 1];
        let off = shifted.as_ptr().align_offset(ALIGN) + 1;
        shifted[off..off + len].copy_from_slice(&storage[page..page + len]);
        let runs = [(0, ALIGN), (ALIGN + 1, 10), (2 * ALIGN - 3, BUFFER + 2 * ALIGN + 9), (BUFFER + 4 * ALIGN + 11, 2 * BUFFER + 17), (len - 100, 100)];
        for (direct, data) in [(true, &storage[page..page + len]), (true, &shifted[off..off + len]), (false, &storage[page..page + len])] {
            for piece in [1, 4093, ALIGN, BUFFER + 1] {
                std::fs::write(&path, []).unwrap();
                let mut w = DirectWriter::with(&path, direct).unwrap();
                let opened = w.direct.is_some();
                let mut straight = 0;
                for &(at, n) in &runs {
                    w.seek(at as u64).unwrap();
                    for p in data[at..at + n].chunks(piece) {
                        straight += w.takes(p) as usize;
                        w.push(p).unwrap();
                    }
                }
                w.write_out().unwrap();
                // Where the filesystem took O_DIRECT, it took every transfer: they were aligned;
                // pieces of a page or more went without a copy just where the memory is aligned.
                assert_eq!(w.direct.is_some(), opened, "piece {piece}");
                let page_aligned = data.as_ptr() as usize % ALIGN == 0;
                assert_eq!(straight > 0, opened && page_aligned && piece >= ALIGN, "direct {direct} piece {piece}");
                w.finish().unwrap();
                let got = std::fs::read(&path).unwrap();
                assert_eq!(got.len(), len, "direct {direct} piece {piece}");
                let mut want = vec![0u8; len];
                for &(at, n) in &runs {
                    want[at..at + n].copy_from_slice(&data[at..at + n]);
                }
                assert!(got == want, "direct {direct} piece {piece}: first difference at {:?}", got.iter().zip(&want).position(|(a, b)| a != b));
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
