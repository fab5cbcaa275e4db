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
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, Dimension};

use crate::checksum::{self, Element};
use crate::direct::DirectWriter;


extern "C" {
    // Not bound by hdf5-metno-sys; in HDF5 since 1.8.10.
    fn H5Pget_mpio_actual_io_mode(plist: hid_t, mode: *mut H5D_mpio_actual_io_mode_t) -> herr_t;
}

/// How a transfer was carried out: by HDF5 (`H5Pget_mpio_actual_io_mode`), or by each rank
/// straight into the file ([`write_direct`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoMode(Option<H5D_mpio_actual_io_mode_t>);

impl IoMode {
    pub(crate) const DIRECT: IoMode = IoMode(None);

    /// Whether MPI-IO did it as one collective operation (contiguous or chunked).
    pub fn is_collective(self) -> bool {
        use H5D_mpio_actual_io_mode_t::*;
        matches!(self.0, Some(H5D_MPIO_CONTIGUOUS_COLLECTIVE | H5D_MPIO_CHUNK_COLLECTIVE))
    }

    /// Whether each rank wrote its runs straight into the file (past the page cache on a disk).
    pub fn is_direct(self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Display for IoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use H5D_mpio_actual_io_mode_t::*;
        f.write_str(match self.0 {
            None => "direct",
            Some(H5D_MPIO_NO_COLLECTIVE) => "independent",
            Some(H5D_MPIO_CHUNK_INDEPENDENT) => "chunk-independent",
            Some(H5D_MPIO_CHUNK_COLLECTIVE) => "chunk-collective",
            Some(H5D_MPIO_CHUNK_MIXED) => "chunk-mixed",
            Some(H5D_MPIO_CONTIGUOUS_COLLECTIVE) => "contiguous-collective",
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
    Ok(IoMode(Some(mode)))
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

/// The shortest run, in bytes, that a block of `shape` at `start` of an array of `global` shape
/// makes in the file (a row-major contiguous dataset): the product of its trailing axes that
/// are whole in the array, times its first axis that is not. `usize::MAX` for an empty block.
pub(crate) fn file_run<T>(global: &[usize], shape: &[usize]) -> usize {
    if shape.iter().any(|&n| n == 0) {
        return usize::MAX;
    }
    shape[run_axis(global, shape)..].iter().product::<usize>() * std::mem::size_of::<T>()
}

/// The first axis of a block's runs in the file: every later one is whole in the array.
fn run_axis(global: &[usize], shape: &[usize]) -> usize {
    (1..shape.len()).rev().find(|&j| shape[j] != global[j]).unwrap_or(0)
}

/// Write `block` at `start` of `ds` (global shape `global`) straight into the file at `path`
/// ([`DirectWriter`]: past the page cache where the filesystem has one), one file-contiguous run
/// after another: HDF5 and MPI-IO would go through a copy of their own. With `sum`, the block's
/// checksum is added to it on the way, each piece summed just before it is written, so the data
/// are read from memory once. Only for a dataset whose space is allocated as one contiguous run
/// of `T` in this machine's byte order, unfiltered, in a file with no user block (`None`
/// otherwise, the same answer on every rank). The caller decides, alike on every rank, that the
/// runs are long enough to be worth it ([`file_run`]).
pub(crate) fn write_direct<T: Element>(file: &hdf5::File, ds: &Dataset, path: &std::path::Path, global: &[usize], start: &[usize], block: &ArrayViewD<T>, mut sum: Option<&mut u64>) -> Option<hdf5::Result<()>> {
    // Pieces small enough to be in the cache still when copied after being summed.
    const PIECE: usize = 256 << 10;
    let base = contiguous_offset::<T>(file, ds, global)?;
    let written = (|| -> std::io::Result<()> {
        let mut w = DirectWriter::open(path)?;
        if block.is_empty() {
            return Ok(());
        }
        let (n, k) = (global.len(), run_axis(global, block.shape()));
        let size = std::mem::size_of::<T>();
        let gstride: Vec<usize> = (0..n).map(|j| global[j + 1..].iter().product()).collect();
        // One run per index of the axes before `k`; inside a run, the rows in order (or all of
        // it at once where it is contiguous in memory too, as a snapshot's block is).
        for idx in ndarray::indices(&block.shape()[..k]) {
            let idx = idx.slice();
            let mut at: usize = (0..n).map(|j| (start[j] + idx.get(j).copied().unwrap_or(0)) * gstride[j]).sum();
            w.seek(base + (at * size) as u64)?;
            // At least one axis is left: `k` < n.
            let mut run = block.view();
            for &i in idx {
                run.index_axis_inplace(Axis(0), i);
            }
            let mut put = |row: &[T]| -> std::io::Result<()> {
                // Sent from where it is, the row is summed first and written in one go.
                let piece = if w.takes(bytes_of(row)) { row.len() } else { PIECE / size };
                for piece in row.chunks(piece) {
                    if let Some(s) = sum.as_deref_mut() {
                        *s = s.wrapping_add(checksum::run_sum(at as u64, piece));
                    }
                    w.push(bytes_of(piece))?;
                    at += piece.len();
                }
                Ok(())
            };
            match run.as_slice() {
                Some(all) => put(all)?,
                None => {
                    for row in run.lanes(Axis(run.ndim() - 1)) {
                        match row.as_slice() {
                            Some(r) => put(r)?,
                            None => put(&row.to_vec())?,
                        }
                    }
                }
            }
        }
        w.finish()
    })();
    Some(written.map_err(|e| hdf5::Error::from(format!("writing {}: {e}", path.display()))))
}

/// The bytes of plain numbers.
fn bytes_of<T: Copy>(s: &[T]) -> &[u8] {
    // SAFETY: `T` is a plain number type (an HDF5 element), with no padding.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), std::mem::size_of_val(s)) }
}

/// Where `ds` starts in the file, if it is stored as one contiguous, allocated run of `T` in this
/// machine's byte order, of shape `global`, unfiltered, in a file with no user block.
fn contiguous_offset<T: hdf5::H5Type>(file: &hdf5::File, ds: &Dataset, global: &[usize]) -> Option<u64> {
    let native = ds.dtype().is_ok_and(|t| t.is::<T>());
    ds.offset().filter(|_| !global.is_empty() && native && ds.shape() == global && !ds.is_chunked() && ds.filters().is_empty() && file.userblock() == 0)
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

/// Read the block at `start` of `ds` (global shape `global`) into `out` straight from the file at
/// `path` with `pread`, as a hand-written restart reads: HDF5 and MPI-IO would copy it through
/// their own buffers first. Only for a dataset stored as one contiguous run of `T` in this
/// machine's byte order, unfiltered, in a file with no user block (`None` otherwise: the same
/// answer on every rank, so the caller's collective fallback is taken by all or none). A rank
/// whose block falls into pieces under 64 KiB in the file reads it through HDF5, alone.
pub(crate) fn read_direct<T: hdf5::H5Type + Copy + Default>(
    file: &hdf5::File,
    ds: &Dataset,
    path: &std::path::Path,
    global: &[usize],
    start: &[usize],
    out: ArrayViewMutD<T>,
) -> Option<hdf5::Result<()>> {
    read_direct_in(file, ds, path, global, start, out, 64 << 10)
}

/// [`read_direct`] with HDF5 taking over below pieces of `piece` bytes.
fn read_direct_in<T: hdf5::H5Type + Copy + Default>(
    file: &hdf5::File,
    ds: &Dataset,
    path: &std::path::Path,
    global: &[usize],
    start: &[usize],
    mut out: ArrayViewMutD<T>,
    piece: usize,
) -> Option<hdf5::Result<()>> {
    use std::os::unix::fs::FileExt;
    let n = global.len();
    let base = contiguous_offset::<T>(file, ds, global)?;
    if out.is_empty() {
        return Some(Ok(()));
    }
    let (shape, strides) = (out.shape().to_vec(), out.strides().to_vec());
    if strides[n - 1] != 1 {
        return Some(read_into(ds, start, out, false).map(drop));
    }
    // The run: from axis k on, the block is contiguous both in the file (every later axis
    // whole) and in `out`.
    let mut k = n - 1;
    while k > 0 && shape[k] == global[k] && strides[k - 1] == strides[k] * shape[k] as isize {
        k -= 1;
    }
    let run: usize = shape[k..].iter().product();
    let runs: usize = shape[..k].iter().product();
    let size = std::mem::size_of::<T>();
    if runs > 1 && run * size < piece {
        return Some(read_into(ds, start, out, false).map(drop));
    }
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(Err(hdf5::Error::from(e.to_string()))),
    };
    let gstride: Vec<usize> = (0..n).map(|j| global[j + 1..].iter().product()).collect();
    let ptr = out.as_mut_ptr();
    let mut idx = vec![0usize; k];
    for _ in 0..runs {
        let at: usize = (0..n).map(|j| (start[j] + if j < k { idx[j] } else { 0 }) * gstride[j]).sum();
        let mem: isize = (0..k).map(|j| idx[j] as isize * strides[j]).sum();
        // SAFETY: `mem` is the offset in `out` of a run of `run` elements that `out` holds
        // contiguously (checked above), and `T` is a plain number, for which any bytes are a value.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr.offset(mem).cast::<u8>(), run * size) };
        if let Err(e) = f.read_exact_at(bytes, base + (at * size) as u64) {
            return Some(Err(hdf5::Error::from(format!("reading {} bytes at {}: {e}", run * size, base as usize + at * size))));
        }
        for j in (0..k).rev() {
            idx[j] += 1;
            if idx[j] < shape[j] {
                break;
            }
            idx[j] = 0;
        }
    }
    Some(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array3, ArrayD, IxDyn, SliceInfoElem};

    /// Every block shape a decomposition makes, from plain arrays, from views with ghosts and from
    /// transposed views, written straight into the file: HDF5 reads back exactly the block there
    /// and the rest as it was.
    #[test]
    fn direct_writes_land_where_hdf5_reads_them() {
        let dir = std::env::temp_dir().join(format!("rankwise-direct-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.h5");
        let global = [5usize, 6, 7000];
        let data = Array3::from_shape_fn(global, |(i, j, k)| (i * 10_000_000 + j * 10_000 + k) as f64 + 0.5);
        let blocks: [([usize; 3], [usize; 3]); 6] =
            [([0, 0, 0], [5, 6, 7000]), ([2, 0, 0], [2, 6, 7000]), ([1, 3, 0], [3, 3, 7000]), ([0, 0, 400], [5, 6, 6600]), ([4, 5, 6], [1, 1, 1]), ([1, 2, 3], [0, 2, 2])];
        for (start, shape) in blocks {
            let region = s![start[0]..start[0] + shape[0], start[1]..start[1] + shape[1], start[2]..start[2] + shape[2]];
            let want = data.slice(region).into_dyn();
            let mut ghosted = ArrayD::<f64>::from_elem(IxDyn(&shape.map(|n| n + 2)), -1.0);
            let inner: Vec<SliceInfoElem> = shape.iter().map(|&n| SliceInfoElem::from(1..n as isize + 1)).collect();
            ghosted.slice_mut(inner.as_slice()).assign(&want);
            let transposed = want.t().to_owned();
            for block in [want.view(), ghosted.slice(inner.as_slice()), transposed.t()] {
                let fresh = ArrayD::<f64>::from_elem(IxDyn(&global), -2.0);
                {
                    let f = hdf5::File::create(&path).unwrap();
                    f.new_dataset::<f64>().shape(global).alloc_time(Some(hdf5::dataset::AllocTime::Early)).create("u").unwrap().write(&fresh).unwrap();
                }
                let f = hdf5::File::open_rw(&path).unwrap();
                let ds = f.dataset("u").unwrap();
                let mut sum = 0;
                write_direct(&f, &ds, &path, &global, &start, &block, Some(&mut sum)).unwrap().unwrap();
                assert_eq!(sum, checksum::block_sum(&global, &start, &block), "{start:?} {shape:?}");
                drop((ds, f));
                let got: ArrayD<f64> = hdf5::File::open(&path).unwrap().dataset("u").unwrap().read_dyn().unwrap();
                let mut expected = fresh.clone();
                expected.slice_mut(region).assign(&want);
                assert!(got == expected, "{start:?} {shape:?}");
            }
        }
        // Not for a chunked dataset, another element type or another shape.
        let f = hdf5::File::create(&path).unwrap();
        let c = f.new_dataset::<f64>().shape(global).chunk([2, 2, 2]).create("c").unwrap();
        let u = f.new_dataset::<f64>().shape(global).alloc_time(Some(hdf5::dataset::AllocTime::Early)).create("u").unwrap();
        let block = ArrayD::<f64>::zeros(IxDyn(&global));
        assert!(write_direct(&f, &c, &path, &global, &[0, 0, 0], &block.view(), None).is_none());
        assert!(write_direct(&f, &u, &path, &global, &[0, 0, 0], &block.mapv(|v| v as f32).view(), None).is_none());
        assert!(write_direct(&f, &u, &path, &[5, 6, 8], &[0, 0, 0], &block.view(), None).is_none());
        assert_eq!(file_run::<f64>(&global, &[2, 6, 7000]), 2 * 6 * 7000 * 8);
        assert_eq!(file_run::<f32>(&global, &[5, 3, 7000]), 3 * 7000 * 4);
        assert_eq!(file_run::<f64>(&global, &[5, 6, 300]), 300 * 8);
        assert_eq!(file_run::<f64>(&global, &[0, 6, 7000]), usize::MAX);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every block shape a decomposition makes (whole, rows, columns, corners, one cell), into
    /// plain arrays and into views with ghosts, read directly in pieces of every size and through
    /// HDF5: the same values.
    #[test]
    fn direct_reads_match_hdf5_for_any_block() {
        let dir = std::env::temp_dir().join(format!("rankwise-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.h5");
        let global = [5usize, 6, 7];
        let data = Array3::from_shape_fn(global, |(i, j, k)| (i * 100 + j * 10 + k) as f64 + 0.5);
        {
            let f = hdf5::File::create(&path).unwrap();
            f.new_dataset::<f64>().shape(global).create("u").unwrap().write(&data).unwrap();
            f.new_dataset::<f32>().shape(global).chunk([2, 2, 2]).create("c").unwrap().write(&data.mapv(|v| v as f32)).unwrap();
        }
        let f = hdf5::File::open(&path).unwrap();
        let ds = f.dataset("u").unwrap();
        let blocks: [([usize; 3], [usize; 3]); 6] =
            [([0, 0, 0], [5, 6, 7]), ([2, 0, 0], [2, 6, 7]), ([1, 3, 0], [3, 3, 7]), ([0, 0, 4], [5, 6, 3]), ([4, 5, 6], [1, 1, 1]), ([1, 2, 3], [0, 2, 2])];
        for (start, shape) in blocks {
            let want = data.slice(s![start[0]..start[0] + shape[0], start[1]..start[1] + shape[1], start[2]..start[2] + shape[2]]).into_dyn();
            for piece in [0, 8, 56, 1 << 20] {
                let mut plain = ArrayD::<f64>::zeros(IxDyn(&shape));
                read_direct_in(&f, &ds, &path, &global, &start, plain.view_mut(), piece).unwrap().unwrap();
                assert_eq!(plain.view(), want, "{start:?} {shape:?} piece {piece}");
                // Into the interior of a block with one ghost layer, as a field's.
                let mut ghosted = ArrayD::<f64>::from_elem(IxDyn(&shape.map(|n| n + 2)), -1.0);
                let inner: Vec<SliceInfoElem> = shape.iter().map(|&n| SliceInfoElem::from(1..n as isize + 1)).collect();
                read_direct_in(&f, &ds, &path, &global, &start, ghosted.slice_mut(inner.as_slice()), piece).unwrap().unwrap();
                assert_eq!(ghosted.slice(inner.as_slice()), want, "ghosted {start:?} {shape:?} piece {piece}");
                assert_eq!(ghosted.iter().filter(|&&v| v == -1.0).count(), ghosted.len() - want.len(), "only the interior is written");
            }
        }
        // Chunked, another element type, a wrong global shape: not for the direct path.
        let c = f.dataset("c").unwrap();
        assert!(read_direct(&f, &c, &path, &global, &[0, 0, 0], ArrayD::<f32>::zeros(IxDyn(&global)).view_mut()).is_none());
        assert!(read_direct(&f, &ds, &path, &global, &[0, 0, 0], ArrayD::<f32>::zeros(IxDyn(&global)).view_mut()).is_none());
        assert!(read_direct(&f, &ds, &path, &[5, 6, 8], &[0, 0, 0], ArrayD::<f64>::zeros(IxDyn(&global)).view_mut()).is_none());
        // A file cut short: an error, not garbage.
        drop((ds, c, f));
        let len = std::fs::metadata(&path).unwrap().len();
        let f = hdf5::File::open(&path).unwrap();
        let ds = f.dataset("u").unwrap();
        let end = ds.offset().unwrap() + 8 * 5 * 6 * 7;
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(end.min(len) - 8).unwrap();
        assert!(read_direct(&f, &ds, &path, &global, &[0, 0, 0], ArrayD::<f64>::zeros(IxDyn(&global)).view_mut()).unwrap().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
