//! Test program for the runtime: `rt-basics MODE [ARG]`, launched by tests/runtime.rs under mpirun.

use mpi::collective::SystemOperation;
use mpi::traits::*;
use rankwise::runtime::{self, BadInput, Exit, InitOptions, Runtime, Threading};

type R = Result<Exit, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_default();
    let arg = args.get(1).and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
    let threading = if mode == "multiple" { Threading::Multiple } else { Threading::Funneled };
    runtime::run(InitOptions { threading, ..InitOptions::default() }, |rt: &mut Runtime| -> R {
        let (rank, size) = (rt.rank(), rt.size());
        match mode.as_str() {
            "init" | "multiple" => {
                println!(
                    "rank={rank} size={size} local_rank={} local_size={} host={} threading={:?} gpu={}",
                    rt.local_rank(), rt.local_size(), rt.host(), rt.threading(), rt.gpu()
                );
            }
            "collectives" => {
                let w = rt.world();
                // Typed all-reduce: i64 sum, f64 max, u32 min over a vector.
                let mut isum = 0i64;
                w.all_reduce_into(&(rank as i64 * 10), &mut isum, SystemOperation::sum());
                let mut fmax = 0.0f64;
                w.all_reduce_into(&(rank as f64 + 0.5), &mut fmax, SystemOperation::max());
                let v = [rank as u32 + 7, 100 - rank as u32];
                let mut vmin = [0u32; 2];
                w.all_reduce_into(&v[..], &mut vmin[..], SystemOperation::min());
                // Broadcast from the last rank.
                let mut b = [0.0f32; 3];
                if rank == size - 1 {
                    b = [1.5, -2.25, size as f32];
                }
                w.process_at_rank(size as i32 - 1).broadcast_into(&mut b[..]);
                println!("rank={rank} isum={isum} fmax={fmax} vmin={vmin:?} bcast={b:?}");
            }
            "panic" => {
                if rank == arg {
                    panic!("deliberate panic on rank {rank}");
                }
                // The others wait in a collective that the panicking rank never joins.
                rt.world().barrier();
                println!("rank={rank} passed a barrier that should never complete");
            }
            "error" => {
                if rank == arg {
                    return Err(std::io::Error::other(format!("disk on fire on rank {rank}")).into());
                }
                rt.world().barrier();
            }
            "bad-input" => return Err(BadInput("n must be positive, got -3".into()).into()),
            // Bad input on rank ARG alone; the others finish ("alone") or wait for it ("stuck").
            "bad-input-alone" | "bad-input-stuck" => {
                if rank == arg {
                    return Err(BadInput(format!("the block of rank {rank} fails a check")).into());
                }
                if mode == "bad-input-stuck" {
                    rt.world().barrier();
                    println!("rank={rank} passed a barrier that should never complete");
                }
            }
            "timers" => {
                for _ in 0..=rank {
                    rt.timers().time("work", || std::thread::sleep(std::time::Duration::from_millis(20)));
                }
                if rank == 0 {
                    rt.timers().add("only-rank-0", 0.5);
                }
                if rank == size - 1 {
                    // A name rank 0 lacks: the report learns it from the others.
                    rt.timers().add("only-last-rank", 0.25);
                }
                let rep = rt.timers().report(rt.world());
                if rank == 0 {
                    let w = rep.row("work").unwrap();
                    let o = rep.row("only-rank-0").unwrap();
                    println!("work calls={} min={:.3} max={:.3} avg={:.3}", w.calls, w.min, w.max, w.avg);
                    println!("only-rank-0 min={:.3} max={:.3}", o.min, o.max);
                    let l = rep.row("only-last-rank").unwrap();
                    println!("only-last-rank min={:.3} max={:.3}", l.min, l.max);
                    print!("{rep}");
                }
            }
            "requeue" => return Ok(Exit::Requeue),
            other => return Err(BadInput(format!("unknown mode {other:?}")).into()),
        }
        Ok(Exit::Done)
    })
}
