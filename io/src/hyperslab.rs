//! Collective hyperslab transfers through the raw HDF5 API: hdf5-metno's own `write`/`read` use
//! a default (independent) transfer list, which loses the point of MPI-IO on a shared file.

use std::fmt;
use std::ptr;

use hdf5::Dataset;
use hdf5_sys::h5::{herr_t, hsize_t};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5d::{H5D_mpio_actual_io_mode_t, H5Dget_space, H5Dread, H5Dwrite};
use hdf5_sys::h5p::H5FD_mpio_xfer_t::H5FD_MPIO_COLLECTIVE;
use hdf5_sys::h5i::H5I_INVALID_HID;
use hdf5_sys::h5p::{H5Pclose, H5Pcreate, H5Pset_dxpl_mpio, H5P_CLS_DATASET_XFER};
use hdf5_sys::h5s::{H5S_seloper_t::H5S_SELECT_SET, H5Sclose, H5Screate_simple, H5Sselect_hyperslab, H5Sselect_none};
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};


extern "C" {
    // Not bound by hdf5-metno-sys; in HDF5 since 1.8.10.
    fn H5Pget_mpio_actual_io_mode(plist: hid_t, mode: *mut H5D_mpio_actual_io_mode_t) -> herr_t;
}

/// How HDF5 actually carried out a transfer (`H5Pget_mpio_actual_io_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoMode(H5D_mpio_actual_io_mode_t);

impl IoMode {
    /// Whether MPI-IO did it as one collective operation (contiguous or chunked).
    pub fn is_collective(self) -> bool {
        use H5D_mpio_actual_io_mode_t::*;
        matches!(self.0, H5D_MPIO_CONTIGUOUS_COLLECTIVE | H5D_MPIO_CHUNK_COLLECTIVE)
    }
}

impl fmt::Display for IoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use H5D_mpio_actual_io_mode_t::*;
        f.write_str(match self.0 {
            H5D_MPIO_NO_COLLECTIVE => "independent",
            H5D_MPIO_CHUNK_INDEPENDENT => "chunk-independent",
            H5D_MPIO_CHUNK_COLLECTIVE => "chunk-collective",
            H5D_MPIO_CHUNK_MIXED => "chunk-mixed",
            H5D_MPIO_CONTIGUOUS_COLLECTIVE => "contiguous-collective",
        })
    }
}

/// An HDF5 identifier closed when dropped.
struct Id(hid_t, unsafe extern "C" fn(hid_t) -> herr_t);

impl Id {
    fn new(id: hid_t, close: unsafe extern "C" fn(hid_t) -> herr_t) -> hdf5::Result<Id> {
        hdf5::h5check(id).map(|id| Id(id, close))
    }
}

impl Drop for Id {
    fn drop(&mut self) {
        if self.0 != H5I_INVALID_HID {
            unsafe { (self.1)(self.0) };
        }
    }
}

/// File and memory dataspaces selecting `shape` at `start` (nothing when the block is empty) and a
/// collective transfer list: everything an `H5Dwrite`/`H5Dread` of one rank's block needs.
/// The dimensions of a C-order array of which a view with these `strides` (in elements) is the
/// corner at index 0, e.g. a field's interior inside its ghost layers: HDF5 then reads or writes
/// the view in place, without a copy. `None` for other layouts.
fn enclosing_dims(shape: &[usize], strides: &[isize]) -> Option<Vec<usize>> {
    let n = shape.len();
    if n == 0 || strides[n - 1] != 1 {
        return None;
    }
    let mut dims = shape.to_vec();
    for d in 0..n - 1 {
        let (outer, inner) = (strides[d], strides[d + 1]);
        if inner <= 0 || outer % inner != 0 || ((outer / inner) as usize) < shape[d + 1] {
            return None;
        }
        dims[d + 1] = (outer / inner) as usize;
    }
    Some(dims)
}

fn prepare(ds: &Dataset, start: &[usize], shape: &[usize], strides: &[isize], collective: bool) -> hdf5::Result<(Id, Id, Id)> {
    let file = Id::new(unsafe { H5Dget_space(ds.id()) }, H5Sclose)?;
    let empty = shape.iter().any(|&n| n == 0);
    let count: Vec<hsize_t> = shape.iter().map(|&n| n.max(1) as hsize_t).collect();
    let dims: Vec<hsize_t> = match enclosing_dims(shape, strides) {
        Some(d) if !empty => d.iter().map(|&n| n as hsize_t).collect(),
        _ => count.clone(),
    };
    let mem = Id::new(unsafe { H5Screate_simple(dims.len() as i32, dims.as_ptr(), ptr::null()) }, H5Sclose)?;
    if empty {
        // A rank that owns nothing still takes part in the collective call, with empty selections.
        hdf5::h5check(unsafe { H5Sselect_none(file.0) })?;
        hdf5::h5check(unsafe { H5Sselect_none(mem.0) })?;
    } else {
        let off: Vec<hsize_t> = start.iter().map(|&s| s as hsize_t).collect();
        let zero = vec![0 as hsize_t; shape.len()];
        hdf5::h5check(unsafe {
            H5Sselect_hyperslab(file.0, H5S_SELECT_SET, off.as_ptr(), ptr::null(), count.as_ptr(), ptr::null())
        })?;
        hdf5::h5check(unsafe {
            H5Sselect_hyperslab(mem.0, H5S_SELECT_SET, zero.as_ptr(), ptr::null(), count.as_ptr(), ptr::null())
        })?;
    }
    let dxpl = Id::new(unsafe { H5Pcreate(*H5P_CLS_DATASET_XFER) }, H5Pclose)?;
    if collective {
        hdf5::h5check(unsafe { H5Pset_dxpl_mpio(dxpl.0, H5FD_MPIO_COLLECTIVE) })?;
    }
    Ok((file, mem, dxpl))
}

fn actual_mode(dxpl: &Id) -> hdf5::Result<IoMode> {
    let mut mode = H5D_mpio_actual_io_mode_t::H5D_MPIO_NO_COLLECTIVE;
    hdf5::h5check(unsafe { H5Pget_mpio_actual_io_mode(dxpl.0, &mut mode) })?;
    Ok(IoMode(mode))
}

/// Collective. Write `block` into `ds` at `start` (in the dataset's index space).
pub(crate) fn write<T: hdf5::H5Type + Copy + Default>(ds: &Dataset, start: &[usize], block: &ArrayViewD<T>) -> hdf5::Result<IoMode> {
    let copy;
    let block = if block.is_empty() || enclosing_dims(block.shape(), block.strides()).is_some() {
        block.view()
    } else {
        copy = block.as_standard_layout();
        copy.view()
    };
    let dummy = T::default();
    let buf = if block.is_empty() { &dummy as *const T } else { block.as_ptr() };
    hdf5::sync::sync(|| {
        let (file, mem, dxpl) = prepare(ds, start, block.shape(), block.strides(), true)?;
        let ty = hdf5::Datatype::from_type::<T>()?;
        hdf5::h5check(unsafe { H5Dwrite(ds.id(), ty.id(), mem.0, file.0, dxpl.0, buf.cast()) })?;
        actual_mode(&dxpl)
    })
}

/// Read the block at `start` of `ds` into `out`, in place when its layout allows (see
/// [`enclosing_dims`]): a collective transfer when `collective` (then every rank must call it),
/// else one by this process alone.
pub(crate) fn read_into<T: hdf5::H5Type + Copy + Default>(ds: &Dataset, start: &[usize], mut out: ArrayViewMutD<T>, collective: bool) -> hdf5::Result<Option<IoMode>> {
    if !out.is_empty() && enclosing_dims(out.shape(), out.strides()).is_none() {
        let mut tmp = ArrayD::<T>::default(out.raw_dim());
        let mode = read_into(ds, start, tmp.view_mut(), collective)?;
        out.assign(&tmp);
        return Ok(mode);
    }
    let mut dummy = T::default();
    let buf = if out.is_empty() { &mut dummy as *mut T } else { out.as_mut_ptr() };
    hdf5::sync::sync(|| {
        let (file, mem, dxpl) = prepare(ds, start, out.shape(), out.strides(), collective)?;
        let ty = hdf5::Datatype::from_type::<T>()?;
        hdf5::h5check(unsafe { H5Dread(ds.id(), ty.id(), mem.0, file.0, dxpl.0, buf.cast()) })?;
        collective.then(|| actual_mode(&dxpl)).transpose()
    })
}
