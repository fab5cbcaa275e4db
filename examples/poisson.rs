//! The Poisson equation `-lap u = f` on the unit square or cube with `u = 0` on the boundary,
//! solved by matrix-free conjugate gradients on a distributed field.
//!
//! Cell-centred grid of `n` cells per side (as in the heat example); the Dirichlet condition
//! lives in the ghost cells (`ghost = -inside`, so `u` vanishes on the cell face). `f` comes from
//! the manufactured solution `u = prod_i x_i (1 - x_i)`, which excites the whole spectrum (a
//! single sine mode is an eigenvector of the discrete operator: CG would solve it in one step).
//! The final line gives the CG iterations, the relative residual, the L2 error against that
//! solution (second order in `1/n`), a checksum of the solution's bits and the time per iteration
//! (wall and CPU, the slowest rank's).
//!
//! The CG scalars are reproducible by default (`cg.dot = "rows"`): every row of the grid (the
//! last axis, never split over ranks here) gets its partial sum in a fixed order inside the
//! fused vector loops, and the row sums are added exactly ([`ExactSum`]). So the iterates, the
//! iteration count and the checksum are bit-identical on any rank count, at the cost of a plain
//! sum. `cg.dot = "exact"` takes the correctly rounded [`reduce::reproducible_dot`] instead (any
//! decomposition; a pass of its own at about 3 ns per value), `cg.dot = "plain"` a plain MPI sum
//! (its last bits depend on the rank count).
//!
//! ```text
//! rankwise run -n 4 poisson -i examples/inputs/poisson.toml --set n=512
//! ```

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::*;
use rayon::prelude::*;
use ndarray::{ArrayViewD, Axis, Ix2, Ix3, Slice};
use rankwise::io::checksum;
use rankwise::kernels::cpu;
use rankwise::runtime::{self, reduce, Config, Decomposition, Exit, ExactSum, Field, InitOptions, Runtime, Stencil};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How the CG scalars are summed over the cells.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dot {
    /// Row partial sums in the fused loops, rows added exactly: reproducible and cheap.
    Rows,
    /// `reduce::reproducible_dot`: correctly rounded, a separate pass.
    Exact,
    /// Row partial sums added in `f64`, then by MPI: last bits depend on the rank count.
    Plain,
}

struct Inputs {
    n: usize,
    dim: usize,
    tol: f64,
    max_iter: u64,
    dot: Dot,
    fuse: bool,
    progress_every: u64,
}

fn inputs(cfg: &Config) -> Res<Inputs> {
    let n: usize = cfg.get_or("n", 64)?;
    let dim: usize = cfg.get_or("dim", 2)?;
    let backend: String = cfg.get_or("backend", "cpu".to_string())?;
    let tol: f64 = cfg.get_or("cg.tol", 1e-10)?;
    let dot: String = cfg.get_or("cg.dot", "rows".to_string())?;
    if n < 2 {
        return Err(cfg.invalid("n", "need at least 2 cells per side").into());
    }
    if !(2..=3).contains(&dim) {
        return Err(cfg.invalid("dim", "must be 2 or 3").into());
    }
    if backend != "cpu" {
        return Err(cfg.invalid("backend", "this example runs on the CPU back end only, for now").into());
    }
    if !(tol >= 0.0 && tol < 1.0) {
        return Err(cfg.invalid("cg.tol", "must be in [0, 1) (0 runs exactly cg.max_iter iterations)").into());
    }
    let dot = match dot.as_str() {
        "rows" => Dot::Rows,
        "exact" => Dot::Exact,
        "plain" => Dot::Plain,
        _ => return Err(cfg.invalid("cg.dot", "must be rows, exact or plain").into()),
    };
    let inputs = Inputs {
        n,
        dim,
        tol,
        // CG converges in at most as many iterations as unknowns (in exact arithmetic).
        max_iter: cfg.get_or("cg.max_iter", 10 * n.pow(dim as u32 - 1) as u64)?,
        dot,
        fuse: cfg.get_or("cg.fuse", true)?,
        progress_every: cfg.get_or("progress.every", 0)?,
    };
    cfg.finish()?;
    Ok(inputs)
}

fn main() {
    // This thread joins rayon's pool, so a kernel call on it runs there and then instead of being
    // handed to a pool thread and waited for (a wake-up of some 10 us per call, and CG makes
    // several per tile).
    runtime::run(InitOptions { join_pool: true, ..InitOptions::default() }, |rt: &mut Runtime| -> Res<Exit> {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?;
        let inp = inputs(&cfg)?;
        let global = vec![inp.n; inp.dim];
        // Slabs along the first axis: rows (the last axis) stay whole on one rank, so a row's
        // partial sum does not depend on the rank count.
        let mut grid = vec![1; inp.dim];
        grid[0] = rt.size();
        let d = Arc::new(Decomposition::with_grid(rt, &global, &grid, &vec![false; inp.dim])?);
        let h = 1.0 / inp.n as f64;
        // The bubble b(x) = x (1 - x) per axis, at cell centres: u = prod b, -lap u = sum_i 2 prod_{j != i} b.
        let bubble = |k: usize| -> f64 {
            let x = (k as f64 + 0.5) * h;
            x * (1.0 - x)
        };
        let exact = |i: &[usize]| -> f64 { i.iter().map(|&k| bubble(k)).product() };
        let rhs = |i: &[usize]| -> f64 {
            (0..i.len()).map(|a| 2.0 * i.iter().enumerate().filter(|&(b, _)| b != a).map(|(_, &k)| bubble(k)).product::<f64>()).sum()
        };
        let mut cg = Cg::new(&d, h, inp.dot, inp.fuse);
        // x = 0, so the residual starts as the right-hand side.
        cg.r.fill_with(rhs);

        d.comm().barrier();
        let (t0, cpu0) = (Instant::now(), cpu_seconds());
        let (iterations, residual) = cg.solve(inp.tol, inp.max_iter, |k, res| {
            if rt.is_root() && inp.progress_every > 0 && k % inp.progress_every == 0 {
                log::info!("iteration {k} residual {res:.3e}");
            }
        })?;
        let seconds = t0.elapsed().as_secs_f64();
        let (cpu, mut cpu_max) = (cpu_seconds() - cpu0, 0.0);
        d.comm().all_reduce_into(&cpu, &mut cpu_max, SystemOperation::max());
        if rt.is_root() && inp.tol > 0.0 && residual > inp.tol {
            log::warn!("CG stopped at cg.max_iter = {iterations} with residual {residual:.3e} > cg.tol");
        }

        // Error against the manufactured solution (exact sum: the same on any rank count).
        let e = &mut cg.q;
        e.fill_with(exact);
        e.interior_mut().zip_mut_with(&cg.x.interior(), |e, x| *e = x - *e);
        let l2 = (reduce::reproducible_dot(e, e) / (inp.n.pow(inp.dim as u32) as f64)).sqrt();
        // Position-keyed, mixed per value and summed over ranks: the same on any rank count, and
        // any changed bit changes it; no gather.
        let sum = checksum::field_checksum(&cg.x);
        if rt.is_root() {
            let per_iter = |t: f64| t / iterations.max(1) as f64;
            println!(
                "final iterations={iterations} residual={residual:.6e} l2_error={l2:.6e} checksum={sum:016x} s_per_iter={:.6e} cpu_per_iter={:.6e} dot={}",
                per_iter(seconds),
                per_iter(cpu_max),
                format!("{:?}", inp.dot).to_lowercase()
            );
        }
        Ok(Exit::Done)
    })
}

/// CPU time of this process: unlike the wall time, it leaves out the time the rank waited for a
/// core on a loaded machine.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Cells per tile: the vector loops of one CG step run tile by tile, so that what one loop
/// leaves (a tile of four fields) is still in the L2 cache for the next.
const TILE_CELLS: usize = 1 << 14;

/// Conjugate gradients for `A = -lap` (Dirichlet ghosts) on slabs; `q` holds `lap(p) = -A p`.
struct Cg {
    x: Field<f64>,
    r: Field<f64>,
    p: Field<f64>,
    q: Field<f64>,
    h: f64,
    dot: Dot,
    /// Partial sums per row of the local block (rows in C order), reused every iteration.
    rows: Vec<f64>,
    /// Planes (first-axis layers) per tile.
    tile: usize,
    /// The 2-D step's runs of rows, one sweep each (empty: the step of separate loops, see
    /// [`Cg::solve`]).
    runs: Vec<Range<usize>>,
}

impl Cg {
    /// `fuse`: the two sweeps per iteration where they apply (see [`Cg::solve`]).
    fn new(d: &Arc<Decomposition>, h: f64, dot: Dot, fuse: bool) -> Cg {
        let shape = d.local_shape();
        let plane: usize = shape[1..].iter().product();
        let field = || Field::new(d, 1);
        Cg {
            x: field(),
            r: field(),
            p: field(),
            q: field(),
            h,
            dot,
            rows: vec![0.0; shape[0] * plane / shape[shape.len() - 1]],
            tile: (TILE_CELLS / plane).max(1),
            runs: match (fuse, shape.len(), dot) {
                (true, 2, Dot::Rows | Dot::Plain) => runs(shape[0], rayon::current_num_threads()),
                _ => Vec::new(),
            },
        }
    }

    /// Collective. Solve from `x = 0` with `r` set to the right-hand side, until the residual
    /// falls below `tol` times the initial one or after `max_iter` iterations; `progress` sees
    /// each iteration's relative residual. Returns the iterations and the relative residual.
    ///
    /// In 2-D with row sums, an iteration is two sweeps over the fields ([`Cg::direction_p_ap`]
    /// and [`Cg::step`]), which move 8 values per cell where three separate loops (`q = A p`
    /// with `p . q`, `x` and `r` with `r . r`, then `p`) move 12: `p = r + beta p` moves into
    /// the next iteration's stencil sweep, and `q` is never stored but made again, a row at a
    /// time, where `r` needs it. The arithmetic of each value is the same as in the separate
    /// loops (which 3-D and `cg.dot = "exact"` keep), so are the bits.
    fn solve(&mut self, tol: f64, max_iter: u64, mut progress: impl FnMut(u64, f64)) -> Res<(u64, f64)> {
        let fused = !self.runs.is_empty();
        if !fused {
            cpu::copy(self.r.interior(), self.p.interior_mut())?;
        }
        let mut rr = self.rr(None)?;
        let rr0 = rr;
        let mut k = 0;
        // The fused sweeps' pending `beta` (none yet: the first direction is `p = r`).
        let mut beta = None;
        while k < max_iter && rr > tol * tol * rr0 {
            let alpha = rr / if fused { self.direction_p_ap(beta)? } else { self.p_ap()? };
            let rr_new = if fused { self.step(alpha)? } else { self.rr(Some(alpha))? };
            if fused {
                beta = Some(rr_new / rr);
            } else {
                self.next_direction(rr_new / rr);
            }
            rr = rr_new;
            k += 1;
            progress(k, (rr / rr0).sqrt());
        }
        Ok((k, if rr0 > 0.0 { (rr / rr0).sqrt() } else { 0.0 }))
    }

    /// Collective. The 2-D first sweep: `p = r + beta p` (`p = r` without `beta`), Dirichlet
    /// ghosts, then `p . A p` from `q = lap(p)` made a row at a time, in the same loop as the
    /// update of the next row (the last one the stencil needs), so each value of `p` is loaded
    /// once. The first and last row of each run go first, so that the halo exchange is under
    /// way and the runs can sweep side by side; the two rows next to the neighbours' ghosts wait
    /// for the exchange.
    fn direction_p_ap(&mut self, beta: Option<f64>) -> Res<f64> {
        let shape = self.p.decomposition().local_shape().to_vec();
        let (nx, w) = (shape[0], shape[1] + 2);
        let (first, last) = edges(&self.p);
        {
            let r = self.r.data().to_slice().expect("a field's block is contiguous");
            let p = self.p.data_mut().into_slice().expect("a field's block is contiguous");
            for run in &self.runs {
                for i in [run.start, run.end - 1] {
                    let d = (i + 1) * w..(i + 2) * w;
                    direction_row(&mut p[d.clone()], &r[d], beta);
                }
            }
            // Dirichlet ghost planes at the domain's edges: the halo exchange leaves them alone.
            if first {
                let (ghost, inside) = p.split_at_mut(w);
                ghost.iter_mut().zip(&inside[..w]).for_each(|(g, &u)| *g = -u);
            }
            if last {
                let (inside, ghost) = p.split_at_mut((nx + 1) * w);
                ghost.iter_mut().zip(&inside[nx * w..]).for_each(|(g, &u)| *g = -u);
            }
        }
        let exchange = self.p.begin_exchange(Stencil::Star);
        let h = [self.h; 2];
        {
            let r = self.r.data().to_slice().expect("a field's block is contiguous");
            let p = self.p.data_mut().into_slice().expect("a field's block is contiguous");
            // Each run's rows strictly inside are its own to update; the two rows where runs
            // meet (or a run meets the ghosts) are shared, read only.
            let (below, mut rest) = p.split_at_mut(2 * w);
            let mut below: &[f64] = below;
            let mut rows = &mut self.rows[..];
            let mut sweeps = Vec::with_capacity(self.runs.len());
            for run in &self.runs {
                let (inner, more) = rest.split_at_mut((run.len() - 2) * w);
                let (above, more) = more.split_at_mut(2 * w);
                let above: &[f64] = above;
                let (run_rows, more_rows) = rows.split_at_mut(run.len());
                sweeps.push((run.clone(), below, inner, above, run_rows));
                (below, rest, rows) = (above, more, more_rows);
            }
            sweeps.into_par_iter().try_for_each(|(run, below, inner, above, sums)| -> Res<()> {
                for i in run.clone() {
                    let waits = i == 0 || i == nx - 1;
                    // The run's own rows (all but its first and last) are data rows
                    // run.start + 2 .. run.end, in `inner`; the others are shared.
                    let (own, next) = inner.split_at_mut((i.min(run.end - 2) - run.start) * w);
                    let view = |d: usize| -> &[f64] {
                        match d {
                            _ if d < run.start + 2 => &below[(d - run.start) * w..][..w],
                            _ if d < run.end => &own[(d - run.start - 2) * w..][..w],
                            _ => &above[(d - run.end) * w..][..w],
                        }
                    };
                    if i + 2 < run.end {
                        // The row after `i` is the run's own: its update goes with `i`'s stencil.
                        let (after, r_after) = (&mut next[..w], &r[(i + 2) * w..][..w]);
                        if waits {
                            direction_row(after, r_after, beta);
                        } else {
                            let (before, here) = (view(i), view(i + 1));
                            sums[i - run.start] =
                                cpu::row_cg_direction_2d(&mut after[1..w - 1], &r_after[1..w - 1], beta, &before[1..w - 1], here, h)?;
                            dirichlet_row(after);
                        }
                    } else if !waits {
                        sums[i - run.start] = p_ap_row(view(i), view(i + 1), view(i + 2), h)?;
                    }
                }
                Ok(())
            })?;
        }
        exchange.finish(&mut self.p)?;
        let p = self.p.data().to_slice().expect("a field's block is contiguous");
        for i in [0, nx - 1] {
            self.rows[i] = p_ap_row(&p[i * w..(i + 1) * w], &p[(i + 1) * w..(i + 2) * w], &p[(i + 2) * w..(i + 3) * w], h)?;
        }
        Ok(-self.sum_rows())
    }

    /// Collective. The 2-D second sweep: `x += alpha p`, `r -= alpha A p` with `lap(p)` made
    /// again a row at a time (cheaper than storing and reloading it), then `r . r`.
    fn step(&mut self, alpha: f64) -> Res<f64> {
        let w = self.p.decomposition().local_shape()[1] + 2;
        let h = [self.h; 2];
        let p = self.p.data().to_slice().expect("a field's block is contiguous");
        let x = self.x.data_mut().into_slice().expect("a field's block is contiguous");
        let r = self.r.data_mut().into_slice().expect("a field's block is contiguous");
        let (mut x, mut r, mut rows) = (&mut x[w..], &mut r[w..], &mut self.rows[..]);
        let mut sweeps = Vec::with_capacity(self.runs.len());
        for run in &self.runs {
            let (run_x, more_x) = x.split_at_mut(run.len() * w);
            let (run_r, more_r) = r.split_at_mut(run.len() * w);
            let (run_rows, more_rows) = rows.split_at_mut(run.len());
            sweeps.push((run.clone(), run_x, run_r, run_rows));
            (x, r, rows) = (more_x, more_r, more_rows);
        }
        sweeps.into_par_iter().try_for_each(|(run, x, r, sums)| -> Res<()> {
            for ((i, x), (r, sum)) in run.zip(x.chunks_exact_mut(w)).zip(r.chunks_exact_mut(w).zip(sums)) {
                // Owned row i is data row i + 1.
                let (before, here, after) = (&p[i * w..(i + 1) * w], &p[(i + 1) * w..(i + 2) * w], &p[(i + 2) * w..(i + 3) * w]);
                *sum = cpu::row_cg_step_2d(&mut x[1..w - 1], &mut r[1..w - 1], alpha, &before[1..w - 1], here, &after[1..w - 1], h)?;
            }
            Ok(())
        })?;
        Ok(self.sum_rows())
    }

    /// Collective. `q = lap(p)` and `p . A p`, the halo exchange overlapped with the planes that
    /// need no ghost from a neighbour.
    fn p_ap(&mut self) -> Res<f64> {
        dirichlet(&mut self.p);
        let nx = self.p.decomposition().local_shape()[0];
        let exchange = self.p.begin_exchange(Stencil::Star);
        self.for_tiles(1..nx.saturating_sub(1), |cg, planes| cg.laplacian(planes))?;
        exchange.finish(&mut self.p)?;
        // The first and the last plane (one plane when nx = 1).
        self.laplacian(0..nx.min(1))?;
        self.laplacian(nx.max(2) - 1..nx)?;
        Ok(-match self.dot {
            Dot::Exact => reduce::reproducible_dot(&self.p, &self.q),
            _ => self.sum_rows(),
        })
    }

    /// Collective. With `alpha`, the step `x += alpha p`, `r -= alpha A p`; then `r . r`.
    fn rr(&mut self, alpha: Option<f64>) -> Res<f64> {
        // One pass over the rows: each row of x and r updated, then its r . r while the row is
        // in the L1 cache (the same row sums as `row_sums`, so the same bits). Planes (first-axis
        // layers) go to rayon's threads.
        let per_plane = self.rows.len() / self.x.decomposition().local_shape()[0];
        let with_sums = self.dot != Dot::Exact;
        let (mut x, mut r, p, q) = (self.x.interior_mut(), self.r.interior_mut(), self.p.interior(), self.q.interior());
        let planes = x.axis_iter_mut(Axis(0)).into_par_iter().zip(r.axis_iter_mut(Axis(0))).zip(p.axis_iter(Axis(0))).zip(q.axis_iter(Axis(0)));
        planes.zip(self.rows.par_chunks_mut(per_plane.max(1))).for_each(|((((mut x, mut r), p), q), sums)| {
            let last = Axis(x.ndim() - 1);
            let rows = x.lanes_mut(last).into_iter().zip(r.lanes_mut(last)).zip(p.lanes(last)).zip(q.lanes(last));
            for ((((mut xr, mut rr), pr), qr), o) in rows.zip(sums) {
                let rs = rr.as_slice_mut().expect("rows are contiguous");
                if let Some(alpha) = alpha {
                    let n = rs.len();
                    let xs = &mut xr.as_slice_mut().expect("rows are contiguous")[..n];
                    let (ps, qs) = (&pr.to_slice().expect("rows are contiguous")[..n], &qr.to_slice().expect("rows are contiguous")[..n]);
                    for j in 0..n {
                        xs[j] += alpha * ps[j];
                        rs[j] += alpha * qs[j];
                    }
                }
                if with_sums {
                    *o = row_dot(rs, rs);
                }
            }
        });
        Ok(match self.dot {
            Dot::Exact => reduce::reproducible_dot(&self.r, &self.r),
            _ => self.sum_rows(),
        })
    }

    /// `p = r + beta p`, a row at a time (the same bits as `cpu::axpby(1, r, beta, p)`: `1 r`
    /// is `r`), without the generic iteration over a block with ghosts.
    fn next_direction(&mut self, beta: f64) {
        let (mut p, r) = (self.p.interior_mut(), self.r.interior());
        p.axis_iter_mut(Axis(0)).into_par_iter().zip(r.axis_iter(Axis(0))).for_each(|(mut p, r)| {
            let last = Axis(p.ndim() - 1);
            for (mut pr, rr) in p.lanes_mut(last).into_iter().zip(r.lanes(last)) {
                let ps = pr.as_slice_mut().expect("rows are contiguous");
                let rs = &rr.to_slice().expect("rows are contiguous")[..ps.len()];
                for j in 0..ps.len() {
                    ps[j] = rs[j] + beta * ps[j];
                }
            }
        });
    }

    /// `q = lap(p)` on `planes` (local first-axis indices), and their row sums of `p q`.
    fn laplacian(&mut self, planes: Range<usize>) -> Res<()> {
        if planes.is_empty() {
            return Ok(());
        }
        // Owned plane i is data plane i + 1: with its neighbours, data planes start..end + 2.
        let with_ghosts = Slice::from(planes.start..planes.end + 2);
        let src = self.p.data();
        let src = src.slice_axis(Axis(0), with_ghosts);
        let mut dst = self.q.data_mut();
        let dst = dst.slice_axis_mut(Axis(0), with_ghosts);
        let h = self.h;
        match src.ndim() {
            2 => cpu::laplacian_2d(src.into_dimensionality::<Ix2>()?, dst.into_dimensionality::<Ix2>()?, 1, [h; 2])?,
            _ => cpu::laplacian_3d(src.into_dimensionality::<Ix3>()?, dst.into_dimensionality::<Ix3>()?, 1, [h; 3])?,
        }
        if self.dot != Dot::Exact {
            let rows = self.rows_of(&planes);
            row_sums(planes_of(&self.p, &planes), planes_of(&self.q, &planes), &mut self.rows[rows]);
        }
        Ok(())
    }

    /// `f(self, planes)` for consecutive tiles of `range`.
    fn for_tiles(&mut self, range: Range<usize>, mut f: impl FnMut(&mut Cg, Range<usize>) -> Res<()>) -> Res<()> {
        let mut start = range.start;
        while start < range.end {
            let end = range.end.min(start + self.tile);
            f(self, start..end)?;
            start = end;
        }
        Ok(())
    }

    /// Where the rows of `planes` sit in `self.rows`.
    fn rows_of(&self, planes: &Range<usize>) -> Range<usize> {
        let per_plane = self.rows.len() / self.x.decomposition().local_shape()[0];
        planes.start * per_plane..planes.end * per_plane
    }

    /// Collective. The global sum of the row sums.
    fn sum_rows(&self) -> f64 {
        let comm = self.x.decomposition().comm();
        if self.dot == Dot::Plain {
            let (local, mut global) = (self.rows.iter().sum::<f64>(), 0.0);
            comm.all_reduce_into(&local, &mut global, SystemOperation::sum());
            return global;
        }
        let mut exact = ExactSum::new();
        self.rows.iter().for_each(|&s| exact.add(s));
        exact.all_reduce(comm)
    }
}

/// The fewest rows a run of the 2-D step sweeps, but for a single run.
const MIN_RUN_ROWS: usize = 16;

/// The 2-D step's runs of the `nx` local rows on `threads` threads: four per thread, so that a
/// thread that lost its core for a while (a loaded node) leaves its runs to the others, but none
/// shorter than [`MIN_RUN_ROWS`] (the rows where runs meet are updated apart). At least two rows
/// each: a single row takes the separate loops.
fn runs(nx: usize, threads: usize) -> Vec<Range<usize>> {
    if nx < 2 {
        return Vec::new();
    }
    let m = (4 * threads).min(nx / MIN_RUN_ROWS).max(1);
    (0..m).map(|c| c * nx / m..(c + 1) * nx / m).collect()
}

/// Whether the field's block touches the domain's low and high face along the first axis.
fn edges(f: &Field<f64>) -> (bool, bool) {
    let d = f.decomposition();
    (d.owned()[0].start == 0, d.owned()[0].end == d.global_shape()[0])
}

/// One row of `p = r + beta p` (`p = r` without `beta`; the same bits as
/// [`Cg::next_direction`] and `cpu::copy`), ghosts included in both, then the row's Dirichlet
/// ghosts, as [`dirichlet`] sets them.
fn direction_row(p: &mut [f64], r: &[f64], beta: Option<f64>) {
    let n = p.len() - 2;
    let (ps, rs) = (&mut p[1..=n], &r[1..=n]);
    match beta {
        None => ps.copy_from_slice(rs),
        Some(beta) => {
            for j in 0..n {
                ps[j] = rs[j] + beta * ps[j];
            }
        }
    }
    dirichlet_row(p);
}

/// A row's Dirichlet ghosts (the cells beside it), as [`dirichlet`] sets them.
fn dirichlet_row(p: &mut [f64]) {
    let n = p.len() - 2;
    p[0] = -p[1];
    p[n + 1] = -p[n];
}

/// The row `here`'s `p . lap(p)` (ghosts included in the rows `before`, `here` and `after`),
/// summed as [`row_dot`].
fn p_ap_row(before: &[f64], here: &[f64], after: &[f64], h: [f64; 2]) -> Res<f64> {
    let n = here.len() - 2;
    Ok(cpu::row_dot_laplacian_2d(&before[1..=n], here, &after[1..=n], h)?)
}

/// The owned cells of `planes` (local first-axis indices).
fn planes_of<'a>(f: &'a Field<f64>, planes: &Range<usize>) -> ArrayViewD<'a, f64> {
    f.interior().slice_axis_move(Axis(0), Slice::from(planes.clone()))
}

/// `out[k] = a_k . b_k` for the rows (last-axis lanes) of `a` and `b`, see [`row_dot`].
fn row_sums(a: ArrayViewD<f64>, b: ArrayViewD<f64>, out: &mut [f64]) {
    let last = Axis(a.ndim() - 1);
    for ((a, b), o) in a.lanes(last).into_iter().zip(b.lanes(last)).zip(out) {
        *o = row_dot(a.to_slice().expect("rows are contiguous"), b.to_slice().expect("rows are contiguous"));
    }
}

/// One row's `a . b`, summed in a fixed order (`cpu::dot_in_order`), the order of the fused
/// kernels' row sums.
fn row_dot(a: &[f64], b: &[f64]) -> f64 {
    cpu::dot_in_order(a, b).expect("rows of one length")
}

/// Dirichlet `u = 0` on the faces of the domain: each ghost layer there is minus the owned layer
/// beside it. Ghost layers between ranks are left to the halo exchange.
fn dirichlet(f: &mut Field<f64>) {
    let d = f.decomposition().clone();
    let shape = d.local_shape();
    let mut data = f.data_mut();
    for a in 0..shape.len() {
        let n = shape[a];
        if d.owned()[a].start == 0 {
            let (mut ghost, inside) = data.view_mut().split_at(Axis(a), 1);
            ghost.zip_mut_with(&inside.slice_axis(Axis(a), Slice::from(0..1)), |g, &u| *g = -u);
        }
        if d.owned()[a].end == d.global_shape()[a] {
            let (inside, mut ghost) = data.view_mut().split_at(Axis(a), n + 1);
            ghost.zip_mut_with(&inside.slice_axis(Axis(a), Slice::from(n..n + 1)), |g, &u| *g = -u);
        }
    }
}
