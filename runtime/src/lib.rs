//! The Rankwise runtime: everything a rank needs to take part in an SPMD run.
//!
//! [`Runtime::init`] brings MPI up and learns where this rank sits (rank, node-local rank, host,
//! GPU); [`Decomposition`] splits a global index space over a Cartesian grid of ranks; [`Field`]
//! holds one rank's block with ghost layers and exchanges halos, [`DeviceField`] the same in GPU
//! memory; [`reduce`] gives global
//! reductions, including a reproducible sum; [`Timers`] report min/avg/max over ranks;
//! [`Config`] reads an inputs file with `--set` overrides; [`threads`] sizes each rank's thread
//! pools to the cores it may use; [`memory`] puts large blocks on huge pages; [`stop`] turns
//! signals and time limits into a collective decision to checkpoint and stop; [`status`] tells a
//! supervising launcher how far the run got.

mod config;
mod decomposition;
mod device_field;
mod error;
mod field;
mod gpu;
mod halo;
mod logging;
pub mod memory;
pub mod reduce;
mod runtime;
pub mod status;
pub mod stop;
pub mod threads;
mod timers;

pub use config::{Config, ConfigError};
pub use decomposition::{auto_grid, Decomposition, DecompositionError};
pub use device_field::{cuda_aware_mpi, device_pointers_to_mpi, DeviceField, DeviceHaloExchange, CUDA_AWARE_ENV};
pub use field::{CountError, Field};
pub use halo::{overlap_boxes, HaloError, HaloExchange, Stencil};
pub use reduce::{ExactSum, Real};
pub use error::{BadInput, Error, Result};
pub use gpu::{choose_device, visible_devices, GpuBinding};
pub use runtime::{abort_job, at_finalize, emit, mpi_library, run, Exit, InitOptions, Runtime, BAD_INPUT_GRACE, EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_REQUEUE};
pub use stop::{StopDecision, StopOptions, StopPolicy, StopReason};
pub use threads::{ThreadSource, Threads};
pub use timers::{TimerReport, TimerRow, Timers};

/// rsmpi, re-exported so programs use exactly the MPI binding the runtime was built with.
pub use mpi;
pub use mpi::environment::Threading;
