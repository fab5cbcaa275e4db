use ndarray::{Array2, Array3};
use std::time::Instant;
fn best(f: &mut dyn FnMut()) -> f64 { (0..15).map(|_| { let t = Instant::now(); f(); t.elapsed().as_secs_f64() }).fold(1e9, f64::min) }
fn main() {
    if std::env::args().nth(1).as_deref() == Some("small") { return small(); }
    let u = Array2::from_shape_fn((4096, 2048), |(i, j)| (i + j) as f64);
    let mut v = u.clone();
    let n = u.len() as f64;
    let tc = best(&mut || v.as_slice_mut().unwrap().copy_from_slice(u.as_slice().unwrap()));
    let ts = best(&mut || rankwise_kernels::cpu::laplacian_2d(u.view(), v.view_mut(), 1, [1.0; 2]).unwrap());
    println!("2d: copy {:.1} GB/s  stencil {:.1} GB/s", 16.0 * n / tc / 1e9, 16.0 * n / ts / 1e9);
    let u = Array3::from_shape_fn((200, 200, 200), |(i, j, k)| (i + j * k) as f64);
    let mut v = u.clone();
    let n = u.len() as f64;
    let tc = best(&mut || v.as_slice_mut().unwrap().copy_from_slice(u.as_slice().unwrap()));
    let ts = best(&mut || rankwise_kernels::cpu::laplacian_3d(u.view(), v.view_mut(), 1, [1.0; 3]).unwrap());
    println!("3d: copy {:.1} GB/s  stencil {:.1} GB/s", 16.0 * n / tc / 1e9, 16.0 * n / ts / 1e9);
}
#[allow(dead_code)]
fn small() {
    for n in [34usize, 66] {
        let u = Array3::from_shape_fn((n, n, n), |(i, j, k)| (i + j * k) as f64);
        let mut v = u.clone();
        let reps = 100;
        let t = best(&mut || for _ in 0..reps { rankwise_kernels::cpu::laplacian_3d(u.view(), v.view_mut(), 1, [1.0; 3]).unwrap() });
        println!("3d in cache n={n}: {:.2} ns/pt", t / reps as f64 / (n * n * n) as f64 * 1e9);
        let u = Array2::from_shape_fn((n * 8, n * 8), |(i, j)| (i + j) as f64);
        let mut v = u.clone();
        let t = best(&mut || for _ in 0..reps { rankwise_kernels::cpu::laplacian_2d(u.view(), v.view_mut(), 1, [1.0; 2]).unwrap() });
        println!("2d in cache n={}: {:.2} ns/pt", n * 8, t / reps as f64 / u.len() as f64 * 1e9);
    }
}
