//! The compute kernels on the caller's arrays: stencils, vector operations, CSR SpMV, dense
//! products and solves, on the CPU or a CUDA device (chosen by name, or automatically).

use std::ffi::{c_char, c_int};

use ndarray::{ArrayView, ArrayView1, ArrayView2, ArrayViewMut, ArrayViewMut1, ArrayViewMut2, Dimension, Ix1, Ix2, Ix3, ShapeBuilder};
use rankwise_kernels::{cpu, Backend, Csr, Error as KernelError, Sparse};

use crate::boundary::*;

/// Where kernels run: the CPU, or one CUDA device (arrays are copied there and back per call).
pub struct rankwise_backend {
    be: Backend,
}
impl Handle for rankwise_backend {
    const KIND: &'static str = "rankwise_backend";
}

fn kernel(e: KernelError) -> Failure {
    let code = match e {
        KernelError::Shape(_) | KernelError::Layout(_) => RANKWISE_ERR_SHAPE,
        KernelError::Linalg(_) => RANKWISE_ERR_LINALG,
        KernelError::Backend(_) | KernelError::Cuda(_) => RANKWISE_ERR_BACKEND,
    };
    fail(code, e.to_string())
}

/// Not Collective. The back end `name`: "cpu", "cuda" (device `device`; an error without a
/// usable GPU) or "auto" (CUDA when usable, else the CPU).
///
/// # Safety
/// `name` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_backend_create(name: *const c_char, device: c_int, out: *mut *mut rankwise_backend) -> c_int {
    local(|| {
        const W: &str = "rankwise_backend_create";
        let name = text(name, W)?;
        out_ptr(out, W)?;
        let be = Backend::select(name, device.max(0) as usize).map_err(kernel)?;
        give(out, rankwise_backend { be })
    })
}

/// Not Collective. The back end's name ("cpu" or "cuda") into `buf` of `len` bytes.
///
/// # Safety
/// `buf` `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn rankwise_backend_name(be: *const rankwise_backend, buf: *mut c_char, len: usize) -> c_int {
    local(|| copy_out(get(be, "rankwise_backend_name")?.be.name(), buf, len, "rankwise_backend_name"))
}

/// Not Collective. Free the back end and set `*be` to null.
///
/// # Safety
/// `be` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_backend_destroy(be: *mut *mut rankwise_backend) -> c_int {
    local(|| take(be, "rankwise_backend_destroy").map(drop))
}

/// The back end to use: null is the CPU.
fn backend<'a>(be: *const rankwise_backend, what: &str) -> Res<&'a Backend> {
    static CPU: Backend = Backend::Cpu;
    if be.is_null() {
        return Ok(&CPU);
    }
    Ok(&get(be, what)?.be)
}

/// An array the caller gives: `shape` and element strides (null: C order, contiguous).
struct Layout<D: Dimension> {
    dim: D,
    strides: D,
    /// Elements from the first to one past the last.
    span: usize,
}

unsafe fn layout<D: Dimension>(shape: *const usize, strides: *const isize, what: &str) -> Res<Layout<D>> {
    let n = D::NDIM.expect("fixed dimensions");
    let shape = slice(shape, n, what)?;
    let mut dim = D::zeros(n);
    dim.slice_mut().copy_from_slice(shape);
    let st: Vec<usize> = if strides.is_null() {
        let mut st = vec![1usize; n];
        for d in (0..n.saturating_sub(1)).rev() {
            st[d] = st[d + 1] * shape[d + 1];
        }
        st
    } else {
        let s = slice(strides, n, what)?;
        if s.iter().any(|&x| x < 1) {
            return Err(fail(RANKWISE_ERR_SHAPE, format!("{what}: strides must be positive, not {s:?}")));
        }
        s.iter().map(|&x| x as usize).collect()
    };
    let mut strides = D::zeros(n);
    strides.slice_mut().copy_from_slice(&st);
    let span = if shape.contains(&0) { 0 } else { 1 + shape.iter().zip(&st).map(|(&n, &s)| (n - 1) * s).sum::<usize>() };
    Ok(Layout { dim, strides, span })
}

unsafe fn view<'a, D: Dimension>(p: *const f64, l: &Layout<D>, what: &str) -> Res<ArrayView<'a, f64, D>> {
    if p.is_null() {
        return Err(fail(RANKWISE_ERR_NULL, format!("{what}: a null array")));
    }
    Ok(ArrayView::from_shape_ptr(l.dim.clone().strides(l.strides.clone()), p))
}

unsafe fn view_mut<'a, D: Dimension>(p: *mut f64, l: &Layout<D>, what: &str) -> Res<ArrayViewMut<'a, f64, D>> {
    if p.is_null() {
        return Err(fail(RANKWISE_ERR_NULL, format!("{what}: a null array")));
    }
    Ok(ArrayViewMut::from_shape_ptr(l.dim.clone().strides(l.strides.clone()), p))
}

/// An input and an output must not share memory: a kernel would read what it already wrote.
fn disjoint(a: *const f64, a_len: usize, b: *const f64, b_len: usize, what: &str) -> Res {
    let (a0, b0) = (a as usize, b as usize);
    let (a1, b1) = (a0 + a_len * 8, b0 + b_len * 8);
    if a_len > 0 && b_len > 0 && a0 < b1 && b0 < a1 {
        return Err(fail(RANKWISE_ERR_SHAPE, format!("{what}: the input and output arrays overlap")));
    }
    Ok(())
}

/// A stencil from `src` into `dst` (same layout), on the CPU in place or through the device.
#[allow(clippy::too_many_arguments)]
unsafe fn stencil<D: Dimension>(
    be: *const rankwise_backend,
    src: *const f64,
    dst: *mut f64,
    shape: *const usize,
    strides: *const isize,
    what: &str,
    on_cpu: impl FnOnce(ArrayView<f64, D>, ArrayViewMut<f64, D>) -> rankwise_kernels::Result<()>,
    on_backend: impl FnOnce(&Backend, &rankwise_kernels::Buffer<D>, &mut rankwise_kernels::Buffer<D>) -> rankwise_kernels::Result<()>,
) -> Res {
    let be = backend(be, what)?;
    let l = layout::<D>(shape, strides, what)?;
    disjoint(src, l.span, dst, l.span, what)?;
    let (s, mut d) = (view(src, &l, what)?, view_mut(dst, &l, what)?);
    match be {
        Backend::Cpu => on_cpu(s, d).map_err(kernel),
        _ => {
            let (s_dev, mut d_dev) = (be.upload(s).map_err(kernel)?, be.upload(d.view()).map_err(kernel)?);
            on_backend(be, &s_dev, &mut d_dev).map_err(kernel)?;
            d.assign(&be.download(&d_dev).map_err(kernel)?);
            Ok(())
        }
    }
}

/// Not Collective. `dst = lap(src)` on the interior of a 2-D block of `shape[2]` (ghosts
/// included) with `ghost` layers and cell sizes `h[2]`; `strides[2]` in elements (null: C order).
/// The ghosts of `dst` are left as they are. `be` null: the CPU.
///
/// # Safety
/// `src` and `dst` hold blocks of that layout; `shape`, `h` (and `strides`) 2 elements.
#[no_mangle]
pub unsafe extern "C" fn rankwise_laplacian_2d(be: *const rankwise_backend, src: *const f64, dst: *mut f64, shape: *const usize, strides: *const isize, ghost: usize, h: *const f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_laplacian_2d";
        let h: [f64; 2] = slice(h, 2, W)?.try_into().expect("2");
        stencil::<Ix2>(be, src, dst, shape, strides, W, |s, d| cpu::laplacian_2d(s, d, ghost, h), |b, s, d| b.laplacian_2d(s, d, ghost, h))
    })
}

/// Not Collective. [`rankwise_laplacian_2d`] in 3-D (`shape`, `strides`, `h`: 3 elements).
///
/// # Safety
/// As [`rankwise_laplacian_2d`].
#[no_mangle]
pub unsafe extern "C" fn rankwise_laplacian_3d(be: *const rankwise_backend, src: *const f64, dst: *mut f64, shape: *const usize, strides: *const isize, ghost: usize, h: *const f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_laplacian_3d";
        let h: [f64; 3] = slice(h, 3, W)?.try_into().expect("3");
        stencil::<Ix3>(be, src, dst, shape, strides, W, |s, d| cpu::laplacian_3d(s, d, ghost, h), |b, s, d| b.laplacian_3d(s, d, ghost, h))
    })
}

/// Not Collective. One explicit heat step `dst = src + nu_dt lap(src)` on the interior of a 2-D
/// block (layout as in [`rankwise_laplacian_2d`]).
///
/// # Safety
/// As [`rankwise_laplacian_2d`].
#[no_mangle]
pub unsafe extern "C" fn rankwise_heat_step_2d(
    be: *const rankwise_backend,
    src: *const f64,
    dst: *mut f64,
    shape: *const usize,
    strides: *const isize,
    ghost: usize,
    h: *const f64,
    nu_dt: f64,
) -> c_int {
    local(|| {
        const W: &str = "rankwise_heat_step_2d";
        let h: [f64; 2] = slice(h, 2, W)?.try_into().expect("2");
        stencil::<Ix2>(be, src, dst, shape, strides, W, |s, d| cpu::heat_step_2d(s, d, ghost, h, nu_dt), |b, s, d| b.heat_step_2d(s, d, ghost, h, nu_dt))
    })
}

/// Not Collective. [`rankwise_heat_step_2d`] in 3-D.
///
/// # Safety
/// As [`rankwise_laplacian_3d`].
#[no_mangle]
pub unsafe extern "C" fn rankwise_heat_step_3d(
    be: *const rankwise_backend,
    src: *const f64,
    dst: *mut f64,
    shape: *const usize,
    strides: *const isize,
    ghost: usize,
    h: *const f64,
    nu_dt: f64,
) -> c_int {
    local(|| {
        const W: &str = "rankwise_heat_step_3d";
        let h: [f64; 3] = slice(h, 3, W)?.try_into().expect("3");
        stencil::<Ix3>(be, src, dst, shape, strides, W, |s, d| cpu::heat_step_3d(s, d, ghost, h, nu_dt), |b, s, d| b.heat_step_3d(s, d, ghost, h, nu_dt))
    })
}

unsafe fn vec_in<'a>(p: *const f64, n: usize, what: &str) -> Res<ArrayView1<'a, f64>> {
    Ok(ArrayView1::from(slice(p, n, what)?))
}
unsafe fn vec_out<'a>(p: *mut f64, n: usize, what: &str) -> Res<ArrayViewMut1<'a, f64>> {
    Ok(ArrayViewMut1::from(slice_mut(p, n, what)?))
}

/// `y = f(x, y)` on the back end: in place on the CPU, through the device otherwise.
unsafe fn update(
    be: *const rankwise_backend,
    n: usize,
    x: *const f64,
    y: *mut f64,
    what: &str,
    on_cpu: impl FnOnce(ArrayView1<f64>, ArrayViewMut1<f64>) -> rankwise_kernels::Result<()>,
    on_backend: impl FnOnce(&Backend, &rankwise_kernels::Buffer<Ix1>, &mut rankwise_kernels::Buffer<Ix1>) -> rankwise_kernels::Result<()>,
) -> Res {
    let be = backend(be, what)?;
    disjoint(x, n, y, n, what)?;
    let (xv, mut yv) = (vec_in(x, n, what)?, vec_out(y, n, what)?);
    match be {
        Backend::Cpu => on_cpu(xv, yv).map_err(kernel),
        _ => {
            let (xd, mut yd) = (be.upload(xv).map_err(kernel)?, be.upload(yv.view()).map_err(kernel)?);
            on_backend(be, &xd, &mut yd).map_err(kernel)?;
            yv.assign(&be.download(&yd).map_err(kernel)?);
            Ok(())
        }
    }
}

/// Not Collective. `y = a x + y` for vectors of `n` elements.
///
/// # Safety
/// `x`, `y` hold `n` elements and do not overlap.
#[no_mangle]
pub unsafe extern "C" fn rankwise_axpy(be: *const rankwise_backend, n: usize, a: f64, x: *const f64, y: *mut f64) -> c_int {
    local(|| update(be, n, x, y, "rankwise_axpy", |x, y| cpu::axpy(a, x, y), |b, x, y| b.axpy(a, x, y)))
}

/// Not Collective. `y = a x + b y`.
///
/// # Safety
/// As [`rankwise_axpy`].
#[no_mangle]
pub unsafe extern "C" fn rankwise_axpby(be: *const rankwise_backend, n: usize, a: f64, x: *const f64, b: f64, y: *mut f64) -> c_int {
    local(|| update(be, n, x, y, "rankwise_axpby", |x, y| cpu::axpby(a, x, b, y), |be, x, y| be.axpby(a, x, b, y)))
}

/// Not Collective. `x = a x`.
///
/// # Safety
/// `x` holds `n` elements.
#[no_mangle]
pub unsafe extern "C" fn rankwise_scale(be: *const rankwise_backend, n: usize, a: f64, x: *mut f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_scale";
        let be = backend(be, W)?;
        let mut xv = vec_out(x, n, W)?;
        match be {
            Backend::Cpu => cpu::scale(a, xv),
            _ => {
                let mut xd = be.upload(xv.view()).map_err(kernel)?;
                be.scale(a, &mut xd).map_err(kernel)?;
                xv.assign(&be.download(&xd).map_err(kernel)?);
            }
        }
        Ok(())
    })
}

/// Not Collective. `*out = x . y` (this rank's part; add over ranks with MPI_Allreduce or use
/// [`crate::parallel::rankwise_field_dot`] for fields).
///
/// # Safety
/// `x`, `y` hold `n` elements; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_dot(be: *const rankwise_backend, n: usize, x: *const f64, y: *const f64, out: *mut f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_dot";
        let be = backend(be, W)?;
        let (xv, yv) = (vec_in(x, n, W)?, vec_in(y, n, W)?);
        let out = out_ptr(out, W)?;
        *out = match be {
            Backend::Cpu => cpu::dot(xv, yv).map_err(kernel)?,
            _ => be.dot(&be.upload(xv).map_err(kernel)?, &be.upload(yv).map_err(kernel)?).map_err(kernel)?,
        };
        Ok(())
    })
}

/// Not Collective. `*out = |x|_2` (this rank's part).
///
/// # Safety
/// `x` holds `n` elements; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_norm2(be: *const rankwise_backend, n: usize, x: *const f64, out: *mut f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_norm2";
        let be = backend(be, W)?;
        let xv = vec_in(x, n, W)?;
        let out = out_ptr(out, W)?;
        *out = match be {
            Backend::Cpu => cpu::norm2(xv),
            _ => be.norm2(&be.upload(xv).map_err(kernel)?).map_err(kernel)?,
        };
        Ok(())
    })
}

/// A sparse matrix in CSR form, in a back end's memory.
pub struct rankwise_csr {
    a: Sparse,
    nrows: usize,
    ncols: usize,
}
impl Handle for rankwise_csr {
    const KIND: &'static str = "rankwise_csr";
}

/// Not Collective. Copy the CSR matrix (`nrows` x `ncols`; row `i`'s entries are
/// `indptr[i]..indptr[i+1]` of `indices` and `values`, 0-based) into `be`'s memory.
///
/// # Errors
/// `RANKWISE_ERR_SHAPE` for row pointers that do not rise or column indices out of range.
///
/// # Safety
/// `indptr` holds `nrows + 1` elements; `indices` and `values` `indptr[nrows]`.
#[no_mangle]
pub unsafe extern "C" fn rankwise_csr_create(
    be: *const rankwise_backend,
    nrows: usize,
    ncols: usize,
    indptr: *const usize,
    indices: *const usize,
    values: *const f64,
    out: *mut *mut rankwise_csr,
) -> c_int {
    local(|| {
        const W: &str = "rankwise_csr_create";
        let be = backend(be, W)?;
        out_ptr(out, W)?;
        let ip = slice(indptr, nrows + 1, W)?;
        let nnz = ip[nrows];
        let a = Csr::new(nrows, ncols, ip.to_vec(), slice(indices, nnz, W)?.to_vec(), slice(values, nnz, W)?.to_vec()).map_err(kernel)?;
        give(out, rankwise_csr { a: be.upload_csr(&a).map_err(kernel)?, nrows, ncols })
    })
}

/// Not Collective. Free the matrix and set `*a` to null.
///
/// # Safety
/// `a` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_csr_destroy(a: *mut *mut rankwise_csr) -> c_int {
    local(|| take(a, "rankwise_csr_destroy").map(drop))
}

/// Not Collective. `y = A x` (`x` of `ncols`, `y` of `nrows` elements), on the back end the
/// matrix was made for.
///
/// # Safety
/// `x`, `y` hold those many elements.
#[no_mangle]
pub unsafe extern "C" fn rankwise_spmv(be: *const rankwise_backend, a: *const rankwise_csr, x: *const f64, y: *mut f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_spmv";
        let be = backend(be, W)?;
        let a = get(a, W)?;
        disjoint(x, a.ncols, y, a.nrows, W)?;
        let (xv, mut yv) = (vec_in(x, a.ncols, W)?, vec_out(y, a.nrows, W)?);
        match (be, &a.a) {
            (Backend::Cpu, Sparse::Host(m)) => cpu::spmv(m, xv, yv).map_err(kernel),
            (Backend::Cpu, _) | (_, Sparse::Host(_)) => Err(fail(RANKWISE_ERR_BACKEND, format!("{W}: the matrix was made for another back end"))),
            _ => {
                let (xd, mut yd) = (be.upload(xv).map_err(kernel)?, be.zeros(Ix1(a.nrows)).map_err(kernel)?);
                be.spmv(&a.a, &xd, &mut yd).map_err(kernel)?;
                yv.assign(&be.download(&yd).map_err(kernel)?);
                Ok(())
            }
        }
    })
}

unsafe fn mat<'a>(p: *const f64, r: usize, c: usize, what: &str) -> Res<ArrayView2<'a, f64>> {
    Ok(ArrayView2::from_shape((r, c), slice(p, r * c, what)?).expect("length checked"))
}
unsafe fn mat_mut<'a>(p: *mut f64, r: usize, c: usize, what: &str) -> Res<ArrayViewMut2<'a, f64>> {
    Ok(ArrayViewMut2::from_shape((r, c), slice_mut(p, r * c, what)?).expect("length checked"))
}

/// Not Collective. `c = a b` for row-major (C order) `a` (`m` x `k`), `b` (`k` x `n`), `c`
/// (`m` x `n`), by BLAS dgemm on the CPU or cuBLAS-free kernels on the device.
///
/// # Safety
/// The arrays hold those many elements; `c` overlaps neither.
#[no_mangle]
pub unsafe extern "C" fn rankwise_matmul(be: *const rankwise_backend, m: usize, k: usize, n: usize, a: *const f64, b: *const f64, c: *mut f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_matmul";
        let be = backend(be, W)?;
        disjoint(a, m * k, c, m * n, W)?;
        disjoint(b, k * n, c, m * n, W)?;
        let (av, bv, mut cv) = (mat(a, m, k, W)?, mat(b, k, n, W)?, mat_mut(c, m, n, W)?);
        match be {
            Backend::Cpu => cpu::matmul(av, bv, cv).map_err(kernel),
            _ => {
                let (ad, bd, mut cd) = (be.upload(av).map_err(kernel)?, be.upload(bv).map_err(kernel)?, be.zeros(Ix2(m, n)).map_err(kernel)?);
                be.matmul(&ad, &bd, &mut cd).map_err(kernel)?;
                cv.assign(&be.download(&cd).map_err(kernel)?);
                Ok(())
            }
        }
    })
}

/// Not Collective. Solve `a x = b` (`a` row-major `n` x `n`) by LU with partial pivoting (LAPACK,
/// on the CPU).
///
/// # Errors
/// `RANKWISE_ERR_LINALG` for a singular matrix.
///
/// # Safety
/// `a` holds `n*n`, `b` and `x` `n` elements.
#[no_mangle]
pub unsafe extern "C" fn rankwise_lu_solve(n: usize, a: *const f64, b: *const f64, x: *mut f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_lu_solve";
        let sol = cpu::lu_solve(mat(a, n, n, W)?, vec_in(b, n, W)?).map_err(kernel)?;
        vec_out(x, n, W)?.assign(&sol);
        Ok(())
    })
}

/// Not Collective. The lower-triangular `l` (row-major `n` x `n`) with `a = l l^T` for a symmetric
/// positive definite `a` (LAPACK, on the CPU).
///
/// # Errors
/// `RANKWISE_ERR_LINALG` when `a` is not positive definite.
///
/// # Safety
/// `a` and `l` hold `n*n` elements.
#[no_mangle]
pub unsafe extern "C" fn rankwise_cholesky(n: usize, a: *const f64, l: *mut f64) -> c_int {
    local(|| {
        const W: &str = "rankwise_cholesky";
        let f = cpu::cholesky(mat(a, n, n, W)?).map_err(kernel)?;
        mat_mut(l, n, n, W)?.assign(&f);
        Ok(())
    })
}
