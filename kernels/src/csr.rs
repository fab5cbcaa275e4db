//! A sparse matrix in compressed sparse row (CSR) form, the layout both back ends use.
use ndarray::ArrayView2;

use crate::{Error, Result};

/// `values[indptr[i]..indptr[i+1]]` are row `i`'s entries, in the columns `indices[..]` at the
/// same positions.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr<T> {
    nrows: usize,
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    values: Vec<T>,
}

impl<T: Copy> Csr<T> {
    /// Checks that the arrays describe a `nrows x ncols` matrix.
    pub fn new(nrows: usize, ncols: usize, indptr: Vec<usize>, indices: Vec<usize>, values: Vec<T>) -> Result<Self> {
        let bad = |what: String| Err(Error::Shape(format!("CSR matrix: {what}")));
        if indptr.len() != nrows + 1 || indptr[0] != 0 {
            return bad(format!("indptr must have nrows + 1 = {} entries starting at 0", nrows + 1));
        }
        if indptr.windows(2).any(|w| w[0] > w[1]) {
            return bad("indptr must not decrease".into());
        }
        let nnz = indptr[nrows];
        if indices.len() != nnz || values.len() != nnz {
            return bad(format!("indptr says {nnz} entries, indices has {}, values {}", indices.len(), values.len()));
        }
        if let Some(c) = indices.iter().find(|&&c| c >= ncols) {
            return bad(format!("column {c} out of range for {ncols} columns"));
        }
        Ok(Csr { nrows, ncols, indptr, indices, values })
    }

    /// The nonzero entries of a dense matrix, row by row.
    pub fn from_dense(a: ArrayView2<T>) -> Self
    where
        T: PartialEq + Default,
    {
        let (mut indptr, mut indices, mut values) = (vec![0], vec![], vec![]);
        for row in a.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != T::default() {
                    indices.push(j);
                    values.push(v);
                }
            }
            indptr.push(values.len());
        }
        Csr { nrows: a.nrows(), ncols: a.ncols(), indptr, indices, values }
    }

    pub fn nrows(&self) -> usize {
        self.nrows
    }
    pub fn ncols(&self) -> usize {
        self.ncols
    }
    pub fn nnz(&self) -> usize {
        self.values.len()
    }
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
    pub fn values(&self) -> &[T] {
        &self.values
    }
}
