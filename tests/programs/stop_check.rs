//! Test program for stop requests: `stop-check MODE RANK STEP`, launched by tests/stop.rs.
//! At step STEP, rank RANK raises a signal on itself (USR2 in modes `signal` and `window`, TERM
//! in `term`); every rank prints each decision that asks for a checkpoint. `window` adds a 3 s
//! wall-time limit; `time-left` prints what the policy learnt from Slurm and exits; `slurm`
//! waits for a signal from outside (rank 0 touches `started` when it is ready), and after a
//! requeue (SLURM_RESTART_COUNT > 0) says so and finishes.

use std::time::{Duration, Instant};

use rankwise::runtime::{self, BadInput, Exit, InitOptions, Runtime, StopOptions, StopPolicy};

type R = Result<Exit, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_default();
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
    let (who, when) = (num(1) as usize, num(2));
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> R {
        let mut opts = StopOptions { margin: Duration::from_millis(500), warning_window: Duration::from_secs(10), ..StopOptions::default() };
        let sig = match mode.as_str() {
            "signal" => libc::SIGUSR2,
            "term" => libc::SIGTERM,
            "window" => {
                opts.wall_time = Some(Duration::from_secs(3));
                libc::SIGUSR2
            }
            "time-left" => {
                let p = StopPolicy::new(rt, StopOptions::default())?;
                println!("rank={} time_left={:?}", rt.rank(), p.time_left().map(|t| t.as_secs()));
                return Ok(Exit::Done);
            }
            "slurm" => {
                if let Ok(n) = std::env::var("SLURM_RESTART_COUNT") {
                    if n != "0" {
                        println!("rank={} resumed after restart {n}", rt.rank());
                        return Ok(Exit::Done);
                    }
                }
                0 // no signal of its own
            }
            other => return Err(BadInput(format!("unknown mode {other:?}")).into()),
        };
        let policy = StopPolicy::new(rt, opts)?;
        let start = Instant::now();
        for step in 0..1000 {
            std::thread::sleep(Duration::from_millis(20));
            if step == 10 && rt.rank() == 0 && mode == "slurm" {
                std::fs::write("started", "")?;
            }
            if step == when && rt.rank() == who && sig != 0 {
                // SAFETY: raise() only sends a signal to this process.
                unsafe { libc::raise(sig) };
            }
            let d = policy.check(rt, step);
            if d.checkpoint {
                println!("rank={} step={step} stop={} reason={:?} elapsed={:.2}", rt.rank(), d.stop, d.reason.unwrap(), start.elapsed().as_secs_f64());
            }
            if let Some(exit) = d.exit() {
                return Ok(exit);
            }
        }
        Ok(Exit::Done)
    })
}
