//! How many threads each rank's pools take (rayon's, and OpenBLAS's inside the rank).
//!
//! A pool as wide as the node in every rank oversubscribes it (4 ranks x 2 threads on 2 cores).
//! By default a rank takes the CPUs it may use (its affinity mask, as mpirun or srun bound it),
//! shared out among the ranks of its node whose masks overlap it, at least 1. `RAYON_NUM_THREADS`
//! (which `rankwise run --threads` sets) overrides it; `OPENBLAS_NUM_THREADS` (or
//! `OMP_NUM_THREADS`) overrides it for OpenBLAS.

use std::ffi::CString;
use std::fmt;

use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

/// The variable that sets every rank's rayon threads (rayon reads it too).
pub const THREADS_ENV: &str = "RAYON_NUM_THREADS";
/// The variables OpenBLAS reads for its threads, in its order.
pub const BLAS_THREADS_ENV: [&str; 3] = ["OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"];

/// Where a rank's thread count came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThreadSource {
    /// `RAYON_NUM_THREADS` (set by `rankwise run --threads`, or by hand).
    Env,
    /// The `cpus` this rank may use, shared by `sharing` ranks of its node (itself included).
    Cores { cpus: usize, sharing: usize },
    /// The program built rayon's pool itself before the runtime started.
    Program,
}

/// A rank's thread count, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Threads {
    pub count: usize,
    pub source: ThreadSource,
}

impl fmt::Display for Threads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.count;
        write!(f, "{n} thread{}", if n == 1 { "" } else { "s" })?;
        match &self.source {
            ThreadSource::Env => write!(f, " ({THREADS_ENV})"),
            ThreadSource::Cores { cpus, sharing: 1 } => write!(f, " (its {cpus} CPU{})", if *cpus == 1 { "" } else { "s" }),
            ThreadSource::Cores { cpus, sharing } => write!(f, " ({cpus} CPUs shared by {sharing} ranks)"),
            ThreadSource::Program => write!(f, " (the program's own pool)"),
        }
    }
}

/// `RAYON_NUM_THREADS` when it is a whole number of at least 1 (rayon's own reading: 0 or
/// anything else means its default).
pub fn from_env() -> Option<usize> {
    std::env::var(THREADS_ENV).ok()?.trim().parse().ok().filter(|&n| n > 0)
}

/// The variable and value that set OpenBLAS's threads, if any does.
pub fn blas_from_env() -> Option<(&'static str, String)> {
    BLAS_THREADS_ENV.iter().find_map(|k| Some((*k, std::env::var(k).ok().filter(|v| !v.trim().is_empty())?)))
}

/// Threads for a rank that may use `cpus` CPUs, shared with `sharing` ranks: at least 1.
pub fn share(cpus: usize, sharing: usize) -> usize {
    (cpus / sharing.max(1)).max(1)
}

/// Words of the CPU mask passed between ranks: a `cpu_set_t` (1024 CPUs).
const MASK_WORDS: usize = 16;

/// The CPUs this process may run on, as a bit set (None where the kernel does not say).
pub fn affinity() -> Option<[u64; MASK_WORDS]> {
    // SAFETY: a zeroed cpu_set_t is empty; sched_getaffinity fills at most its size.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        set
    };
    let mut mask = [0u64; MASK_WORDS];
    for cpu in 0..MASK_WORDS * 64 {
        // SAFETY: cpu < CPU_SETSIZE.
        if unsafe { libc::CPU_ISSET(cpu, &set) } {
            mask[cpu / 64] |= 1 << (cpu % 64);
        }
    }
    Some(mask)
}

/// The CPUs this process may use: its affinity mask, less any container quota.
pub fn usable_cpus() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let masked = affinity().map_or(logical, |m| m.iter().map(|w| w.count_ones() as usize).sum());
    masked.min(logical).max(1)
}

/// Collective over `node` (the ranks that share this node's memory). This rank's thread count:
/// `RAYON_NUM_THREADS` if set, else its CPUs shared by the node's ranks whose masks overlap it.
pub fn choose(node: &SimpleCommunicator) -> Threads {
    let mine = affinity().unwrap_or([0; MASK_WORDS]);
    let mut all = vec![0u64; MASK_WORDS * node.size() as usize];
    node.all_gather_into(&mine[..], &mut all[..]);
    let sharing = if mine.iter().all(|&w| w == 0) {
        node.size() as usize
    } else {
        all.chunks(MASK_WORDS).filter(|other| other.iter().zip(&mine).any(|(a, b)| a & b != 0)).count()
    };
    let cpus = usable_cpus();
    match from_env() {
        Some(count) => Threads { count, source: ThreadSource::Env },
        None => Threads { count: share(cpus, sharing), source: ThreadSource::Cores { cpus, sharing } },
    }
}

/// Build rayon's global pool with `threads` (the calling thread one of them with `join`), and
/// with `blas` set OpenBLAS's threads to the same unless a variable names them. The threads the
/// pool really has: those of the program's own pool if it built one first.
pub fn apply(threads: Threads, join: bool, blas: bool) -> Threads {
    let mut builder = rayon::ThreadPoolBuilder::new().num_threads(threads.count);
    if join {
        builder = builder.use_current_thread();
    }
    let threads = match builder.build_global() {
        Ok(()) => threads,
        Err(_) => Threads { count: rayon::current_num_threads(), source: ThreadSource::Program },
    };
    if blas && blas_from_env().is_none() {
        set_openblas_threads(threads.count);
    }
    threads
}

/// `openblas_set_num_threads`, when the process has OpenBLAS loaded (found at run time: the
/// runtime does not link it).
fn set_openblas_threads(n: usize) {
    let name = CString::new("openblas_set_num_threads").expect("no NUL");
    // SAFETY: dlsym over the loaded libraries with a valid C string.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if !f.is_null() {
        // SAFETY: OpenBLAS's `void openblas_set_num_threads(int)`.
        let f: extern "C" fn(std::ffi::c_int) = unsafe { std::mem::transmute(f) };
        f(n.min(i32::MAX as usize) as std::ffi::c_int);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_descriptions() {
        assert_eq!((share(2, 4), share(2, 1), share(16, 2), share(0, 0)), (1, 2, 8, 1));
        let t = |count, source| Threads { count, source }.to_string();
        assert_eq!(t(1, ThreadSource::Cores { cpus: 2, sharing: 4 }), "1 thread (2 CPUs shared by 4 ranks)");
        assert_eq!(t(4, ThreadSource::Cores { cpus: 4, sharing: 1 }), "4 threads (its 4 CPUs)");
        assert_eq!(t(3, ThreadSource::Env), "3 threads (RAYON_NUM_THREADS)");
        assert_eq!(t(8, ThreadSource::Program), "8 threads (the program's own pool)");
    }

    #[test]
    fn the_mask_holds_at_least_one_cpu() {
        let mask = affinity().expect("Linux says");
        assert!(mask.iter().any(|&w| w != 0));
        assert!(usable_cpus() >= 1 && usable_cpus() <= std::thread::available_parallelism().unwrap().get());
    }
}
