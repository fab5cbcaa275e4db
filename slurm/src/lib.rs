//! Slurm for Rankwise, with no MPI: the job's environment ([`Job`]), batch scripts that end in a
//! checkpoint and a requeue instead of lost hours ([`JobSpec`]), job arrays for parameter sweeps
//! ([`Sweep`]), and the client commands ([`Slurm`]).
//!
//! ```no_run
//! use rankwise_slurm::{JobSpec, Slurm};
//! let spec = JobSpec::from_toml(&std::fs::read_to_string("run.toml")?)?;
//! std::fs::write("job.sh", spec.script()?)?;
//! let id = Slurm::new().submit("job.sh".as_ref(), &[])?;
//! println!("{id}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod env;
mod hostlist;
mod recovery;
mod script;
mod sweep;
mod time;

pub use client::{JobInfo, Slurm};
pub use env::{until, ArrayTask, Job};
pub use hostlist::{expand_counts, expand_hostlist};
pub use recovery::{is_unusable, place, read_recoveries, record_recovery, recovery_record, Placement, Recovery, Shape};
pub use script::{quote, signal_number, JobSpec, Launcher};
pub use sweep::{ParamSet, Sweep};
pub use time::{format_duration, parse_duration, parse_timestamp};

/// The exit code that means "checkpoint written, requeue me" (EX_TEMPFAIL), shared with the
/// runtime.
pub const EXIT_REQUEUE: i32 = 75;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{var}=`{value}`: {why}")]
    Env { var: String, value: String, why: String },
    #[error("host list `{list}`: {why}")]
    Hostlist { list: String, why: String },
    #[error("{0}")]
    Time(String),
    #[error("job: {0}")]
    Spec(String),
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("{0}")]
    Parse(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
