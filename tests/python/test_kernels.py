"""The kernels on numpy arrays: the same results as numpy, in the caller's memory, and one clear
exception (a RankwiseError) for every kind of bad array."""

import numpy as np
import pytest

import rankwise


def lap2(u, h):
    c = u[1:-1, 1:-1]
    return (u[:-2, 1:-1] - 2 * c + u[2:, 1:-1]) / h[0] ** 2 + (u[1:-1, :-2] - 2 * c + u[1:-1, 2:]) / h[1] ** 2


def test_errors_are_exceptions_of_one_family():
    for e in (rankwise.InputError, rankwise.ShapeError, rankwise.MpiError, rankwise.CheckpointError, rankwise.LinalgError, rankwise.BackendError):
        assert issubclass(e, rankwise.RankwiseError)
    assert issubclass(rankwise.RankwiseError, Exception)


def test_heat_step_writes_the_interior_of_dst_in_place():
    rng = np.random.default_rng(1)
    u = rng.random((34, 18))
    v = np.full_like(u, -7.0)
    addr = v.ctypes.data
    h, nu_dt = [0.1, 0.2], 1e-3
    rankwise.heat_step(u, v, 1, h, nu_dt)
    assert v.ctypes.data == addr
    np.testing.assert_allclose(v[1:-1, 1:-1], u[1:-1, 1:-1] + nu_dt * lap2(u, h), rtol=1e-13)
    # The ghosts of dst are the caller's.
    assert (v[0] == -7.0).all() and (v[:, -1] == -7.0).all()


def test_stencils_on_strided_views_of_a_larger_array():
    # A sub-block of a larger array (rows strided, last axis contiguous) is used in place.
    rng = np.random.default_rng(2)
    big_u, big_v = rng.random((20, 30)), np.zeros((20, 30))
    rankwise.laplacian(big_u[2:12, 5:25], big_v[2:12, 5:25], 1, [1.0, 1.0])
    np.testing.assert_allclose(big_v[3:11, 6:24], lap2(big_u[2:12, 5:25], [1.0, 1.0]), rtol=1e-12)
    assert (big_v[:3] == 0).all() and (big_v[11:] == 0).all()


def test_3d_laplacian_and_jacobi():
    rng = np.random.default_rng(3)
    u = rng.random((6, 7, 8))
    out = np.zeros_like(u)
    rankwise.laplacian(u, out, 1, [1.0, 1.0, 1.0])
    c = u[1:-1, 1:-1, 1:-1]
    ref = sum(np.roll(u, s, axis=a)[1:-1, 1:-1, 1:-1] for a in range(3) for s in (1, -1)) - 6 * c
    np.testing.assert_allclose(out[1:-1, 1:-1, 1:-1], ref, rtol=1e-12, atol=1e-12)
    f = rng.random((6, 7, 8))
    rankwise.jacobi(u, f, out, 1, [1.0, 1.0, 1.0], omega=1.0)
    nb = sum(np.roll(u, s, axis=a)[1:-1, 1:-1, 1:-1] for a in range(3) for s in (1, -1))
    np.testing.assert_allclose(out[1:-1, 1:-1, 1:-1], (f[1:-1, 1:-1, 1:-1] + nb) / 6, rtol=1e-12)


def test_vector_operations_in_place():
    x, y = np.arange(10.0), np.ones(10)
    rankwise.axpy(2.0, x, y)
    np.testing.assert_array_equal(y, 1 + 2 * np.arange(10.0))
    rankwise.axpby(1.0, x, -1.0, y)
    np.testing.assert_array_equal(y, x - (1 + 2 * x))
    rankwise.scale(3.0, y)
    rankwise.fill(0.5, x)
    assert (x == 0.5).all()
    rankwise.copy(y, x)
    np.testing.assert_array_equal(x, y)
    assert rankwise.dot(x, y) == pytest.approx(float(y @ y))
    assert rankwise.norm2(y) == pytest.approx(float(np.linalg.norm(y)))
    # Any shape: a 2-D array is a vector of its elements.
    m = np.ones((3, 4))
    rankwise.scale(2.0, m)
    assert m.sum() == 24.0


def test_spmv_and_dense():
    # The 1-D Laplacian of 5 points in CSR form.
    n = 5
    dense = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    indptr, indices, data = [0], [], []
    for i in range(n):
        for j in range(n):
            if dense[i, j] != 0:
                indices.append(j)
                data.append(dense[i, j])
        indptr.append(len(indices))
    a = rankwise.CsrMatrix((n, n), indptr, indices, data)
    assert a.shape == (n, n) and a.nnz == 13
    x, y = np.arange(1.0, n + 1), np.zeros(n)
    a.spmv(x, y)
    np.testing.assert_array_equal(y, dense @ x)
    y[:] = 0
    rankwise.spmv(a, x, y)
    np.testing.assert_array_equal(y, dense @ x)
    rng = np.random.default_rng(4)
    p, q = rng.random((4, 3)), rng.random((3, 5))
    c = np.zeros((4, 5))
    rankwise.matmul(p, q, c)
    np.testing.assert_allclose(c, p @ q, rtol=1e-13)
    np.testing.assert_allclose(rankwise.lu_solve(dense, dense @ x), x, rtol=1e-12)
    low = rankwise.cholesky(dense)
    np.testing.assert_allclose(low @ low.T, dense, atol=1e-12)
    w, v = rankwise.eigh(dense)
    np.testing.assert_allclose(np.sort(w), np.linalg.eigvalsh(dense), atol=1e-12)


def test_bad_arrays_raise_one_clear_error():
    a, b = np.zeros((10, 10)), np.zeros((10, 10))
    with pytest.raises(rankwise.ShapeError, match=r"heat_step: src: an array of dtype int64 was given; Rankwise works on float64"):
        rankwise.heat_step(a.astype(np.int64), b, 1, [0.1, 0.1], 0.1)
    with pytest.raises(rankwise.ShapeError, match=r"dst: an array of dtype float32"):
        rankwise.heat_step(a, b.astype(np.float32), 1, [0.1, 0.1], 0.1)
    with pytest.raises(rankwise.ShapeError, match=r"a numpy array was expected, not list"):
        rankwise.heat_step([[0.0] * 4] * 4, b, 1, [0.1, 0.1], 0.1)
    with pytest.raises(rankwise.ShapeError, match=r"heat_step: shape mismatch"):
        rankwise.heat_step(a, np.zeros((10, 9)), 1, [0.1, 0.1], 0.1)
    with pytest.raises(rankwise.ShapeError, match=r"heat_step: layout: the last axis of a block must be contiguous"):
        rankwise.heat_step(a[:, ::2], b[:, ::2], 1, [0.1, 0.1], 0.1)
    with pytest.raises(rankwise.ShapeError, match=r"shares memory with another argument"):
        rankwise.heat_step(a, a, 1, [0.1, 0.1], 0.1)
    with pytest.raises(rankwise.ShapeError, match=r"shares memory"):
        rankwise.heat_step(a[:, :8], a[:, 2:], 1, [0.1, 0.1], 0.1)
    ro = np.zeros((10, 10))
    ro.flags.writeable = False
    with pytest.raises(rankwise.ShapeError, match=r"read-only"):
        rankwise.heat_step(a, ro, 1, [0.1, 0.1], 0.1)
    with pytest.raises(rankwise.ShapeError, match=r"h needs one cell size per dimension \(2\), not 3"):
        rankwise.heat_step(a, b, 1, [0.1, 0.1, 0.1], 0.1)
    with pytest.raises(rankwise.ShapeError, match=r"2-D and 3-D blocks, not 1-D"):
        rankwise.laplacian(np.zeros(5), np.zeros(5), 1, [1.0])
    with pytest.raises(rankwise.ShapeError, match=r"axpy"):
        rankwise.axpy(1.0, np.zeros(3), np.zeros(4))
    with pytest.raises(rankwise.ShapeError, match=r"x of 5 and y of 5 elements, not 4 and 5"):
        rankwise.CsrMatrix((5, 5), [0] * 6, [], []).spmv(np.zeros(4), np.zeros(5))
    with pytest.raises(rankwise.ShapeError):
        rankwise.CsrMatrix((2, 2), [0, 1, 2], [0, 5], [1.0, 1.0])
    with pytest.raises(rankwise.LinalgError):
        rankwise.cholesky(-np.eye(3))
    with pytest.raises(rankwise.ShapeError, match="square"):
        rankwise.lu_solve(np.zeros((2, 3)), np.zeros(2))
    # Nothing was written by a failed call.
    assert (b == 0).all()


def test_backends_by_name():
    assert rankwise.Backend().name == "cpu"
    assert rankwise.Backend("auto").name in ("cpu", "cuda")
    with pytest.raises(rankwise.BackendError, match="unknown back end 'gpu'"):
        rankwise.Backend("gpu")
    be = rankwise.Backend("auto")
    u, v = np.random.default_rng(5).random((12, 12)), np.zeros((12, 12))
    rankwise.heat_step(u, v, 1, [0.1, 0.1], 1e-3, backend=be)
    np.testing.assert_allclose(v[1:-1, 1:-1], u[1:-1, 1:-1] + 1e-3 * lap2(u, [0.1, 0.1]), rtol=1e-12)


def test_the_stub_names_what_the_module_has():
    import ast
    import os

    stub = os.path.join(os.path.dirname(rankwise.__file__), "_rankwise.pyi")
    tree = ast.parse(open(stub).read())
    named = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    named |= {t.id for n in tree.body if isinstance(n, ast.AnnAssign) for t in [n.target] if t.id.isupper()}
    public = {n for n in dir(rankwise._rankwise) if not n.startswith("_")}
    assert named == public, (named - public, public - named)
    # Every public function and class has a docstring.
    undocumented = [n for n in public if callable(getattr(rankwise, n)) and not getattr(rankwise, n).__doc__]
    assert undocumented == []
