use thiserror::Error;

/// Errors of the runtime library.
#[derive(Debug, Error)]
pub enum Error {
    #[error("MPI was already initialised in this process")]
    AlreadyInitialised,
    #[error("MPI is not running (initialise it before adopting a communicator, finalise it after)")]
    NotInitialised,
    #[error("an inter-communicator was given where an intra-communicator is needed")]
    InterCommunicator,
    #[error("MPI provides thread level {provided:?}, but {requested:?} was required")]
    ThreadLevel { requested: mpi::environment::Threading, provided: mpi::environment::Threading },
    /// Started by another MPI's launcher (see [`crate::run`]); `first` on the process that
    /// launcher calls rank 0.
    #[error("{message}")]
    ForeignLauncher { message: String, first: bool },
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    #[error(transparent)]
    BadInput(#[from] BadInput),
    /// A split-phase halo exchange finished on other fields, or a message had the wrong size.
    #[error(transparent)]
    Halo(#[from] crate::HaloError),
    /// A kernel or a GPU call failed (device fields).
    #[error(transparent)]
    Kernels(#[from] rankwise_kernels::Error),
}

impl From<rankwise_kernels::CudaError> for Error {
    fn from(e: rankwise_kernels::CudaError) -> Self {
        Error::Kernels(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error in what the user asked for (inputs, options, shapes): every rank sees the same one,
/// so it is reported once, by rank 0, and the job exits with [`crate::EXIT_BAD_INPUT`].
#[derive(Debug, Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Whether an error (or any error in its chain of sources) is the user's input.
pub(crate) fn is_bad_input(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BadInput>() || err.is::<crate::ConfigError>() || err.is::<crate::DecompositionError>() {
            return true;
        }
        if let Some(Error::Config(_) | Error::BadInput(_) | Error::ForeignLauncher { .. }) = err.downcast_ref::<Error>() {
            return true;
        }
        cur = err.source();
    }
    false
}
