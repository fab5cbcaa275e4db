//! The CPU back end: plain functions on ndarray views, parallel with rayon.
//!
//! Generic over `f32`/`f64` where that is free; the dense routines go through OpenBLAS/LAPACK
//! (ndarray-linalg) and are `f64`.
mod dense;
mod sparse;
mod stencil;
mod vector;

pub use dense::{cholesky, eigh, gemm, lu_solve, matmul};
pub use sparse::spmv;
pub use stencil::{heat_step_2d, heat_step_3d, jacobi_2d, last_level_cache, jacobi_3d, laplacian_2d, laplacian_2d_row, laplacian_3d, row_cg_direction_2d, row_cg_step_2d, row_dot_laplacian_2d};
pub(crate) use stencil::check_block;
pub use vector::{axpby, axpy, copy, dot, dot_in_order, fill, norm2, scale, DOT_CHUNK};

/// Below this many elements a kernel runs on the calling thread: rayon's start-up would cost
/// more than the work.
const PAR_MIN: usize = 1 << 14;
