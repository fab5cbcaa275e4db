//! Random inputs (fresh every run, never zeros) and error measures shared by the kernel tests.
#![allow(dead_code)]
use ndarray::{Array, ArrayView, Dimension, ShapeBuilder};
use rand::Rng;

/// Uniform in [-1, -0.1] U [0.1, 1]: random signs, never zero.
pub fn random<Sh: ShapeBuilder>(shape: Sh) -> Array<f64, Sh::Dim> {
    let mut rng = rand::rng();
    Array::from_shape_simple_fn(shape, || {
        let v: f64 = rng.random_range(0.1..1.0);
        if rng.random_bool(0.5) { v } else { -v }
    })
}

/// max |got - want| / max |want|.
pub fn rel_err<D: Dimension>(got: ArrayView<f64, D>, want: ArrayView<f64, D>) -> f64 {
    assert_eq!(got.shape(), want.shape());
    let diff = got.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let scale = want.iter().map(|b| b.abs()).fold(0.0, f64::max);
    diff / scale
}

pub fn assert_close<D: Dimension>(what: &str, got: ArrayView<f64, D>, want: ArrayView<f64, D>, tol: f64) {
    let e = rel_err(got, want);
    assert!(e < tol, "{what}: relative error {e:e} >= {tol:e}");
}
