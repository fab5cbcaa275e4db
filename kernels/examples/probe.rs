use ndarray::Array3;
fn main() {
    let u = Array3::from_shape_fn((200, 200, 200), |(i, j, k)| (i + j * k) as f64);
    let mut v = u.clone();
    let t = std::time::Instant::now();
    for _ in 0..50 { rankwise_kernels::cpu::laplacian_3d(u.view(), v.view_mut(), 1, [1.0; 3]).unwrap(); }
    let s = t.elapsed().as_secs_f64() / 50.0;
    println!("{:.1} GB/s, {:.2} ns/pt", 16.0 * 8e6 / s / 1e9, s / 8e6 * 1e9);
}
