use ndarray::Array2;
use rankwise_kernels::Backend;

fn main() -> Result<(), rankwise_kernels::Error> {
    // CUDA when a GPU is usable, else the CPU: the same calls either way.
    let be = Backend::auto(0);
    let n = 64;
    let h = 1.0 / n as f64;
    // n x n cells and one ghost layer, kept at zero (a cold boundary); a hot spot in the middle.
    let start = Array2::from_shape_fn((n + 2, n + 2), |(i, j)| if (i, j) == (n / 2, n / 2) { 1.0 / (h * h) } else { 0.0 });
    let (mut u, mut v) = (be.upload(start.view())?, be.zeros(start.raw_dim())?);
    for _ in 0..100 {
        be.heat_step_2d(&u, &mut v, 1, [h, h], 0.2 * h * h)?;
        std::mem::swap(&mut u, &mut v);
    }
    let u = be.download(&u)?;
    println!("{}: heat {:.6}, peak {:.3}", be.name(), u.sum() * h * h, u.fold(0.0f64, |m, &x| m.max(x)));
    Ok(())
}
