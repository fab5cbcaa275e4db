//! The compute kernels on numpy arrays: stencils, vector operations, CSR SpMV, dense products and
//! solves. On the CPU they work in the arrays' own memory; on a CUDA back end the arrays are
//! copied to the device and back per call (numpy arrays live in host memory).

use ndarray::{ArrayView, ArrayViewMut, Dimension, Ix1, Ix2, Ix3, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use rankwise_kernels::{cpu, Backend as KBackend, Buffer, Csr, Error as KernelError, Sparse};

use crate::{local, BackendError, LinalgError, ShapeError};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Backend>()?;
    m.add_class::<CsrMatrix>()?;
    for f in [
        wrap_pyfunction!(laplacian, m)?,
        wrap_pyfunction!(heat_step, m)?,
        wrap_pyfunction!(jacobi, m)?,
        wrap_pyfunction!(axpy, m)?,
        wrap_pyfunction!(axpby, m)?,
        wrap_pyfunction!(scale, m)?,
        wrap_pyfunction!(fill, m)?,
        wrap_pyfunction!(copy, m)?,
        wrap_pyfunction!(dot, m)?,
        wrap_pyfunction!(norm2, m)?,
        wrap_pyfunction!(spmv, m)?,
        wrap_pyfunction!(matmul, m)?,
        wrap_pyfunction!(lu_solve, m)?,
        wrap_pyfunction!(cholesky, m)?,
        wrap_pyfunction!(eigh, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}

pub(crate) fn kernel_err(e: KernelError) -> PyErr {
    match e {
        KernelError::Shape(_) | KernelError::Layout(_) => ShapeError::new_err(e.to_string()),
        KernelError::Linalg(_) => LinalgError::new_err(e.to_string()),
        KernelError::Backend(_) | KernelError::Cuda(_) => BackendError::new_err(e.to_string()),
    }
}

/// Where kernels run: ``"cpu"``, ``"cuda"`` (device ``device``; an error without a usable GPU) or
/// ``"auto"`` (CUDA when usable, else the CPU).
#[pyclass(unsendable, module = "rankwise")]
pub struct Backend {
    pub(crate) be: KBackend,
}

#[pymethods]
impl Backend {
    #[new]
    #[pyo3(signature = (name = "cpu", device = 0))]
    fn new(name: &str, device: usize) -> PyResult<Self> {
        local(|| Ok(Backend { be: KBackend::select(name, device).map_err(kernel_err)? }))
    }
    /// ``"cpu"`` or ``"cuda"``: where the kernels run.
    #[getter]
    fn name(&self) -> &'static str {
        self.be.name()
    }
    fn __repr__(&self) -> String {
        format!("rankwise.Backend({:?})", self.be.name())
    }
}

static CPU: KBackend = KBackend::Cpu;

fn backend<'a>(be: &'a Option<PyRef<'_, Backend>>) -> &'a KBackend {
    be.as_ref().map_or(&CPU, |b| &b.be)
}

fn type_name(a: &Bound<'_, PyAny>) -> String {
    a.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// `a` as a float64 ndarray, or a `ShapeError` that says what was given instead.
fn float64<'py>(a: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    if let Ok(arr) = a.cast::<PyArrayDyn<f64>>() {
        return Ok(arr.clone());
    }
    match a.cast::<PyUntypedArray>() {
        Ok(u) => Err(ShapeError::new_err(format!("{what}: an array of dtype {} was given; Rankwise works on float64 arrays (np.asarray(x, dtype=np.float64))", u.dtype().str().map(|s| s.to_string()).unwrap_or_default()))),
        Err(_) => Err(ShapeError::new_err(format!("{what}: a numpy array was expected, not {}", type_name(a)))),
    }
}

/// An input array, read in place.
pub(crate) fn array_in<'py>(a: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArrayDyn<'py, f64>> {
    float64(a, what)?.try_readonly().map_err(|e| ShapeError::new_err(format!("{what}: {e} (it is also an output of this call)")))
}

/// An output array, written in place: writeable, and sharing no memory with another argument.
pub(crate) fn array_out<'py>(a: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadwriteArrayDyn<'py, f64>> {
    let arr = float64(a, what)?;
    arr.try_readwrite().map_err(|e| match e {
        numpy::BorrowError::NotWriteable => ShapeError::new_err(format!("{what}: the array is read-only")),
        _ => ShapeError::new_err(format!("{what}: the output shares memory with another argument of this call")),
    })
}

fn dims<'a, D: Dimension>(v: ArrayView<'a, f64, IxDyn>, what: &str) -> PyResult<ArrayView<'a, f64, D>> {
    let n = v.ndim();
    v.into_dimensionality::<D>().map_err(|_| ShapeError::new_err(format!("{what}: a {}-D array was expected, not {n}-D", D::NDIM.unwrap_or(0))))
}
fn dims_mut<'a, D: Dimension>(v: ArrayViewMut<'a, f64, IxDyn>, what: &str) -> PyResult<ArrayViewMut<'a, f64, D>> {
    let n = v.ndim();
    v.into_dimensionality::<D>().map_err(|_| ShapeError::new_err(format!("{what}: a {}-D array was expected, not {n}-D", D::NDIM.unwrap_or(0))))
}

type KResult = rankwise_kernels::Result<()>;

/// `out = op(inputs, out)` on the back end: in place on the CPU, through the device otherwise.
fn on_backend<D: Dimension>(
    be: &KBackend,
    inputs: &[ArrayView<'_, f64, D>],
    mut out: ArrayViewMut<'_, f64, D>,
    on_cpu: impl FnOnce(&[ArrayView<'_, f64, D>], ArrayViewMut<'_, f64, D>) -> KResult,
    on_dev: impl FnOnce(&KBackend, &[Buffer<D>], &mut Buffer<D>) -> KResult,
) -> PyResult<()> {
    match be {
        KBackend::Cpu => on_cpu(inputs, out).map_err(kernel_err),
        _ => {
            let ins = inputs.iter().map(|a| be.upload(a.view())).collect::<Result<Vec<_>, _>>().map_err(kernel_err)?;
            let mut o = be.upload(out.view()).map_err(kernel_err)?;
            on_dev(be, &ins, &mut o).map_err(kernel_err)?;
            out.assign(&be.download(&o).map_err(kernel_err)?);
            Ok(())
        }
    }
}

/// `e` with `what: ` before its message, of the same exception type.
fn prefixed(e: PyErr, what: &str) -> PyErr {
    Python::attach(|py| PyErr::from_type(e.get_type(py), format!("{what}: {}", e.value(py))))
}

fn spacing<const N: usize>(h: &[f64], what: &str) -> PyResult<[f64; N]> {
    h.try_into().map_err(|_| ShapeError::new_err(format!("{what}: h needs one cell size per dimension ({N}), not {}", h.len())))
}

/// A stencil from `srcs` into `dst` on 2-D or 3-D blocks with `ghost` layers.
#[allow(clippy::too_many_arguments)]
fn stencil(
    srcs: &[(&Bound<'_, PyAny>, &str)],
    dst: &Bound<'_, PyAny>,
    h: &[f64],
    be: &KBackend,
    what: &str,
    two: impl FnOnce(&[ArrayView<'_, f64, Ix2>], ArrayViewMut<'_, f64, Ix2>, [f64; 2]) -> KResult,
    two_dev: impl FnOnce(&KBackend, &[Buffer<Ix2>], &mut Buffer<Ix2>, [f64; 2]) -> KResult,
    three: impl FnOnce(&[ArrayView<'_, f64, Ix3>], ArrayViewMut<'_, f64, Ix3>, [f64; 3]) -> KResult,
    three_dev: impl FnOnce(&KBackend, &[Buffer<Ix3>], &mut Buffer<Ix3>, [f64; 3]) -> KResult,
) -> PyResult<()> {
    run_stencil(srcs, dst, h, be, what, two, two_dev, three, three_dev).map_err(|e| if e.to_string().contains(what) { e } else { prefixed(e, what) })
}

#[allow(clippy::too_many_arguments)]
fn run_stencil(
    srcs: &[(&Bound<'_, PyAny>, &str)],
    dst: &Bound<'_, PyAny>,
    h: &[f64],
    be: &KBackend,
    what: &str,
    two: impl FnOnce(&[ArrayView<'_, f64, Ix2>], ArrayViewMut<'_, f64, Ix2>, [f64; 2]) -> KResult,
    two_dev: impl FnOnce(&KBackend, &[Buffer<Ix2>], &mut Buffer<Ix2>, [f64; 2]) -> KResult,
    three: impl FnOnce(&[ArrayView<'_, f64, Ix3>], ArrayViewMut<'_, f64, Ix3>, [f64; 3]) -> KResult,
    three_dev: impl FnOnce(&KBackend, &[Buffer<Ix3>], &mut Buffer<Ix3>, [f64; 3]) -> KResult,
) -> PyResult<()> {
    let ins = srcs.iter().map(|(a, n)| array_in(a, &format!("{what}: {n}"))).collect::<PyResult<Vec<_>>>()?;
    let mut out = array_out(dst, &format!("{what}: dst"))?;
    let views: Vec<_> = ins.iter().map(|a| a.as_array()).collect();
    match out.as_array().ndim() {
        2 => {
            let h = spacing::<2>(h, what)?;
            let v = views.into_iter().map(|a| dims::<Ix2>(a, what)).collect::<PyResult<Vec<_>>>()?;
            on_backend(be, &v, dims_mut::<Ix2>(out.as_array_mut(), what)?, |i, o| two(i, o, h), |b, i, o| two_dev(b, i, o, h))
        }
        3 => {
            let h = spacing::<3>(h, what)?;
            let v = views.into_iter().map(|a| dims::<Ix3>(a, what)).collect::<PyResult<Vec<_>>>()?;
            on_backend(be, &v, dims_mut::<Ix3>(out.as_array_mut(), what)?, |i, o| three(i, o, h), |b, i, o| three_dev(b, i, o, h))
        }
        n => Err(ShapeError::new_err(format!("{what}: stencils work on 2-D and 3-D blocks, not {n}-D"))),
    }
}

/// ``dst = lap(src)`` on the interior of a 2-D or 3-D block with ``ghost`` layers on every side
/// and cell sizes ``h`` (one per dimension). The ghosts of ``dst`` are left as they are.
#[pyfunction]
#[pyo3(signature = (src, dst, ghost, h, backend = None))]
fn laplacian(src: &Bound<'_, PyAny>, dst: &Bound<'_, PyAny>, ghost: usize, h: Vec<f64>, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| {
        stencil(
            &[(src, "src")],
            dst,
            &h,
            be,
            "laplacian",
            |i, o, h| cpu::laplacian_2d(i[0].view(), o, ghost, h),
            |b, i, o, h| b.laplacian_2d(&i[0], o, ghost, h),
            |i, o, h| cpu::laplacian_3d(i[0].view(), o, ghost, h),
            |b, i, o, h| b.laplacian_3d(&i[0], o, ghost, h),
        )
    })
}

/// One explicit heat step ``dst = src + nu_dt * lap(src)`` on the interior of a 2-D or 3-D block
/// (as :func:`laplacian`).
#[pyfunction]
#[pyo3(signature = (src, dst, ghost, h, nu_dt, backend = None))]
fn heat_step(src: &Bound<'_, PyAny>, dst: &Bound<'_, PyAny>, ghost: usize, h: Vec<f64>, nu_dt: f64, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| {
        stencil(
            &[(src, "src")],
            dst,
            &h,
            be,
            "heat_step",
            |i, o, h| cpu::heat_step_2d(i[0].view(), o, ghost, h, nu_dt),
            |b, i, o, h| b.heat_step_2d(&i[0], o, ghost, h, nu_dt),
            |i, o, h| cpu::heat_step_3d(i[0].view(), o, ghost, h, nu_dt),
            |b, i, o, h| b.heat_step_3d(&i[0], o, ghost, h, nu_dt),
        )
    })
}

/// One weighted Jacobi sweep for ``-lap(u) = f`` into ``dst`` (``omega`` = 1: plain Jacobi).
#[pyfunction]
#[pyo3(signature = (u, f, dst, ghost, h, omega = 1.0, backend = None))]
#[allow(clippy::too_many_arguments)]
fn jacobi(u: &Bound<'_, PyAny>, f: &Bound<'_, PyAny>, dst: &Bound<'_, PyAny>, ghost: usize, h: Vec<f64>, omega: f64, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| {
        stencil(
            &[(u, "u"), (f, "f")],
            dst,
            &h,
            be,
            "jacobi",
            |i, o, h| cpu::jacobi_2d(i[0].view(), i[1].view(), o, ghost, h, omega),
            |b, i, o, h| b.jacobi_2d(&i[0], &i[1], o, ghost, h, omega),
            |i, o, h| cpu::jacobi_3d(i[0].view(), i[1].view(), o, ghost, h, omega),
            |b, i, o, h| b.jacobi_3d(&i[0], &i[1], o, ghost, h, omega),
        )
    })
}

/// `y = op(x, y)` for arrays of any shape.
fn update(
    x: Option<&Bound<'_, PyAny>>,
    y: &Bound<'_, PyAny>,
    be: &KBackend,
    what: &str,
    on_cpu: impl FnOnce(Option<ArrayView<'_, f64, IxDyn>>, ArrayViewMut<'_, f64, IxDyn>) -> KResult,
    on_dev: impl FnOnce(&KBackend, Option<&Buffer<IxDyn>>, &mut Buffer<IxDyn>) -> KResult,
) -> PyResult<()> {
    let xin = x.map(|x| array_in(x, &format!("{what}: x"))).transpose()?;
    let mut yout = array_out(y, &format!("{what}: y"))?;
    let xv: Vec<_> = xin.iter().map(|a| a.as_array()).collect();
    on_backend(be, &xv, yout.as_array_mut(), |i, o| on_cpu(i.first().map(|a| a.view()), o), |b, i, o| on_dev(b, i.first(), o)).map_err(|e| prefixed(e, what))
}

/// ``y = a * x + y``.
#[pyfunction]
#[pyo3(signature = (a, x, y, backend = None))]
fn axpy(a: f64, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| update(Some(x), y, be, "axpy", |x, y| cpu::axpy(a, x.expect("x"), y), |b, x, y| b.axpy(a, x.expect("x"), y)))
}

/// ``y = a * x + b * y``.
#[pyfunction]
#[pyo3(signature = (a, x, b, y, backend = None))]
fn axpby(a: f64, x: &Bound<'_, PyAny>, b: f64, y: &Bound<'_, PyAny>, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| update(Some(x), y, be, "axpby", |x, y| cpu::axpby(a, x.expect("x"), b, y), |be, x, y| be.axpby(a, x.expect("x"), b, y)))
}

/// ``x = a * x``.
#[pyfunction]
#[pyo3(signature = (a, x, backend = None))]
fn scale(a: f64, x: &Bound<'_, PyAny>, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| {
        update(
            None,
            x,
            be,
            "scale",
            |_, x| {
                cpu::scale(a, x);
                Ok(())
            },
            |b, _, x| b.scale(a, x),
        )
    })
}

/// ``x = a`` everywhere.
#[pyfunction]
#[pyo3(signature = (a, x, backend = None))]
fn fill(a: f64, x: &Bound<'_, PyAny>, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| {
        update(
            None,
            x,
            be,
            "fill",
            |_, x| {
                cpu::fill(a, x);
                Ok(())
            },
            |b, _, x| b.fill(a, x),
        )
    })
}

/// ``y = x``.
#[pyfunction]
#[pyo3(signature = (x, y, backend = None))]
fn copy(x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| update(Some(x), y, be, "copy", |x, y| cpu::copy(x.expect("x"), y), |b, x, y| b.copy(x.expect("x"), y)))
}

/// ``x . y`` over all elements (this process's arrays; :meth:`Field.dot` for a distributed,
/// reproducible one).
#[pyfunction]
#[pyo3(signature = (x, y, backend = None))]
fn dot(x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, backend: Option<PyRef<'_, Backend>>) -> PyResult<f64> {
    let be = self::backend(&backend);
    local(|| {
        let (x, y) = (array_in(x, "dot: x")?, array_in(y, "dot: y")?);
        match be {
            KBackend::Cpu => cpu::dot(x.as_array(), y.as_array()).map_err(kernel_err),
            _ => be.dot(&be.upload(x.as_array()).map_err(kernel_err)?, &be.upload(y.as_array()).map_err(kernel_err)?).map_err(kernel_err),
        }
    })
}

/// ``sqrt(x . x)``.
#[pyfunction]
#[pyo3(signature = (x, backend = None))]
fn norm2(x: &Bound<'_, PyAny>, backend: Option<PyRef<'_, Backend>>) -> PyResult<f64> {
    let be = self::backend(&backend);
    local(|| {
        let x = array_in(x, "norm2: x")?;
        match be {
            KBackend::Cpu => Ok(cpu::norm2(x.as_array())),
            _ => be.norm2(&be.upload(x.as_array()).map_err(kernel_err)?).map_err(kernel_err),
        }
    })
}

/// A sparse matrix in CSR form (``scipy.sparse.csr_matrix``'s ``indptr``, ``indices``, ``data``),
/// in a back end's memory.
#[pyclass(unsendable, module = "rankwise")]
pub struct CsrMatrix {
    a: Sparse,
    be: KBackend,
    nrows: usize,
    ncols: usize,
    nnz: usize,
}

#[pymethods]
impl CsrMatrix {
    #[new]
    #[pyo3(signature = (shape, indptr, indices, data, backend = None))]
    fn new(shape: (usize, usize), indptr: Vec<usize>, indices: Vec<usize>, data: Vec<f64>, backend: Option<PyRef<'_, Backend>>) -> PyResult<Self> {
        let be = self::backend(&backend);
        local(|| {
            let (nrows, ncols) = shape;
            if indptr.len() != nrows + 1 {
                return Err(ShapeError::new_err(format!("CsrMatrix: indptr has {} entries; {nrows} rows need {}", indptr.len(), nrows + 1)));
            }
            let nnz = data.len();
            let a = Csr::new(nrows, ncols, indptr, indices, data).map_err(kernel_err)?;
            Ok(CsrMatrix { a: be.upload_csr(&a).map_err(kernel_err)?, be: be.clone(), nrows, ncols, nnz })
        })
    }
    /// ``(rows, columns)``.
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.nrows, self.ncols)
    }
    /// Stored entries.
    #[getter]
    fn nnz(&self) -> usize {
        self.nnz
    }
    /// ``y = A x`` on the back end the matrix was made for.
    fn spmv(&self, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<()> {
        local(|| {
            let xin = array_in(x, "spmv: x")?;
            let mut yout = array_out(y, "spmv: y")?;
            let xv = dims::<Ix1>(xin.as_array(), "spmv: x")?;
            let mut yv = dims_mut::<Ix1>(yout.as_array_mut(), "spmv: y")?;
            if xv.len() != self.ncols || yv.len() != self.nrows {
                return Err(ShapeError::new_err(format!("spmv: a {}x{} matrix needs x of {} and y of {} elements, not {} and {}", self.nrows, self.ncols, self.ncols, self.nrows, xv.len(), yv.len())));
            }
            match &self.a {
                Sparse::Host(m) => cpu::spmv(m, xv, yv).map_err(kernel_err),
                Sparse::Device(_) => {
                    let be = &self.be;
                    let (xd, mut yd) = (be.upload(xv).map_err(kernel_err)?, be.zeros(Ix1(self.nrows)).map_err(kernel_err)?);
                    be.spmv(&self.a, &xd, &mut yd).map_err(kernel_err)?;
                    yv.assign(&be.download(&yd).map_err(kernel_err)?);
                    Ok(())
                }
            }
        })
    }
    fn __repr__(&self) -> String {
        format!("rankwise.CsrMatrix(shape=({}, {}), nnz={})", self.nrows, self.ncols, self.nnz)
    }
}

/// ``y = a @ x`` for a :class:`CsrMatrix` ``a``.
#[pyfunction]
fn spmv(a: PyRef<'_, CsrMatrix>, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<()> {
    a.spmv(x, y)
}

/// ``c = a @ b`` (2-D float64 arrays): BLAS dgemm on the CPU, the device's kernel on CUDA.
#[pyfunction]
#[pyo3(signature = (a, b, c, backend = None))]
fn matmul(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, c: &Bound<'_, PyAny>, backend: Option<PyRef<'_, Backend>>) -> PyResult<()> {
    let be = self::backend(&backend);
    local(|| {
        let (ai, bi) = (array_in(a, "matmul: a")?, array_in(b, "matmul: b")?);
        let mut co = array_out(c, "matmul: c")?;
        let (av, bv) = (dims::<Ix2>(ai.as_array(), "matmul: a")?, dims::<Ix2>(bi.as_array(), "matmul: b")?);
        let cv = dims_mut::<Ix2>(co.as_array_mut(), "matmul: c")?;
        on_backend(be, &[av, bv], cv, |i, o| cpu::matmul(i[0].view(), i[1].view(), o), |b, i, o| b.matmul(&i[0], &i[1], o))
    })
}

fn square<'a>(a: &'a PyReadonlyArrayDyn<'_, f64>, what: &str) -> PyResult<ArrayView<'a, f64, Ix2>> {
    let v = dims::<Ix2>(a.as_array(), what)?;
    if v.nrows() != v.ncols() {
        return Err(ShapeError::new_err(format!("{what}: a square matrix was expected, not {}x{}", v.nrows(), v.ncols())));
    }
    Ok(v)
}

/// The solution ``x`` of ``a x = b`` by LU with partial pivoting (LAPACK, on the CPU).
#[pyfunction]
fn lu_solve<'py>(py: Python<'py>, a: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>) -> PyResult<Bound<'py, numpy::PyArray1<f64>>> {
    local(|| {
        let (ai, bi) = (array_in(a, "lu_solve: a")?, array_in(b, "lu_solve: b")?);
        let x = cpu::lu_solve(square(&ai, "lu_solve: a")?, dims::<Ix1>(bi.as_array(), "lu_solve: b")?).map_err(kernel_err)?;
        Ok(x.into_pyarray(py))
    })
}

/// The lower-triangular ``l`` with ``a = l l^T`` for a symmetric positive definite ``a``.
#[pyfunction]
fn cholesky<'py>(py: Python<'py>, a: &Bound<'py, PyAny>) -> PyResult<Bound<'py, numpy::PyArray2<f64>>> {
    local(|| {
        let ai = array_in(a, "cholesky: a")?;
        Ok(cpu::cholesky(square(&ai, "cholesky: a")?).map_err(kernel_err)?.into_pyarray(py))
    })
}

/// Eigenvalues (ascending) and eigenvectors (columns) of a symmetric ``a``.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn eigh<'py>(py: Python<'py>, a: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, numpy::PyArray1<f64>>, Bound<'py, numpy::PyArray2<f64>>)> {
    local(|| {
        let ai = array_in(a, "eigh: a")?;
        let (w, v) = cpu::eigh(square(&ai, "eigh: a")?).map_err(kernel_err)?;
        Ok((w.into_pyarray(py), v.into_pyarray(py)))
    })
}
