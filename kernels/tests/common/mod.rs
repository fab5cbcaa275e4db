//! Random inputs (fresh every run, never zeros) and error measures shared by the kernel tests.
//! Each test draws from its own seeded generator and prints the seed with its output (shown when
//! it fails); `RANKWISE_TEST_SEED=N` replays a failure's inputs.
#![allow(dead_code)]
use std::cell::RefCell;

use ndarray::{Array, ArrayView, Dimension, ShapeBuilder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

thread_local! {
    /// This test's generator (libtest runs each test on a thread of its own).
    static RNG: RefCell<StdRng> = RefCell::new({
        let seed = std::env::var("RANKWISE_TEST_SEED").ok().map(|s| s.parse().expect("RANKWISE_TEST_SEED: not a number")).unwrap_or_else(rand::random::<u64>);
        let test = std::thread::current().name().unwrap_or("?").to_string();
        println!("{test}: random inputs from seed {seed} (replay: RANKWISE_TEST_SEED={seed})");
        StdRng::seed_from_u64(seed)
    });
}

/// Uniform in [-1, -0.1] U [0.1, 1]: random signs, never zero.
pub fn random<Sh: ShapeBuilder>(shape: Sh) -> Array<f64, Sh::Dim> {
    RNG.with_borrow_mut(|rng| {
        Array::from_shape_simple_fn(shape, || {
            let v: f64 = rng.random_range(0.1..1.0);
            if rng.random_bool(0.5) { v } else { -v }
        })
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
