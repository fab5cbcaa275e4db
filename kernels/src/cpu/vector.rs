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

fn dot_lanes<T: NdFloat>(x: &[T], y: &[T]) -> T {
    const LANES: usize = 8;
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
