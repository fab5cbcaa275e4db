//! Checkpoint bandwidth against the disk's own: `ckpt-bench [--set gib=G] [--set dir=D]
//! [--set reps=R]` under mpirun (see scripts/bench-ckpt.sh).
//!
//! The field is 2-D `[rows, 16384]` f64 with one ghost layer (as heat's), split into row slabs. Rank 0 first writes the same
//! number of bytes sequentially to one plain file (write + fsync, through the page cache and past
//! it with `O_DIRECT`: `raw_write_direct`) and reads them back cold into
//! one 8 MiB buffer; then every rank reads its rows of that file cold into memory it allocates
//! just then, as a hand-written restart reads into its fresh arrays (the first touch of each page
//! is part of its time, as it is of a restore's: `fresh_ratio`); then
//! all ranks write a checkpoint (create, collective write, checksum, commit with fsync and rename)
//! and restore it (collective read and checksum verification), cold too: page-cache copies are
//! dropped with posix_fadvise after each fsync. The same checkpoint is also written in the
//! background (`Snapshot::submit`, then `flush::wait`): the flush is the time from submit to
//! committed less the snapshot's copy (the stall, printed too; the directory keeps its buffers
//! from one repetition to the next, as in a run). The best of R repetitions of each is printed as
//! GB/s and as a ratio to the raw figure measured in the same run.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mpi::traits::*;
use rankwise::io::{flush, Checkpoint, CheckpointDir};
use rankwise::runtime::{self, BadInput, Config, Decomposition, Exit, Field, InitOptions, Runtime, Threading};

const COLS: usize = 16384;

type R = Result<Exit, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    let opts = InitOptions { preferred: Some(Threading::Multiple), ..InitOptions::default() };
    runtime::run(opts, |rt: &mut Runtime| -> R {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?;
        let gib: f64 = cfg.get_or("gib", 1.0)?;
        let dir = PathBuf::from(cfg.get_or("dir", "target/bench-ckpt".to_string())?);
        let reps: usize = cfg.get_or("reps", 2)?;
        cfg.finish()?;
        if gib <= 0.0 {
            return Err(BadInput(format!("gib must be positive, got {gib}")).into());
        }
        let w = rt.world();
        let (rank, size) = (w.rank() as usize, w.size() as usize);
        let rows = ((gib * (1u64 << 30) as f64) as usize / (COLS * 8)).max(size);
        let bytes = rows * COLS * 8;
        let d = Arc::new(Decomposition::with_grid(rt, &[rows, COLS], &[size, 1], &[false, false])?);
        let mut u = Field::<f64>::new(&d, 1);
        u.fill_with(|i| (i[0] * COLS + i[1]) as f64 * 1e-3);
        let mut back = Field::<f64>::new(&d, 1);
        let r0 = d.owned()[0].start;
        let ckdir = CheckpointDir::new(dir.join("ckpt")).keep(1);
        let bgdir = CheckpointDir::new(dir.join("async")).keep(1).asynchronous(true);
        if rank == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        let (mut raw_w, mut raw_r, mut ck_w, mut ck_r, mut slab_r, mut bg_w) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX);
        let (mut stall, mut raw_fresh, mut raw_dw) = (f64::MAX, f64::MAX, f64::MAX);
        for rep in 0..reps {
            if rank == 0 {
                let raw = dir.join("raw.bin");
                let block = u.interior().to_owned();
                let data = block.as_slice().unwrap();
                let chunk = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), data.len() * 8) };
                raw_w = raw_w.min(timed(|| raw_write(&raw, chunk, bytes, false))?);
                raw_dw = raw_dw.min(timed(|| raw_write(&raw, chunk, bytes, true))?);
                raw_r = raw_r.min(timed(|| raw_read(&raw, bytes))?);
            }
            // A hand-written restart: every rank reads its rows of the raw file into memory it
            // has just allocated (its field), in parallel.
            w.barrier();
            let t = Instant::now();
            let part = fresh_read(&dir.join("raw.bin"), r0 * COLS * 8, u.interior().len() * 8)?;
            w.barrier();
            raw_fresh = raw_fresh.min(t.elapsed().as_secs_f64());
            drop(part);
            w.barrier();
            if rank == 0 {
                std::fs::remove_file(dir.join("raw.bin"))?;
            }
            // Each write goes to free space, as the raw one does: the previous checkpoint, which
            // the directory would delete once this one is committed, is deleted now, untimed.
            clear(w, &dir.join("ckpt"))?;
            let t = Instant::now();
            let mut ck = ckdir.create(w, rep as u64, 0.0)?;
            ck.write_field("u", &u)?;
            let path = ck.commit()?;
            w.barrier();
            ck_w = ck_w.min(t.elapsed().as_secs_f64());
            if rank == 0 {
                drop_cache(&std::fs::File::open(&path)?);
            }
            w.barrier();
            // Into a field, as a restart does.
            back.interior_mut().fill(-1.0);
            let t = Instant::now();
            let got = ckdir.restore(w, |c| c.read_field("u", &mut back))?;
            w.barrier();
            ck_r = ck_r.min(t.elapsed().as_secs_f64());
            got.ok_or("no checkpoint to restore")?;
            assert!(back.interior() == u.interior(), "restored data differ");
            // The same read without the checksum, to show what verification costs.
            if rank == 0 {
                drop_cache(&std::fs::File::open(&path)?);
            }
            w.barrier();
            let t = Instant::now();
            let ck = Checkpoint::open(w, &path)?;
            ck.read_slab_into("u", &[r0, 0], back.interior_mut())?;
            w.barrier();
            slab_r = slab_r.min(t.elapsed().as_secs_f64());
            drop(ck);
            if rt.threading() == Threading::Multiple {
                clear(w, &dir.join("async"))?;
                let t = Instant::now();
                let mut s = bgdir.snapshot(rep as u64, 0.0);
                s.write_field("u", &u);
                s.submit(w)?;
                let copied = t.elapsed().as_secs_f64();
                flush::wait()?;
                w.barrier();
                stall = stall.min(copied);
                bg_w = bg_w.min(t.elapsed().as_secs_f64() - copied);
            }
        }
        if rank == 0 {
            let gbs = |t: f64| bytes as f64 / t / 1e9;
            println!(
                "ranks={size} bytes={bytes} raw_write={:.2}GB/s raw_write_direct={:.2}GB/s ckpt_write={:.2}GB/s write_ratio={:.2} (direct {:.2}) raw_read={:.2}GB/s raw_read_fresh={:.2}GB/s ckpt_read={:.2}GB/s read_ratio={:.2} fresh_ratio={:.2} (unverified {:.2}GB/s ratio {:.2}) async_write={:.2}GB/s async_ratio={:.2} (direct {:.2}) (stall {:.3}s)",
                gbs(raw_w), gbs(raw_dw), gbs(ck_w), raw_w / ck_w, raw_dw / ck_w, gbs(raw_r), gbs(raw_fresh), gbs(ck_r), raw_r / ck_r, raw_fresh / ck_r, gbs(slab_r), raw_r / slab_r, gbs(bg_w), raw_w / bg_w, raw_dw / bg_w, stall
            );
            std::fs::remove_dir_all(dir.join("ckpt"))?;
            std::fs::remove_dir_all(dir.join("async")).ok();
        }
        Ok(Exit::Done)
    })
}

/// Collective. Delete the checkpoints in `dir` (rank 0), then wait for everyone.
fn clear(w: &mpi::topology::SimpleCommunicator, dir: &Path) -> std::io::Result<()> {
    if w.rank() == 0 && dir.exists() {
        for e in std::fs::read_dir(dir)? {
            std::fs::remove_file(e?.path())?;
        }
    }
    w.barrier();
    Ok(())
}

fn timed(f: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

/// `bytes` to a fresh file from `chunk` over and over, in 8 MiB writes, then fsync; with
/// `direct`, past the page cache (`O_DIRECT`, from an aligned buffer, as the checkpoint's writes).
fn raw_write(path: &Path, chunk: &[u8], bytes: usize, direct: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = if direct { libc::O_DIRECT } else { 0 };
    let mut f = std::fs::File::options().write(true).create(true).truncate(true).custom_flags(flags).open(path)?;
    let mut aligned = vec![0u8; (8 << 20) + 4096];
    let at = aligned.as_ptr().align_offset(4096);
    let aligned = &mut aligned[at..at + (8 << 20)];
    let mut left = bytes;
    while left > 0 {
        for piece in chunk.chunks(8 << 20) {
            let piece = if direct && piece.len() % 4096 == 0 {
                aligned[..piece.len()].copy_from_slice(piece);
                &aligned[..piece.len()]
            } else {
                piece
            };
            let n = piece.len().min(left);
            f.write_all(&piece[..n])?;
            left -= n;
            if left == 0 {
                break;
            }
        }
    }
    f.sync_all()?;
    drop_cache(&f);
    Ok(())
}

fn raw_read(path: &Path, bytes: usize) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 8 << 20];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, bytes);
    Ok(())
}

/// `len` bytes from `offset` of `path` (its cached pages dropped first) into fresh memory, in
/// 8 MiB reads: the page faults of a first touch are part of the time, as in a restart.
fn fresh_read(path: &Path, offset: usize, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path)?;
    drop_cache(&f);
    let mut buf = vec![0u8; len];
    for (k, piece) in buf.chunks_mut(8 << 20).enumerate() {
        f.read_exact_at(piece, (offset + k * (8 << 20)) as u64)?;
    }
    Ok(buf)
}

/// Forget the file's (clean) pages so the next read comes from the disk.
fn drop_cache(f: &std::fs::File) {
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}
