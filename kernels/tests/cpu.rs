//! Every CPU kernel against a plain reference on fresh random data.
mod common;

use common::{assert_close, random};
use ndarray::{s, Array1, Array2, Array3, Axis};
use rankwise_kernels::{cpu, Backend, Buffer, Csr, Error};

const TOL: f64 = 1e-12;

/// The textbook 5-point Laplacian of `u` at (i, j).
fn lap2(u: &Array2<f64>, i: usize, j: usize, h: [f64; 2]) -> f64 {
    (u[[i - 1, j]] - 2.0 * u[[i, j]] + u[[i + 1, j]]) / (h[0] * h[0])
        + (u[[i, j - 1]] - 2.0 * u[[i, j]] + u[[i, j + 1]]) / (h[1] * h[1])
}

fn lap3(u: &Array3<f64>, i: usize, j: usize, k: usize, h: [f64; 3]) -> f64 {
    (u[[i - 1, j, k]] - 2.0 * u[[i, j, k]] + u[[i + 1, j, k]]) / (h[0] * h[0])
        + (u[[i, j - 1, k]] - 2.0 * u[[i, j, k]] + u[[i, j + 1, k]]) / (h[1] * h[1])
        + (u[[i, j, k - 1]] - 2.0 * u[[i, j, k]] + u[[i, j, k + 1]]) / (h[2] * h[2])
}

/// `want` is `dst` before the call with the interior replaced by `point(i, j)`: ghosts untouched.
fn expect_2d(dst0: &Array2<f64>, g: usize, point: impl Fn(usize, usize) -> f64) -> Array2<f64> {
    let mut want = dst0.clone();
    let (nx, ny) = want.dim();
    for i in g..nx - g {
        for j in g..ny - g {
            want[[i, j]] = point(i, j);
        }
    }
    want
}

fn expect_3d(dst0: &Array3<f64>, g: usize, point: impl Fn(usize, usize, usize) -> f64) -> Array3<f64> {
    let mut want = dst0.clone();
    let (nx, ny, nz) = want.dim();
    for i in g..nx - g {
        for j in g..ny - g {
            for k in g..nz - g {
                want[[i, j, k]] = point(i, j, k);
            }
        }
    }
    want
}

#[test]
fn stencils_2d_match_the_textbook_formulas() {
    let h = [0.3, 0.7];
    // Small (sequential path) and large (rayon path) blocks, one and two ghost layers.
    for (shape, g) in [((9, 13), 1), ((40, 37), 2), ((300, 260), 1)] {
        let (u, f, dst0) = (random(shape), random(shape), random(shape));
        let mut dst = dst0.clone();
        cpu::laplacian_2d(u.view(), dst.view_mut(), g, h).unwrap();
        assert_close("laplacian_2d", dst.view(), expect_2d(&dst0, g, |i, j| lap2(&u, i, j, h)).view(), TOL);

        let mut dst = dst0.clone();
        cpu::heat_step_2d(u.view(), dst.view_mut(), g, h, 0.05).unwrap();
        let want = expect_2d(&dst0, g, |i, j| u[[i, j]] + 0.05 * lap2(&u, i, j, h));
        assert_close("heat_step_2d", dst.view(), want.view(), TOL);

        let omega = 2.0 / 3.0;
        let diag = 2.0 / (h[0] * h[0]) + 2.0 / (h[1] * h[1]);
        let mut dst = dst0.clone();
        cpu::jacobi_2d(u.view(), f.view(), dst.view_mut(), g, h, omega).unwrap();
        let want = expect_2d(&dst0, g, |i, j| {
            let nbrs = (u[[i - 1, j]] + u[[i + 1, j]]) / (h[0] * h[0]) + (u[[i, j - 1]] + u[[i, j + 1]]) / (h[1] * h[1]);
            (1.0 - omega) * u[[i, j]] + omega * (f[[i, j]] + nbrs) / diag
        });
        assert_close("jacobi_2d", dst.view(), want.view(), TOL);
    }
}

#[test]
fn stencils_3d_match_the_textbook_formulas() {
    let h = [0.3, 0.5, 0.9];
    for (shape, g) in [((6, 7, 9), 1), ((20, 18, 24), 2), ((40, 44, 36), 1)] {
        let (u, f, dst0) = (random(shape), random(shape), random(shape));
        let mut dst = dst0.clone();
        cpu::laplacian_3d(u.view(), dst.view_mut(), g, h).unwrap();
        let want = expect_3d(&dst0, g, |i, j, k| lap3(&u, i, j, k, h));
        assert_close("laplacian_3d", dst.view(), want.view(), TOL);

        let mut dst = dst0.clone();
        cpu::heat_step_3d(u.view(), dst.view_mut(), g, h, 0.01).unwrap();
        let want = expect_3d(&dst0, g, |i, j, k| u[[i, j, k]] + 0.01 * lap3(&u, i, j, k, h));
        assert_close("heat_step_3d", dst.view(), want.view(), TOL);

        let mut dst = dst0.clone();
        cpu::jacobi_3d(u.view(), f.view(), dst.view_mut(), g, h, 1.0).unwrap();
        let diag: f64 = h.iter().map(|h| 2.0 / (h * h)).sum();
        let want = expect_3d(&dst0, g, |i, j, k| (f[[i, j, k]] + lap3(&u, i, j, k, h) + diag * u[[i, j, k]]) / diag);
        assert_close("jacobi_3d", dst.view(), want.view(), TOL);
    }
}

/// The 3-D update `a u + b (lap(u) + f)` point by point, plane after plane, with no blocking and
/// the terms in the kernels' order (along the row, then the first axis, then the second): what
/// the blocked kernels must reproduce bit for bit.
fn plain_sweep_3d(u: &Array3<f64>, f: Option<&Array3<f64>>, dst0: &Array3<f64>, g: usize, h: [f64; 3], a: f64, b: f64) -> Array3<f64> {
    let [cx, cy, cz] = h.map(|h| (h * h).recip());
    expect_3d(dst0, g, |i, j, k| {
        let c = u[[i, j, k]];
        let mut lap = cz * (u[[i, j, k - 1]] + u[[i, j, k + 1]] - 2.0 * c);
        lap += cx * (u[[i - 1, j, k]] + u[[i + 1, j, k]] - 2.0 * c);
        lap += cy * (u[[i, j - 1, k]] + u[[i, j + 1, k]] - 2.0 * c);
        if let Some(f) = f {
            lap += f[[i, j, k]];
        }
        a * c + b * lap
    })
}

#[test]
fn blocked_3d_stencils_are_bit_identical_to_a_plain_sweep() {
    let h = [0.3, 0.5, 0.9];
    // Odd sizes: sequential, one tile per thread, many tiles with a short last one (rows of
    // 517 doubles), and runs of planes with a short last run (73 and 66 planes).
    // Thin domains: one to three planes, one row, one point per row.
    let thin = [((3, 9, 11), 1), ((5, 7, 9), 1), ((5, 9, 11), 2), ((9, 3, 11), 1), ((9, 11, 3), 1)];
    for (shape, g) in [((7, 9, 11), 1), ((13, 11, 9), 2), ((33, 129, 67), 1), ((9, 301, 517), 1), ((11, 203, 301), 2), ((75, 41, 33), 1), ((70, 9, 517), 2)].into_iter().chain(thin) {
        let (u, f, dst0) = (random(shape), random(shape), random(shape));
        let same = |what: &str, got: &Array3<f64>, want: &Array3<f64>| {
            let diff = got.iter().zip(want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(diff, 0, "{what} {shape:?} g={g}: {diff} values differ from the plain sweep");
        };
        let mut dst = dst0.clone();
        cpu::laplacian_3d(u.view(), dst.view_mut(), g, h).unwrap();
        same("laplacian_3d", &dst, &plain_sweep_3d(&u, None, &dst0, g, h, 0.0, 1.0));

        let mut dst = dst0.clone();
        cpu::heat_step_3d(u.view(), dst.view_mut(), g, h, 0.01).unwrap();
        same("heat_step_3d", &dst, &plain_sweep_3d(&u, None, &dst0, g, h, 1.0, 0.01));

        let omega = 2.0 / 3.0;
        let diag = h.iter().map(|&h| (h * h).recip()).fold(0.0, |s, c| s + c + c);
        let mut dst = dst0.clone();
        cpu::jacobi_3d(u.view(), f.view(), dst.view_mut(), g, h, omega).unwrap();
        same("jacobi_3d", &dst, &plain_sweep_3d(&u, Some(&f), &dst0, g, h, 1.0, omega / diag));
    }
}

#[test]
fn laplacian_2d_row_is_bit_identical_to_the_block_laplacian() {
    let h = [0.3, 0.7];
    // Rows shorter than a vector, odd lengths, and the rayon path of the block kernel.
    for shape in [(3, 3), (5, 4), (9, 13), (40, 37), (300, 261)] {
        let (u, dst0) = (random(shape), random(shape));
        let mut want = dst0.clone();
        cpu::laplacian_2d(u.view(), want.view_mut(), 1, h).unwrap();
        let (nx, ny) = shape;
        for i in 1..nx - 1 {
            let mut out = vec![f64::NAN; ny - 2];
            let row = |i: usize| u.row(i).to_slice().unwrap();
            cpu::laplacian_2d_row(&mut out, &row(i - 1)[1..ny - 1], row(i), &row(i + 1)[1..ny - 1], h).unwrap();
            let differ = out.iter().zip(&want.row(i).as_slice().unwrap()[1..ny - 1]).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "{shape:?} row {i}: {differ} values differ from laplacian_2d");
        }
    }
    // Rows that do not fit together are refused, not read past.
    let (a, b) = (vec![0.0; 5], vec![0.0; 7]);
    let e = cpu::laplacian_2d_row(&mut [0.0; 5], &a, &a, &a, h).unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e}");
    assert!(cpu::laplacian_2d_row(&mut [0.0; 5], &a, &b, &a[..4], h).is_err());
    cpu::laplacian_2d_row(&mut [0.0; 5], &a, &b, &a, h).unwrap();
}

/// The unfused reference of the fused CG row kernels: the dot as chunks of `cpu::dot`.
fn chunked_dot(x: &[f64], y: &[f64]) -> f64 {
    x.chunks(cpu::DOT_CHUNK).zip(y.chunks(cpu::DOT_CHUNK)).map(|(x, y)| cpu::dot(x.into(), y.into()).unwrap()).fold(0.0, |s, d| s + d)
}

#[test]
fn fused_cg_row_kernels_are_bit_identical_to_the_separate_calls() {
    let h = [0.3, 0.7];
    let same = |what: &str, a: f64, b: f64| assert_eq!(a.to_bits(), b.to_bits(), "{what}: {a:e} != {b:e}");
    // Rows shorter than the dot's lanes, than a block, odd lengths, a whole dot chunk and
    // rows longer than one (a short last chunk, one without lanes).
    for n in [1, 3, 8, 13, 256, 300, 4096, 4100, 8195, 9000] {
        let u = random((3, n + 2));
        let row = |i: usize| u.row(i).to_slice().unwrap();
        let (before, here, after) = (&row(0)[1..=n], row(1), &row(2)[1..=n]);
        let mut q = vec![0.0; n];
        cpu::laplacian_2d_row(&mut q, before, here, after, h).unwrap();
        let p = &here[1..=n];
        same(&format!("dot_in_order n={n}"), cpu::dot_in_order(p, &q).unwrap(), chunked_dot(p, &q));
        same(&format!("row_dot_laplacian_2d n={n}"), cpu::row_dot_laplacian_2d(before, here, after, h).unwrap(), chunked_dot(p, &q));

        // The direction update fused in: `after = r + beta after`, or `after = r`.
        let r_after = random(n);
        for beta in [Some(0.81), None] {
            let mut want = before.to_vec();
            for j in 0..n {
                want[j] = match beta { Some(b) => r_after[j] + b * want[j], None => r_after[j] };
            }
            let mut q = vec![0.0; n];
            cpu::laplacian_2d_row(&mut q, after, here, &want, h).unwrap();
            let mut got = before.to_vec();
            let pq = cpu::row_cg_direction_2d(&mut got, r_after.as_slice().unwrap(), beta, after, here, h).unwrap();
            same(&format!("row_cg_direction_2d beta={beta:?} n={n}"), pq, chunked_dot(p, &q));
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "row_cg_direction_2d n={n}: the updated row differs");
        }

        let (x0, r0) = (random(n), random(n));
        let alpha = -0.37;
        let (mut x, mut r) = (x0.to_vec(), r0.to_vec());
        let rr = cpu::row_cg_step_2d(&mut x, &mut r, alpha, before, here, after, h).unwrap();
        let (mut xw, mut rw) = (x0.to_vec(), r0.to_vec());
        for j in 0..n {
            xw[j] += alpha * p[j];
            rw[j] += alpha * q[j];
        }
        same(&format!("row_cg_step_2d r.r n={n}"), rr, chunked_dot(&rw, &rw));
        let differ = x.iter().zip(&xw).chain(r.iter().zip(&rw)).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "row_cg_step_2d n={n}: {differ} values of x and r differ");
    }
    // Rows that do not fit together are refused.
    let (a, b) = (vec![0.0; 5], vec![0.0; 7]);
    assert!(matches!(cpu::row_dot_laplacian_2d(&a, &a, &a, h), Err(Error::Shape(_))));
    assert!(matches!(cpu::row_dot_laplacian_2d(&a, &b[..1], &a, h), Err(Error::Shape(_))));
    assert!(matches!(cpu::row_cg_step_2d(&mut [0.0; 5], &mut [0.0; 4], 1.0, &a, &b, &a, h), Err(Error::Shape(_))));
    assert!(matches!(cpu::dot_in_order(&a, &b), Err(Error::Shape(_))));
    assert!(matches!(cpu::row_cg_direction_2d(&mut [0.0; 5], &a[..4], None, &a, &b, h), Err(Error::Shape(_))));
}

#[test]
fn stencils_work_in_f32_and_on_views_of_a_larger_array() {
    let big = random((30, 40));
    // A sub-block view: rows are contiguous, the view is not.
    let u = big.slice(s![3..25, 5..35]);
    let u32 = u.mapv(|v| v as f32);
    let mut dst = Array2::<f32>::zeros(u.dim());
    cpu::laplacian_2d(u32.view(), dst.view_mut(), 1, [0.5, 0.5]).unwrap();
    let mut dst64 = Array2::<f64>::zeros(u.dim());
    cpu::laplacian_2d(u, dst64.view_mut(), 1, [0.5, 0.5]).unwrap();
    let owned = u.to_owned();
    let want = expect_2d(&Array2::zeros(u.dim()), 1, |i, j| lap2(&owned, i, j, [0.5, 0.5]));
    assert_close("laplacian_2d on a view", dst64.view(), want.view(), TOL);
    assert_close("laplacian_2d in f32", dst.mapv(f64::from).view(), want.view(), 1e-5);
}

#[test]
fn stencils_reject_bad_blocks() {
    let u = random((10, 12));
    let mut wrong = Array2::zeros((10, 11));
    assert!(matches!(cpu::laplacian_2d(u.view(), wrong.view_mut(), 1, [1.0; 2]), Err(Error::Shape(_))));
    let mut dst = Array2::zeros((10, 12));
    assert!(matches!(cpu::laplacian_2d(u.view(), dst.view_mut(), 0, [1.0; 2]), Err(Error::Shape(_))));
    let e = cpu::laplacian_2d(u.view(), dst.view_mut(), 6, [1.0; 2]).unwrap_err();
    assert!(e.to_string().contains("cannot hold 6 ghost layers"), "{e}");
    // Ghosts alone (a rank that owns no cells of an axis): nothing to do, nothing written.
    dst.fill(7.0);
    cpu::laplacian_2d(u.view(), dst.view_mut(), 5, [1.0; 2]).unwrap();
    let mut flat = Array3::from_elem((3, 2, 4), 7.0);
    cpu::heat_step_3d(Array3::from_elem((3, 2, 4), 1.0).view(), flat.view_mut(), 1, [1.0; 3], 0.1).unwrap();
    assert!(dst.iter().chain(flat.iter()).all(|&v| v == 7.0));
    let mut t = Array2::zeros((12, 10));
    let e = cpu::laplacian_2d(u.t(), t.view_mut(), 1, [1.0; 2]).unwrap_err();
    assert!(matches!(e, Error::Layout(_)), "{e}");
}

#[test]
fn vector_operations_match_plain_loops() {
    // Below and above the size where the kernels go parallel; and a 2-D block as one vector.
    for n in [1000, 200_000] {
        let (x, y0) = (random(n), random(n));
        let mut y = y0.clone();
        cpu::axpy(1.7, x.view(), y.view_mut()).unwrap();
        let want: Array1<f64> = x.iter().zip(&y0).map(|(x, y)| 1.7 * x + y).collect();
        assert_close("axpy", y.view(), want.view(), TOL);

        let mut y = y0.clone();
        cpu::axpby(0.3, x.view(), -2.5, y.view_mut()).unwrap();
        let want: Array1<f64> = x.iter().zip(&y0).map(|(x, y)| 0.3 * x - 2.5 * y).collect();
        assert_close("axpby", y.view(), want.view(), TOL);

        let mut y = y0.clone();
        cpu::scale(-0.9, y.view_mut());
        assert_close("scale", y.view(), y0.mapv(|v| -0.9 * v).view(), TOL);
        cpu::fill(4.25, y.view_mut());
        assert!(y.iter().all(|&v| v == 4.25));
        cpu::copy(x.view(), y.view_mut()).unwrap();
        assert_eq!(y, x);

        // A sum's rounding scales with sum |x_i y_i|, not with the (cancelling) result.
        let want: f64 = x.iter().zip(&y0).map(|(a, b)| a * b).sum();
        let size: f64 = x.iter().zip(&y0).map(|(a, b)| (a * b).abs()).sum();
        let got = cpu::dot(x.view(), y0.view()).unwrap();
        assert!((got - want).abs() / size < TOL, "dot {got} vs {want}");
        let want = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((cpu::norm2(x.view()) - want).abs() / want < TOL);
    }
    let (a, b0) = (random((300, 200)), random((300, 200)));
    let mut b = b0.clone();
    cpu::axpy(2.0, a.view(), b.view_mut()).unwrap();
    assert_close("axpy on a 2-D block", b.view(), (&b0 + &(2.0 * &a)).view(), TOL);
    assert!(matches!(cpu::dot(random(3).view(), random(4).view()), Err(Error::Shape(_))));
}

/// A random sparse matrix (about `density` nonzeros), dense.
fn sparse_dense(nrows: usize, ncols: usize, density: f64) -> Array2<f64> {
    let mask = random((nrows, ncols));
    random((nrows, ncols)) * mask.mapv(|m| if m.abs() < 0.1 + 0.9 * density { 1.0 } else { 0.0 })
}

#[test]
fn spmv_matches_the_dense_product() {
    for (nrows, ncols, density) in [(50, 40, 0.2), (3000, 2500, 0.01)] {
        let a = sparse_dense(nrows, ncols, density);
        let csr = Csr::from_dense(a.view());
        assert!(csr.nnz() > 0 && csr.nnz() < nrows * ncols);
        let x = random(ncols);
        let mut y = random(nrows);
        cpu::spmv(&csr, x.view(), y.view_mut()).unwrap();
        let want: Array1<f64> = a.rows().into_iter().map(|r| r.iter().zip(&x).map(|(a, x)| a * x).sum()).collect();
        assert_close("spmv", y.view(), want.view(), TOL);
    }
    let a = Csr::from_dense(sparse_dense(5, 4, 0.5).view());
    assert!(matches!(cpu::spmv(&a, random(5).view(), random(5).view_mut()), Err(Error::Shape(_))));
}

#[test]
fn csr_rejects_inconsistent_arrays() {
    assert!(Csr::new(2, 2, vec![0, 1, 2], vec![0, 1], vec![1.0, 2.0]).is_ok());
    for (indptr, indices) in [(vec![0, 1], vec![0]), (vec![0, 2, 1], vec![0, 1]), (vec![0, 1, 2], vec![0, 2])] {
        let n = indices.len();
        let e = Csr::new(2, 2, indptr, indices, vec![1.0; n]).unwrap_err();
        assert!(e.to_string().starts_with("shape mismatch: CSR matrix:"), "{e}");
    }
}

fn naive_matmul(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| (0..a.ncols()).map(|k| a[[i, k]] * b[[k, j]]).sum())
}

#[test]
fn dense_matmul_matches_the_triple_loop() {
    let (a, b) = (random((70, 45)), random((45, 33)));
    let mut c = random((70, 33));
    cpu::matmul(a.view(), b.view(), c.view_mut()).unwrap();
    assert_close("matmul", c.view(), naive_matmul(&a, &b).view(), TOL);
    assert!(matches!(cpu::matmul(a.view(), a.view(), c.view_mut()), Err(Error::Shape(_))));

    // gemm accumulates: c = 2 a b - 0.5 c.
    let c0 = random((70, 33));
    let mut c = c0.clone();
    cpu::gemm(2.0, a.view(), b.view(), -0.5, c.view_mut()).unwrap();
    assert_close("gemm", c.view(), (naive_matmul(&a, &b) * 2.0 - &c0 * 0.5).view(), TOL);
    assert!(matches!(cpu::gemm(1.0, a.view(), a.view(), 1.0, c.view_mut()), Err(Error::Shape(_))));
}

/// A random symmetric positive definite matrix, well conditioned.
fn spd(n: usize) -> Array2<f64> {
    let m = random((n, n));
    naive_matmul(&m, &m.t().to_owned()) + Array2::<f64>::eye(n) * n as f64
}

#[test]
fn dense_solvers_reproduce_their_input() {
    let n = 60;
    let a = spd(n) + random((n, n)) * 0.1; // not symmetric: LU, not Cholesky
    let b = random(n);
    let x = cpu::lu_solve(a.view(), b.view()).unwrap();
    assert_close("LU solve: A x = b", a.dot(&x).view(), b.view(), TOL);

    let s = spd(n);
    let l = cpu::cholesky(s.view()).unwrap();
    assert!(l.indexed_iter().all(|((i, j), &v)| j <= i || v == 0.0), "L is lower triangular");
    assert_close("Cholesky: L L^T = A", naive_matmul(&l, &l.t().to_owned()).view(), s.view(), TOL);

    let (w, v) = cpu::eigh(s.view()).unwrap();
    assert!(w.windows(2).into_iter().all(|p| p[0] <= p[1]), "eigenvalues ascending");
    let av = naive_matmul(&s, &v);
    let vw = &v * &w.view().insert_axis(Axis(0));
    assert_close("eigh: A V = V diag(w)", av.view(), vw.view(), TOL);
    assert_close("eigh: V^T V = I", naive_matmul(&v.t().to_owned(), &v).view(), Array2::eye(n).view(), TOL);

    let singular = Array2::<f64>::zeros((3, 3));
    assert!(matches!(cpu::lu_solve(singular.view(), random(3).view()), Err(Error::Linalg(_))));
    let indefinite = -Array2::<f64>::eye(3);
    assert!(matches!(cpu::cholesky(indefinite.view()), Err(Error::Linalg(_))));
}

#[test]
fn backend_names_and_the_cpu_backend() {
    assert_eq!(Backend::from_name("cpu").unwrap().name(), "cpu");
    let e = Backend::from_name("gpu").unwrap_err();
    assert_eq!(e.to_string(), "backend: unknown back end 'gpu': expected cpu, cuda or auto");
    // "cuda" works exactly when a device is usable; otherwise it says why, without panicking.
    let usable = matches!(rankwise_kernels::cuda::device_count(), Ok(n) if n > 0);
    match Backend::from_name("cuda") {
        Ok(be) => assert!(usable, "got {be:?} without a device"),
        Err(e) => {
            assert!(matches!(e, Error::Cuda(_)), "{e}");
            if !usable {
                assert_eq!(Backend::from_name("auto").unwrap().name(), "cpu");
            }
        }
    }

    let be = Backend::Cpu;
    let u0 = random((20, 30));
    let u = be.upload(u0.view()).unwrap();
    let mut v = be.zeros(u0.raw_dim()).unwrap();
    be.heat_step_2d(&u, &mut v, 1, [0.1, 0.2], 1e-3).unwrap();
    let mut want = Array2::zeros(u0.dim());
    cpu::heat_step_2d(u0.view(), want.view_mut(), 1, [0.1, 0.2], 1e-3).unwrap();
    assert_eq!(be.download(&v).unwrap(), want);
    assert!(matches!(&v, Buffer::Host(_)));
    assert_eq!(v.shape(), &[20, 30]);
}
