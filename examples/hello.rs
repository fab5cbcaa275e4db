//! The first thing to run on a new machine or cluster: where every rank landed, and a working
//! collective.
//!
//! ```text
//! rankwise run -n 4 hello
//! ```

use mpi::datatype::PartitionMut;
use mpi::traits::*;
use rankwise::runtime::{self, Config, Exit, InitOptions, Runtime};

fn main() {
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> Result<Exit, Box<dyn std::error::Error + Send + Sync>> {
        let cfg = Config::from_args_on(rt.world(), std::env::args().skip(1))?;
        cfg.finish()?;
        // The pool's size and where it came from: the rank's cores, or RAYON_NUM_THREADS.
        let threads = rt.threads();
        let line = format!(
            "rank {} of {} on {} (node-local rank {} of {}), {}, {}",
            rt.rank(),
            rt.size(),
            rt.host(),
            rt.local_rank(),
            rt.local_size(),
            threads,
            rt.gpu()
        );
        // Gather the lines so rank 0 prints them in rank order.
        let world = rt.world();
        let bytes = line.into_bytes();
        let root = world.process_at_rank(0);
        if rt.is_root() {
            let mut counts = vec![0i32; rt.size()];
            root.gather_into_root(&(bytes.len() as i32), &mut counts[..]);
            let displs: Vec<i32> = counts.iter().scan(0, |a, &c| { let d = *a; *a += c; Some(d) }).collect();
            let mut all = vec![0u8; counts.iter().sum::<i32>() as usize];
            root.gather_varcount_into_root(&bytes[..], &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]));
            for (c, d) in counts.iter().zip(&displs) {
                println!("{}", String::from_utf8_lossy(&all[*d as usize..(*d + *c) as usize]));
            }
        } else {
            root.gather_into(&(bytes.len() as i32));
            root.gather_varcount_into(&bytes[..]);
        }
        // Sum of (rank + 1) over all ranks is size * (size + 1) / 2.
        let mut sum = 0u64;
        world.all_reduce_into(&(rt.rank() as u64 + 1), &mut sum, mpi::collective::SystemOperation::sum());
        if rt.is_root() {
            println!("allreduce: sum of rank+1 over {} ranks = {} (expected {})", rt.size(), sum, rt.size() * (rt.size() + 1) / 2);
        }
        Ok(Exit::Done)
    })
}
