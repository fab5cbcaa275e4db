//! 2-D heat benchmark: explicit 5-point steps on an N x N grid of doubles over all ranks, with the
//! halo exchange overlapped with the cells that read no ghost. benchmarks/heat2d.c is the same
//! computation in C + MPI; scripts/bench-heat.sh runs both and prints the ratio.
//!
//! ```text
//! mpirun -np 4 bench_heat2d --set n=4096 --set steps=100
//! ```
//!
//! Prints one `RESULT` line (rank 0): seconds per step, GB/s (16 bytes per cell and step: one
//! read, one write), the time of a blocking halo exchange, the exposed part of the overlapped one,
//! the fraction hidden, and a checksum that must match the C one. Then the cost of the
//! reproducible sum against the plain one on the final field.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::*;
use rankwise::runtime::{self, reduce, Config, Decomposition, Exit, Field, InitOptions, Runtime, Stencil};

const K: f64 = 0.2;

fn main() {
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> Result<Exit, Box<dyn std::error::Error + Send + Sync>> {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?;
        let n: usize = cfg.get_or("n", 4096)?;
        let steps: usize = cfg.get_or("steps", 100)?;
        cfg.finish()?;
        let d = Arc::new(Decomposition::new(rt, &[n, n], &[false, false])?);
        let (mut u, mut v) = (Field::<f64>::new(&d, 1), Field::<f64>::new(&d, 1));
        u.fill_with(|g| ((g[0] * 7 + g[1] * 13) % 17) as f64 / 16.0);
        let (nx, ny) = (d.local_shape()[0], d.local_shape()[1]);

        // Blocking halo: how long an exchange takes when nothing hides it.
        let warm = (steps / 4).max(5);
        let mut t_halo = 0.0;
        for _ in 0..warm {
            let t = Instant::now();
            u.exchange(Stencil::Star);
            t_halo += t.elapsed().as_secs_f64();
            step(&u, &mut v, 1..nx + 1, 1..ny + 1);
            std::mem::swap(&mut u, &mut v);
        }
        // Overlapped steps: the timed run.
        d.comm().barrier();
        let (mut t_exposed, t0) = (0.0, Instant::now());
        for _ in 0..steps {
            let t = Instant::now();
            let h = u.begin_exchange(Stencil::Star);
            t_exposed += t.elapsed().as_secs_f64();
            step(&u, &mut v, 2..nx, 2..ny);
            let t = Instant::now();
            h.finish(&mut u)?;
            t_exposed += t.elapsed().as_secs_f64();
            if nx > 0 && ny > 0 {
                step(&u, &mut v, 1..2, 1..ny + 1);
                step(&u, &mut v, nx.max(2)..nx + 1, 1..ny + 1);
                step(&u, &mut v, 2..nx, 1..2);
                step(&u, &mut v, 2..nx, ny.max(2)..ny + 1);
            }
            std::mem::swap(&mut u, &mut v);
        }
        let local = [t0.elapsed().as_secs_f64(), t_halo / warm as f64, t_exposed / steps as f64];
        let mut worst = [0.0; 3];
        d.comm().all_reduce_into(&local[..], &mut worst[..], SystemOperation::max());

        // The reproducible sum against the plain one, on the final field.
        let reps = 5;
        let t = Instant::now();
        let mut checksum = 0.0;
        for _ in 0..reps {
            checksum = reduce::sum(&u);
        }
        let t_sum = t.elapsed().as_secs_f64() / reps as f64;
        let t = Instant::now();
        let mut exact = 0.0;
        for _ in 0..reps {
            exact = reduce::reproducible_sum(&u);
        }
        let t_exact = t.elapsed().as_secs_f64() / reps as f64;

        if rt.is_root() {
            let per = worst[0] / steps as f64;
            let hidden = if worst[1] > 0.0 { (1.0 - worst[2] / worst[1]).max(0.0) } else { 0.0 };
            println!(
                "RESULT impl=rust np={} grid={}x{} n={n} steps={steps} s_per_step={per:.6} gbs={:.2} halo_s={:.6} exposed_s={:.6} hidden={hidden:.2} checksum={checksum:.12e}",
                rt.size(), d.grid()[0], d.grid()[1], 16.0 * (n * n) as f64 / per / 1e9, worst[1], worst[2]
            );
            println!(
                "SUM np={} plain_s={t_sum:.6} reproducible_s={t_exact:.6} cost={:.1}x plain={checksum:.17e} reproducible={exact:.17e}",
                rt.size(),
                t_exact / t_sum
            );
        }
        Ok(Exit::Done)
    })
}

/// Update the cells `rows` x `cols` (local indices, ghosts included) of `v` from `u`, a row at a
/// time on plain slices so the compiler vectorises it.
fn step(u: &Field<f64>, v: &mut Field<f64>, rows: Range<usize>, cols: Range<usize>) {
    if cols.is_empty() {
        return;
    }
    let w = u.data().shape()[1];
    let a = u.data().to_slice().expect("fields are contiguous");
    let b = v.data_mut().into_slice().expect("fields are contiguous");
    for i in rows {
        let (s, e) = (i * w + cols.start, i * w + cols.end);
        let (o, n) = (&mut b[s..e], e - s);
        // Equal lengths, visible to the compiler: no bounds checks in the loop.
        let (up, dn, c) = (&a[s - w..][..n], &a[s + w..][..n], &a[s..][..n]);
        let (l, r) = (&a[s - 1..][..n], &a[s + 1..][..n]);
        for j in 0..n {
            o[j] = c[j] + K * (up[j] + dn[j] + l[j] + r[j] - 4.0 * c[j]);
        }
    }
}
