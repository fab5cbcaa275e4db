//! Dense linear algebra through OpenBLAS and LAPACK (ndarray-linalg).
use ndarray::{linalg::general_mat_mul, Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use ndarray_linalg::{Cholesky, Eigh, Solve, UPLO};

use crate::{Error, Result};

fn linalg(e: ndarray_linalg::error::LinalgError) -> Error {
    Error::Linalg(e.to_string())
}

/// `c = a b` (BLAS `dgemm`).
pub fn matmul(a: ArrayView2<f64>, b: ArrayView2<f64>, c: ArrayViewMut2<f64>) -> Result<()> {
    gemm(1.0, a, b, 0.0, c)
}

/// `c = alpha a b + beta c` (BLAS `dgemm`); `beta = 1` accumulates a sum of products in place,
/// as a blocked algorithm (SUMMA) does panel by panel.
pub fn gemm(alpha: f64, a: ArrayView2<f64>, b: ArrayView2<f64>, beta: f64, mut c: ArrayViewMut2<f64>) -> Result<()> {
    if a.ncols() != b.nrows() || c.dim() != (a.nrows(), b.ncols()) {
        return Err(Error::Shape(format!("{:?} times {:?} into {:?}", a.dim(), b.dim(), c.dim())));
    }
    general_mat_mul(alpha, &a, &b, beta, &mut c);
    Ok(())
}

/// The solution `x` of `a x = b` by LU factorisation with partial pivoting.
pub fn lu_solve(a: ArrayView2<f64>, b: ArrayView1<f64>) -> Result<Array1<f64>> {
    if a.nrows() != a.ncols() || b.len() != a.nrows() {
        return Err(Error::Shape(format!("system {:?} with right-hand side of {}", a.dim(), b.len())));
    }
    a.solve(&b).map_err(linalg)
}

/// The lower-triangular `l` with `a = l l^T`, for a symmetric positive definite `a`.
pub fn cholesky(a: ArrayView2<f64>) -> Result<Array2<f64>> {
    if a.nrows() != a.ncols() {
        return Err(Error::Shape(format!("Cholesky of a non-square {:?} matrix", a.dim())));
    }
    a.cholesky(UPLO::Lower).map_err(linalg)
}

/// Eigenvalues (ascending) and eigenvectors (the columns) of a symmetric matrix; only its lower
/// triangle is read.
pub fn eigh(a: ArrayView2<f64>) -> Result<(Array1<f64>, Array2<f64>)> {
    if a.nrows() != a.ncols() {
        return Err(Error::Shape(format!("eigen decomposition of a non-square {:?} matrix", a.dim())));
    }
    a.eigh(UPLO::Lower).map_err(linalg)
}
