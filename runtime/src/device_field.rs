//! A distributed field whose block lives in GPU memory.
//!
//! It shares [`Field`]'s decomposition and halo plan: the same boxes travel between the same
//! ranks in the same messages. Only the way there differs: the boxes are packed on the GPU into
//! one contiguous send buffer, staged through pinned host buffers for MPI (or handed to a
//! CUDA-aware MPI as device pointers), and unpacked on the GPU. [`DeviceField::begin_exchange`]
//! only queues the packing and staging on the field's own halo stream and returns at once, so
//! the interior kernel issued next on the compute stream runs while
//! [`DeviceHaloExchange::finish`] waits for the staged faces, exchanges the messages and
//! unpacks the ghost slabs, which no kernel of the compute stream waits for until then.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::traits::*;
use ndarray::IxDyn;
use rankwise_kernels::cudarc::driver::{DevicePtr, DevicePtrMut, PinnedHostSlice};
use rankwise_kernels::{CudaBackend, DeviceBlock, ExchangeBuffer};

use crate::halo::{count, describe, volume, wait_checked, HaloError, Plan, Region};
use crate::{BadInput, Decomposition, Field, Result, Stencil};

/// The variable that lets MPI take device pointers: `1` (the MPI is CUDA-aware), `auto` (when
/// the MPI library says it is) or `0` (stage through host memory: the default).
pub const CUDA_AWARE_ENV: &str = "RANKWISE_CUDA_AWARE_MPI";

/// Whether the MPI library says it takes device pointers (`MPIX_Query_cuda_support` of Open MPI
/// and MPICH, looked up at run time so that any MPI links); `None` when it has no such query or
/// MPI is not running (the query needs it: MPICH aborts the process otherwise).
pub fn cuda_aware_mpi() -> Option<bool> {
    if !mpi::environment::is_initialized() || mpi::environment::is_finalized() {
        return None;
    }
    // SAFETY: dlsym with RTLD_DEFAULT only searches the loaded objects.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"MPIX_Query_cuda_support".as_ptr()) };
    if sym.is_null() {
        return None;
    }
    // SAFETY: both declare it `int MPIX_Query_cuda_support(void)`; MPI is initialized.
    let query: extern "C" fn() -> c_int = unsafe { std::mem::transmute(sym) };
    Some(query() != 0)
}

/// Whether exchanges should hand device pointers to MPI, from [`CUDA_AWARE_ENV`]: asking for
/// them from an MPI that says it is not CUDA-aware is an error.
pub fn device_pointers_to_mpi() -> Result<bool, BadInput> {
    let var = std::env::var(CUDA_AWARE_ENV).unwrap_or_default();
    let aware = cuda_aware_mpi();
    match var.as_str() {
        "" | "0" => Ok(false),
        "auto" => Ok(aware == Some(true)),
        "1" if aware == Some(false) => Err(BadInput(format!(
            "{CUDA_AWARE_ENV}=1, but this MPI library is not CUDA-aware (MPIX_Query_cuda_support() = 0)"
        ))),
        "1" => Ok(true),
        other => Err(BadInput(format!("{CUDA_AWARE_ENV}={other:?}: expected 0, 1 or auto"))),
    }
}

/// One rank's block of a distributed `f64` array in GPU memory, with `ghost` layers on every
/// side, over the same [`Decomposition`] as a host [`Field`]. Kernels run on it in place
/// ([`DeviceField::block`], on the stream of [`DeviceField::gpu`]); host copies are for output
/// and checkpoints ([`DeviceField::to_host`], [`DeviceField::from_host`]).
pub struct DeviceField {
    /// What a split-phase exchange checks it finishes on (see [`Field::id`]).
    id: u64,
    decomposition: Arc<Decomposition>,
    ghost: usize,
    /// The compute stream, shared with the caller's kernels.
    gpu: CudaBackend,
    /// This field's own stream for packing, staging and unpacking halos.
    halo: CudaBackend,
    block: DeviceBlock<IxDyn>,
    device_pointers: bool,
    /// Kept between exchanges (allocating pinned memory is slow); out while one is in flight.
    buffers: Option<Buffers>,
}

impl DeviceField {
    /// A field of zeros over `d` with `ghost` layers on `gpu`'s device. Exchanges stage through
    /// host memory unless [`CUDA_AWARE_ENV`] says otherwise.
    pub fn new(gpu: &CudaBackend, d: &Arc<Decomposition>, ghost: usize) -> Result<DeviceField> {
        let block = DeviceBlock::zeros(gpu, IxDyn(&d.local_shape()), ghost)?;
        Ok(DeviceField {
            id: crate::field::next_id(),
            decomposition: d.clone(),
            ghost,
            gpu: gpu.clone(),
            halo: gpu.fork()?,
            block,
            device_pointers: device_pointers_to_mpi()?,
            buffers: None,
        })
    }

    /// A copy of `field` (ghosts included) on `gpu`'s device.
    pub fn upload(gpu: &CudaBackend, field: &Field<f64>) -> Result<DeviceField> {
        let mut f = DeviceField::new(gpu, field.decomposition(), field.ghost())?;
        f.from_host(field)?;
        Ok(f)
    }

    /// Hand device pointers to MPI (`true`, for a CUDA-aware MPI) or stage through pinned host
    /// buffers (`false`). Asking for device pointers from an MPI that says it is not
    /// CUDA-aware is an error.
    pub fn set_device_pointers_to_mpi(&mut self, on: bool) -> Result<()> {
        if on && cuda_aware_mpi() == Some(false) {
            return Err(BadInput("this MPI library is not CUDA-aware (MPIX_Query_cuda_support() = 0)".into()).into());
        }
        if on != self.device_pointers {
            self.buffers = None;
        }
        self.device_pointers = on;
        Ok(())
    }

    pub fn device_pointers_to_mpi(&self) -> bool {
        self.device_pointers
    }

    pub fn decomposition(&self) -> &Arc<Decomposition> {
        &self.decomposition
    }
    /// Ghost layers on each side.
    pub fn ghost(&self) -> usize {
        self.ghost
    }
    /// The back end on the compute stream: issue kernels on this field's block here.
    pub fn gpu(&self) -> &CudaBackend {
        &self.gpu
    }
    /// The local block, ghosts included (shape: the local shape plus `2 ghost` per axis).
    pub fn block(&self) -> &DeviceBlock<IxDyn> {
        &self.block
    }
    pub fn block_mut(&mut self) -> &mut DeviceBlock<IxDyn> {
        &mut self.block
    }

    /// Copies the whole block, ghosts included, into `field` (same decomposition and ghost
    /// width): for output and checkpoints. Waits for the kernels issued on it.
    pub fn to_host(&self, field: &mut Field<f64>) -> Result<()> {
        self.check_same(field.decomposition(), field.ghost());
        let a = self.block.download(&self.gpu)?;
        field.data.assign(&a);
        Ok(())
    }

    /// Overwrites the whole block, ghosts included, with `field`'s (same decomposition and
    /// ghost width): to start from initial values or a checkpoint.
    pub fn from_host(&mut self, field: &Field<f64>) -> Result<()> {
        self.check_same(field.decomposition(), field.ghost());
        let host = field.data.as_slice().expect("a field's block is contiguous");
        // From pageable memory the copy has read `host` when it returns.
        self.gpu.stream().memcpy_htod(host, self.block.array_mut().data_mut()).map_err(kernels_error)?;
        Ok(())
    }

    fn check_same(&self, d: &Arc<Decomposition>, ghost: usize) {
        assert!(
            Arc::ptr_eq(d, &self.decomposition) && ghost == self.ghost,
            "a device field and a host field copied between must share one decomposition and ghost width"
        );
    }

    /// Collective. Fill the ghost cells from their owners, as [`Field::exchange`] does.
    pub fn exchange(&mut self, stencil: Stencil) -> Result<()> {
        self.begin_exchange(stencil)?.finish(self)
    }

    /// Collective. Split phase: queue the packing of the faces (and their copy to the host) on
    /// the field's halo stream and return without waiting for the GPU; issue the interior
    /// kernel on [`DeviceField::gpu`] meanwhile, then call [`DeviceHaloExchange::finish`], which
    /// exchanges the messages and unpacks the ghost cells. In between, kernels on the compute
    /// stream may read the owned cells but not the ghost cells: the halo stream writes them,
    /// unordered with the compute stream until `finish` returns.
    pub fn begin_exchange(&mut self, stencil: Stencil) -> Result<DeviceHaloExchange> {
        let d = self.decomposition.clone();
        let me = d.rank();
        let mut b = match self.buffers.take() {
            Some(b) if b.stencil == stencil => b,
            _ => Buffers::new(&self.halo, Staging::new(&d.plan(self.ghost, stencil), me), stencil, self.device_pointers)?,
        };
        // The halo stream packs what the compute stream has written so far.
        self.halo.join(&self.gpu)?;
        for m in &b.staging.sends {
            let mut at = m.offset;
            for cells in &m.boxes {
                let len = volume(cells);
                self.block.pack_box(&self.halo, cells, &mut b.send.slice_mut(at..at + len))?;
                at += len;
            }
        }
        if let (Some((host_send, _)), true) = (&mut b.host, b.staging.messages() > 0) {
            self.halo.face_to_host(&b.send, host_send)?;
        }
        // Its tag now, in the order every rank begins exchanges; the messages go in `finish`.
        let (seq, tag) = d.next_exchange();
        Ok(DeviceHaloExchange { decomposition: d, field: self.id, seq, tag, halo: self.halo.clone(), buffers: Some(b), communicated: false })
    }
}

/// One message of a device exchange: its peer, where it lies in the exchange's buffer, and
/// the boxes of the block it carries, packed one after another.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub(crate) peer: usize,
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) boxes: Vec<Region>,
}

/// Where each box of a halo plan travels through the contiguous buffers of a device exchange:
/// the sends one after another in one buffer, the receives likewise in another. A rank's
/// periodic images of its own cells (peer = itself) are unpacked straight from the send
/// buffer: their receive message carries the offset of the matching send.
#[derive(Debug)]
pub(crate) struct Staging {
    pub(crate) me: usize,
    pub(crate) sends: Vec<Message>,
    pub(crate) recvs: Vec<Message>,
    pub(crate) send_len: usize,
    pub(crate) recv_len: usize,
}

impl Staging {
    pub(crate) fn new(plan: &Plan, me: usize) -> Staging {
        let layout = |list: &[(usize, Vec<Region>)], skip: Option<usize>| {
            let mut end = 0;
            let messages = list
                .iter()
                .map(|(peer, boxes)| {
                    let len = boxes.iter().map(volume).sum();
                    let offset = end;
                    if Some(*peer) != skip {
                        end += len;
                    }
                    Message { peer: *peer, offset, len, boxes: boxes.clone() }
                })
                .collect::<Vec<_>>();
            (messages, end)
        };
        let (sends, send_len) = layout(&plan.sends, None);
        let (mut recvs, recv_len) = layout(&plan.recvs, Some(me));
        for r in recvs.iter_mut().filter(|r| r.peer == me) {
            r.offset = sends.iter().find(|s| s.peer == me).expect("loopback plan is symmetric").offset;
        }
        Staging { me, sends, recvs, send_len, recv_len }
    }

    /// Messages that go through MPI (not this rank's own periodic images).
    pub(crate) fn messages(&self) -> usize {
        self.sends.iter().chain(&self.recvs).filter(|m| m.peer != self.me).count()
    }
}

/// The buffers of one stencil's exchanges on one field.
struct Buffers {
    stencil: Stencil,
    staging: Staging,
    send: ExchangeBuffer,
    recv: ExchangeBuffer,
    /// Pinned copies of `send` and `recv` for MPI, unless it takes device pointers.
    host: Option<(PinnedHostSlice<f64>, PinnedHostSlice<f64>)>,
}

impl Buffers {
    fn new(halo: &CudaBackend, staging: Staging, stencil: Stencil, device_pointers: bool) -> Result<Buffers> {
        // Never empty: CUDA allocations of zero bytes are not portable.
        let (ns, nr) = (staging.send_len.max(1), staging.recv_len.max(1));
        let host = if device_pointers || staging.messages() == 0 { None } else { Some((halo.pinned(ns)?, halo.pinned(nr)?)) };
        Ok(Buffers { stencil, send: halo.face_buffer(ns)?, recv: halo.face_buffer(nr)?, host, staging })
    }

    /// Where MPI reads the sends and writes the receives, once the packed sends are there
    /// (waits for them: `begin_exchange` queued their copy to the host).
    fn mpi_pointers(&mut self, halo: &CudaBackend) -> Result<(*const f64, *mut f64)> {
        match &mut self.host {
            Some((send, recv)) => {
                // as_ptr waits for the copy to it; as_mut_ptr for the last copy from it.
                Ok((send.as_ptr().map_err(kernels_error)?, recv.as_mut_ptr().map_err(kernels_error)?))
            }
            None => {
                // MPI knows no stream: the packing must be done before it reads.
                halo.synchronize()?;
                let stream = halo.stream();
                let (send, _) = self.send.device_ptr(stream);
                let (recv, _) = self.recv.device_ptr_mut(stream);
                Ok((send as usize as *const f64, recv as usize as *mut f64))
            }
        }
    }
}

fn kernels_error(e: rankwise_kernels::cudarc::driver::DriverError) -> crate::Error {
    rankwise_kernels::Error::from(e).into()
}

/// A device exchange in flight, from [`DeviceField::begin_exchange`]: it owns the message
/// buffers until [`DeviceHaloExchange::finish`] unpacks the ghost cells and gives them back to
/// the field. Dropping it unfinished still exchanges the messages (the other ranks wait for
/// them) and leaves the ghosts as they were.
#[must_use = "a halo exchange fills no ghost cell until it is finished"]
pub struct DeviceHaloExchange {
    decomposition: Arc<Decomposition>,
    /// The field it began on, its sequence number on the decomposition and the tag of that.
    field: u64,
    seq: u64,
    tag: c_int,
    halo: CudaBackend,
    buffers: Option<Buffers>,
    communicated: bool,
}

impl DeviceHaloExchange {
    /// Collective. Wait for the packed faces, exchange the messages and unpack the ghost cells
    /// of `field`, the field the exchange began on, on its halo stream. Kernels issued on its
    /// compute stream afterwards see the ghosts.
    ///
    /// # Errors
    /// [`HaloError`] as the host [`HaloExchange::finish`](crate::HaloExchange::finish): another
    /// field, or a message of the wrong size; a CUDA error.
    pub fn finish(mut self, field: &mut DeviceField) -> Result<()> {
        self.communicate()?;
        if field.id != self.field {
            return Err(HaloError::OtherFields { seq: self.seq, began: describe(&[self.field]), got: describe(&[field.id]) }.into());
        }
        let mut b = self.buffers.take().expect("buffers are taken only here");
        let me = b.staging.me;
        if let (Some((_, host_recv)), true) = (&b.host, b.staging.messages() > 0) {
            field.halo.face_from_host(host_recv, &mut b.recv)?;
        }
        for m in &b.staging.recvs {
            let from = if m.peer == me { &b.send } else { &b.recv };
            let mut at = m.offset;
            for cells in &m.boxes {
                let len = volume(cells);
                // SAFETY: ghost cells, which no kernel of the compute stream uses between
                // begin_exchange and the join below (its interior kernel reads owned cells).
                unsafe { field.block.unpack_box_beside(&field.halo, cells, &from.slice(at..at + len))? };
                at += len;
            }
        }
        // Kernels issued from now on wait for the ghosts.
        field.gpu.join(&field.halo)?;
        field.buffers = Some(b);
        Ok(())
    }

    /// Waits for the packed sends, then posts the messages and waits for them, checking what
    /// arrived; once.
    fn communicate(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.communicated, true) {
            return Ok(());
        }
        let b = self.buffers.as_mut().expect("buffers are there until finish");
        if b.staging.messages() == 0 {
            return Ok(());
        }
        let me = b.staging.me;
        let (send, recv) = b.mpi_pointers(&self.halo)?;
        let (comm, datatype) = (self.decomposition.comm().as_raw(), f64::equivalent_datatype().as_raw());
        let (mut requests, mut expected) = (Vec::new(), Vec::new());
        for m in b.staging.recvs.iter().filter(|m| m.peer != me) {
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            // SAFETY: the buffers live in `b`, which outlives the wait below; m lies inside.
            unsafe { ffi::MPI_Irecv(recv.add(m.offset) as *mut c_void, count(m.len), datatype, m.peer as c_int, self.tag, comm, &mut req) };
            requests.push(req);
            expected.push((m.peer, m.len));
        }
        for m in b.staging.sends.iter().filter(|m| m.peer != me) {
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            // SAFETY: as above; the send buffer is only read.
            unsafe { ffi::MPI_Isend(send.add(m.offset) as *const c_void, count(m.len), datatype, m.peer as c_int, self.tag, comm, &mut req) };
            requests.push(req);
        }
        // SAFETY: every request was posted just above on buffers that outlive this call.
        unsafe { wait_checked(&mut requests, &expected, datatype, self.seq)? };
        Ok(())
    }
}

impl Drop for DeviceHaloExchange {
    fn drop(&mut self) {
        if self.buffers.is_some() {
            if let Err(e) = self.communicate() {
                log::error!("an unfinished device halo exchange: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, Dimension, Slice};

    fn view<'a>(a: &'a ArrayD<f64>, cells: &Region) -> ndarray::ArrayViewD<'a, f64> {
        a.slice_each_axis(|ax| Slice::from(cells[ax.axis.index()].clone()))
    }

    /// Every rank of a grid in this one process: fill the blocks, pack the sends as the GPU
    /// does (each box in row-major order, one after another), deliver each message as MPI
    /// would (the peer's send to this rank, into this rank's receive buffer), unpack, and check
    /// every ghost cell against the value of the cell it mirrors.
    fn exchange_all(global: &[usize], grid: &[usize], periodic: &[bool], ghost: usize, stencil: Stencil) {
        let size: usize = grid.iter().product();
        let ds: Vec<Decomposition> = (0..size).map(|r| Decomposition::for_rank(global, grid, periodic, r).unwrap()).collect();
        let stagings: Vec<Staging> = ds.iter().map(|d| Staging::new(&d.plan(ghost, stencil), d.rank())).collect();
        let value = |g: &[usize]| g.iter().fold(0.0, |a, &i| a * 100.0 + i as f64) + 0.5;
        let mut blocks: Vec<ArrayD<f64>> = ds
            .iter()
            .map(|d| {
                let shape: Vec<usize> = d.local_shape().iter().map(|n| n + 2 * ghost).collect();
                let mut a = ArrayD::from_elem(shape, -1.0);
                let owned: Region = d.local_shape().iter().map(|&n| ghost..ghost + n).collect();
                let start: Vec<usize> = d.owned().iter().map(|r| r.start).collect();
                for (idx, v) in a.slice_each_axis_mut(|ax| Slice::from(owned[ax.axis.index()].clone())).indexed_iter_mut() {
                    *v = value(&idx.slice().iter().zip(&start).map(|(i, s)| i + s).collect::<Vec<_>>());
                }
                a
            })
            .collect();
        // The layout: messages one after another, periodic images read from the send buffer.
        for s in &stagings {
            let ends = |list: &[Message]| list.iter().filter(|m| m.peer != s.me).fold(0, |at, m| { assert_eq!(m.offset, at); at + m.len });
            let send_end = s.sends.iter().fold(0, |at, m| { assert_eq!(m.offset, at); at + m.len });
            assert_eq!((send_end, ends(&s.recvs)), (s.send_len, s.recv_len));
            for r in s.recvs.iter().filter(|r| r.peer == s.me) {
                let mine = s.sends.iter().find(|m| m.peer == s.me).unwrap();
                assert_eq!((r.offset, r.len), (mine.offset, mine.len));
            }
        }
        let sends: Vec<Vec<f64>> = stagings
            .iter()
            .zip(&blocks)
            .map(|(s, a)| {
                let mut buf = vec![f64::NAN; s.send_len];
                for m in &s.sends {
                    let packed: Vec<f64> = m.boxes.iter().flat_map(|c| view(a, c).iter().copied().collect::<Vec<_>>()).collect();
                    buf[m.offset..m.offset + m.len].copy_from_slice(&packed);
                }
                buf
            })
            .collect();
        for (r, s) in stagings.iter().enumerate() {
            let mut recv = vec![f64::NAN; s.recv_len];
            for m in s.recvs.iter().filter(|m| m.peer != r) {
                let theirs = stagings[m.peer].sends.iter().find(|x| x.peer == r).expect("a send for every receive");
                assert_eq!(theirs.len, m.len, "message {} -> {r}", m.peer);
                recv[m.offset..m.offset + m.len].copy_from_slice(&sends[m.peer][theirs.offset..theirs.offset + theirs.len]);
            }
            for m in &s.recvs {
                let from = if m.peer == r { &sends[r] } else { &recv };
                let mut at = m.offset;
                for cells in &m.boxes {
                    let len = volume(cells);
                    let shape: Vec<usize> = cells.iter().map(|c| c.len()).collect();
                    let src = ndarray::ArrayViewD::from_shape(shape, &from[at..at + len]).unwrap();
                    blocks[r].slice_each_axis_mut(|ax| Slice::from(cells[ax.axis.index()].clone())).assign(&src);
                    at += len;
                }
            }
        }
        // Every ghost cell: the value of the (periodic image of the) global cell it stands for,
        // or untouched past a non-periodic edge and, for a star stencil, off the faces.
        for (d, a) in ds.iter().zip(&blocks) {
            for (idx, &v) in a.indexed_iter() {
                let mut outside = 0;
                let mut g = Vec::new();
                let mut in_domain = true;
                for k in 0..global.len() {
                    let i = idx[k] as isize + d.owned()[k].start as isize - ghost as isize;
                    outside += (!(d.owned()[k].start as isize..d.owned()[k].end as isize).contains(&i)) as usize;
                    let n = global[k] as isize;
                    in_domain &= periodic[k] || (0..n).contains(&i);
                    g.push(i.rem_euclid(n) as usize);
                }
                let filled = in_domain && (outside == 0 || stencil == Stencil::Box || outside == 1);
                let want = if filled { value(&g) } else { -1.0 };
                assert_eq!(v, want, "rank {} cell {idx:?} ({global:?} grid {grid:?} periodic {periodic:?} g {ghost} {stencil:?})", d.rank());
            }
        }
    }

    #[test]
    fn staged_exchange_fills_every_ghost_cell_like_the_host_exchange() {
        for stencil in [Stencil::Star, Stencil::Box] {
            exchange_all(&[9, 7], &[1, 1], &[true, true], 1, stencil);
            exchange_all(&[9, 7], &[2, 1], &[true, false], 2, stencil);
            exchange_all(&[9, 7], &[2, 2], &[true, true], 1, stencil);
            exchange_all(&[9, 7], &[4, 1], &[true, true], 3, stencil); // ghosts wider than a block
            exchange_all(&[8, 6], &[3, 1], &[false, true], 2, stencil);
            exchange_all(&[5, 6, 7], &[1, 2, 2], &[true, true, true], 1, stencil);
            exchange_all(&[5, 4, 6], &[2, 1, 2], &[true, false, true], 2, stencil);
            exchange_all(&[11], &[3], &[true], 2, stencil);
        }
    }

    #[test]
    fn the_switch_for_device_pointers() {
        // Only this test sets the variable.
        let set = |v: &str| {
            std::env::set_var(CUDA_AWARE_ENV, v);
            device_pointers_to_mpi()
        };
        assert!(!set("0").unwrap());
        assert!(set("yes").unwrap_err().0.contains("expected 0, 1 or auto"));
        let aware = cuda_aware_mpi();
        assert_eq!(set("auto").unwrap(), aware == Some(true));
        match aware {
            Some(false) => assert!(set("1").unwrap_err().0.contains("not CUDA-aware")),
            _ => assert!(set("1").unwrap()),
        }
        std::env::remove_var(CUDA_AWARE_ENV);
        assert!(!device_pointers_to_mpi().unwrap());
    }
}
