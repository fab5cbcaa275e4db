use std::sync::Arc;

use rankwise::io::CheckpointDir;
use rankwise::kernels::cpu;
use rankwise::runtime::{self, reduce, Config, Decomposition, Exit, Field, InitOptions, Runtime, Stencil};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    // Every rank runs this; `run` turns the result into the job's exit code (2: bad input).
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> Res<Exit> {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?; // --inputs FILE, --set key=value
        let n: usize = cfg.get_or("n", 64)?;
        let steps: u64 = cfg.get_or("steps", 100)?;
        let dir = CheckpointDir::new(cfg.get_or("checkpoint.dir", "quickstart-ckpt".to_string())?);
        cfg.finish()?; // an unknown key is an error, not a silent typo
        dir.make(rt.world())?; // a directory that cannot be used is an error now, not at the end

        // n x n cells on the periodic unit square, split over the ranks; one ghost layer.
        let d = Arc::new(Decomposition::new(rt, &[n, n], &[true, true])?);
        let (mut u, mut v) = (Field::<f64>::new(&d, 1), Field::<f64>::new(&d, 1));
        u.fill_with(|i| if i[0] < n / 4 && i[1] < n / 4 { 1.0 } else { 0.0 }); // global indices

        // Collective: continue from the newest valid checkpoint, written on any rank count.
        let mut step = 0;
        if let Some(r) = dir.restore(d.comm(), |ck| ck.read_field("u", &mut u))? {
            step = r.info.step;
            if rt.is_root() {
                println!("restarted from step {step}, written by {} ranks", r.info.ranks);
            }
        }
        let h = 1.0 / n as f64;
        let nu_dt = 0.2 * h * h; // stable below h^2 / 4
        while step < steps {
            u.exchange(Stencil::Star); // ghosts from the neighbouring ranks
            cpu::heat_step_2d(u.data().into_dimensionality()?, v.data_mut().into_dimensionality()?, 1, [h, h], nu_dt)?;
            std::mem::swap(&mut u, &mut v);
            step += 1;
        }

        // Collective: every rank writes its block into one HDF5 file.
        let mut w = dir.create(d.comm(), step, step as f64 * nu_dt)?;
        w.write_field("u", &u)?;
        let saved = w.commit()?;

        // Exact sums: the same bits on any rank count. Heat is conserved; its square decays.
        let heat = reduce::reproducible_sum(&u) * h * h;
        let energy = reduce::reproducible_dot(&u, &u) * h * h;
        if rt.is_root() {
            println!("step {step}: heat {heat:.6}, energy {energy:.12e}, saved {}", saved.display());
        }
        Ok(Exit::Done)
    })
}
