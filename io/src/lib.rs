//! Checkpoint/restart and output in parallel HDF5.
//!
//! One HDF5 file per checkpoint, written by every rank through the MPI-IO driver: each field is one
//! dataset of its global shape and each rank writes its block as a hyperslab with a collective
//! transfer (checked with `H5Pget_mpio_actual_io_mode`), or, where every rank's block lies in long
//! runs of a contiguous dataset, straight into the dataset's space past the page cache
//! ([`IoMode::is_direct`]). Metadata are attributes: step, time,
//! format and Rankwise versions, the rank count, user parameters (group `parameters`), and per
//! field its element type, every writing rank's block and a checksum that does not depend on the rank count
//! ([`checksum`]). A checkpoint is written as `NAME.partial`, closed, fsynced and renamed, so a
//! crash never leaves a file that looks complete. [`CheckpointDir`] keeps the last K and restarts
//! from the newest one that verifies, on any number of ranks. [`CheckpointWriter::create_file`]
//! writes the same format to a file of any name (a final state for ParaView), and [`image`]
//! draws a 2-D slice as a PNG.
//!
//! ```ignore
//! // Every call is collective: every rank makes it, with its own block.
//! let dir = CheckpointDir::new("ckpt").keep(3);
//! let mut w = dir.create(rt.world(), step, t)?;
//! w.param("alpha", 0.25)?;
//! w.write_block("u", &global, &start, u.view())?; // this rank's block at `start`
//! w.write_field("v", &v)?; // a runtime `Field`: its interior at its owned block
//! w.commit()?;
//! // later, on any number of ranks:
//! let r = dir.restore(rt.world(), |ck| {
//!     ck.read_block_into("u", &global, &start, u.view_mut())?;
//!     ck.read_field("v", &mut v) // into the interior; ghosts untouched
//! })?;
//! ```

pub mod checksum;
mod catalogue;
mod checkpoint;
mod direct;
mod error;
pub mod flush;
mod guard;
mod hyperslab;
pub mod local;
pub mod image;
mod meta;
pub mod xdmf;

pub use catalogue::{inspect, make_dir, verify, CheckpointDir, Restored};
pub use checkpoint::{Checkpoint, CheckpointWriter, Layout};
pub use checksum::Element;
pub use error::{IoError, Result};
pub use flush::Snapshot;
pub use hyperslab::IoMode;
pub use meta::{CheckpointInfo, FieldInfo, Param, FORMAT, FORMAT_VERSION};
