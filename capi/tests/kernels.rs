//! The kernels through the C ABI, without MPI: the same bits as the Rust kernels (a strided
//! sub-block included), and their error paths.

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use ndarray::{s, Array2};
use rankwise_capi::*;

fn message() -> String {
    unsafe { CStr::from_ptr(rankwise_error_message()) }.to_string_lossy().into_owned()
}

fn block(n: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, n), |(i, j)| ((i * 31 + j * 17) % 23) as f64 / 7.0)
}

#[test]
fn a_strided_sub_block_gives_the_bits_of_the_whole_block() {
    let u = block(12);
    let h = [0.1, 0.2];
    let mut whole = Array2::<f64>::zeros((12, 12));
    rankwise_kernels::cpu::heat_step_2d(u.view(), whole.view_mut(), 1, h, 0.01).unwrap();
    // Rows 3..9 and columns 2..10 of the interior, through the C API with the full array's strides.
    let mut v = Array2::<f64>::zeros((12, 12));
    let (shape, strides) = ([8usize, 10], [12isize, 1]);
    let at = 2 * 12 + 1;
    let e = unsafe { rankwise_heat_step_2d(null(), u.as_ptr().add(at), v.as_mut_ptr().add(at), shape.as_ptr(), strides.as_ptr(), 1, h.as_ptr(), 0.01) };
    assert_eq!(e, RANKWISE_OK, "{}", message());
    assert_eq!(v.slice(s![3..9, 2..10]), whole.slice(s![3..9, 2..10]));
    assert!(v.slice(s![..3, ..]).iter().all(|&x| x == 0.0), "only the sub-block's interior is written");
}

#[test]
fn vector_ops_matmul_and_spmv_match_the_rust_kernels() {
    let x: Vec<f64> = (0..7).map(|i| i as f64 * 0.5).collect();
    let mut y = vec![1.0; 7];
    unsafe {
        assert_eq!(rankwise_axpy(null(), 7, 2.0, x.as_ptr(), y.as_mut_ptr()), RANKWISE_OK);
        let mut d = 0.0;
        assert_eq!(rankwise_dot(null(), 7, x.as_ptr(), y.as_ptr(), &mut d), RANKWISE_OK);
        assert_eq!(d, x.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>());
        // [[1 2 3] [4 5 6]] x [[1 0] [0 1] [1 1]]
        let (a, b, mut c) = ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 0.0, 0.0, 1.0, 1.0, 1.0], [0.0; 4]);
        assert_eq!(rankwise_matmul(null(), 2, 3, 2, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()), RANKWISE_OK);
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        let (indptr, indices, values) = ([0usize, 2, 3], [0usize, 1, 1], [2.0, 1.0, 3.0]);
        let mut m = null_mut();
        assert_eq!(rankwise_csr_create(null(), 2, 2, indptr.as_ptr(), indices.as_ptr(), values.as_ptr(), &mut m), RANKWISE_OK);
        let (xv, mut yv) = ([1.0, 2.0], [0.0; 2]);
        assert_eq!(rankwise_spmv(null(), m, xv.as_ptr(), yv.as_mut_ptr()), RANKWISE_OK);
        assert_eq!(yv, [4.0, 6.0]);
        assert_eq!(rankwise_csr_destroy(&mut m), RANKWISE_OK);
        assert!(m.is_null());
        let mut sol = [0.0; 2];
        assert_eq!(rankwise_lu_solve(2, [2.0, 1.0, 1.0, 3.0].as_ptr(), [3.0, 5.0].as_ptr(), sol.as_mut_ptr()), RANKWISE_OK);
        assert!((sol[0] - 0.8).abs() < 1e-12 && (sol[1] - 1.4).abs() < 1e-12, "{sol:?}");
    }
}

#[test]
fn handles_are_checked_before_use() {
    unsafe {
        let mut be = null_mut();
        assert_eq!(rankwise_backend_create(c"cpu".as_ptr(), 0, &mut be), RANKWISE_OK);
        let stale = be;
        let mut name = [0 as std::ffi::c_char; 8];
        assert_eq!(rankwise_backend_name(be, name.as_mut_ptr(), name.len()), RANKWISE_OK);
        assert_eq!(CStr::from_ptr(name.as_ptr()).to_str().unwrap(), "cpu");
        assert_eq!(rankwise_backend_destroy(&mut be), RANKWISE_OK);
        assert_eq!(rankwise_backend_name(stale, name.as_mut_ptr(), name.len()), RANKWISE_ERR_HANDLE);
        assert!(message().contains("not a live rankwise_backend"), "{}", message());
        let (x, mut y) = ([1.0; 3], [1.0; 3]);
        assert_eq!(rankwise_axpy(stale, 3, 1.0, x.as_ptr(), y.as_mut_ptr()), RANKWISE_ERR_HANDLE);
        assert_eq!(y, [1.0; 3], "a failed call changes nothing");
        assert_eq!(rankwise_axpy(null(), 3, 1.0, x.as_ptr(), x.as_ptr() as *mut f64), RANKWISE_ERR_SHAPE);
        assert!(message().contains("overlap"), "{}", message());
        // A message longer than the buffer is cut, NUL-terminated, and its full length returned.
        let mut short = [0 as std::ffi::c_char; 8];
        let full = rankwise_error_message_copy(short.as_mut_ptr(), short.len());
        assert_eq!(full, message().len());
        assert_eq!(CStr::from_ptr(short.as_ptr()).to_bytes().len(), 7);
        // Success clears the message.
        assert_eq!(rankwise_axpy(null(), 3, 1.0, x.as_ptr(), y.as_mut_ptr()), RANKWISE_OK);
        assert_eq!(message(), "");
    }
}
