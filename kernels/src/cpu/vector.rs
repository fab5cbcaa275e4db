//! Vector operations, the building blocks of Krylov solvers. They take arrays of any
//! dimension, so a whole field block is one vector.
use ndarray::{ArrayView, ArrayViewMut, Dimension, NdFloat, Zip};

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

/// The inner product `x . y`. In parallel each thread sums its own chunk, so the rounding
/// differs (by a few ulps of `sum |x_i y_i|`) from a sequential sum.
pub fn dot<T: NdFloat, D: Dimension>(x: ArrayView<T, D>, y: ArrayView<T, D>) -> Result<T> {
    same_shape(x.shape(), y.shape())?;
    let z = Zip::from(x).and(y);
    let f = |s: T, &x: &T, &y: &T| s + x * y;
    Ok(if z.size() < PAR_MIN {
        z.fold(T::zero(), f)
    } else {
        z.par_fold(T::zero, f, |a, b| a + b)
    })
}

/// The Euclidean norm `sqrt(x . x)`.
pub fn norm2<T: NdFloat, D: Dimension>(x: ArrayView<T, D>) -> T {
    dot(x.view(), x.view()).expect("same shape").sqrt()
}
