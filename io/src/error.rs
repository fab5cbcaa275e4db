use std::path::PathBuf;

use rankwise_runtime::BadInput;
use thiserror::Error;

/// Errors of checkpoint/restart and output.
#[derive(Debug, Error)]
pub enum IoError {
    #[error("{context}: {source}")]
    Hdf5 { context: String, source: hdf5::Error },
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    /// The file cannot be trusted: truncated, unreadable, a checksum that does not match, missing
    /// metadata. A restart skips it for the previous checkpoint.
    #[error("{}: corrupt checkpoint: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: written by a newer Rankwise (format version {found}, this one reads up to {known})", path.display())]
    Version { path: PathBuf, found: u32, known: u32 },
    #[error("{}: no field `{name}` (it has: {have})", path.display())]
    MissingField { path: PathBuf, name: String, have: String },
    #[error("field `{name}`: global shape {found:?} in the file, {expected:?} expected")]
    Shape { name: String, expected: Vec<usize>, found: Vec<usize> },
    /// The file was written by another run: a parameter it was written with differs.
    #[error("{}: written with {name} = {found}, this run has {name} = {expected}", path.display())]
    Param { path: PathBuf, name: String, expected: String, found: String },
    #[error("field `{name}`: element type {found} in the file, {expected} expected")]
    Dtype { name: String, expected: String, found: String },
    #[error("field `{name}`: block at {start:?} of shape {shape:?} does not fit in the global shape {global:?}")]
    Block { name: String, start: Vec<usize>, shape: Vec<usize>, global: Vec<usize> },
    #[error("a picture needs a 2-D or 3-D field, not {0}-D")]
    Picture(usize),
    #[error("field name {name:?}: {reason}")]
    Name { name: String, reason: &'static str },
    /// The restore closure asked for other data when its reads were delivered than when they were
    /// read and verified: it must read the same things each time it is called.
    #[error("restore: the load closure read {found} after {expected} had been read and verified")]
    Replay { expected: String, found: String },
    #[error("field `{name}`: the transfer was not collective (HDF5 reports {mode})")]
    NotCollective { name: String, mode: String },
    #[error("checkpoint.mode = async needs MPI_THREAD_MULTIPLE; this MPI provides {0:?} (ask for it with InitOptions::preferred)")]
    Threading(mpi::environment::Threading),
    #[error("background checkpoint: {0}")]
    Flush(String),
    /// What the lowest-numbered rank that failed in `what` said (`rank R: ...`).
    #[error("another rank failed in {what}: {first}")]
    OtherRank { what: String, first: String },
    /// A write failed on a filesystem with almost no space left.
    #[error("{source} (the filesystem of {} has {free} bytes free)", path.display())]
    NoSpace { path: PathBuf, free: u64, source: Box<IoError> },
    /// A directory the program was given (for checkpoints or output) cannot be made or written:
    /// the user's input, so its source is a [`BadInput`] (`runtime::run` exits 2 with one line).
    #[error("{0}")]
    Directory(#[source] BadInput),
}

impl IoError {
    /// Whether the checkpoint itself is damaged (so an older one may be used instead).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, IoError::Corrupt { .. })
    }
}

pub type Result<T, E = IoError> = std::result::Result<T, E>;

/// Attach what was being done to an HDF5 error.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for hdf5::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| IoError::Hdf5 { context: what(), source })
    }
}
