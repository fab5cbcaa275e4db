//! Test program for the launcher's supervision: `steps --set steps=N --set dir=DIR ...`.
//!
//! Takes N steps, each mixing an all-reduce into a running value (so a wrong restart changes the
//! final value), checkpoints to a plain file in DIR every `every` steps and reports it through
//! the status contract, and resumes from the newest checkpoint in DIR on its own, saying which
//! (`resumed from checkpoint PATH` on rank 0's stderr). At each step in `kill_at`, rank
//! `kill_rank` SIGKILLs itself: once per step (a marker file remembers) or, with
//! `kill_once=false`, on every run. SIGUSR1 makes every rank checkpoint and exit 75 (requeue).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use mpi::collective::SystemOperation;
use mpi::traits::*;
use rankwise::runtime::status::{Progress, RESTART_COUNT_ENV};
use rankwise::runtime::{self, BadInput, Config, Exit, InitOptions, Runtime};

type R = Result<Exit, Box<dyn std::error::Error + Send + Sync>>;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> R {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?;
        let steps: u64 = cfg.require("steps")?;
        let dir: PathBuf = cfg.require::<String>("dir")?.into();
        let every: u64 = cfg.get_or("every", 1)?;
        let kill_at: Vec<u64> = cfg.get_or("kill_at", vec![])?;
        let kill_once: bool = cfg.get_or("kill_once", true)?;
        let kill_rank: usize = cfg.get_or("kill_rank", 1)?;
        let sleep_ms: u64 = cfg.get_or("sleep_ms", 0)?;
        cfg.finish()?;
        if every == 0 {
            return Err(cfg.invalid("every", "must be at least 1").into());
        }
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(libc::SIGUSR1, on_usr1 as extern "C" fn(libc::c_int) as libc::sighandler_t) };

        let (mut step, mut value) = match newest_checkpoint(&dir)? {
            Some(ckpt) => {
                if rt.is_root() {
                    eprintln!("resumed from checkpoint {}", ckpt.display());
                }
                read_checkpoint(&ckpt)?
            }
            None => (0, 1),
        };
        let mut progress = Progress::new(rt);
        if rt.is_root() {
            println!("start step={step} restart={}", std::env::var(RESTART_COUNT_ENV).unwrap_or("0".into()));
        }
        let world = rt.world();
        while step < steps {
            step += 1;
            let mut sum = 0u64;
            world.all_reduce_into(&((rt.rank() as u64 + 1) * step), &mut sum, SystemOperation::sum());
            value = value.wrapping_mul(6364136223846793005).wrapping_add(sum);
            std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
            let mut stop = 0u8;
            world.all_reduce_into(&u8::from(STOP.load(Ordering::SeqCst)), &mut stop, SystemOperation::max());
            if step % every == 0 || stop == 1 {
                let path = dir.join(format!("ckpt-{step:06}.txt"));
                if rt.is_root() {
                    std::fs::write(dir.join("ckpt.tmp"), format!("{step} {value}\n"))?;
                    std::fs::rename(dir.join("ckpt.tmp"), &path)?;
                }
                progress.checkpointed(step, step as f64 * 0.01, &path)?;
            } else {
                progress.step(step, step as f64 * 0.01)?;
            }
            if stop == 1 {
                if rt.is_root() {
                    println!("stopped at step={step}");
                }
                return Ok(Exit::Requeue);
            }
            if kill_at.contains(&step) {
                // Rank 0 has reported this step: the launcher sees exactly where it died.
                progress.flush()?;
                world.barrier();
                let marker = dir.join(format!("killed-{step}"));
                if rt.rank() == kill_rank && !(kill_once && marker.exists()) {
                    std::fs::write(&marker, "")?;
                    // SAFETY: kill(2) of this very process.
                    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
                }
            }
        }
        if rt.is_root() {
            println!("final step={step} value={value:016x}");
        }
        Ok(Exit::Done)
    })
}

/// The checkpoint of the highest step in `dir` (names `ckpt-NNNNNN.txt` sort by step).
fn newest_checkpoint(dir: &Path) -> Result<Option<PathBuf>, BadInput> {
    let entries = std::fs::read_dir(dir).map_err(|e| BadInput(format!("cannot list {}: {e}", dir.display())))?;
    let names = entries.flatten().map(|e| e.path());
    Ok(names.filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ckpt-") && n.ends_with(".txt"))).max())
}

fn read_checkpoint(path: &Path) -> Result<(u64, u64), BadInput> {
    let text = std::fs::read_to_string(path).map_err(|e| BadInput(format!("cannot read checkpoint {}: {e}", path.display())))?;
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(s)), Some(Ok(v))) => Ok((s, v)),
        _ => Err(BadInput(format!("checkpoint {} is not `step value`", path.display()))),
    }
}
