//! Distributed dense matrix product `C = A B` by SUMMA over a 2-D grid of ranks.
//!
//! A, B and C (n x n) are split in blocks over a pr x pc rank grid (the runtime's
//! [`Decomposition`], fields without ghosts). For each panel of `block` columns of A (and the
//! same rows of B), the ranks that own it broadcast their part of it along their grid row (A)
//! and grid column (B); then every rank adds the product of the two panels it now holds to its
//! block of C. The broadcasts of the next panel run during that product (`summa.overlap`).
//! Local products go through the kernels: OpenBLAS `dgemm` on the CPU, the CUDA back end's
//! matmul on a GPU.
//!
//! A and B are pseudo-random functions of their global indices, the same on any rank count.
//! The check: `C x` against `A (B x)` for a random `x` (cheap, any n) and, for n up to
//! `check.gather_max`, C gathered on rank 0 against one serial `dgemm`. The `summa` line ends
//! with a checksum of every bit of C.
//!
//! ```text
//! rankwise run -n 4 matmul -i examples/inputs/matmul.toml --set n=2048
//! ```

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::topology::{Color, SimpleCommunicator};
use mpi::traits::*;
use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2, Ix2};
use rankwise::kernels::{cpu, CudaBackend, DeviceArray};
use rankwise::runtime::{self, BadInput, Config, Decomposition, Exit, Field, InitOptions, Runtime};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A relative error above this fails the run: a correct product is near 1e-15.
const TOLERANCE: f64 = 1e-10;

struct Inputs {
    n: usize,
    block: usize,
    overlap: bool,
    cuda: bool,
    grid: Option<Vec<usize>>,
    reps: usize,
    gather_max: usize,
    reference: bool,
}

fn inputs(cfg: &Config) -> Res<Inputs> {
    let n: usize = cfg.get_or("n", 1024)?;
    let block: usize = cfg.get_or("block", 256)?;
    let backend: String = cfg.get_or("backend", "cpu".to_string())?;
    let reps: usize = cfg.get_or("reps", 1)?;
    if n == 0 {
        return Err(cfg.invalid("n", "the matrix needs at least one row").into());
    }
    if block == 0 {
        return Err(cfg.invalid("block", "the panel width must be at least 1").into());
    }
    if reps == 0 {
        return Err(cfg.invalid("reps", "must be at least 1").into());
    }
    let cuda = match backend.as_str() {
        "cpu" => false,
        "cuda" => true,
        _ => return Err(cfg.invalid("backend", "expected \"cpu\" or \"cuda\"").into()),
    };
    let inputs = Inputs {
        n,
        block,
        overlap: cfg.get_or("summa.overlap", true)?,
        cuda,
        grid: cfg.get("grid")?,
        reps,
        gather_max: cfg.get_or("check.gather_max", 1024)?,
        reference: cfg.get_or("reference", false)?,
    };
    cfg.finish()?;
    Ok(inputs)
}

/// The SplitMix64 hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Entry (i, j) of matrix `which`: uniform in [-1, 1), from a hash of the indices.
fn entry(which: u64, i: usize, j: usize) -> f64 {
    let z = mix((which << 62) ^ ((i as u64) << 31) ^ j as u64);
    (z >> 11) as f64 * (2.0 / (1u64 << 53) as f64) - 1.0
}
const A: u64 = 0;
const B: u64 = 1;
const X: u64 = 2;

/// Where the local products run. On the GPU, C's block stays in device memory through the
/// whole product, and each pair of panels is uploaded once.
enum Local {
    Cpu,
    Cuda { gpu: CudaBackend, c: DeviceArray<Ix2>, t: DeviceArray<Ix2> },
}

impl Local {
    /// Collective. The back end for the inputs; CUDA must be usable on every rank, or every
    /// rank returns the same bad-input error.
    fn new(rt: &Runtime, cuda: bool, shape: (usize, usize)) -> Res<Local> {
        if !cuda {
            return Ok(Local::Cpu);
        }
        let ordinal = rt.gpu().ordinal();
        let gpu = match ordinal {
            Some(o) => CudaBackend::new(o).map_err(|e| e.to_string()),
            None => Err(rt.gpu().to_string()),
        };
        let mut all_ok = false;
        rt.world().all_reduce_into(&gpu.is_ok(), &mut all_ok, SystemOperation::logical_and());
        let gpu = match (gpu, all_ok) {
            (Ok(gpu), true) => gpu,
            (Err(why), _) => return Err(BadInput(format!("backend = \"cuda\" needs a GPU on every rank: {why}")).into()),
            (Ok(_), false) => return Err(BadInput("backend = \"cuda\" needs a GPU on every rank: another rank has none".into()).into()),
        };
        let (c, t) = (gpu.zeros(Ix2(shape.0, shape.1))?, gpu.zeros(Ix2(shape.0, shape.1))?);
        Ok(Local::Cuda { gpu, c, t })
    }

    fn name(&self) -> &'static str {
        match self {
            Local::Cpu => "cpu",
            Local::Cuda { .. } => "cuda",
        }
    }

    fn zero(&mut self, c: &mut ArrayViewMut2<f64>) -> Res<()> {
        match self {
            Local::Cpu => c.fill(0.0),
            Local::Cuda { gpu, c, .. } => gpu.fill(0.0, c)?,
        }
        Ok(())
    }

    /// `c += a b`. Done with `a` and `b` when it returns (a CUDA upload from pageable memory is
    /// staged before the call returns), so their buffers may be refilled at once.
    fn accumulate(&mut self, a: ArrayView2<f64>, b: ArrayView2<f64>, c: &mut ArrayViewMut2<f64>) -> Res<()> {
        match self {
            Local::Cpu => cpu::gemm(1.0, a, b, 1.0, c.view_mut())?,
            Local::Cuda { gpu, c, t } => {
                let (a, b) = (gpu.upload(a)?, gpu.upload(b)?);
                gpu.matmul(&a, &b, t)?;
                gpu.axpy(1.0, t, c)?;
            }
        }
        Ok(())
    }

    /// The finished block of C in `c` (host memory).
    fn finish(&mut self, c: &mut ArrayViewMut2<f64>) -> Res<()> {
        if let Local::Cuda { gpu, c: dev, .. } = self {
            c.assign(&gpu.download(dev)?);
        }
        Ok(())
    }
}

/// This rank's place in the rank grid: the communicators of its grid row and column, and the
/// ranges of global indices each grid row and column owns.
struct Grid {
    row_comm: SimpleCommunicator,
    col_comm: SimpleCommunicator,
    row_blocks: Vec<Range<usize>>,
    col_blocks: Vec<Range<usize>>,
}

impl Grid {
    /// Collective.
    fn new(d: &Decomposition) -> Grid {
        let (p, q) = (d.grid()[0], d.grid()[1]);
        let (i, j) = (d.coords()[0], d.coords()[1]);
        // Ranked by position: rank k of a row communicator is grid column k.
        let split = |color: usize, key: usize| {
            d.comm().split_by_color_with_key(Color::with_value(color as i32), key as i32).expect("every rank has a colour")
        };
        Grid {
            row_comm: split(i, j),
            col_comm: split(j, i),
            row_blocks: (0..p).map(|r| d.owned_by(d.rank_at(&[r, 0]))[0].clone()).collect(),
            col_blocks: (0..q).map(|c| d.owned_by(d.rank_at(&[0, c]))[1].clone()).collect(),
        }
    }
}

/// The grid row or column whose block holds index `k`.
fn owner_of(blocks: &[Range<usize>], k: usize) -> usize {
    blocks.iter().position(|r| r.contains(&k)).expect("k < n")
}

/// A panel: columns `k` of A (held by grid column `col`) and the same rows of B (grid row `row`).
struct Panel {
    k: Range<usize>,
    col: usize,
    row: usize,
}

/// The panels in order: `block` wide, cut where a grid column's or grid row's block ends.
fn panels(grid: &Grid, n: usize, block: usize) -> Vec<Panel> {
    let mut panels = vec![];
    let mut k0 = 0;
    while k0 < n {
        let (col, row) = (owner_of(&grid.col_blocks, k0), owner_of(&grid.row_blocks, k0));
        let k1 = (k0 + block).min(grid.col_blocks[col].end).min(grid.row_blocks[row].end);
        panels.push(Panel { k: k0..k1, col, row });
        k0 = k1;
    }
    panels
}

/// Collective. `c += a b` by SUMMA, with `a`, `b`, `c` this rank's blocks.
///
/// Pipelined: step t posts the broadcasts of panel t into one set of panel buffers, multiplies
/// panel t - 1 from the other set, then waits for the broadcasts; the sets swap each step.
/// With `summa.overlap` off it waits before multiplying instead (the same panels and sums).
fn summa(grid: &Grid, d: &Decomposition, inp: &Inputs, a: ArrayView2<f64>, b: ArrayView2<f64>, c: &mut ArrayViewMut2<f64>, local: &mut Local) -> Res<()> {
    let n = d.global_shape()[0];
    let (rows, cols) = (&d.owned()[0], &d.owned()[1]);
    let (m, l) = (rows.len(), cols.len());
    let (i, j) = (d.coords()[0], d.coords()[1]);
    let panels = panels(grid, n, inp.block);
    let widest = inp.block.min(n);
    let mut bufs = [[vec![0.0; m * widest], vec![0.0; widest * l]], [vec![0.0; m * widest], vec![0.0; widest * l]]];
    for t in 0..=panels.len() {
        // Panel t goes into bufs[t % 2] ("n", next); panel t - 1 is in the other ("c", current).
        let [even, odd] = &mut bufs;
        let ([an, bn], [ac, bc]) = if t % 2 == 0 { (even, &*odd) } else { (odd, &*even) };
        mpi::request::scope(|scope| -> Res<()> {
            let mut pending = Vec::new();
            if let Some(p) = panels.get(t) {
                let w = p.k.len();
                let (an, bn) = (&mut an[..m * w], &mut bn[..w * l]);
                if j == p.col {
                    let k = p.k.start - cols.start..p.k.end - cols.start;
                    ArrayViewMut2::from_shape((m, w), &mut *an)?.assign(&a.slice(s![.., k]));
                }
                if i == p.row {
                    let k = p.k.start - rows.start..p.k.end - rows.start;
                    ArrayViewMut2::from_shape((w, l), &mut *bn)?.assign(&b.slice(s![k, ..]));
                }
                pending.push(grid.row_comm.process_at_rank(p.col as i32).immediate_broadcast_into(scope, an));
                pending.push(grid.col_comm.process_at_rank(p.row as i32).immediate_broadcast_into(scope, bn));
            }
            if !inp.overlap {
                pending.drain(..).for_each(|r| r.wait_without_status());
            }
            let product = t.checked_sub(1).map_or(Ok(()), |prev| {
                let w = panels[prev].k.len();
                local.accumulate(ArrayView2::from_shape((m, w), &ac[..m * w])?, ArrayView2::from_shape((w, l), &bc[..w * l])?, c)
            });
            // Even after a failed product: a request must not outlive its scope.
            pending.drain(..).for_each(|r| r.wait_without_status());
            product
        })?;
    }
    local.finish(c)
}

/// Collective. `y = M x` for the distributed matrix `m` and a vector `x` that every rank holds
/// whole; `y` comes back whole on every rank.
fn matvec(d: &Decomposition, m: ArrayView2<f64>, x: &Array1<f64>) -> Array1<f64> {
    let (rows, cols) = (d.owned()[0].clone(), d.owned()[1].clone());
    let mut part = Array1::zeros(x.len());
    part.slice_mut(s![rows]).assign(&m.dot(&x.slice(s![cols])));
    let mut y = Array1::zeros(x.len());
    d.comm().all_reduce_into(part.as_slice().unwrap(), y.as_slice_mut().unwrap(), SystemOperation::sum());
    y
}

/// Collective. A barrier that sleeps while it waits, so that the ranks waiting on rank 0 leave
/// it the cores (a plain barrier spins, oversubscribed ranks too).
fn idle_barrier(comm: &SimpleCommunicator) {
    let mut req = comm.immediate_barrier();
    while let Err(pending) = req.test() {
        req = pending;
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Collective. A hash of every bit of the distributed matrix `m` (n x n), the same on any rank
/// grid for the same values: two products agree to the last bit when their checksums do.
fn checksum(d: &Decomposition, m: ArrayView2<f64>) -> u64 {
    let (n, rows, cols) = (d.global_shape()[1], &d.owned()[0], &d.owned()[1]);
    let part = m.indexed_iter().fold(0, |h, ((i, j), v)| h ^ mix(v.to_bits() ^ mix(((rows.start + i) * n + cols.start + j) as u64)));
    let mut all = 0;
    d.comm().all_reduce_into(&part, &mut all, SystemOperation::bitwise_xor());
    all
}

fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    let diff: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    let norm: f64 = want.iter().map(|w| w * w).sum();
    (diff / norm).sqrt()
}

fn gflops(n: usize, secs: f64) -> f64 {
    2.0 * (n as f64).powi(3) / secs / 1e9
}

fn as_2d<'a>(f: &'a Field<f64>) -> ArrayView2<'a, f64> {
    f.interior().into_dimensionality().expect("a 2-D field")
}

fn main() {
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> Res<Exit> {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?;
        let inp = inputs(&cfg)?;
        let (global, open) = ([inp.n, inp.n], [false, false]);
        let d = Arc::new(match &inp.grid {
            Some(g) => Decomposition::with_grid(rt, &global, g, &open)?,
            None => Decomposition::new(rt, &global, &open)?,
        });
        let grid = Grid::new(&d);
        let (mut a, mut b, mut c) = (Field::<f64>::new(&d, 0), Field::<f64>::new(&d, 0), Field::<f64>::new(&d, 0));
        a.fill_with(|i| entry(A, i[0], i[1]));
        b.fill_with(|i| entry(B, i[0], i[1]));
        let mut local = Local::new(rt, inp.cuda, (d.local_shape()[0], d.local_shape()[1]))?;

        // The best of `reps` products, each timed by its slowest rank.
        let mut best = f64::INFINITY;
        for _ in 0..inp.reps {
            let mut cv = c.interior_mut().into_dimensionality::<Ix2>()?;
            local.zero(&mut cv)?;
            rt.world().barrier();
            let t0 = Instant::now();
            summa(&grid, &d, &inp, as_2d(&a), as_2d(&b), &mut cv, &mut local)?;
            let mut secs = 0.0;
            rt.world().all_reduce_into(&t0.elapsed().as_secs_f64(), &mut secs, SystemOperation::max());
            best = best.min(secs);
        }
        let (p, q) = (d.grid()[0], d.grid()[1]);
        let sum = checksum(&d, as_2d(&c));
        if rt.is_root() {
            println!(
                "summa n={} grid={p}x{q} block={} backend={} ranks={} seconds={best:.4} gflops={:.2} checksum={sum:016x}",
                inp.n,
                inp.block,
                local.name(),
                rt.size(),
                gflops(inp.n, best)
            );
        }

        // C x against A (B x).
        let x = Array1::from_shape_fn(inp.n, |j| entry(X, 0, j));
        let (cx, abx) = (matvec(&d, as_2d(&c), &x), matvec(&d, as_2d(&a), &matvec(&d, as_2d(&b), &x)));
        let mut worst = relative_error(cx.as_slice().unwrap(), abx.as_slice().unwrap());
        if rt.is_root() {
            println!("check matvec rel_error={worst:.3e}");
        }
        // C against one serial product, on rank 0.
        if inp.n <= inp.gather_max {
            let (ga, gb, gc) = (a.gather(0), b.gather(0), c.gather(0));
            if let (Some(ga), Some(gb), Some(gc)) = (ga, gb, gc) {
                let mut want = Array2::zeros((inp.n, inp.n));
                cpu::matmul(ga.view().into_dimensionality()?, gb.view().into_dimensionality()?, want.view_mut())?;
                let err = relative_error(gc.as_slice().unwrap(), want.as_slice().unwrap());
                println!("check gather rel_error={err:.3e}");
                worst = worst.max(err);
            }
        }
        // The benchmark's reference: one rank's dgemm on the whole matrix.
        if inp.reference {
            if rt.is_root() {
                let ga = Array2::from_shape_fn((inp.n, inp.n), |(i, j)| entry(A, i, j));
                let gb = Array2::from_shape_fn((inp.n, inp.n), |(i, j)| entry(B, i, j));
                let mut gc = Array2::zeros((inp.n, inp.n));
                let mut secs = f64::INFINITY;
                for _ in 0..inp.reps {
                    let t0 = Instant::now();
                    cpu::matmul(ga.view(), gb.view(), gc.view_mut())?;
                    secs = secs.min(t0.elapsed().as_secs_f64());
                }
                let (g, r) = (gflops(inp.n, secs), secs / best);
                println!("reference dgemm n={} ranks=1 seconds={secs:.4} gflops={g:.2} ratio={r:.2}", inp.n);
            }
            idle_barrier(rt.world());
        }
        if rt.is_root() && (worst.is_nan() || worst > TOLERANCE) {
            return Err(format!("check failed: relative error {worst:.3e} > {TOLERANCE:e}").into());
        }
        Ok(Exit::Done)
    })
}
