//! A block of a distributed field that lives in device memory, with its ghost layers, and the
//! packing of its faces for a halo exchange. The runtime wraps it: it owns the neighbours and
//! MPI; this only moves faces between the block and contiguous buffers (device or pinned host).
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut, Range};

use cudarc::driver::{result, sys, CudaSlice, CudaView, CudaViewMut, DevicePtr, PinnedHostSlice, PushKernelArg};
use ndarray::{Array, ArrayView, Dimension};

use super::{elementwise, int, CudaBackend, DeviceArray};
use crate::{Error, Result};

/// Which end of an axis a face is at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Low,
    High,
}

/// A 1-, 2- or 3-D block with `ghosts` layers on every side, in device memory.
pub struct DeviceBlock<D: Dimension> {
    array: DeviceArray<D>,
    ghosts: usize,
}

impl<D: Dimension> DeviceBlock<D> {
    /// A zeroed block whose interior has shape `interior`.
    pub fn zeros(gpu: &CudaBackend, interior: D, ghosts: usize) -> Result<Self> {
        let mut dim = interior;
        dim.slice_mut().iter_mut().for_each(|n| *n += 2 * ghosts);
        check(dim.slice(), ghosts)?;
        Ok(DeviceBlock { array: gpu.zeros(dim)?, ghosts })
    }

    /// A block holding `a` (ghosts included).
    pub fn upload(gpu: &CudaBackend, a: ArrayView<f64, D>, ghosts: usize) -> Result<Self> {
        check(a.shape(), ghosts)?;
        Ok(DeviceBlock { array: gpu.upload(a)?, ghosts })
    }

    /// The whole block, ghosts included (for output and checkpoints).
    pub fn download(&self, gpu: &CudaBackend) -> Result<Array<f64, D>> {
        gpu.download(&self.array)
    }

    pub fn ghosts(&self) -> usize {
        self.ghosts
    }

    /// The block as an array that the stencil kernels take.
    pub fn array(&self) -> &DeviceArray<D> {
        &self.array
    }
    pub fn array_mut(&mut self) -> &mut DeviceArray<D> {
        &mut self.array
    }

    /// Values in one face (`ghosts` layers across `axis`, the full extent of the other axes).
    pub fn face_len(&self, axis: usize) -> usize {
        self.array.len() / self.array.shape()[axis] * self.ghosts
    }

    /// The box of face (`axis`, `side`): the owned layers next to it (sent), or its ghost
    /// layers (received into).
    pub fn face(&self, axis: usize, side: Side, ghost_layers: bool) -> Result<Vec<Range<usize>>> {
        let shape = self.array.shape();
        if axis >= shape.len() {
            return Err(Error::Shape(format!("axis {axis} of a {}-D block", shape.len())));
        }
        let (n, g) = (shape[axis], self.ghosts);
        let mut cells: Vec<Range<usize>> = shape.iter().map(|&n| 0..n).collect();
        cells[axis] = match (side, ghost_layers) {
            (Side::Low, true) => 0..g,
            (Side::Low, false) => g..2 * g,
            (Side::High, false) => n - 2 * g..n - g,
            (Side::High, true) => n - g..n,
        };
        Ok(cells)
    }

    /// Copies the owned layers next to face (`axis`, `side`) into `buf`, contiguous, on
    /// `gpu`'s stream (give it a forked stream to overlap an interior kernel).
    pub fn pack(&self, gpu: &CudaBackend, axis: usize, side: Side, buf: &mut CudaSlice<f64>) -> Result<()> {
        self.pack_box(gpu, &self.face(axis, side, false)?, &mut buf.as_view_mut())
    }

    /// Writes `buf` (as [`pack`](Self::pack) lays it out) into the ghost layers of face
    /// (`axis`, `side`).
    pub fn unpack(&mut self, gpu: &CudaBackend, axis: usize, side: Side, buf: &CudaSlice<f64>) -> Result<()> {
        let cells = self.face(axis, side, true)?;
        self.unpack_box(gpu, &cells, &buf.as_view())
    }

    /// Copies the box `cells` of the block (indices ghosts included) into the start of `buf`,
    /// in row-major order, on `gpu`'s stream: any piece of a halo, edges and corners too.
    pub fn pack_box(&self, gpu: &CudaBackend, cells: &[Range<usize>], buf: &mut CudaViewMut<'_, f64>) -> Result<()> {
        let slab = Slab::new(self.array.shape(), cells, buf.len())?;
        slab.launch(gpu, "pack_slab", Slot::Read(self.array.data.as_view()), Slot::Write(buf.slice_mut(..)))
    }

    /// Writes the start of `buf`, laid out as [`pack_box`](Self::pack_box) does, into the box
    /// `cells` of the block.
    pub fn unpack_box(&mut self, gpu: &CudaBackend, cells: &[Range<usize>], buf: &CudaView<'_, f64>) -> Result<()> {
        let slab = Slab::new(self.array.shape(), cells, buf.len())?;
        slab.launch(gpu, "unpack_slab", Slot::Write(self.array.data.as_view_mut()), Slot::Read(buf.slice(..)))
    }

    /// [`unpack_box`](Self::unpack_box) on `gpu`'s stream beside kernels on other streams that
    /// read the block: cudarc orders a write to any part of a buffer after every earlier use of
    /// it, so a halo stream's unpack would wait for the interior kernel that reads the owned
    /// cells. This one waits only for earlier writes to the block.
    ///
    /// # Safety
    /// No kernel issued before it on another stream may use `cells`, and none issued after it
    /// on another stream may, until that stream is ordered after `gpu`'s
    /// ([`CudaBackend::join`]).
    pub unsafe fn unpack_box_beside(&self, gpu: &CudaBackend, cells: &[Range<usize>], buf: &CudaView<'_, f64>) -> Result<()> {
        let slab = Slab::new(self.array.shape(), cells, buf.len())?;
        // Taken as a read: the stream waits for earlier writes; its use is recorded when
        // `_used` drops, after the launch.
        let (block, _used) = self.array.data.device_ptr(gpu.stream());
        slab.launch(gpu, "unpack_slab", Slot::Raw(block), Slot::Read(buf.slice(..)))
    }
}

/// A box as halo.cu sees it: the block padded to 3-D (`n`), the box's shape `s` and offset `o`.
#[derive(Debug, PartialEq)]
pub(crate) struct Slab {
    len: usize,
    n: [usize; 3],
    s: [usize; 3],
    o: [usize; 3],
}

impl Slab {
    /// The box `cells` of a block of shape `shape`, for a buffer of `buf_len` values.
    pub(crate) fn new(shape: &[usize], cells: &[Range<usize>], buf_len: usize) -> Result<Slab> {
        if shape.len() > 3 || cells.len() != shape.len() || cells.iter().zip(shape).any(|(c, &n)| c.start > c.end || c.end > n) {
            return Err(Error::Shape(format!("box {cells:?} of a block {shape:?}")));
        }
        let len = cells.iter().map(|c| c.len()).product();
        if buf_len < len {
            return Err(Error::Shape(format!("box {cells:?} has {len} values; the buffer holds {buf_len}")));
        }
        let pad = 3 - shape.len();
        let (mut n, mut s, mut o) = ([1; 3], [1; 3], [0; 3]);
        for (k, c) in cells.iter().enumerate() {
            (n[pad + k], s[pad + k], o[pad + k]) = (shape[k], c.len(), c.start);
        }
        Ok(Slab { len, n, s, o })
    }

    /// Where value `i` of the packed buffer sits in the block: `slab_index` of halo.cu.
    #[cfg(test)]
    fn index(&self, i: usize) -> usize {
        let [_, n1, n2] = self.n;
        let [_, s1, s2] = self.s;
        let (k, j, i) = (i % s2, (i / s2) % s1, i / (s1 * s2));
        ((i + self.o[0]) * n1 + (j + self.o[1])) * n2 + (k + self.o[2])
    }

    fn launch<'a>(&self, gpu: &CudaBackend, kernel: &str, mut block: Slot<'a>, mut buf: Slot<'a>) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let [n1, n2, s1, s2, o0, o1, o2] = [self.n[1], self.n[2], self.s[1], self.s[2], self.o[0], self.o[1], self.o[2]];
        let (n1, n2, s1, s2, o0, o1, o2) = (int(n1)?, int(n2)?, int(s1)?, int(s2)?, int(o0)?, int(o1)?, int(o2)?);
        let len = self.len as u64;
        let mut l = gpu.stream().launch_builder(gpu.function(kernel));
        for slot in [&mut block, &mut buf] {
            match slot {
                Slot::Read(b) => l.arg(&*b),
                Slot::Write(b) => l.arg(b),
                Slot::Raw(p) => l.arg(&*p),
            };
        }
        l.arg(&len).arg(&n1).arg(&n2).arg(&s1).arg(&s2).arg(&o0).arg(&o1).arg(&o2);
        // Safety: matches halo.cu; the box lies inside the block and the buffer holds `len`.
        unsafe { l.launch(elementwise(self.len)) }?;
        Ok(())
    }
}

/// At most 3 axes, at least one ghost layer, a non-empty interior.
fn check(shape: &[usize], ghosts: usize) -> Result<()> {
    if shape.len() > 3 || ghosts == 0 || shape.iter().any(|&n| n <= 2 * ghosts) {
        let what = format!("block {shape:?} with {ghosts} ghost layers");
        return Err(Error::Shape(format!("{what}: a device block needs 1 to 3 axes, g >= 1 and every side > 2g")));
    }
    Ok(())
}

/// A kernel argument read or written (cudarc records the two differently for stream ordering).
enum Slot<'a> {
    Read(CudaView<'a, f64>),
    Write(CudaViewMut<'a, f64>),
    /// A device address whose stream order the caller keeps.
    Raw(sys::CUdeviceptr),
}

/// Device memory for the messages of a halo exchange, from `cuMemAlloc`. cudarc allocates from
/// the stream-ordered pool (`cuMemAllocAsync`) where the device has one, and a CUDA-aware MPI
/// cannot share pool memory with another process on the node (`cuIpcGetMemHandle` fails on
/// it): same-node messages would fail or fall back to a slow path. Derefs to the slice.
pub struct ExchangeBuffer(ManuallyDrop<CudaSlice<f64>>);

impl Deref for ExchangeBuffer {
    type Target = CudaSlice<f64>;
    fn deref(&self) -> &CudaSlice<f64> {
        &self.0
    }
}

impl DerefMut for ExchangeBuffer {
    fn deref_mut(&mut self) -> &mut CudaSlice<f64> {
        &mut self.0
    }
}

impl Drop for ExchangeBuffer {
    fn drop(&mut self) {
        // Safety: taken once, here. cudarc would free it with cuMemFreeAsync (pool memory):
        // leak it from cudarc (which orders its stream after every use), wait, and free it
        // as it was allocated.
        let slice = unsafe { ManuallyDrop::take(&mut self.0) };
        let stream = slice.stream().clone();
        let ptr = slice.leak();
        let freed = stream.synchronize().and_then(|_| stream.context().bind_to_thread()).and_then(|_| unsafe { result::free_sync(ptr) });
        if let Err(e) = freed {
            log::error!("freeing a halo exchange buffer: {e:?}");
        }
    }
}

impl CudaBackend {
    /// A zeroed device buffer of `len` values for the messages of a halo exchange, which a
    /// CUDA-aware MPI can share with the other processes of the node (see [`ExchangeBuffer`]).
    pub fn face_buffer(&self, len: usize) -> Result<ExchangeBuffer> {
        let stream = self.stream();
        stream.context().bind_to_thread()?;
        // Never zero bytes: such CUDA allocations are not portable.
        // Safety: a plain allocation; from here on the slice owns it and ExchangeBuffer frees it.
        let mut buffer = unsafe {
            let ptr = result::malloc_sync(len.max(1) * std::mem::size_of::<f64>())?;
            ExchangeBuffer(ManuallyDrop::new(stream.upgrade_device_ptr::<f64>(ptr, len)))
        };
        stream.memset_zeros(&mut *buffer)?;
        Ok(buffer)
    }

    /// Page-locked host memory, so that face copies run asynchronously and MPI reads them
    /// without another copy.
    pub fn pinned(&self, len: usize) -> Result<PinnedHostSlice<f64>> {
        // Safety: cudarc leaves the memory uninitialised; f64 has no invalid bit patterns and
        // the caller overwrites it with a face before reading it. Not write-combined (cudarc's
        // default): the CPU reads these buffers too (MPI), and write-combined reads are uncached.
        Ok(unsafe { self.stream().context().alloc_pinned_with_flags(len, 0) }?)
    }

    /// Stages a packed face to the host (asynchronous with pinned memory; synchronise first).
    pub fn face_to_host(&self, face: &CudaSlice<f64>, host: &mut PinnedHostSlice<f64>) -> Result<()> {
        Ok(self.stream().memcpy_dtoh(face, host)?)
    }

    /// Sends a received face from the host back to the device.
    pub fn face_from_host(&self, host: &PinnedHostSlice<f64>, face: &mut CudaSlice<f64>) -> Result<()> {
        Ok(self.stream().memcpy_htod(host, face)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// halo.cu's indexing, run on the host, against ndarray's slicing: every box of a few
    /// blocks of 1 to 3 axes packs in row-major order.
    #[test]
    fn slab_index_is_the_row_major_order_of_the_box() {
        for shape in [vec![9], vec![7, 5], vec![6, 4, 5]] {
            let a = ndarray::ArrayD::from_shape_fn(shape.clone(), |i| i.slice().iter().fold(0, |a, &k| a * 10 + k) as f64);
            let flat = a.as_slice().unwrap();
            let ranges: Vec<Vec<Range<usize>>> =
                shape.iter().map(|&n| vec![0..n, 0..1, 1..3, n - 2..n, 2..2]).collect();
            let mut boxes: Vec<Vec<Range<usize>>> = vec![vec![]];
            for r in &ranges {
                boxes = boxes.iter().flat_map(|b| r.iter().map(move |x| [b.clone(), vec![x.clone()]].concat())).collect();
            }
            for cells in boxes {
                let slab = Slab::new(&shape, &cells, 1000).unwrap();
                let want: Vec<f64> = a.slice_each_axis(|ax| ndarray::Slice::from(cells[ax.axis.index()].clone())).iter().copied().collect();
                let got: Vec<f64> = (0..slab.len).map(|i| flat[slab.index(i)]).collect();
                assert_eq!(got, want, "{shape:?} {cells:?}");
            }
        }
        assert!(Slab::new(&[4, 4], &[0..2, 0..4], 7).is_err(), "buffer too small");
        assert!(Slab::new(&[4, 4], &[0..5, 0..4], 100).is_err(), "box outside the block");
        assert!(Slab::new(&[4, 4], std::slice::from_ref(&(0..2)), 100).is_err(), "axes differ");
    }
}
