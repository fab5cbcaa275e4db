//! Rankwise: an SPMD runtime for simulation codes in Rust.
//!
//! This crate re-exports the library crates so a program needs one dependency.
pub use rankwise_io as io;
pub use rankwise_kernels as kernels;
pub use rankwise_runtime as runtime;
pub use rankwise_slurm as slurm;
