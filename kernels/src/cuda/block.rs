//! A block of a distributed field that lives in device memory, with its ghost layers, and the
//! packing of its faces for a halo exchange. The runtime wraps it: it owns the neighbours and
//! MPI; this only moves faces between the block and contiguous buffers (device or pinned host).
use cudarc::driver::{CudaSlice, PinnedHostSlice, PushKernelArg};
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

    /// Where face (`axis`, `side`) lies: the owned layers next to it (sent), or its ghost
    /// layers (received into).
    fn slab(&self, axis: usize, side: Side, ghost_layers: bool, buf_len: usize) -> Result<Slab> {
        let shape = self.array.shape();
        if axis >= shape.len() {
            return Err(Error::Shape(format!("axis {axis} of a {}-D block", shape.len())));
        }
        let len = self.face_len(axis);
        if buf_len < len {
            return Err(Error::Shape(format!("a face across axis {axis} has {len} values; the buffer holds {buf_len}")));
        }
        let pad = 3 - shape.len();
        let mut n = [1; 3];
        n[pad..].copy_from_slice(shape);
        let (a, g) = (axis + pad, self.ghosts);
        let mut s = n;
        s[a] = g;
        let mut o = [0; 3];
        o[a] = match (side, ghost_layers) {
            (Side::Low, true) => 0,
            (Side::Low, false) => g,
            (Side::High, false) => n[a] - 2 * g,
            (Side::High, true) => n[a] - g,
        };
        Ok(Slab { len, n, s, o })
    }

    /// Copies the owned layers next to face (`axis`, `side`) into `buf`, contiguous, on
    /// `gpu`'s stream (give it a forked stream to overlap an interior kernel).
    pub fn pack(&self, gpu: &CudaBackend, axis: usize, side: Side, buf: &mut CudaSlice<f64>) -> Result<()> {
        let slab = self.slab(axis, side, false, buf.len())?;
        slab.launch(gpu, "pack_slab", Slot::Read(&self.array.data), Slot::Write(buf))
    }

    /// Writes `buf` (as [`pack`](Self::pack) lays it out) into the ghost layers of face
    /// (`axis`, `side`).
    pub fn unpack(&mut self, gpu: &CudaBackend, axis: usize, side: Side, buf: &CudaSlice<f64>) -> Result<()> {
        let slab = self.slab(axis, side, true, buf.len())?;
        slab.launch(gpu, "unpack_slab", Slot::Write(&mut self.array.data), Slot::Read(buf))
    }
}

/// A face as halo.cu sees it: the block padded to 3-D (`n`), the slab's shape `s` and offset `o`.
struct Slab {
    len: usize,
    n: [usize; 3],
    s: [usize; 3],
    o: [usize; 3],
}

impl Slab {
    fn launch(&self, gpu: &CudaBackend, kernel: &str, block: Slot<'_>, buf: Slot<'_>) -> Result<()> {
        let [n1, n2, s1, s2, o0, o1, o2] = [self.n[1], self.n[2], self.s[1], self.s[2], self.o[0], self.o[1], self.o[2]];
        let (n1, n2, s1, s2, o0, o1, o2) = (int(n1)?, int(n2)?, int(s1)?, int(s2)?, int(o0)?, int(o1)?, int(o2)?);
        let len = self.len as u64;
        let mut l = gpu.stream().launch_builder(gpu.function(kernel));
        for slot in [block, buf] {
            match slot {
                Slot::Read(b) => l.arg(b),
                Slot::Write(b) => l.arg(b),
            };
        }
        l.arg(&len).arg(&n1).arg(&n2).arg(&s1).arg(&s2).arg(&o0).arg(&o1).arg(&o2);
        // Safety: matches halo.cu; the slab lies inside the block and the buffer holds `len`.
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
    Read(&'a CudaSlice<f64>),
    Write(&'a mut CudaSlice<f64>),
}

impl CudaBackend {
    /// A device buffer for one face of a halo exchange.
    pub fn face_buffer(&self, len: usize) -> Result<CudaSlice<f64>> {
        Ok(self.stream().alloc_zeros(len)?)
    }

    /// Page-locked host memory, so that face copies run asynchronously and MPI reads them
    /// without another copy.
    pub fn pinned(&self, len: usize) -> Result<PinnedHostSlice<f64>> {
        // Safety: cudarc leaves the memory uninitialised; f64 has no invalid bit patterns and
        // the caller overwrites it with a face before reading it.
        Ok(unsafe { self.stream().context().alloc_pinned(len) }?)
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
