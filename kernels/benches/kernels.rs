//! Kernel bandwidth and throughput, each next to a reference measured by this same program on
//! this same machine, in alternation with the kernel so that both see the same load: a
//! STREAM triad for the CPU kernels (arrays at least four times the last-level cache, best of
//! several runs, as STREAM measures), a device-to-device copy for the GPU ones (target: 0.85 of
//! the reference or better). `cargo bench -p rankwise-kernels`; the GPU part runs when a
//! CUDA device is usable and says why not otherwise.
use std::time::Instant;

use ndarray::{Array1, Array2, Array3, Ix1, Ix2, Ix3};
use rankwise_kernels::{cpu, CudaBackend, Result, Rounding};
use rayon::prelude::*;

const REPS: usize = 10;

fn time(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// Best times (as STREAM reports) of `reference` and `kernel`, run alternately after a warm-up.
fn best_pair(reference: &mut dyn FnMut(), kernel: &mut dyn FnMut()) -> (f64, f64) {
    reference();
    kernel();
    (0..REPS).fold((f64::INFINITY, f64::INFINITY), |(r, k), _| (r.min(time(reference)), k.min(time(kernel))))
}

/// Prints the kernel's GB/s for `bytes` moved per call, beside the reference's.
fn compare(what: &str, bytes: f64, reference: (&str, f64), pair: (f64, f64)) {
    let (r, k) = (reference.1 / pair.0 / 1e9, bytes / pair.1 / 1e9);
    println!("{what:<26} {k:7.1} GB/s   {} {r:7.1} GB/s   ratio {:.2}", reference.0, k / r);
}

fn gflops(what: &str, n: usize, secs: f64) {
    println!("{what:<26} {:7.1} GFLOP/s", 2.0 * (n as f64).powi(3) / secs / 1e9);
}

/// Bytes of memory the kernel says can be had without swapping.
fn available_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<usize>().ok()? << 10)
}

/// Bytes per array, for the reference and the stencils alike: as STREAM asks, at least four
/// times the last-level cache (and 64 MiB), so that neither is served from a cache; at most a
/// sixteenth of the free memory (six such arrays live at once). `KERNELS_BENCH_MIB` overrides.
fn array_bytes() -> usize {
    if let Some(mib) = std::env::var("KERNELS_BENCH_MIB").ok().and_then(|v| v.parse::<usize>().ok()) {
        println!("arrays of {mib} MiB (KERNELS_BENCH_MIB)");
        return mib << 20;
    }
    let llc = cpu::last_level_cache();
    let want = llc.map_or(0, |c| 4 * c).max(64 << 20);
    let most = available_memory().map_or(usize::MAX, |m| m / 16);
    let llc = llc.map_or("unknown".into(), |c| format!("{} MiB", c >> 20));
    if want > most {
        println!("arrays of {} MiB: last-level cache {llc}, 4x would need more memory than is free (a sixteenth of it is used)", most >> 20);
        return most;
    }
    println!("arrays of {} MiB: at least 4x the last-level cache ({llc}), as STREAM asks", want >> 20);
    want
}

fn cpu_benchmarks() {
    let blas = std::env::var("OPENBLAS_NUM_THREADS").unwrap_or_else(|_| "unset".into());
    println!("== CPU: {} rayon threads, OPENBLAS_NUM_THREADS {blas}", rayon::current_num_threads());
    let bytes = array_bytes();
    let n = bytes / 8;
    let w = 8.0 * n as f64;
    // Filled in parallel, as the kernels later touch them (first touch places pages).
    let filled = |v: f64| {
        let mut a = Array1::<f64>::uninit(n);
        a.as_slice_mut().unwrap().par_chunks_mut(1 << 16).for_each(|c| c.iter_mut().for_each(|x| _ = x.write(v)));
        // Safety: every element was written just above.
        unsafe { a.assume_init() }
    };
    let (b, c) = (filled(1.0), filled(2.0));
    let mut ta = filled(0.0);
    // The reference: STREAM's triad a = b + s c (24 bytes per element), written plainly, each
    // thread on one contiguous part as STREAM's OpenMP loop; best of REPS runs.
    let mut triad = || {
        let (bs, cs) = (b.as_slice().unwrap(), c.as_slice().unwrap());
        let part = n.div_ceil(rayon::current_num_threads());
        ta.as_slice_mut().unwrap().par_chunks_mut(part).enumerate().for_each(|(k, a)| {
            let (b, c) = (&bs[k * part..][..a.len()], &cs[k * part..][..a.len()]);
            for i in 0..a.len() {
                a[i] = b[i] + 3.0 * c[i];
            }
        })
    };
    let t = ("STREAM triad", 3.0 * w);
    let mut y = filled(0.5);
    compare("axpy   y = a x + y", 3.0 * w, t, best_pair(&mut triad, &mut || cpu::axpy(1e-3, b.view(), y.view_mut()).unwrap()));
    compare("axpby  y = a x + b y", 3.0 * w, t, best_pair(&mut triad, &mut || cpu::axpby(3.0, b.view(), 0.5, y.view_mut()).unwrap()));
    compare("dot", 2.0 * w, t, best_pair(&mut triad, &mut || assert!(cpu::dot(b.view(), c.view()).unwrap() > 0.0)));
    compare("copy", 2.0 * w, t, best_pair(&mut triad, &mut || cpu::copy(b.view(), y.view_mut()).unwrap()));
    drop(y);

    // Bytes counted as STREAM counts them: each array read or written once, write-allocate
    // traffic not counted. The triad 24 a point, a stencil 16 (read u, write v), Jacobi 24 (and
    // f). A plain store also reads the line it writes: the triad really moves 32 bytes for its
    // 24, the 2-D stencils 24 for 16. The 3-D stencils on f64 arrays that outgrow the
    // last-level cache write with streaming stores (AVX-512), which skip that read: they move
    // what is counted. "copy" (one array in, one out) has the stencil's shape. The stencils'
    // arrays are as large as the triad's.
    let cols = 4096;
    let u2 = Array2::from_shape_fn((n / cols, cols), |(i, j)| (i * j % 1000) as f64);
    let mut v2 = u2.clone();
    let p2 = 8.0 * u2.len() as f64;
    let name = |k: &str| format!("{k} {}x{cols}", n / cols);
    compare(&name("laplacian_2d"), 2.0 * p2, t, best_pair(&mut triad, &mut || cpu::laplacian_2d(u2.view(), v2.view_mut(), 1, [1.0; 2]).unwrap()));
    compare(&name("heat_step_2d"), 2.0 * p2, t, best_pair(&mut triad, &mut || cpu::heat_step_2d(u2.view(), v2.view_mut(), 1, [1.0; 2], 0.1).unwrap()));
    drop((u2, v2));
    let side = (n as f64).cbrt() as usize;
    let (u3, f3) = (Array3::from_shape_fn((side, side, side), |(i, j, k)| ((i + j * k) % 1000) as f64), Array3::from_elem((side, side, side), 1.0));
    let mut v3 = u3.clone();
    let p3 = 8.0 * u3.len() as f64;
    compare(&format!("laplacian_3d {side}^3"), 2.0 * p3, t, best_pair(&mut triad, &mut || cpu::laplacian_3d(u3.view(), v3.view_mut(), 1, [1.0; 3]).unwrap()));
    compare(&format!("jacobi_3d {side}^3"), 3.0 * p3, t, best_pair(&mut triad, &mut || cpu::jacobi_3d(u3.view(), f3.view(), v3.view_mut(), 1, [1.0; 3], 1.0).unwrap()));
    drop((u3, f3, v3));

    let m = 1024;
    let (x, y) = (Array2::from_elem((m, m), 0.5), Array2::from_elem((m, m), 2.0));
    let mut z = Array2::zeros((m, m));
    let (_, secs) = best_pair(&mut || (), &mut || cpu::matmul(x.view(), y.view(), z.view_mut()).unwrap());
    gflops("matmul 1024 (OpenBLAS)", m, secs);
}

fn gpu_benchmarks(gpu: &CudaBackend) -> Result<()> {
    println!("== GPU: {}", gpu.device_name()?);
    // Host timers around whole calls, each ending with a synchronize; sizes make launch costs small.
    let run = |r: Result<()>| {
        if let Err(e) = r.and_then(|_| Ok(gpu.synchronize()?)) {
            fail(e)
        }
    };
    let n = 1 << 27; // 1 GiB per array
    let w = 8.0 * n as f64;
    let (cx, mut cy) = (gpu.upload(Array1::from_elem(n, 1.0).view())?, gpu.zeros(Ix1(n))?);
    let (x, mut y) = (gpu.upload(Array1::from_elem(n, 1.0).view())?, gpu.zeros(Ix1(n))?);
    let mut copy = || run(gpu.copy(&cx, &mut cy));
    let c = ("copy", 2.0 * w);
    compare("axpy   y = a x + y", 3.0 * w, c, best_pair(&mut copy, &mut || run(gpu.axpy(1e-3, &x, &mut y))));
    compare("axpby  y = a x + b y", 3.0 * w, c, best_pair(&mut copy, &mut || run(gpu.axpby(3.0, &x, 0.5, &mut y))));
    compare("dot", 2.0 * w, c, best_pair(&mut copy, &mut || run(gpu.dot(&x, &y).map(|_| ()))));
    drop((x, y));

    // The same kernels with multiply-adds fused (NVRTC's default): what rounding as the CPU
    // does costs. Another stream of the same context, synchronised like the first.
    let fma = CudaBackend::with_rounding(0, Rounding::Fma)?;
    let run_fma = |r: Result<()>| {
        if let Err(e) = r.and_then(|_| Ok(fma.synchronize()?)) {
            fail(e)
        }
    };
    let cost = |what: &str, bytes: f64, (cpu, fused): (f64, f64)| {
        let (a, b) = (bytes / cpu / 1e9, bytes / fused / 1e9);
        println!("{what:<26} {a:7.1} GB/s   with FMA {b:7.1} GB/s   the CPU's rounding costs {:.1}%", 100.0 * (cpu / fused - 1.0));
    };

    let (u2, mut v2) = (gpu.zeros(Ix2(16384, 8192))?, gpu.zeros(Ix2(16384, 8192))?);
    let p2 = 8.0 * u2.len() as f64;
    compare("laplacian_2d 16384x8192", 2.0 * p2, c, best_pair(&mut copy, &mut || run(gpu.laplacian_2d(&u2, &mut v2, 1, [1.0; 2]))));
    compare("heat_step_2d 16384x8192", 2.0 * p2, c, best_pair(&mut copy, &mut || run(gpu.heat_step_2d(&u2, &mut v2, 1, [1.0; 2], 0.1))));
    let mut v2f = fma.zeros(Ix2(16384, 8192))?;
    cost("heat_step_2d (rounding)", 2.0 * p2, best_pair(&mut || run(gpu.heat_step_2d(&u2, &mut v2, 1, [1.0; 2], 0.1)), &mut || run_fma(fma.heat_step_2d(&u2, &mut v2f, 1, [1.0; 2], 0.1))));
    drop((u2, v2, v2f));
    let (u3, f3, mut v3) = (gpu.zeros(Ix3(512, 512, 512))?, gpu.zeros(Ix3(512, 512, 512))?, gpu.zeros(Ix3(512, 512, 512))?);
    let p3 = 8.0 * u3.len() as f64;
    compare("laplacian_3d 512^3", 2.0 * p3, c, best_pair(&mut copy, &mut || run(gpu.laplacian_3d(&u3, &mut v3, 1, [1.0; 3]))));
    compare("jacobi_3d 512^3", 3.0 * p3, c, best_pair(&mut copy, &mut || run(gpu.jacobi_3d(&u3, &f3, &mut v3, 1, [1.0; 3], 1.0))));
    let mut v3f = fma.zeros(Ix3(512, 512, 512))?;
    cost("jacobi_3d (rounding)", 3.0 * p3, best_pair(&mut || run(gpu.jacobi_3d(&u3, &f3, &mut v3, 1, [1.0; 3], 1.0)), &mut || run_fma(fma.jacobi_3d(&u3, &f3, &mut v3f, 1, [1.0; 3], 1.0))));
    drop((u3, f3, v3, v3f));

    let m = 4096;
    let a = gpu.upload(Array2::from_elem((m, m), 0.5).view())?;
    let b = gpu.upload(Array2::from_elem((m, m), 2.0).view())?;
    let mut c = gpu.zeros(Ix2(m, m))?;
    let (_, secs) = best_pair(&mut || (), &mut || run(gpu.matmul(&a, &b, &mut c)));
    gflops("matmul 4096 (tiled, f64)", m, secs);
    Ok(())
}

fn fail(e: rankwise_kernels::Error) -> ! {
    eprintln!("error: GPU benchmark failed: {e}");
    std::process::exit(1);
}

fn main() {
    cpu_benchmarks();
    match CudaBackend::new(0) {
        Ok(gpu) => gpu_benchmarks(&gpu).unwrap_or_else(|e| fail(e)),
        Err(e) => println!("== GPU: skipped, no usable CUDA back end ({e})"),
    }
}
