//! Rankwise for Python: the kernels on numpy arrays (no copies on the CPU), the runtime on an
//! mpi4py communicator, fields whose blocks are numpy views, checkpoints.
//!
//! The boundary follows the C API's: the caller's communicator is duplicated, never freed; MPI is
//! neither initialised nor finalised here (mpi4py does both); no panic crosses into Python: in a
//! call only this rank makes it becomes `rankwise.RankwiseError`, in a collective call it aborts
//! the job with a message, so that the other ranks do not wait forever.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

mod bench;
mod checkpoint;
mod kernels;
mod parallel;

create_exception!(rankwise, RankwiseError, PyException, "Every error Rankwise raises: catch this to catch them all.");
create_exception!(rankwise, InputError, RankwiseError, "The user's input: an inputs key or value, an impossible decomposition, a checkpoint another run wrote.");
create_exception!(rankwise, ShapeError, RankwiseError, "Arrays of the wrong dtype, shape or layout, or that overlap where they must not.");
create_exception!(rankwise, MpiError, RankwiseError, "MPI is not running, or the communicator or exchange cannot be used.");
create_exception!(rankwise, CheckpointError, RankwiseError, "Reading or writing checkpoints and output: a damaged file, a folder that cannot be written.");
create_exception!(rankwise, LinalgError, RankwiseError, "A factorisation failed (a singular or not positive definite matrix).");
create_exception!(rankwise, BackendError, RankwiseError, "An unknown or unusable back end (no GPU for \"cuda\").");

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "(no message)".into())
}

/// Run a call that only this rank makes: a panic becomes a `RankwiseError` (PyO3 would raise a
/// `PanicException`, which `except Exception` does not catch).
pub(crate) fn local<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(RankwiseError::new_err(format!("internal error in Rankwise: {}; please report it", panic_text(p.as_ref())))))
}

/// Run a collective call: a panic leaves this rank unable to take part in what the others are
/// doing, so it aborts the job with a message instead of leaving them waiting.
pub(crate) fn collective<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| abort_job(&format!("internal error in Rankwise during a collective call: {}", panic_text(p.as_ref()))))
}

/// Whether MPI runs (initialised and not yet finalised).
pub(crate) fn mpi_running() -> bool {
    mpi::environment::is_initialized() && !mpi::environment::is_finalized()
}

pub(crate) use rankwise_runtime::{abort_job, emit};

/// An object that frees MPI resources when dropped (communicators). Python may collect it after
/// mpi4py finalised MPI at exit: then freeing is no longer allowed, and it is left to the
/// process's end.
pub(crate) struct MpiOwned<T>(pub(crate) std::mem::ManuallyDrop<T>);

impl<T> MpiOwned<T> {
    pub(crate) fn new(v: T) -> Self {
        MpiOwned(std::mem::ManuallyDrop::new(v))
    }
}
impl<T> std::ops::Deref for MpiOwned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
impl<T> std::ops::DerefMut for MpiOwned<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
impl<T> Drop for MpiOwned<T> {
    fn drop(&mut self) {
        if mpi_running() {
            // SAFETY: dropped once, here.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.0) }
        }
    }
}

#[pymodule]
fn _rankwise(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RankwiseError", py.get_type::<RankwiseError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("ShapeError", py.get_type::<ShapeError>())?;
    m.add("MpiError", py.get_type::<MpiError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("LinalgError", py.get_type::<LinalgError>())?;
    m.add("BackendError", py.get_type::<BackendError>())?;
    kernels::register(m)?;
    parallel::register(m)?;
    checkpoint::register(m)?;
    bench::register(m)?;
    Ok(())
}
