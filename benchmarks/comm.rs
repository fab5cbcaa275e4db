//! The measured half of the scale model (docs/scaling.md): what messages, reductions,
//! checkpoints and heat steps cost on this machine, one `POINT` line per measurement.
//!
//! ```text
//! mpirun -np 2 comm-bench [--set parts=pingpong,exchange,allreduce,heat,ckpt] [--set tiny=true]
//!                         [--set dir=target/bench-scaling]
//! ```
//!
//! - `pingpong`: ranks 0 and 1 bounce one message (8 B to 2 MiB) with rsmpi's `send` and
//!   `receive_into` (MPI_Send, MPI_Recv); one-way time.
//! - `exchange`: `Field::exchange` (ghost width 1, faces) on `[4 x m]` blocks split over a
//!   `[np, 1]` grid (m = 1 to 256 Ki, the ping-pong's sizes): one message of `8 m` bytes per
//!   neighbour (a row: it goes straight from the field into the neighbour's ghost cells).
//! - `allreduce`: a sum over 1 to 65536 doubles, all ranks.
//! - `heat2d`, `heat3d`: `kernels::cpu::heat_step_2d/3d` on one block per rank, all ranks at once
//!   (so the cores share the memory bus as in a run).
//! - `ckpt_write`, `ckpt_read`: one Field through `io::CheckpointDir` (create, collective write,
//!   checksum, commit with fsync; restore with verification, from the disk: the page cache is
//!   dropped before each read).
//!
//! Calls are timed in batches, as IMB times them (messages exactly as IMB-MPI1 does, see
//! `per_call_imb`); a point gives the fastest batch's time per call
//! (`seconds`, what the model fits: the machine is shared, and slower batches hold other
//! processes' time slices) and the median batch's, each the slowest rank's. Checkpoints: three of each. Heat blocks are larger than the caches.
//! The transport is read from `OMPI_MCA_btl` (`shm` for vader, `tcp`); scripts/bench-scaling.sh
//! runs this at 1, 2 and 4 ranks over both, and `scale-model` fits and extrapolates the points.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use ndarray::{Array2, Array3};
use rankwise::io::CheckpointDir;
use rankwise::kernels::cpu;
use rankwise::runtime::{self, BadInput, Config, Decomposition, Exit, Field, InitOptions, Runtime, Stencil};

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const PARTS: [&str; 5] = ["pingpong", "exchange", "allreduce", "heat", "ckpt"];

/// How much to measure: the full run or the tiny one the tests use.
struct Plan {
    tiny: bool,
    /// Seconds the calls of one measurement should take, and the fewest calls.
    time_s: f64,
    min_calls: usize,
}

impl Plan {
    fn pick<T: Copy>(&self, full: &[T], tiny: &[T]) -> Vec<T> {
        if self.tiny { tiny } else { full }.to_vec()
    }
}

fn main() {
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> R<Exit> {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?;
        let parts: String = cfg.get_or("parts", PARTS.join(","))?;
        let tiny: bool = cfg.get_or("tiny", false)?;
        let dir = PathBuf::from(cfg.get_or("dir", "target/bench-scaling".to_string())?);
        cfg.finish()?;
        let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
        if let Some(p) = parts.iter().find(|p| !PARTS.contains(p)) {
            return Err(BadInput(format!("unknown part {p:?} (the parts are {})", PARTS.join(","))).into());
        }
        // Tiny runs still take enough calls for one to miss the other processes (the tests run beside builds).
        let plan = Plan { tiny, time_s: if tiny { 0.02 } else { 0.1 }, min_calls: if tiny { 20 } else { 5 } };
        let btl = std::env::var("OMPI_MCA_btl").unwrap_or_default();
        let transport = if btl.contains("tcp") { "tcp" } else if btl.contains("vader") || btl.contains("sm") { "shm" } else { "default" };
        let out = Out { root: rt.is_root(), tag: format!("transport={transport} np={}", rt.size()) };
        let w = rt.world();
        for part in parts {
            match part {
                "pingpong" if rt.size() >= 2 => pingpong(w, &plan, &out),
                "exchange" if rt.size() >= 2 => exchange(rt, &plan, &out)?,
                "allreduce" => allreduce(w, &plan, &out),
                "heat" => heat(w, &plan, &out)?,
                "ckpt" => ckpt(rt, &plan, &out, &dir)?,
                _ => out.note(&format!("{part} needs 2 ranks or more: skipped")),
            }
        }
        Ok(Exit::Done)
    })
}

/// Rank 0's output.
struct Out {
    root: bool,
    tag: String,
}

impl Out {
    fn point(&self, series: &str, fields: &str, t: Time) {
        if self.root {
            println!("POINT series={series} {} {fields} seconds={:.6e} median={:.6e}", self.tag, t.best, t.median);
        }
    }
    fn note(&self, text: &str) {
        if self.root {
            println!("NOTE {} {text}", self.tag);
        }
    }
}

/// Collective. Seconds per call of `f`, measured as IMB measures: many calls timed together
/// (a per-call clock read costs as much as an 8-byte message), here in `BATCHES` batches after
/// one warm-up and one probe call, as many calls as fit in the plan's time. Gives the fastest
/// batch's mean (what the machine does when no other process interrupts it: this one is shared)
/// and the median batch's, each the slowest rank's.
fn per_call(w: &SimpleCommunicator, plan: &Plan, mut f: impl FnMut()) -> Time {
    const BATCHES: usize = 9;
    f();
    w.barrier();
    let t = Instant::now();
    f();
    let probe = slowest(w, t.elapsed().as_secs_f64());
    let calls = ((plan.time_s / probe.max(1e-9)) as usize).clamp(plan.min_calls, 1_000_000);
    let batch = calls.div_ceil(BATCHES);
    w.barrier();
    let mut means: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            (0..batch).for_each(|_| f());
            t.elapsed().as_secs_f64() / batch as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    Time { best: slowest(w, means[0]), median: slowest(w, means[BATCHES / 2]) }
}

/// Collective. Seconds per call of `f`, a message pattern of `bytes` per message, timed as
/// IMB-MPI1 times its PingPong (and `benchmarks/pingpong.c`, the reference, does): a warm-up
/// sample, then `SAMPLES` samples, each after a barrier, of 1000 calls timed together (fewer
/// from 40 KiB on, so that a sample moves at most 40 MiB; a tenth in tiny runs). Gives the
/// fastest sample and the median one, each the slowest rank's.
fn per_call_imb(w: &SimpleCommunicator, plan: &Plan, bytes: usize, mut f: impl FnMut()) -> Time {
    const SAMPLES: usize = 9;
    let calls = ((40 << 20) / bytes.max(1)).clamp(1, 1000) / if plan.tiny { 10 } else { 1 };
    let calls = calls.max(1);
    let mut means: Vec<f64> = (0..=SAMPLES)
        .map(|_| {
            w.barrier();
            let t = Instant::now();
            (0..calls).for_each(|_| f());
            slowest(w, t.elapsed().as_secs_f64() / calls as f64)
        })
        .skip(1)
        .collect();
    means.sort_by(f64::total_cmp);
    Time { best: means[0], median: means[SAMPLES / 2] }
}

#[derive(Clone, Copy)]
struct Time {
    best: f64,
    median: f64,
}

impl std::ops::Div<f64> for Time {
    type Output = Time;
    fn div(self, d: f64) -> Time {
        Time { best: self.best / d, median: self.median / d }
    }
}

/// Collective. The largest of the ranks' `x`.
fn slowest(w: &SimpleCommunicator, x: f64) -> f64 {
    let mut max = 0.0;
    w.all_reduce_into(&x, &mut max, SystemOperation::max());
    max
}

fn pingpong(w: &SimpleCommunicator, plan: &Plan, out: &Out) {
    let rank = w.rank();
    for bytes in plan.pick(&[8, 32, 128, 512, 2 << 10, 8 << 10, 32 << 10, 128 << 10, 512 << 10, 2 << 20], &[8, 512, 32 << 10]) {
        let mut buf = vec![0u8; bytes];
        let round_trip = per_call_imb(w, plan, bytes, || match rank {
            0 => {
                w.process_at_rank(1).send(&buf[..]);
                w.process_at_rank(1).receive_into(&mut buf[..]);
            }
            1 => {
                w.process_at_rank(0).receive_into(&mut buf[..]);
                w.process_at_rank(0).send(&buf[..]);
            }
            _ => {}
        });
        out.point("pingpong", &format!("msgs=1 bytes={bytes}"), round_trip / 2.0);
    }
}

fn exchange(rt: &Runtime, plan: &Plan, out: &Out) -> R<()> {
    let np = rt.size();
    for m in plan.pick(&[1, 4, 16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10], &[8, 512, 4 << 10]) {
        let d = Arc::new(Decomposition::with_grid(rt, &[4 * np, m], &[np, 1], &[false, false])?);
        // The messages of the busiest rank: one per neighbour along the split axis.
        let msgs = [-1, 1].iter().filter(|&&s| d.neighbour(&[s, 0]).is_some()).count();
        let msgs = slowest(rt.world(), msgs as f64) as usize;
        let mut f = Field::<f64>::new(&d, 1);
        let value = move |row: isize, col: isize| (row * m as isize + col) as f64;
        f.fill_with(|g| value(g[0] as isize, g[1] as isize));
        let t = per_call_imb(rt.world(), plan, 8 * m, || f.exchange(Stencil::Star));
        // What was timed filled the ghost rows from the neighbours.
        let o = f.origin();
        for (side, row) in [(-1, o[0]), (1, o[0] + f.data().shape()[0] as isize - 1)] {
            if d.neighbour(&[side, 0]).is_some() {
                let ghosts = f.region(&[side, 0]);
                if ghosts.iter().enumerate().any(|(j, &v)| v != value(row, j as isize)) {
                    return Err(format!("exchange of {m} columns: the ghost row {row} was not filled").into());
                }
            }
        }
        out.point("exchange", &format!("msgs={msgs} bytes={}", 8 * m), t);
    }
    Ok(())
}

fn allreduce(w: &SimpleCommunicator, plan: &Plan, out: &Out) {
    for n in plan.pick(&[1, 4, 16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10], &[1, 64, 4 << 10]) {
        let x = vec![1.0f64; n];
        let mut y = vec![0.0f64; n];
        let t = per_call(w, plan, || w.all_reduce_into(&x[..], &mut y[..], SystemOperation::sum()));
        out.point("allreduce", &format!("bytes={}", 8 * n), t);
    }
}

/// Explicit heat steps on one block per rank (interior `n^dim` cells, one ghost layer).
fn heat(w: &SimpleCommunicator, plan: &Plan, out: &Out) -> R<()> {
    const NU_DT: f64 = 0.1;
    for n in plan.pick(&[1024, 1448, 2048, 2896], &[64, 128]) {
        let mut u = Array2::from_shape_fn((n + 2, n + 2), |(i, j)| ((i * 7 + j * 13) % 17) as f64);
        let mut v = u.clone();
        cpu::heat_step_2d(u.view(), v.view_mut(), 1, [1.0; 2], NU_DT)?;
        let t = per_call(w, plan, || {
            cpu::heat_step_2d(u.view(), v.view_mut(), 1, [1.0; 2], NU_DT).expect("checked above");
            std::mem::swap(&mut u, &mut v);
        });
        out.point("heat2d", &format!("cells={}", n * n), t);
    }
    for n in plan.pick(&[100, 128, 160, 192], &[16, 32]) {
        let mut u = Array3::from_shape_fn((n + 2, n + 2, n + 2), |(i, j, k)| ((i * 7 + j * 13 + k) % 17) as f64);
        let mut v = u.clone();
        cpu::heat_step_3d(u.view(), v.view_mut(), 1, [1.0; 3], NU_DT)?;
        let t = per_call(w, plan, || {
            cpu::heat_step_3d(u.view(), v.view_mut(), 1, [1.0; 3], NU_DT).expect("checked above");
            std::mem::swap(&mut u, &mut v);
        });
        out.point("heat3d", &format!("cells={}", n * n * n), t);
    }
    Ok(())
}

/// Checkpoints of one 2-D field of `mib` MiB in all, split into row slabs.
fn ckpt(rt: &Runtime, plan: &Plan, out: &Out, dir: &std::path::Path) -> R<()> {
    const COLS: usize = 4096;
    let w = rt.world();
    let cat = CheckpointDir::new(dir.join("ckpt")).keep(1);
    let mut step = 0;
    for mib in plan.pick(&[4, 16, 64, 256], &[1, 64]) {
        let rows = (mib << 20) / (8 * COLS);
        let d = Arc::new(Decomposition::with_grid(rt, &[rows, COLS], &[rt.size(), 1], &[false, false])?);
        let mut f = Field::<f64>::new(&d, 1);
        f.fill_with(|g| (g[0] * COLS + g[1]) as f64);
        let (mut write, mut read) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            step += 1;
            w.barrier();
            let t = Instant::now();
            let mut ck = cat.create(w, step, 0.0)?;
            ck.write_field("u", &f)?;
            let path = ck.commit()?;
            write.push(slowest(w, t.elapsed().as_secs_f64()));
            if rt.is_root() {
                // Forget the file's clean pages: the read below comes from the disk, as a restart's.
                let file = std::fs::File::open(&path)?;
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
            w.barrier();
            let t = Instant::now();
            let got = cat.restore(w, |c| c.read_field("u", &mut f))?;
            read.push(slowest(w, t.elapsed().as_secs_f64()));
            got.ok_or("the checkpoint just written is not there")?;
        }
        let bytes = format!("bytes={}", rows * COLS * 8);
        out.point("ckpt_write", &bytes, best_and_median(write));
        out.point("ckpt_read", &bytes, best_and_median(read));
    }
    if rt.is_root() {
        std::fs::remove_dir_all(dir.join("ckpt"))?;
    }
    Ok(())
}

fn best_and_median(mut t: Vec<f64>) -> Time {
    t.sort_by(f64::total_cmp);
    Time { best: t[0], median: t[t.len() / 2] }
}
