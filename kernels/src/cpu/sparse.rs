use ndarray::{ArrayView1, ArrayViewMut1, Axis, NdFloat};
use rayon::prelude::*;

use super::PAR_MIN;
use crate::{Csr, Error, Result};

/// `y = A x` for a CSR matrix, rows in parallel.
pub fn spmv<T: NdFloat>(a: &Csr<T>, x: ArrayView1<T>, mut y: ArrayViewMut1<T>) -> Result<()> {
    if x.len() != a.ncols() || y.len() != a.nrows() {
        return Err(Error::Shape(format!(
            "{}x{} matrix times a vector of {} into a vector of {}",
            a.nrows(),
            a.ncols(),
            x.len(),
            y.len()
        )));
    }
    let (p, c, v) = (a.indptr(), a.indices(), a.values());
    let row = |(i, y): (usize, &mut T)| {
        let r = p[i]..p[i + 1];
        *y = c[r.clone()].iter().zip(&v[r]).fold(T::zero(), |s, (&j, &a)| s + a * x[j]);
    };
    if a.nnz() < PAR_MIN {
        y.iter_mut().enumerate().for_each(row);
    } else {
        y.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut y)| row((i, y.first_mut().unwrap())));
    }
    Ok(())
}
