//! Vector operations, the building blocks of Krylov solvers. They take arrays of any
//! dimension, so a whole field block is one vector.
use ndarray::{ArrayView, ArrayViewMut, Dimension, NdFloat, Zip};

use rayon::prelude::*;

use super::PAR_MIN;
use crate::{Error, Result};

fn same_shape(x: &[usize], y: &[usize]) -> Result<()> {
    if x != y {
        return Err(Error::Shape(format!("vectors of shape {x:?} and {y:?}")));
    }
    Ok(())
}

/// `y = a x + y`.
pub fn axpy<T: NdFloat, D: Dimension>(a: T, x: ArrayView<T, D>, y: ArrayViewMut<T, D>) -> Result<()> {
    same_shape(x.shape(), y.shape())?;
    let z = Zip::from(y).and(x);
    let f = |y: &mut T, &x: &T| *y += a * x;
    if z.size() < PAR_MIN { z.for_each(f) } else { z.par_for_each(f) }
    Ok(())
}

/// `y = a x + b y` (with `b = 0` a STREAM triad-like scaled copy).
pub fn axpby<T: NdFloat, D: Dimension>(a: T, x: ArrayView<T, D>, b: T, y: ArrayViewMut<T, D>) -> Result<()> {
    same_shape(x.shape(), y.shape())?;
    let z = Zip::from(y).and(x);
    let f = |y: &mut T, &x: &T| *y = a * x + b * *y;
    if z.size() < PAR_MIN { z.for_each(f) } else { z.par_for_each(f) }
    Ok(())
}

/// `x = a x`.
pub fn scale<T: NdFloat, D: Dimension>(a: T, x: ArrayViewMut<T, D>) {
    let z = Zip::from(x);
    let f = |x: &mut T| *x *= a;
    if z.size() < PAR_MIN { z.for_each(f) } else { z.par_for_each(f) }
}

/// `x = a` everywhere.
pub fn fill<T: NdFloat, D: Dimension>(a: T, x: ArrayViewMut<T, D>) {
    let z = Zip::from(x);
    let f = |x: &mut T| *x = a;
    if z.size() < PAR_MIN { z.for_each(f) } else { z.par_for_each(f) }
}

/// `y = x`.
pub fn copy<T: NdFloat, D: Dimension>(x: ArrayView<T, D>, y: ArrayViewMut<T, D>) -> Result<()> {
    same_shape(x.shape(), y.shape())?;
    let z = Zip::from(y).and(x);
    let f = |y: &mut T, &x: &T| *y = x;
    if z.size() < PAR_MIN { z.for_each(f) } else { z.par_for_each(f) }
    Ok(())
}

/// The inner product `x . y`. It sums in eight lanes (so that the loop vectorises) and, in
/// parallel, chunk by chunk: the rounding differs from a sequential sum by a few ulps of
/// `sum |x_i y_i|`.
pub fn dot<T: NdFloat, D: Dimension>(x: ArrayView<T, D>, y: ArrayView<T, D>) -> Result<T> {
    same_shape(x.shape(), y.shape())?;
    if let (Some(x), Some(y)) = (x.as_slice(), y.as_slice()) {
        return Ok(if x.len() < PAR_MIN {
            dot_lanes(x, y)
        } else {
            x.par_chunks(PAR_MIN).zip(y.par_chunks(PAR_MIN)).map(|(x, y)| dot_lanes(x, y)).reduce(T::zero, |a, b| a + b)
        });
    }
    let z = Zip::from(x).and(y);
    Ok(z.par_fold(T::zero, |s, &x, &y| s + x * y, |a, b| a + b))
}

/// Values per chunk of [`dot_in_order`]: short enough that [`dot`] sums one on one thread.
pub const DOT_CHUNK: usize = 4096;

const LANES: usize = 8;

/// The inner product `x . y` summed in one fixed order, whatever the threads: chunks of
/// [`DOT_CHUNK`] values, each summed as [`dot`] sums it (eight lanes), added left to right. A
/// reproducible partial sum (a grid row's, say) that the fused kernels (`row_dot_laplacian_2d`,
/// `row_cg_step_2d`) take in the same order.
pub fn dot_in_order<T: NdFloat>(x: &[T], y: &[T]) -> Result<T> {
    same_shape(&[x.len()], &[y.len()])?;
    Ok(x.chunks(DOT_CHUNK).zip(y.chunks(DOT_CHUNK)).fold(T::zero(), |s, (x, y)| s + dot_lanes(x, y)))
}

/// [`dot_in_order`] fed a block at a time, so that a fused loop sums what it has just computed
/// while it is in the L1 cache. Blocks must not straddle a chunk: a multiple of [`LANES`] that
/// divides [`DOT_CHUNK`], all but the row's last.
pub(crate) struct OrderedDot<T> {
    total: T,
    acc: [T; LANES],
    tail: T,
    /// Values of the current chunk summed so far.
    filled: usize,
}

impl<T: NdFloat> OrderedDot<T> {
    pub(crate) fn new() -> Self {
        OrderedDot { total: T::zero(), acc: [T::zero(); LANES], tail: T::zero(), filled: 0 }
    }

    #[inline(always)]
    pub(crate) fn add(&mut self, x: &[T], y: &[T]) {
        if self.filled == DOT_CHUNK {
            self.end_chunk();
        }
        let y = &y[..x.len()];
        let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
        // Only the row's last block has a remainder: it is the chunk's tail, as in `dot_lanes`.
        self.tail = xc.remainder().iter().zip(yc.remainder()).fold(self.tail, |s, (&x, &y)| s + x * y);
        for (x, y) in xc.zip(yc) {
            for l in 0..LANES {
                self.acc[l] += x[l] * y[l];
            }
        }
        self.filled += x.len();
    }

    fn end_chunk(&mut self) {
        self.total += self.acc.iter().fold(self.tail, |s, &a| s + a);
        (self.acc, self.tail, self.filled) = ([T::zero(); LANES], T::zero(), 0);
    }

    pub(crate) fn finish(mut self) -> T {
        if self.filled > 0 {
            self.end_chunk();
        }
        self.total
    }
}

fn dot_lanes<T: NdFloat>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail = xc.remainder().iter().zip(yc.remainder()).fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in xc.zip(yc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().fold(tail, |s, &a| s + a)
}

/// The Euclidean norm `sqrt(x . x)`.
pub fn norm2<T: NdFloat, D: Dimension>(x: ArrayView<T, D>) -> T {
    dot(x.view(), x.view()).expect("same shape").sqrt()
}
