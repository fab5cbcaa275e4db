//! Second-order finite-difference stencils on blocks with ghost cells.
//!
//! All of them are one update, `out = a*u + b*(lap(u) + f)` on the interior, so the CPU and the
//! CUDA back end share one formula (and round alike).
use ndarray::{s, ArrayView, ArrayView2, ArrayView3, ArrayViewMut, ArrayViewMut2, ArrayViewMut3, Axis, Dimension, NdFloat};
use rayon::prelude::*;

use super::vector::OrderedDot;
use crate::{Error, Result};

/// `dst = lap(src)` on the interior of a 2-D block with `g` ghost layers; `h` is the grid
/// spacing along each axis. `dst`'s ghosts are left alone.
pub fn laplacian_2d<T: NdFloat>(src: ArrayView2<T>, dst: ArrayViewMut2<T>, g: usize, h: [T; 2]) -> Result<()> {
    stencil_2d(src, None, dst, g, h, T::zero(), T::one())
}

/// One row of [`laplacian_2d`], with the same rounding: `out = lap(u)` at the cells `here[1..=n]`
/// (`n = out.len()`; `here[0]` and `here[n + 1]` are the cells beside the row, ghosts or not),
/// `north` and `south` the `n` cells above and below them. For codes that fuse the stencil with
/// other work row by row (a CG step: the direction update before it, a dot product after it,
/// while the row is in the L1 cache).
pub fn laplacian_2d_row<T: NdFloat>(out: &mut [T], north: &[T], here: &[T], south: &[T], h: [T; 2]) -> Result<()> {
    let n = out.len();
    if here.len() != n + 2 || north.len() != n || south.len() != n {
        return Err(Error::Shape(format!(
            "a row of {n} cells needs {} cells with the two beside it and {n} above and below; got {}, {} and {}",
            n + 2,
            here.len(),
            north.len(),
            south.len()
        )));
    }
    let [cx, cy] = h.map(|h| (h * h).recip());
    row_kernel(out, here, &[(north, south, cx)], cy, None, T::zero(), T::one(), Stores::Plain, None);
    Ok(())
}

/// `p . lap(p)` on one row of a 2-D block, `lap` as [`laplacian_2d_row`] computes it (`here`
/// with the cells beside the row, `before` and `after` the row's cells in the rows on either
/// side), summed as [`dot_in_order`](super::dot_in_order), without storing `lap(p)`: the bits of
/// the two calls, in one loop. The `p . A p` of a CG step.
pub fn row_dot_laplacian_2d<T: NdFloat>(before: &[T], here: &[T], after: &[T], h: [T; 2]) -> Result<T> {
    check_row(before.len(), here, after.len())?;
    let [cx, cy] = h.map(|h| (h * h).recip());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // Safety: the CPU supports AVX2, checked just above.
        return Ok(unsafe { dot_laplacian_avx2(before, here, after, cx, cy) });
    }
    Ok(dot_laplacian(before, here, after, cx, cy))
}

/// A CG step's update on one row of a 2-D block: `x += alpha p` and `r += alpha lap(p)` (for
/// `A = -lap`, `r -= alpha A p`), then returns `r . r`, with `lap` as [`laplacian_2d_row`] and
/// the sum as [`dot_in_order`](super::dot_in_order): the bits of those calls and the two axpys,
/// in one loop. `x` and `r` are the row's cells, `p` as in [`row_dot_laplacian_2d`].
pub fn row_cg_step_2d<T: NdFloat>(x: &mut [T], r: &mut [T], alpha: T, before: &[T], here: &[T], after: &[T], h: [T; 2]) -> Result<T> {
    check_row(before.len(), here, after.len())?;
    let n = here.len() - 2;
    if x.len() != n || r.len() != n {
        return Err(Error::Shape(format!("a row of {n} cells of p with rows of {} and {} cells of x and r", x.len(), r.len())));
    }
    let [cx, cy] = h.map(|h| (h * h).recip());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // Safety: the CPU supports AVX2, checked just above.
        return Ok(unsafe { cg_step_avx2(x, r, alpha, before, here, after, cx, cy) });
    }
    Ok(cg_step(x, r, alpha, before, here, after, cx, cy))
}

fn check_row<T>(before: usize, here: &[T], after: usize) -> Result<()> {
    if here.len() < 2 || before != here.len() - 2 || after != here.len() - 2 {
        return Err(Error::Shape(format!(
            "a row with the two cells beside it ({} cells) needs two fewer above and below; got {before} and {after}",
            here.len()
        )));
    }
    Ok(())
}

/// Cells per block of the fused row loops: `lap(p)` of a block waits in a buffer of the stack
/// (the L1 cache) for the rest of the loop. A multiple of the dot's lanes dividing its chunk.
const ROW_BLOCK: usize = 256;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_laplacian_avx2<T: NdFloat>(before: &[T], here: &[T], after: &[T], cx: T, cy: T) -> T {
    dot_laplacian(before, here, after, cx, cy)
}

#[inline(always)]
fn dot_laplacian<T: NdFloat>(before: &[T], here: &[T], after: &[T], cx: T, cy: T) -> T {
    let n = here.len() - 2;
    let mut q = [T::zero(); ROW_BLOCK];
    let mut dot = OrderedDot::new();
    for j in (0..n).step_by(ROW_BLOCK) {
        let m = ROW_BLOCK.min(n - j);
        block_dot_laplacian(&mut q[..m], &before[j..j + m], &here[j..j + m + 2], &after[j..j + m], cx, cy, &mut dot);
    }
    dot.finish()
}

/// `q = lap(p)` on a block of a row (`here` with the cells beside it) and its `p . q` into `dot`.
#[inline(always)]
fn block_dot_laplacian<T: NdFloat>(q: &mut [T], before: &[T], here: &[T], after: &[T], cx: T, cy: T, dot: &mut OrderedDot<T>) {
    row_loop::<T, 1, false>(q, here, &[(before, after, cx)], cy, &[], T::zero(), T::one());
    dot.add(&here[1..q.len() + 1], q);
}

/// [`row_dot_laplacian_2d`] with a CG step's direction update of the row after `here` fused in:
/// first `after = r_after + beta after` (`after = r_after` without `beta`), block by block just
/// ahead of the stencil that reads it. `after` and `r_after` are that row's cells (its ghosts,
/// which the stencil of `here` does not read, are the caller's to set). The bits of the update
/// loop and [`row_dot_laplacian_2d`] one after the other.
pub fn row_cg_direction_2d<T: NdFloat>(after: &mut [T], r_after: &[T], beta: Option<T>, before: &[T], here: &[T], h: [T; 2]) -> Result<T> {
    check_row(before.len(), here, after.len())?;
    if r_after.len() != after.len() {
        return Err(Error::Shape(format!("a row of {} cells of p with {} cells of r", after.len(), r_after.len())));
    }
    let [cx, cy] = h.map(|h| (h * h).recip());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // Safety: the CPU supports AVX2, checked just above.
        return Ok(unsafe { direction_avx2(after, r_after, beta, before, here, cx, cy) });
    }
    Ok(direction(after, r_after, beta, before, here, cx, cy))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn direction_avx2<T: NdFloat>(after: &mut [T], r_after: &[T], beta: Option<T>, before: &[T], here: &[T], cx: T, cy: T) -> T {
    direction(after, r_after, beta, before, here, cx, cy)
}

#[inline(always)]
fn direction<T: NdFloat>(after: &mut [T], r_after: &[T], beta: Option<T>, before: &[T], here: &[T], cx: T, cy: T) -> T {
    let n = here.len() - 2;
    let mut q = [T::zero(); ROW_BLOCK];
    let mut dot = OrderedDot::new();
    for j in (0..n).step_by(ROW_BLOCK) {
        let m = ROW_BLOCK.min(n - j);
        let (p, r) = (&mut after[j..j + m], &r_after[j..j + m]);
        match beta {
            None => p.copy_from_slice(r),
            Some(beta) => {
                for k in 0..m {
                    p[k] = r[k] + beta * p[k];
                }
            }
        }
        block_dot_laplacian(&mut q[..m], &before[j..j + m], &here[j..j + m + 2], p, cx, cy, &mut dot);
    }
    dot.finish()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn cg_step_avx2<T: NdFloat>(x: &mut [T], r: &mut [T], alpha: T, before: &[T], here: &[T], after: &[T], cx: T, cy: T) -> T {
    cg_step(x, r, alpha, before, here, after, cx, cy)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cg_step<T: NdFloat>(x: &mut [T], r: &mut [T], alpha: T, before: &[T], here: &[T], after: &[T], cx: T, cy: T) -> T {
    let n = here.len() - 2;
    let mut q = [T::zero(); ROW_BLOCK];
    let mut dot = OrderedDot::new();
    for j in (0..n).step_by(ROW_BLOCK) {
        let m = ROW_BLOCK.min(n - j);
        let q = &mut q[..m];
        row_loop::<T, 1, false>(q, &here[j..j + m + 2], &[(&before[j..j + m], &after[j..j + m], cx)], cy, &[], T::zero(), T::one());
        let (x, r, p) = (&mut x[j..j + m], &mut r[j..j + m], &here[j + 1..j + 1 + m]);
        for k in 0..m {
            x[k] += alpha * p[k];
            r[k] += alpha * q[k];
        }
        dot.add(r, r);
    }
    dot.finish()
}

/// `dst = lap(src)` on the interior of a 3-D block with `g` ghost layers.
pub fn laplacian_3d<T: NdFloat>(src: ArrayView3<T>, dst: ArrayViewMut3<T>, g: usize, h: [T; 3]) -> Result<()> {
    stencil_3d(src, None, dst, g, h, T::zero(), T::one())
}

/// One explicit (forward Euler) step of `du/dt = nu lap(u)`: `dst = src + nu_dt * lap(src)`,
/// where `nu_dt` is the diffusivity times the time step.
pub fn heat_step_2d<T: NdFloat>(src: ArrayView2<T>, dst: ArrayViewMut2<T>, g: usize, h: [T; 2], nu_dt: T) -> Result<()> {
    stencil_2d(src, None, dst, g, h, T::one(), nu_dt)
}

/// One explicit step of the heat equation on a 3-D block, see [`heat_step_2d`].
pub fn heat_step_3d<T: NdFloat>(src: ArrayView3<T>, dst: ArrayViewMut3<T>, g: usize, h: [T; 3], nu_dt: T) -> Result<()> {
    stencil_3d(src, None, dst, g, h, T::one(), nu_dt)
}

/// One weighted Jacobi sweep for the Poisson problem `-lap(u) = f`:
/// `dst = (1 - omega) u + omega (f + sum of neighbours / h^2) / diag`, with `omega = 1` the plain
/// Jacobi method and `2/3` the usual smoother for multigrid.
pub fn jacobi_2d<T: NdFloat>(
    u: ArrayView2<T>,
    f: ArrayView2<T>,
    dst: ArrayViewMut2<T>,
    g: usize,
    h: [T; 2],
    omega: T,
) -> Result<()> {
    let diag = h.iter().map(|&h| (h * h).recip()).fold(T::zero(), |s, c| s + c + c);
    stencil_2d(u, Some(f), dst, g, h, T::one(), omega / diag)
}

/// One weighted Jacobi sweep for `-lap(u) = f` on a 3-D block, see [`jacobi_2d`].
pub fn jacobi_3d<T: NdFloat>(
    u: ArrayView3<T>,
    f: ArrayView3<T>,
    dst: ArrayViewMut3<T>,
    g: usize,
    h: [T; 3],
    omega: T,
) -> Result<()> {
    let diag = h.iter().map(|&h| (h * h).recip()).fold(T::zero(), |s, c| s + c + c);
    stencil_3d(u, Some(f), dst, g, h, T::one(), omega / diag)
}

/// Shapes equal, at least one ghost layer on every side, contiguous last axis. Whether there is
/// an interior to work on: a rank that owns no cells of an axis (more ranks than cells) has
/// ghosts alone, and a stencil there does nothing.
pub(crate) fn check_block(u: &[usize], strides: &[&[isize]], others: &[&[usize]], g: usize) -> Result<bool> {
    if let Some(o) = others.iter().find(|o| **o != u) {
        return Err(Error::Shape(format!("block {u:?} and block {o:?} differ")));
    }
    if g == 0 || u.iter().any(|&n| n < 2 * g) {
        return Err(Error::Shape(format!("block {u:?} cannot hold {g} ghost layers on every side (need g >= 1, every side >= 2g)")));
    }
    if strides.iter().any(|s| s[s.len() - 1] != 1) {
        return Err(Error::Layout("the last axis of a block must be contiguous (stride 1)".into()));
    }
    Ok(u.iter().all(|&n| n > 2 * g))
}

fn check_views<T, D: Dimension>(u: &ArrayView<T, D>, f: Option<&ArrayView<T, D>>, out: &ArrayViewMut<T, D>, g: usize) -> Result<bool> {
    // Without f, u stands in for it: no allocation per call.
    let f = f.unwrap_or(u);
    check_block(u.shape(), &[u.strides(), out.strides(), f.strides()], &[out.shape(), f.shape()], g)
}

/// `out = a*u + b*(lap(u) + f)` on the interior (`f` = 0 when absent).
pub(crate) fn stencil_2d<T: NdFloat>(
    u: ArrayView2<T>,
    f: Option<ArrayView2<T>>,
    mut out: ArrayViewMut2<T>,
    g: usize,
    h: [T; 2],
    a: T,
    b: T,
) -> Result<()> {
    if !check_views(&u, f.as_ref(), &out, g)? {
        return Ok(());
    }
    let (nx, ny) = u.dim();
    let [cx, cy] = h.map(|h| (h * h).recip());
    fn row<'a, T>(v: &ArrayView2<'a, T>, i: usize) -> &'a [T] {
        slice_of((*v).index_axis_move(Axis(0), i))
    }
    let mut rows = out.slice_mut(s![g..nx - g, ..]);
    let body = |(r, mut o): (usize, ndarray::ArrayViewMut1<T>)| {
        let i = r + g;
        let o = o.as_slice_mut().expect("checked contiguous");
        let fr = f.as_ref().map(|f| &row(f, i)[g..ny - g]);
        let (c, n, s) = (row(&u, i), row(&u, i - 1), row(&u, i + 1));
        row_kernel(&mut o[g..ny - g], &c[g - 1..], &[(&n[g..], &s[g..], cx)], cy, fr, a, b, Stores::Plain, None);
    };
    if u.len() < super::PAR_MIN {
        rows.axis_iter_mut(Axis(0)).enumerate().for_each(body);
    } else {
        rows.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(body);
    }
    Ok(())
}

/// `out = a*u + b*(lap(u) + f)` on the interior of a 3-D block.
pub(crate) fn stencil_3d<T: NdFloat>(
    u: ArrayView3<T>,
    f: Option<ArrayView3<T>>,
    out: ArrayViewMut3<T>,
    g: usize,
    h: [T; 3],
    a: T,
    b: T,
) -> Result<()> {
    if !check_views(&u, f.as_ref(), &out, g)? {
        return Ok(());
    }
    let touched = (u.len() + out.len() + f.as_ref().map_or(0, |f| f.len())) * std::mem::size_of::<T>();
    sweep_3d(u, f, out, g, h, a, b, Stores::for_sweep::<T>(touched));
    Ok(())
}

/// The 3-D sweep itself, with the choice of stores made (shapes checked).
#[allow(clippy::too_many_arguments)]
fn sweep_3d<T: NdFloat>(u: ArrayView3<T>, f: Option<ArrayView3<T>>, mut out: ArrayViewMut3<T>, g: usize, h: [T; 3], a: T, b: T, stores: Stores) {
    let (nx, ny, nz) = u.dim();
    let [cx, cy, cz] = h.map(|h| (h * h).recip());
    fn plane<'a, T>(v: &ArrayView3<'a, T>, i: usize) -> ArrayView2<'a, T> {
        (*v).index_axis_move(Axis(0), i)
    }
    fn row<'a, T>(v: &ArrayView2<'a, T>, j: usize) -> &'a [T] {
        slice_of((*v).index_axis_move(Axis(0), j))
    }
    // Tiles of rows across a run of planes: a tile's planes i-1, i, i+1 stay in the L2 cache
    // while the sweep moves along i, so each value comes from memory once (2.5-D blocking). The
    // runs of planes make several tasks per thread, so that a thread that lost its core for a
    // while (a loaded node) leaves its tasks to the others; each run reads two planes twice.
    let (planes, rows) = (nx - 2 * g, ny - 2 * g);
    let threads = rayon::current_num_threads();
    let tile = tile_rows(rows, nz * std::mem::size_of::<T>(), threads);
    let tasks_per_thread = 4 * threads / rows.div_ceil(tile).max(1);
    let run = planes.div_ceil(tasks_per_thread.max(1)).max(MIN_RUN.min(planes));
    let interior = out.slice_mut(s![g..nx - g, g..ny - g, ..]);
    let body = |((r, t), mut block): ((usize, usize), ArrayViewMut3<T>)| {
        for (p, mut out_plane) in block.axis_iter_mut(Axis(0)).enumerate() {
            let i = g + r * run + p;
            let (down, here, up) = (plane(&u, i - 1), plane(&u, i), plane(&u, i + 1));
            let f_here = f.as_ref().map(|f| plane(f, i));
            let last = g + t * tile + out_plane.len_of(Axis(0));
            for (q, mut o) in out_plane.axis_iter_mut(Axis(0)).enumerate() {
                let j = g + t * tile + q;
                let o = o.as_slice_mut().expect("checked contiguous");
                let fr = f_here.as_ref().map(|f| &row(f, j)[g..nz - g]);
                let nbrs = [(&row(&down, j)[g..], &row(&up, j)[g..], cx), (&row(&here, j - 1)[g..], &row(&here, j + 1)[g..], cy)];
                // The row of the next plane this tile reads from memory a few rows from now.
                let ahead = (j + AHEAD <= last).then(|| &row(&up, j + AHEAD)[g..nz - g]);
                row_kernel(&mut o[g..nz - g], &row(&here, j)[g - 1..], &nbrs, cz, fr, a, b, stores, ahead);
            }
        }
        stores.fence();
    };
    let tasks = chunks(interior, Axis(0), run)
        .into_iter()
        .enumerate()
        .flat_map(|(r, runs)| chunks(runs, Axis(1), tile).into_iter().enumerate().map(move |(t, b)| ((r, t), b)));
    if u.len() < super::PAR_MIN {
        tasks.for_each(body);
    } else {
        tasks.collect::<Vec<_>>().into_par_iter().for_each(body);
    }
}

/// `v` cut along `axis` into consecutive pieces of `size` (the last one shorter).
fn chunks<T>(mut v: ArrayViewMut3<'_, T>, axis: Axis, size: usize) -> Vec<ArrayViewMut3<'_, T>> {
    let mut pieces = Vec::with_capacity(v.len_of(axis).div_ceil(size));
    while v.len_of(axis) > size {
        let (piece, rest) = v.split_at(axis, size);
        pieces.push(piece);
        v = rest;
    }
    pieces.push(v);
    pieces
}

/// How many rows ahead a streamed 3-D sweep prefetches the next plane into the L2 cache.
const AHEAD: usize = 3;

/// The fewest planes a task of a 3-D sweep runs over (it reads two more).
const MIN_RUN: usize = 32;

/// What the three planes of a 3-D tile may take where the L2 cache's size is unknown.
const TILE_BYTES: usize = 256 << 10;

/// What the three planes of a 3-D tile may take: half of a core's L2 cache (the rest holds the
/// output rows and what else the core touches). Larger tiles cost less: a tile also reads the
/// row beyond each of its edges, from memory, for every plane.
fn tile_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| l2_cache().map_or(TILE_BYTES, |b| (b / 2).max(TILE_BYTES)))
}

/// The size of cpu0's level-2 cache, from Linux's sysfs.
fn l2_cache() -> Option<usize> {
    caches().into_iter().find_map(|(level, size)| (level == 2).then_some(size))
}

/// The size of cpu0's last-level cache (the largest it lists), read once from Linux's sysfs.
pub fn last_level_cache() -> Option<usize> {
    static BYTES: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| caches().into_iter().map(|(_, size)| size).max())
}

/// cpu0's caches as (level, bytes), from Linux's sysfs.
fn caches() -> Vec<(u32, usize)> {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache") else { return Vec::new() };
    dir.filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let level = std::fs::read_to_string(p.join("level")).ok()?.trim().parse().ok()?;
            let s = std::fs::read_to_string(p.join("size")).ok()?;
            let s = s.trim();
            let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            Some((level, num.parse::<usize>().ok()? << match unit { "K" => 10, "M" => 20, "G" => 30, _ => 0 }))
        })
        .collect()
}

/// Rows per tile of a 3-D sweep over `rows` rows of `row_bytes` each on `threads` threads: the
/// most that keep three planes of a tile within [`tile_bytes`], then evened out so that the
/// tiles are a multiple of the threads and of equal size (a last short tile, or one tile more
/// than the threads can share, leaves a core idle for part of the sweep).
fn tile_rows(rows: usize, row_bytes: usize, threads: usize) -> usize {
    tile_rows_within(tile_bytes(), rows, row_bytes, threads)
}

fn tile_rows_within(tile_bytes: usize, rows: usize, row_bytes: usize, threads: usize) -> usize {
    let most = (tile_bytes / (3 * row_bytes)).clamp(1, rows);
    let threads = threads.clamp(1, rows);
    let tiles = rows.div_ceil(most).next_multiple_of(threads);
    rows.div_ceil(tiles).max(1)
}

fn slice_of<T>(v: ndarray::ArrayView1<'_, T>) -> &[T] {
    v.to_slice().expect("checked contiguous")
}

/// One row of the stencil: `c` starts one cell before `o` (the west neighbour), `nbrs` are the
/// pairs of rows beside it across the other axes with their `1/h^2`, `cw` is the along-row
/// `1/h^2`. The terms are summed in the order the CUDA kernels use, so both round alike.
#[allow(clippy::too_many_arguments)]
fn row_kernel<T: NdFloat, const K: usize>(
    o: &mut [T],
    c: &[T],
    nbrs: &[(&[T], &[T], T); K],
    cw: T,
    f: Option<&[T]>,
    a: T,
    b: T,
    stores: Stores,
    ahead: Option<&[T]>,
) {
    #[cfg(target_arch = "x86_64")]
    if stores == Stores::Streaming && Stores::available() {
        if let Some(o) = as_f64_mut(o) {
            let nbrs = nbrs.map(|(m, p, k)| (as_f64(m), as_f64(p), k.to_f64().expect("f64")));
            let (cw, a, b) = (cw.to_f64().expect("f64"), a.to_f64().expect("f64"), b.to_f64().expect("f64"));
            // Safety: the CPU has AVX-512F, checked just above.
            return unsafe { row_avx512_streaming(o, as_f64(c), &nbrs, cw, f.map(as_f64), a, b, ahead.map(as_f64)) };
        }
    }
    // The default x86-64 target has only 2-wide SSE2, and the stencil is then limited by
    // arithmetic, not memory: use 4-wide AVX2 where the CPU has it (same operations, same
    // rounding: Rust never contracts to FMA on its own).
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // Safety: the CPU supports AVX2, checked just above.
        return unsafe { row_avx2(o, c, nbrs, cw, f, a, b) };
    }
    row_any(o, c, nbrs, cw, f, a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_avx2<T: NdFloat, const K: usize>(
    o: &mut [T],
    c: &[T],
    nbrs: &[(&[T], &[T], T); K],
    cw: T,
    f: Option<&[T]>,
    a: T,
    b: T,
) {
    row_any(o, c, nbrs, cw, f, a, b)
}

/// How a sweep writes its output: `Streaming` sends it to memory with non-temporal stores, which
/// skip reading each line before writing it (a third of a stencil's memory traffic). Only for
/// `f64` sweeps on CPUs with AVX-512F, whose 64-byte stores fill a whole line at once (half-line
/// streaming stores measured slower than plain ones), and only where the arrays outgrow the
/// last-level cache, so that the output would not have stayed in it anyway.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stores {
    Plain,
    Streaming,
}

impl Stores {
    /// The stores for a sweep over arrays of `touched` bytes in all.
    fn for_sweep<T: 'static>(touched: usize) -> Stores {
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>() && Stores::available() && last_level_cache().is_some_and(|c| touched > c) {
            Stores::Streaming
        } else {
            Stores::Plain
        }
    }

    fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// Orders a task's streaming stores before whatever the task does next (rayon's hand-over
    /// to the caller included): they are weakly ordered.
    fn fence(self) {
        #[cfg(target_arch = "x86_64")]
        if self == Stores::Streaming {
            // Safety: SSE is part of x86-64.
            unsafe { std::arch::x86_64::_mm_sfence() }
        }
    }
}

fn as_f64<T: 'static>(v: &[T]) -> &[f64] {
    assert_eq!(std::any::TypeId::of::<T>(), std::any::TypeId::of::<f64>());
    // Safety: T is f64, checked just above.
    unsafe { &*(v as *const [T] as *const [f64]) }
}

fn as_f64_mut<T: 'static>(v: &mut [T]) -> Option<&mut [f64]> {
    // Safety: T is f64, checked first.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>()).then(|| unsafe { &mut *(v as *mut [T] as *mut [f64]) })
}

/// [`row_loop`] with the output streamed: the same operations in the same order, eight points
/// to a 64-byte line, each whole line of `o` written with one non-temporal store; the partial
/// lines at either end of the row are written with masked plain stores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_avx512_streaming<const K: usize>(
    o: &mut [f64],
    c: &[f64],
    nbrs: &[(&[f64], &[f64], f64); K],
    cw: f64,
    f: Option<&[f64]>,
    a: f64,
    b: f64,
    ahead: Option<&[f64]>,
) {
    let ahead = ahead.filter(|r| r.len() >= o.len()).map_or(std::ptr::null(), |r| r.as_ptr());
    match f {
        Some(f) => streaming_loop::<K, true>(o, c, nbrs, cw, f, a, b, ahead),
        None => streaming_loop::<K, false>(o, c, nbrs, cw, &[], a, b, ahead),
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn streaming_loop<const K: usize, const HAS_F: bool>(
    o: &mut [f64],
    c: &[f64],
    nbrs: &[(&[f64], &[f64], f64); K],
    cw: f64,
    f: &[f64],
    a: f64,
    b: f64,
    ahead: *const f64,
) {
    use std::arch::x86_64::*;
    let n = o.len();
    // Every slice holds the row's n points (c two more): lanes past them are masked off below.
    assert!(c.len() >= n + 2 && nbrs.iter().all(|(m, p, _)| m.len() >= n && p.len() >= n) && (!HAS_F || f.len() >= n));
    let (w, e) = (c.as_ptr(), c.as_ptr().add(2));
    let c = c.as_ptr().add(1);
    let nb = nbrs.map(|(m, p, k)| (m.as_ptr(), p.as_ptr(), _mm512_set1_pd(k)));
    let (two, cw, av, bv) = (_mm512_set1_pd(2.0), _mm512_set1_pd(cw), _mm512_set1_pd(a), _mm512_set1_pd(b));
    // The eight points from j on; those outside `mask` read as zeros and are never stored. A
    // macro, not a closure, so that the intrinsics are inlined into this AVX-512 function.
    macro_rules! points {
        ($j:expr, $mask:expr) => {{
            let (j, mask) = ($j, $mask);
            let centre = _mm512_maskz_loadu_pd(mask, c.add(j));
            let c2 = _mm512_mul_pd(two, centre);
            let (wv, ev) = (_mm512_maskz_loadu_pd(mask, w.add(j)), _mm512_maskz_loadu_pd(mask, e.add(j)));
            let mut lap = _mm512_mul_pd(cw, _mm512_sub_pd(_mm512_add_pd(wv, ev), c2));
            for &(m, p, k) in &nb {
                let (mv, pv) = (_mm512_maskz_loadu_pd(mask, m.add(j)), _mm512_maskz_loadu_pd(mask, p.add(j)));
                lap = _mm512_add_pd(lap, _mm512_mul_pd(k, _mm512_sub_pd(_mm512_add_pd(mv, pv), c2)));
            }
            if HAS_F {
                lap = _mm512_add_pd(lap, _mm512_maskz_loadu_pd(mask, f.as_ptr().add(j)));
            }
            _mm512_add_pd(_mm512_mul_pd(av, centre), _mm512_mul_pd(bv, lap))
        }};
    }
    let out = o.as_mut_ptr();
    let head = out.align_offset(64).min(n);
    let end = head + (n - head) / 8 * 8;
    if head > 0 {
        _mm512_mask_storeu_pd(out, (1 << head) - 1, points!(0, (1 << head) - 1));
    }
    for j in (head..end).step_by(8) {
        // out + j is 64-byte aligned and j + 8 <= n.
        if !ahead.is_null() {
            _mm_prefetch::<_MM_HINT_T1>(ahead.add(j) as *const i8);
        }
        _mm512_stream_pd(out.add(j), points!(j, 0xff));
    }
    if end < n {
        let mask = (1 << (n - end)) - 1;
        _mm512_mask_storeu_pd(out.add(end), mask, points!(end, mask));
    }
}

#[inline(always)]
fn row_any<T: NdFloat, const K: usize>(
    o: &mut [T],
    c: &[T],
    nbrs: &[(&[T], &[T], T); K],
    cw: T,
    f: Option<&[T]>,
    a: T,
    b: T,
) {
    match f {
        Some(f) => row_loop::<T, K, true>(o, c, nbrs, cw, f, a, b),
        None => row_loop::<T, K, false>(o, c, nbrs, cw, &[], a, b),
    }
}

/// The loop itself, with `f` known at compile time so that nothing but arithmetic is left in
/// it. Slices are cut to the row's length first so that it vectorises without bounds checks.
#[inline(always)]
fn row_loop<T: NdFloat, const K: usize, const HAS_F: bool>(
    o: &mut [T],
    c: &[T],
    nbrs: &[(&[T], &[T], T); K],
    cw: T,
    f: &[T],
    a: T,
    b: T,
) {
    let n = o.len();
    let (w, c, e) = (&c[..n], &c[1..n + 1], &c[2..n + 2]);
    let nb: [(&[T], &[T], T); K] = nbrs.map(|(m, p, k)| (&m[..n], &p[..n], k));
    let f = if HAS_F { &f[..n] } else { f };
    let two = T::one() + T::one();
    for j in 0..n {
        let cc = c[j];
        let mut lap = cw * (w[j] + e[j] - two * cc);
        for (m, p, k) in &nb {
            lap += *k * (m[j] + p[j] - two * cc);
        }
        if HAS_F {
            lap += f[j];
        }
        o[j] = a * cc + b * lap;
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{s, Array1, Array3};

    use super::{sweep_3d, tile_bytes, tile_rows_within, Stores, TILE_BYTES};

    /// `a u + b (lap(u) + f)` point by point, the terms in the kernels' order.
    fn naive(u: &Array3<f64>, f: Option<&Array3<f64>>, dst: &mut Array3<f64>, g: usize, h: [f64; 3], a: f64, b: f64) {
        let [cx, cy, cz] = h.map(|h| (h * h).recip());
        let (nx, ny, nz) = u.dim();
        for i in g..nx - g {
            for j in g..ny - g {
                for k in g..nz - g {
                    let c = u[[i, j, k]];
                    let mut lap = cz * (u[[i, j, k - 1]] + u[[i, j, k + 1]] - 2.0 * c);
                    lap += cx * (u[[i - 1, j, k]] + u[[i + 1, j, k]] - 2.0 * c);
                    lap += cy * (u[[i, j - 1, k]] + u[[i, j + 1, k]] - 2.0 * c);
                    if let Some(f) = f {
                        lap += f[[i, j, k]];
                    }
                    dst[[i, j, k]] = a * c + b * lap;
                }
            }
        }
    }

    #[test]
    fn streaming_stores_give_the_same_bits() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = |len: usize| {
            Array1::from_shape_fn(len, |_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
        };
        let h = [0.3, 0.5, 0.9];
        // Thin domains (one to three planes, rows or points per row), rows of every length
        // modulo 8 around a line of 8, long rows; each block placed at every offset modulo 8
        // within a larger array, so that its rows start at every position within a 64-byte line.
        let shapes = [((3, 9, 11), 1), ((5, 7, 9), 1), ((5, 9, 11), 2), ((9, 3, 11), 1), ((9, 11, 3), 1), ((4, 6, 19), 1), ((6, 5, 33), 2), ((5, 9, 517), 1), ((35, 70, 41), 1)];
        for (shape, g) in shapes {
            let len = shape.0 * shape.1 * shape.2;
            for offset in 0..8 {
                let block = |v: &Array1<f64>| Array3::from_shape_vec(shape, v.slice(s![offset..offset + len]).to_vec()).unwrap();
                let (u, f, dst0) = (random(len + 8), random(len + 8), random(len + 8));
                for (a, b, with_f) in [(0.0, 1.0, false), (1.0, 0.01, false), (1.0, 0.07, true)] {
                    let (ub, fb) = (block(&u), block(&f));
                    let fv = with_f.then_some(&fb);
                    let mut want = block(&dst0);
                    naive(&ub, fv, &mut want, g, h, a, b);
                    for stores in [Stores::Plain, Stores::Streaming] {
                        let mut big = dst0.clone();
                        let mut dst = big.slice_mut(s![offset..offset + len]).into_shape_with_order(shape).unwrap();
                        let us = u.slice(s![offset..offset + len]).into_shape_with_order(shape).unwrap();
                        let fs = f.slice(s![offset..offset + len]).into_shape_with_order(shape).unwrap();
                        sweep_3d(us, with_f.then_some(fs), dst.view_mut(), g, h, a, b, stores);
                        let diff = dst.iter().zip(&want).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
                        assert_eq!(diff, 0, "{stores:?} {shape:?} g={g} offset {offset} a={a} f={with_f}: {diff} values differ");
                    }
                }
            }
        }
    }

    #[test]
    fn tiles_fit_the_cache_and_share_out_evenly() {
        for rows in [1, 2, 7, 36, 198, 558, 4094] {
            for row_bytes in [8, 1600, 4480, 1 << 20] {
                for threads in [1, 2, 3, 8] {
                    let t = tile_rows_within(TILE_BYTES, rows, row_bytes, threads);
                    let tiles = rows.div_ceil(t);
                    assert!(t >= 1 && t <= rows, "{rows} {row_bytes} {threads}: {t}");
                    assert!(3 * t * row_bytes <= TILE_BYTES || t == 1, "{rows} {row_bytes} {threads}: {t}");
                    // Every thread gets tiles whenever there are rows for each, and the last
                    // tile is never much shorter than the others.
                    assert!(tiles >= threads.min(rows), "{rows} {row_bytes} {threads}: {t}");
                    assert!(rows - (tiles - 1) * t + tiles > t, "{rows} {row_bytes} {threads}: {t}");
                }
            }
        }
        // 200^3 doubles on 2 threads: four tiles of 50, 50, 50 and 48 rows, not 54, 54, 54, 36.
        assert_eq!(tile_rows_within(TILE_BYTES, 198, 1600, 2), 50);
        assert!(tile_bytes() >= TILE_BYTES);
    }
}
