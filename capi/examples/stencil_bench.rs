//! The 2-D heat kernel called from Rust (`rankwise_kernels::cpu::heat_step_2d`), the reference
//! for the same kernel called from C through the C API (capi/benchmarks/stencil.c); both run by
//! scripts/bench-capi.sh. Prints: RESULT lang=rust n=N ns_per_call=T (best of ROUNDS rounds), and
//! lang=c-abi: the C API's function called through a C-ABI function pointer from this process, in
//! rounds interleaved with the direct ones (same arrays, same moment of machine load).

use std::time::Instant;

use ndarray::Array2;
use rankwise_kernels::cpu;

type HeatStep = unsafe extern "C" fn(*const rankwise_capi::rankwise_backend, *const f64, *mut f64, *const usize, *const isize, usize, *const f64, f64) -> i32;

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    for size in [64usize, 1024] {
        let n = size + 2;
        let init = Array2::from_shape_fn((n, n), |(i, j)| ((i * n + j) % 97) as f64 / 97.0);
        let (mut u, mut v) = (init.clone(), init);
        let h = [1.0 / size as f64; 2];
        // Stable: no NaN or infinity in the timing.
        let nu_dt = 0.2 * h[0] * h[0];
        let calls = (2e8 / (size * size) as f64) as usize + 1;
        // Through a pointer, as C calls it: no inlining across the boundary.
        let c_call: HeatStep = std::hint::black_box(rankwise_capi::rankwise_heat_step_2d);
        let shape = [n, n];
        let (mut best, mut best_c) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..rounds {
            let t0 = Instant::now();
            for _ in 0..calls {
                cpu::heat_step_2d(u.view(), v.view_mut(), 1, h, nu_dt).expect("shapes fit");
                std::mem::swap(&mut u, &mut v);
            }
            best = best.min(t0.elapsed().as_secs_f64() / calls as f64 * 1e9);
            let t0 = Instant::now();
            for _ in 0..calls {
                // SAFETY: both blocks are n x n, C order, and distinct.
                let e = unsafe { c_call(std::ptr::null(), u.as_ptr(), v.as_mut_ptr(), shape.as_ptr(), std::ptr::null(), 1, h.as_ptr(), nu_dt) };
                assert_eq!(e, 0);
                std::mem::swap(&mut u, &mut v);
            }
            best_c = best_c.min(t0.elapsed().as_secs_f64() / calls as f64 * 1e9);
        }
        println!("RESULT lang=rust n={size} ns_per_call={best:.1} check={:?}", u[[1, 1]]);
        println!("RESULT lang=c-abi n={size} ns_per_call={best_c:.1}");
    }
}
