//! Second-order finite-difference stencils on blocks with ghost cells.
//!
//! All of them are one update, `out = a*u + b*(lap(u) + f)` on the interior, so the CPU and the
//! CUDA back end share one formula (and round alike).
use ndarray::{s, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, NdFloat};
use rayon::prelude::*;

use crate::{Error, Result};

/// `dst = lap(src)` on the interior of a 2-D block with `g` ghost layers; `h` is the grid
/// spacing along each axis. `dst`'s ghosts are left alone.
pub fn laplacian_2d<T: NdFloat>(src: ArrayView2<T>, dst: ArrayViewMut2<T>, g: usize, h: [T; 2]) -> Result<()> {
    stencil_2d(src, None, dst, g, h, T::zero(), T::one())
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

/// Shapes equal, at least one ghost layer, a non-empty interior, contiguous last axis.
pub(crate) fn check_block(u: &[usize], strides: &[&[isize]], others: &[&[usize]], g: usize) -> Result<()> {
    if let Some(o) = others.iter().find(|o| **o != u) {
        return Err(Error::Shape(format!("block {u:?} and block {o:?} differ")));
    }
    if g == 0 || u.iter().any(|&n| n <= 2 * g) {
        return Err(Error::Shape(format!("block {u:?} with {g} ghost layers has no interior (need g >= 1, every side > 2g)")));
    }
    if strides.iter().any(|s| s[s.len() - 1] != 1) {
        return Err(Error::Layout("the last axis of a block must be contiguous (stride 1)".into()));
    }
    Ok(())
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
    let mut strides = vec![u.strides(), out.strides()];
    let mut others = vec![out.shape()];
    if let Some(f) = &f {
        strides.push(f.strides());
        others.push(f.shape());
    }
    check_block(u.shape(), &strides, &others, g)?;
    let (nx, ny) = u.dim();
    let [cx, cy] = h.map(|h| (h * h).recip());
    fn row<'a, T>(v: &ArrayView2<'a, T>, i: usize) -> &'a [T] {
        slice_of(v.clone().index_axis_move(Axis(0), i))
    }
    let mut rows = out.slice_mut(s![g..nx - g, ..]);
    let body = |(r, mut o): (usize, ndarray::ArrayViewMut1<T>)| {
        let i = r + g;
        let o = o.as_slice_mut().expect("checked contiguous");
        let fr = f.as_ref().map(|f| &row(f, i)[g..ny - g]);
        let (c, n, s) = (row(&u, i), row(&u, i - 1), row(&u, i + 1));
        row_kernel(&mut o[g..ny - g], &c[g - 1..], &[(&n[g..], &s[g..], cx)], cy, fr, a, b);
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
    mut out: ArrayViewMut3<T>,
    g: usize,
    h: [T; 3],
    a: T,
    b: T,
) -> Result<()> {
    let mut strides = vec![u.strides(), out.strides()];
    let mut others = vec![out.shape()];
    if let Some(f) = &f {
        strides.push(f.strides());
        others.push(f.shape());
    }
    check_block(u.shape(), &strides, &others, g)?;
    let (nx, ny, nz) = u.dim();
    let [cx, cy, cz] = h.map(|h| (h * h).recip());
    fn row<'a, T>(v: &ArrayView3<'a, T>, i: usize, j: usize) -> &'a [T] {
        slice_of(v.clone().slice_move(s![i, j, ..]))
    }
    let mut planes = out.slice_mut(s![g..nx - g, g..ny - g, ..]);
    let body = |(p, mut plane): (usize, ArrayViewMut2<T>)| {
        let i = p + g;
        for (q, mut o) in plane.axis_iter_mut(Axis(0)).enumerate() {
            let j = q + g;
            let o = o.as_slice_mut().expect("checked contiguous");
            let fr = f.as_ref().map(|f| &row(f, i, j)[g..nz - g]);
            let nbrs = [
                (&row(&u, i - 1, j)[g..], &row(&u, i + 1, j)[g..], cx),
                (&row(&u, i, j - 1)[g..], &row(&u, i, j + 1)[g..], cy),
            ];
            row_kernel(&mut o[g..nz - g], &row(&u, i, j)[g - 1..], &nbrs, cz, fr, a, b);
        }
    };
    if u.len() < super::PAR_MIN {
        planes.axis_iter_mut(Axis(0)).enumerate().for_each(body);
    } else {
        planes.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(body);
    }
    Ok(())
}

fn slice_of<T>(v: ndarray::ArrayView1<'_, T>) -> &[T] {
    v.to_slice().expect("checked contiguous")
}

/// One row of the stencil: `c` starts one cell before `o` (the west neighbour), `nbrs` are the
/// pairs of rows beside it across the other axes with their `1/h^2`, `cw` is the along-row
/// `1/h^2`. The terms are summed in the order the CUDA kernels use, so both round alike.
/// Slices are cut to the row's length first so that the loop vectorises without bounds checks.
#[inline(always)]
fn row_kernel<T: NdFloat, const K: usize>(
    o: &mut [T],
    c: &[T],
    nbrs: &[(&[T], &[T], T); K],
    cw: T,
    f: Option<&[T]>,
    a: T,
    b: T,
) {
    let n = o.len();
    let (w, c, e) = (&c[..n], &c[1..n + 1], &c[2..n + 2]);
    let nb: [(&[T], &[T], T); K] = nbrs.map(|(m, p, k)| (&m[..n], &p[..n], k));
    let two = T::one() + T::one();
    let lap = |j: usize| {
        let mut l = cw * (w[j] + e[j] - two * c[j]);
        for (m, p, k) in &nb {
            l += *k * (m[j] + p[j] - two * c[j]);
        }
        l
    };
    match f {
        Some(f) => {
            let f = &f[..n];
            for j in 0..n {
                o[j] = a * c[j] + b * (lap(j) + f[j]);
            }
        }
        None => {
            for j in 0..n {
                o[j] = a * c[j] + b * lap(j);
            }
        }
    }
}
