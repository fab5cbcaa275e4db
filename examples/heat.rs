//! Heat diffusion on the periodic unit square or cube: a distributed field, split-phase halo
//! exchange overlapped with the interior update, periodic checkpoints, restart from the newest
//! valid checkpoint (on any rank count), and stop-and-requeue on a signal or near the time limit.
//!
//! The initial state is one Fourier mode, `u = prod_i sin(2 pi x_i)`, whose exact solution decays
//! as `exp(-4 pi^2 dim alpha t)`: the final line gives the error against it, and a checksum of the
//! field's bits (the same on any rank count).
//!
//! ```text
//! rankwise run -n 4 heat -i examples/inputs/heat.toml --set n=256
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{Ix2, Ix3, Slice};
use rankwise::io::{checksum, flush, image, make_dir, Checkpoint, CheckpointDir, CheckpointWriter, IoError};
use rankwise::kernels::cpu;
use rankwise::runtime::status::Progress;
use rankwise::runtime::{self, overlap_boxes, reduce, BadInput, Config, Decomposition, Exit, Field, InitOptions, Runtime, Stencil, StopOptions, StopPolicy, Threading};

#[path = "heat/gpu.rs"]
mod gpu;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Inputs {
    n: usize,
    dim: usize,
    steps: u64,
    alpha: f64,
    dt: f64,
    backend: String,
    ckpt_dir: Option<PathBuf>,
    ckpt_every: u64,
    ckpt_keep: usize,
    /// A checkpoint at the last step too (`checkpoint.at_end`, default true): a finished run
    /// extended with a larger `steps` continues from its end.
    ckpt_at_end: bool,
    /// Write checkpoints in the background (`checkpoint.mode = "async"`).
    ckpt_async: bool,
    /// A node-local level (`checkpoint.local`), and every how many checkpoints the shared file is
    /// written too (`checkpoint.flush_every`).
    ckpt_local: Option<PathBuf>,
    flush_every: u64,
    progress_every: u64,
    /// The final state as `heat-final.h5` + `.xmf` (ParaView) in this folder.
    out_dir: Option<PathBuf>,
    /// A picture of the final field (3-D: its middle plane along the first axis).
    png: Option<PathBuf>,
    stop: StopOptions,
}

fn inputs(cfg: &Config) -> Res<Inputs> {
    let n: usize = cfg.get_or("n", 64)?;
    let dim: usize = cfg.get_or("dim", 2)?;
    let alpha: f64 = cfg.get_or("alpha", 1.0)?;
    let cfl: f64 = cfg.get_or("cfl", 0.5)?;
    let backend: String = cfg.get_or("backend", "cpu".to_string())?;
    if n < 2 {
        return Err(cfg.invalid("n", "need at least 2 cells per side").into());
    }
    if !(2..=3).contains(&dim) {
        return Err(cfg.invalid("dim", "must be 2 or 3").into());
    }
    if !(alpha > 0.0) || !(cfl > 0.0 && cfl <= 1.0) {
        return Err(BadInput("alpha must be positive and cfl in (0, 1]".into()).into());
    }
    if !["cpu", "cuda", "auto"].contains(&backend.as_str()) {
        return Err(cfg.invalid("backend", "expected cpu, cuda or auto").into());
    }
    // Forward Euler is stable for dt <= h^2 / (2 dim alpha).
    let h = 1.0 / n as f64;
    let mut dt = cfl * h * h / (2.0 * dim as f64 * alpha);
    let mut steps: u64 = cfg.get_or("steps", 100)?;
    if let Some(t_end) = cfg.get::<f64>("t_end")? {
        steps = (t_end / dt).ceil() as u64;
        dt = t_end / steps as f64;
    }
    let every: u64 = cfg.get_or("checkpoint.every", 0)?;
    let ckpt_dir: Option<PathBuf> = cfg.get("checkpoint.dir")?;
    if every > 0 && ckpt_dir.is_none() {
        return Err(cfg.invalid("checkpoint.every", "needs checkpoint.dir (where to write them)").into());
    }
    let ckpt_async = match cfg.get_or("checkpoint.mode", "sync".to_string())?.as_str() {
        "sync" => false,
        "async" => true,
        _ => return Err(cfg.invalid("checkpoint.mode", "expected sync or async").into()),
    };
    let ckpt_local: Option<PathBuf> = cfg.get("checkpoint.local")?;
    if ckpt_local.is_some() && ckpt_dir.is_none() {
        return Err(cfg.invalid("checkpoint.local", "needs checkpoint.dir (the shared level)").into());
    }
    let flush_every: u64 = cfg.get_or("checkpoint.flush_every", if ckpt_local.is_some() { 10 } else { 1 })?;
    if flush_every == 0 {
        return Err(cfg.invalid("checkpoint.flush_every", "must be at least 1").into());
    }
    if flush_every > 1 && ckpt_local.is_none() {
        return Err(cfg.invalid("checkpoint.flush_every", "needs checkpoint.local (where the others go)").into());
    }
    let out_dir: Option<PathBuf> = cfg.get("output.dir")?;
    // `output.png`: true (the default: heat-final.png in output.dir, if given), false, or a path.
    let png = match (cfg.get::<bool>("output.png"), cfg.get::<PathBuf>("output.png")) {
        (Ok(Some(false)), _) => None,
        (Ok(_), _) => out_dir.as_ref().map(|d| d.join("heat-final.png")),
        (_, Ok(path)) => path,
        _ => return Err(cfg.invalid("output.png", "expected true, false or a file name").into()),
    };
    // Seconds kept before the job's end for the last checkpoint (plus two steps).
    let margin: f64 = cfg.get_or("stop.margin", 30.0)?;
    if !(0.0..=86400.0).contains(&margin) {
        return Err(cfg.invalid("stop.margin", "must be between 0 and 86400 seconds").into());
    }
    let inputs = Inputs {
        n,
        dim,
        steps,
        alpha,
        dt,
        backend,
        ckpt_dir,
        ckpt_every: every,
        ckpt_keep: cfg.get_or("checkpoint.keep", 2)?,
        ckpt_at_end: cfg.get_or("checkpoint.at_end", true)?,
        ckpt_async,
        ckpt_local,
        flush_every,
        progress_every: cfg.get_or("progress.every", 0)?,
        out_dir,
        png,
        stop: StopOptions { margin: Duration::from_secs_f64(margin), ..StopOptions::default() },
    };
    cfg.finish()?;
    Ok(inputs)
}

fn main() {
    // MPI_THREAD_MULTIPLE where the MPI has it, for checkpoint.mode = async.
    let opts = InitOptions { preferred: Some(Threading::Multiple), ..InitOptions::default() };
    runtime::run(opts, |rt: &mut Runtime| -> Res<Exit> {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?;
        let inp = inputs(&cfg)?;
        if inp.ckpt_async && rt.threading() != Threading::Multiple {
            return Err(BadInput(format!("checkpoint.mode = async needs MPI_THREAD_MULTIPLE; this MPI provides {:?}", rt.threading())).into());
        }
        let global = vec![inp.n; inp.dim];
        let d = Arc::new(Decomposition::new(rt, &global, &vec![true; inp.dim])?);
        let mut u = Field::<f64>::new(&d, 1);
        let mut v = Field::<f64>::new(&d, 1);
        let h = 1.0 / inp.n as f64;
        let mode = |i: &[usize]| -> f64 { i.iter().map(|&k| (2.0 * std::f64::consts::PI * (k as f64 + 0.5) * h).sin()).product() };
        u.fill_with(mode);

        let catalogue = inp.ckpt_dir.as_ref().map(|dir| {
            let cat = CheckpointDir::new(dir).keep(inp.ckpt_keep).asynchronous(inp.ckpt_async);
            match &inp.ckpt_local {
                Some(local) => cat.local(local, inp.flush_every),
                None => cat,
            }
        });
        // The directories named in the inputs are made (and written to) now: one that cannot be
        // used is bad input before the first step, not a failure at the first checkpoint or the
        // end. The first snapshot's buffer is taken now too, not in the step loop.
        if let Some(cat) = &catalogue {
            cat.make(d.comm())?;
            cat.reserve(&u);
        }
        if let Some(dir) = &inp.out_dir {
            make_dir(d.comm(), dir, "output directory", false)?;
        }
        if let Some(folder) = inp.png.as_deref().and_then(Path::parent).filter(|f| !f.as_os_str().is_empty()) {
            make_dir(d.comm(), folder, "folder of output.png", false)?;
        }
        let mut step = 0u64;
        if let Some(cat) = &catalogue {
            let load = |ck: &Checkpoint| {
                ck.expect_param("n", inp.n as i64)?;
                ck.expect_param("dim", inp.dim as i64)?;
                ck.expect_param("alpha", inp.alpha)?;
                ck.read_field("u", &mut u)
            };
            // Another run's checkpoint is the user's mistake: say so, and leave it where it is.
            let restored = cat.restore(d.comm(), load).map_err(|e| match e {
                IoError::Param { .. } | IoError::Shape { .. } | IoError::MissingField { .. } => {
                    Box::new(BadInput(format!("{e}: use another checkpoint.dir, or move that one away"))) as Box<dyn std::error::Error + Send + Sync>
                }
                e => e.into(),
            })?;
            // One line that says which checkpoint the run continues from, and what it skipped.
            let skipped = match &restored {
                Some(r) => r.skipped.len(),
                None => cat.checkpoints()?.len(),
            };
            let skipped = if skipped > 0 { format!("; {skipped} newer damaged checkpoint(s) skipped") } else { String::new() };
            match restored {
                Some(r) => {
                    step = r.info.step;
                    if rt.is_root() {
                        log::info!("restarted from step {step} ({} ranks wrote it, {} now): {}{skipped}", r.info.ranks, rt.size(), r.info.path.display());
                    }
                }
                None if !skipped.is_empty() && rt.is_root() => log::warn!("no valid checkpoint in {}{skipped}: starting from step 0", cat.root().display()),
                None => {}
            }
        }
        // Synchronous: written and committed on return, from the field itself. Otherwise a
        // snapshot: to the node-local level, and to the shared file (every flush_every-th, and
        // before a stop), in the background if asynchronous; the next checkpoint, a stop and the
        // end wait for it.
        // `shared`: to the shared file even with a node-local level (a stop, the end).
        let checkpoint = |cat: &CheckpointDir, u: &Field<f64>, step: u64, shared: bool| -> Res<PathBuf> {
            let time = step as f64 * inp.dt;
            if inp.ckpt_async || inp.ckpt_local.is_some() {
                let mut s = cat.snapshot(step, time);
                s.param("n", inp.n as i64).param("dim", inp.dim as i64).param("alpha", inp.alpha).write_field("u", u);
                if shared {
                    s.shared();
                }
                return Ok(s.submit(d.comm())?);
            }
            let mut w = cat.create(d.comm(), step, time)?;
            w.param("n", inp.n as i64)?.param("dim", inp.dim as i64)?.param("alpha", inp.alpha)?;
            w.write_field("u", u)?;
            Ok(w.commit()?)
        };
        // The asynchronous checkpoint in flight (step, time), told to the launcher once committed.
        let mut in_flight: Option<(u64, f64)> = None;
        let committed = |progress: &mut Progress, in_flight: &mut Option<(u64, f64)>| -> Res<()> {
            if let (Some(path), Some((step, time))) = (flush::wait()?, in_flight.take()) {
                progress.checkpointed(step, time, &path)?;
            }
            Ok(())
        };

        let mut gpu = gpu::select(rt, &cfg, &inp.backend, &u)?;
        let policy = StopPolicy::new(rt, inp.stop.clone())?;
        let mut progress = Progress::new(rt);
        let nu_dt = inp.alpha * inp.dt;
        let t0 = Instant::now();
        let first = step;
        while step < inp.steps {
            {
                let _t = rt.timers().start("step");
                match &mut gpu {
                    Some(g) => g.step(h, nu_dt)?,
                    None => {
                        heat_step(&mut u, &mut v, h, nu_dt)?;
                        std::mem::swap(&mut u, &mut v);
                    }
                }
            }
            step += 1;
            let time = step as f64 * inp.dt;
            let at_end = step == inp.steps && inp.ckpt_at_end;
            let due = (inp.ckpt_every > 0 && step % inp.ckpt_every == 0 && step < inp.steps) || at_end;
            let decision = policy.check(rt, step);
            match &catalogue {
                Some(cat) if due || decision.checkpoint => {
                    if let Some(g) = &gpu {
                        g.to_host(&mut u)?;
                    }
                    let path = rt.timers().time("checkpoint", || -> Res<PathBuf> {
                        committed(&mut progress, &mut in_flight)?;
                        checkpoint(cat, &u, step, decision.exit().is_some() || at_end)
                    })?;
                    match inp.ckpt_async {
                        true => in_flight = Some((step, time)),
                        false => progress.checkpointed(step, time, &path)?,
                    }
                }
                _ => progress.step(step, time)?,
            }
            if let Some(exit) = decision.exit() {
                committed(&mut progress, &mut in_flight)?;
                if rt.is_root() {
                    match catalogue {
                        Some(_) => log::info!("stopping at step {step} ({:?}); checkpoint written", decision.reason),
                        // Without a place for checkpoints a warning only stops the run; a requeued
                        // run begins again.
                        None => log::warn!("stopping at step {step} ({:?}) without a checkpoint: no checkpoint.dir", decision.reason),
                    }
                }
                return Ok(exit);
            }
            if rt.is_root() && inp.progress_every > 0 && step % inp.progress_every == 0 {
                let rate = (step - first) as f64 / t0.elapsed().as_secs_f64();
                let left = (inp.steps - step) as f64 / rate;
                log::info!("step {step}/{} t={time:.6} {rate:.1} steps/s, {left:.0} s left", inp.steps);
            }
        }

        committed(&mut progress, &mut in_flight)?;
        if let Some(cat) = &catalogue {
            cat.clear_local(d.comm())?;
        }
        if let Some(g) = &gpu {
            g.report(rt)?;
            g.to_host(&mut u)?;
        }
        // Error against the exact decay of the mode, and the field's bits.
        let time = inp.steps as f64 * inp.dt;
        let decay = (-4.0 * std::f64::consts::PI.powi(2) * inp.dim as f64 * inp.alpha * time).exp();
        v.fill_with(|i| decay * mode(i));
        v.interior_mut().zip_mut_with(&u.interior(), |e, a| *e = a - *e);
        // Exact, so the figure too is the same on any rank count.
        let l2 = (reduce::reproducible_dot(&v, &v) / (inp.n.pow(inp.dim as u32) as f64)).sqrt();
        // Position-keyed, mixed per value and summed over ranks: the same on any rank count, and
        // any changed bit changes it; no rank holds more than its block.
        let sum = checksum::field_checksum(&u);
        if rt.is_root() {
            println!("final step={} time={time:.6e} l2_error={l2:.6e} checksum={sum:016x}", inp.steps);
        }
        output(rt, &inp, &u, time)?;
        Ok(Exit::Done)
    })
}

/// Collective. The final state for ParaView (HDF5 + XDMF, written by every rank) and as a PNG
/// (drawn by rank 0 from the one plane it gathers).
fn output(rt: &Runtime, inp: &Inputs, u: &Field<f64>, time: f64) -> Res<()> {
    if let Some(dir) = &inp.out_dir {
        let mut w = CheckpointWriter::create_file(u.decomposition().comm(), dir.join("heat-final.h5"), inp.steps, time)?;
        w.param("n", inp.n as i64)?.param("dim", inp.dim as i64)?.param("alpha", inp.alpha)?;
        w.write_field("u", u)?;
        let h5 = w.commit()?;
        if rt.is_root() {
            log::info!("wrote {} and {}", h5.display(), h5.with_extension("xmf").display());
        }
    }
    let Some(path) = &inp.png else { return Ok(()) };
    if let Some((lo, hi)) = image::write_field_png(u, path)? {
        log::info!("wrote {} (colours from {lo:.3e} to {hi:.3e})", path.display());
    }
    Ok(())
}

/// One explicit step, `v = u + nu_dt lap(u)`, overlapping the halo exchange with the cells that do
/// not need ghosts, then the shell of cells next to the ghosts.
fn heat_step(u: &mut Field<f64>, v: &mut Field<f64>, h: f64, nu_dt: f64) -> Res<()> {
    let (inner, shell) = overlap_boxes(&u.decomposition().local_shape(), 1);
    let exchange = u.begin_exchange(Stencil::Star);
    update(u, v, &inner, h, nu_dt)?;
    exchange.finish(u)?;
    for cells in &shell {
        update(u, v, cells, h, nu_dt)?;
    }
    Ok(())
}

/// The heat kernel on the owned cells `cells` (local interior coordinates).
fn update(u: &Field<f64>, v: &mut Field<f64>, cells: &[Range<usize>], h: f64, nu_dt: f64) -> Res<()> {
    if cells.iter().any(|r| r.is_empty()) {
        return Ok(());
    }
    // With ghost width 1, owned cell i sits at data index i + 1: the source block with its ghosts
    // is data[start .. end + 2].
    let block = |ax: ndarray::AxisDescription| Slice::from(cells[ax.axis.index()].start..cells[ax.axis.index()].end + 2);
    let src = u.data();
    let src = src.slice_each_axis(block);
    let mut dst = v.data_mut();
    let dst = dst.slice_each_axis_mut(block);
    match cells.len() {
        2 => cpu::heat_step_2d(src.into_dimensionality::<Ix2>()?, dst.into_dimensionality::<Ix2>()?, 1, [h; 2], nu_dt)?,
        _ => cpu::heat_step_3d(src.into_dimensionality::<Ix3>()?, dst.into_dimensionality::<Ix3>()?, 1, [h; 3], nu_dt)?,
    }
    Ok(())
}
