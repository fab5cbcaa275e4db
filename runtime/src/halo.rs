//! Halo exchange: which ghost cells come from which rank, and the nonblocking messages that fill
//! them.
//!
//! The plan is built from box intersections, as AMReX's `FillBoundary` does: every ghost cell is
//! copied straight from the rank that owns it (or from the periodic image of that cell). So a
//! ghost width wider than a neighbour's block, ranks that own no cells, and edges and corners of
//! box stencils need no special cases and no second round of messages. All boxes a pair of ranks
//! exchange (for all fields of one round) travel in one message.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::ops::Range;
use std::sync::Arc;

use mpi::datatype::Equivalence;
use mpi::ffi;
use mpi::raw::AsRaw;
use ndarray::{ArrayD, ArrayView, ArrayViewMut, Dimension, Ix2, Ix3, RemoveAxis, Slice};

use crate::decomposition::{block, Decomposition};
use crate::Field;

/// Which ghost cells an exchange fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stencil {
    /// Faces only: ghost cells beyond the owned block along exactly one dimension (5-point and
    /// 7-point stencils).
    Star,
    /// Faces, edges and corners: every ghost cell (9-point and 27-point stencils).
    Box,
}

/// A box of the local array (ghosts included), one index range per dimension.
pub(crate) type Region = Vec<Range<usize>>;

/// What one rank sends and receives in an exchange, in the order both sides agree on.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Per peer rank (this rank included, for periodic images of its own cells): the regions of
    /// its owned block it sends.
    pub(crate) sends: Vec<(usize, Vec<Region>)>,
    /// Per peer rank: the ghost regions it fills, in the order the peer packs them.
    pub(crate) recvs: Vec<(usize, Vec<Region>)>,
}

/// A piece of a receiver's ghost layer: which rank owns it and under which periodic shift
/// (in global-shape units per dimension), as a box of the receiver's global frame.
struct Piece {
    sender: usize,
    shift: Vec<isize>,
    cells: Vec<Range<isize>>,
}

impl Plan {
    pub(crate) fn new(d: &Decomposition, ghost: usize, stencil: Stencil) -> Plan {
        let me = d.coords().to_vec();
        let mut recvs: BTreeMap<usize, Vec<Region>> = BTreeMap::new();
        for p in pieces(d, &me, ghost, stencil) {
            recvs.entry(p.sender).or_default().push(to_local(d, &p.cells, ghost));
        }
        // Whoever's ghost layer reaches into this rank's block: per dimension, the blocks whose
        // grown range meets ours under some shift.
        let candidates: Vec<Vec<usize>> = (0..d.ndim())
            .map(|k| {
                let (n, p, mine) = (d.global_shape()[k] as isize, d.grid()[k], &d.owned()[k]);
                let (lo, hi) = (mine.start as isize, mine.end as isize);
                (0..p)
                    .filter(|&j| {
                        let b = block(n as usize, p, j);
                        let (glo, ghi) = (b.start as isize - ghost as isize, b.end as isize + ghost as isize);
                        shifts(d, k, ghost).any(|s| glo.max(lo + s * n) < ghi.min(hi + s * n))
                    })
                    .collect()
            })
            .collect();
        let mut sends = Vec::new();
        for coords in product(&candidates) {
            let mut regions = Vec::new();
            for p in pieces(d, &coords, ghost, stencil).into_iter().filter(|p| p.sender == d.rank()) {
                // The same cells in this rank's frame: undo the periodic shift.
                let cells: Vec<Range<isize>> = (0..d.ndim())
                    .map(|k| {
                        let off = p.shift[k] * d.global_shape()[k] as isize;
                        p.cells[k].start - off..p.cells[k].end - off
                    })
                    .collect();
                regions.push(to_local(d, &cells, ghost));
            }
            if !regions.is_empty() {
                sends.push((d.rank_at(&coords), regions));
            }
        }
        Plan { sends, recvs: recvs.into_iter().collect() }
    }
}

/// The ghost layer of the rank at `coords`, cut into pieces that each come from one block.
fn pieces(d: &Decomposition, coords: &[usize], ghost: usize, stencil: Stencil) -> Vec<Piece> {
    // Per dimension: (block, shift, overlap with the grown range, whether it is outside ours).
    let per_dim: Vec<Vec<(usize, isize, Range<isize>, bool)>> = (0..d.ndim())
        .map(|k| {
            let (n, p) = (d.global_shape()[k], d.grid()[k]);
            let own = block(n, p, coords[k]);
            let (glo, ghi) = (own.start as isize - ghost as isize, own.end as isize + ghost as isize);
            let mut v = Vec::new();
            for s in shifts(d, k, ghost) {
                for j in 0..p {
                    let b = block(n, p, j);
                    let off = s * n as isize;
                    let (lo, hi) = (glo.max(b.start as isize + off), ghi.min(b.end as isize + off));
                    if lo < hi {
                        v.push((j, s, lo..hi, j != coords[k] || s != 0));
                    }
                }
            }
            v
        })
        .collect();
    let index: Vec<Vec<usize>> = per_dim.iter().map(|v| (0..v.len()).collect()).collect();
    product(&index)
        .into_iter()
        .filter_map(|pick| {
            let parts: Vec<_> = pick.iter().enumerate().map(|(k, &i)| &per_dim[k][i]).collect();
            let outside = parts.iter().filter(|p| p.3).count();
            let wanted = match stencil {
                Stencil::Star => outside == 1,
                Stencil::Box => outside >= 1,
            };
            wanted.then(|| Piece {
                sender: d.rank_at(&parts.iter().map(|p| p.0).collect::<Vec<_>>()),
                shift: parts.iter().map(|p| p.1).collect(),
                cells: parts.iter().map(|p| p.2.clone()).collect(),
            })
        })
        .collect()
}

/// Periodic shifts that a ghost layer of width `ghost` can reach in dimension `k`.
fn shifts(d: &Decomposition, k: usize, ghost: usize) -> impl Iterator<Item = isize> {
    let reach = if d.periodic()[k] { ghost.div_ceil(d.global_shape()[k]) as isize } else { 0 };
    -reach..=reach
}

/// Every combination of one entry from each list, the last list varying fastest.
fn product(lists: &[Vec<usize>]) -> Vec<Vec<usize>> {
    lists.iter().fold(vec![vec![]], |acc, list| {
        acc.iter().flat_map(|pre| list.iter().map(move |&x| [pre.as_slice(), &[x]].concat())).collect()
    })
}

/// A box of this rank's global frame as indices of its local array (ghosts included).
fn to_local(d: &Decomposition, cells: &[Range<isize>], ghost: usize) -> Region {
    cells
        .iter()
        .zip(d.owned())
        .map(|(c, own)| {
            let base = own.start as isize - ghost as isize;
            (c.start - base) as usize..(c.end - base) as usize
        })
        .collect()
}

pub(crate) fn volume(r: &Region) -> usize {
    r.iter().map(|x| x.len()).product()
}

/// Where box `r` of a C-order array of `shape` is one contiguous run of cells: its first cell's
/// offset and its length. So it is when, past the first axis along which it is wider than one
/// cell, it spans every axis whole (a row, a run of whole rows, an outer plane with its ghosts).
fn contiguous_run(shape: &[usize], r: &Region) -> Option<(usize, usize)> {
    let wide = r.iter().position(|x| x.len() > 1).unwrap_or(r.len());
    if r.iter().zip(shape).skip(wide + 1).any(|(x, &n)| *x != (0..n)) {
        return None;
    }
    let start = r.iter().zip(shape).fold(0, |off, (x, &n)| off * n + x.start);
    Some((start, volume(r)))
}

/// Append the cells of box `r` of `a` to `buf`, in C order, a row (last axis) at a time: rows of
/// a field are contiguous, so most of the copy is memcpy.
fn pack<T: Copy>(a: &ArrayD<T>, r: &Region, buf: &mut Vec<T>) {
    let v = a.slice_each_axis(|ax| Slice::from(r[ax.axis.index()].clone()));
    // Fixed dimensions: ndarray walks them far faster than dynamic ones, and a face across rows
    // (one cell per row) is thousands of rows.
    match v.ndim() {
        2 => pack_rows(v.into_dimensionality::<Ix2>().expect("2-D"), buf),
        3 => pack_rows(v.into_dimensionality::<Ix3>().expect("3-D"), buf),
        _ => pack_rows(v, buf),
    }
}

fn pack_rows<T: Copy, D: Dimension + RemoveAxis>(v: ArrayView<T, D>, buf: &mut Vec<T>) {
    if v.shape().last() == Some(&1) {
        return buf.extend(v.iter().copied());
    }
    for row in v.rows() {
        match row.as_slice() {
            Some(cells) => buf.extend_from_slice(cells),
            None => buf.extend(row.iter().copied()),
        }
    }
}

/// Fill box `r` of `a` from the front of `src` (in C order) and advance `src` past it.
fn unpack<T: Copy>(a: &mut ArrayD<T>, r: &Region, src: &mut &[T]) {
    let v = a.slice_each_axis_mut(|ax| Slice::from(r[ax.axis.index()].clone()));
    match v.ndim() {
        2 => unpack_rows(v.into_dimensionality::<Ix2>().expect("2-D"), src),
        3 => unpack_rows(v.into_dimensionality::<Ix3>().expect("3-D"), src),
        _ => unpack_rows(v, src),
    }
}

fn unpack_rows<T: Copy, D: Dimension + RemoveAxis>(mut v: ArrayViewMut<T, D>, src: &mut &[T]) {
    let (head, rest) = src.split_at(v.len());
    *src = rest;
    if v.shape().last() == Some(&1) {
        return v.iter_mut().zip(head).for_each(|(d, s)| *d = *s);
    }
    let mut head = head;
    for mut row in v.rows_mut() {
        let (cells, more) = head.split_at(row.len());
        match row.as_slice_mut() {
            Some(dst) => dst.copy_from_slice(cells),
            None => row.iter_mut().zip(cells).for_each(|(d, s)| *d = *s),
        }
        head = more;
    }
}

/// The owned cells of a block of `shape` split for a split-phase update by a stencil that
/// reaches `reach` cells: first the inner box, whose updates need no ghost cell (computed while
/// the exchange runs), then disjoint boxes that cover the shell next to the ghosts (computed
/// after it). Indices count owned cells (no ghosts); empty boxes are left out.
pub fn overlap_boxes(shape: &[usize], reach: usize) -> (Region, Vec<Region>) {
    let inner: Region = shape.iter().map(|&n| reach.min(n)..n.saturating_sub(reach).max(reach.min(n))).collect();
    let mut shell = Vec::new();
    // A shell cell belongs to the box of the first axis along which it is outside `inner`.
    for a in 0..shape.len() {
        for part in [0..inner[a].start, inner[a].end..shape[a]] {
            let b: Region = (0..shape.len())
                .map(|k| match k.cmp(&a) {
                    std::cmp::Ordering::Less => inner[k].clone(),
                    std::cmp::Ordering::Equal => part.clone(),
                    std::cmp::Ordering::Greater => 0..shape[k],
                })
                .collect();
            if volume(&b) > 0 {
                shell.push(b);
            }
        }
    }
    (inner, shell)
}

/// Halo messages use tags `TAG_BASE..TAG_BASE + TAG_SPAN`, one per exchange in sequence: two
/// exchanges in flight at once (on fields of one decomposition) never take each other's
/// messages. The MPI standard guarantees tags up to 32767.
const TAG_BASE: u64 = 1024;
const TAG_SPAN: u64 = 30_000;

/// The tag of exchange number `seq` of a decomposition.
pub(crate) fn tag_of(seq: u64) -> c_int {
    (TAG_BASE + seq % TAG_SPAN) as c_int
}

/// A split-phase exchange finished on what it did not begin on, or a message of the wrong size.
#[derive(Debug, thiserror::Error)]
pub enum HaloError {
    #[error("halo exchange #{seq} began on {began} but finish was given {got}: finish needs the same fields in the same order")]
    OtherFields { seq: u64, began: String, got: String },
    #[error("halo exchange #{seq}: rank {peer} sent {got} values where {expected} were expected (ranks disagree on the decomposition or the exchange)")]
    MessageSize { seq: u64, peer: usize, expected: usize, got: i64 },
}

/// A field as error messages name it: its identity, decomposition and ghost width.
pub(crate) fn describe(ids: &[u64]) -> String {
    let ids: Vec<String> = ids.iter().map(|i| format!("#{i}")).collect();
    format!("field{} {}", if ids.len() == 1 { "" } else { "s" }, ids.join(", "))
}

/// An exchange in flight, from [`Field::begin_exchange`] (or [`Field::begin_exchange_many`]):
/// it owns the message buffers and knows its fields; [`HaloExchange::finish`] waits and fills
/// the ghost cells. Dropping it unfinished waits for the messages and leaves the ghosts as they
/// were.
#[must_use = "a halo exchange fills no ghost cell until it is finished"]
pub struct HaloExchange<T> {
    /// This rank.
    me: usize,
    /// Its sequence number on the decomposition (see [`Decomposition::next_exchange`]).
    seq: u64,
    /// Taken from the first field at begin and given back to it at finish. MPI reads and writes
    /// the message buffers until the requests complete: until then only this handle owns them
    /// (moving it moves no heap memory), and it neither grows nor frees them before it has
    /// waited (in finish or drop); dropped unfinished, it frees them after waiting.
    buffers: HaloBuffers<T>,
}

/// What a field's last exchange used, kept for its next one: the same plan has the same message
/// lengths and counts, so a time step's exchange allocates and fills nothing.
pub(crate) struct HaloBuffers<T> {
    /// One per entry of `plan.recvs`; the loopback one stays unused.
    recv: Vec<Vec<T>>,
    /// One per entry of `plan.sends`; the loopback one is unpacked straight into the ghosts.
    send: Vec<Vec<T>>,
    /// The plan of the exchange in flight, or of the last one, with its ghost width and stencil:
    /// found again without the decomposition's lock.
    plan: Option<(usize, Stencil, Arc<Plan>)>,
    /// The identities of the fields the exchange began on, in order.
    fields: Vec<u64>,
    requests: Vec<ffi::MPI_Request>,
    /// The receives among `requests` (the first ones): sender and length.
    expected: Vec<(usize, usize)>,
    /// Per entry of `plan.recvs`: whether its message went straight into the ghost cells.
    direct: Vec<bool>,
    statuses: Vec<ffi::MPI_Status>,
}

impl<T> Default for HaloBuffers<T> {
    fn default() -> Self {
        HaloBuffers {
            recv: Vec::new(),
            send: Vec::new(),
            plan: None,
            fields: Vec::new(),
            requests: Vec::new(),
            expected: Vec::new(),
            direct: Vec::new(),
            statuses: Vec::new(),
        }
    }
}

impl<T: Equivalence + Copy + Default> HaloExchange<T> {
    /// Collective. Post the receives, pack and post the sends.
    ///
    /// Split phase: every message goes through the handle's buffers. A send from the field
    /// itself would send whatever the caller writes there before finish (an in-place update of
    /// the interior would change what the neighbours get), and a receive into the ghost cells
    /// would let MPI write memory the caller can read through the field meanwhile. Packing at
    /// begin fixes what is sent and keeps MPI's memory the handle's own.
    ///
    /// # Panics
    /// When `fields` is empty or the fields differ in decomposition or ghost width.
    pub(crate) fn begin(fields: &[&Field<T>], stencil: Stencil) -> HaloExchange<T> {
        let first = fields.first().expect("a halo exchange needs at least one field");
        let mut buffers = std::mem::take(&mut *first.halo_buffers());
        let (me, seq) = buffers.post(fields, stencil, None);
        HaloExchange { me, seq, buffers }
    }

    /// Collective. The whole exchange: [`HaloExchange::begin`] and [`HaloExchange::finish_many`]
    /// in one call that borrows `fields` mutably throughout, so MPI may read and write them
    /// directly: a message that is one contiguous run of one field's array (a face across the
    /// rows of a row-major 2-D block: a row) is sent straight from its owned cells and received
    /// straight into its ghost cells, with no packing, no unpacking and no buffer. Other messages
    /// are packed as in [`HaloExchange::begin`]. The bytes on the wire are the same either way
    /// (the cells in C order), so each side chooses on its own.
    ///
    /// # Panics
    /// As [`HaloExchange::begin`].
    pub(crate) fn run(fields: &mut [&mut Field<T>], stencil: Stencil) -> Result<(), HaloError> {
        // The kept buffers without the lock: the borrow is exclusive.
        let mut b = std::mem::take(fields.first_mut().expect("a halo exchange needs at least one field").halo_buffers_mut());
        // Raw pointers to each array, taken while the fields are mutably borrowed: MPI writes
        // the ghost cells of direct receives through them. Until the wait in `complete` no
        // reference to those cells is made (packing reads owned cells only, which no receive
        // writes), and the caller cannot make one: `fields` stays borrowed until we return.
        let (me, seq) = match fields {
            // One field, the common case: no list to allocate.
            [f] => {
                let array = f.data.as_mut_ptr();
                b.post(&[&**f], stencil, Some(&[array]))
            }
            _ => {
                let arrays: Vec<*mut T> = fields.iter_mut().map(|f| f.data.as_mut_ptr()).collect();
                b.post(&fields.iter().map(|f| &**f).collect::<Vec<_>>(), stencil, Some(&arrays))
            }
        };
        let done = b.complete(me, seq, fields);
        *fields[0].halo_buffers_mut() = b;
        done
    }

    /// Collective. Wait for the messages and fill the ghost cells of `field`, the field the
    /// exchange began on.
    ///
    /// # Errors
    /// [`HaloError::OtherFields`] when `field` is not the one the exchange began on (its ghosts
    /// are left as they were), [`HaloError::MessageSize`] when a message had the wrong length.
    pub fn finish(self, field: &mut Field<T>) -> Result<(), HaloError> {
        self.finish_many(&mut [field])
    }

    /// Collective. Wait for the messages and fill the ghost cells of `fields`, the fields the
    /// exchange began on, in the same order.
    ///
    /// # Errors
    /// As [`HaloExchange::finish`]: other fields, or the same in another order, are refused.
    pub fn finish_many(mut self, fields: &mut [&mut Field<T>]) -> Result<(), HaloError> {
        self.buffers.complete(self.me, self.seq, fields)?;
        *fields[0].halo_buffers_mut() = std::mem::take(&mut self.buffers);
        Ok(())
    }
}

impl<T: Equivalence + Copy + Default> HaloBuffers<T> {
    /// Post the receives, pack and post the sends of `fields` (these buffers are the first
    /// one's); with `arrays` (the fields' data, writable: only from [`HaloExchange::run`]),
    /// one-run messages go straight from and to the fields. Gives this rank and the exchange's
    /// sequence number.
    fn post(&mut self, fields: &[&Field<T>], stencil: Stencil, arrays: Option<&[*mut T]>) -> (usize, u64) {
        let first = fields[0];
        let (decomposition, ghost) = (first.decomposition(), first.ghost());
        for f in fields {
            assert!(
                Arc::ptr_eq(f.decomposition(), decomposition) && f.ghost() == ghost,
                "fields exchanged together must share one decomposition and ghost width"
            );
        }
        let plan = match self.plan.take() {
            Some((g, s, plan)) if g == ghost && s == stencil => plan,
            _ => decomposition.plan(ghost, stencil),
        };
        let (seq, tag) = decomposition.next_exchange();
        let me = decomposition.rank();
        let comm = decomposition.comm().as_raw();
        let datatype = T::equivalent_datatype().as_raw();
        self.recv.resize_with(plan.recvs.len(), Vec::new);
        self.send.resize_with(plan.sends.len(), Vec::new);
        self.fields.clear();
        self.fields.extend(fields.iter().map(|f| f.id()));
        self.requests.clear();
        self.expected.clear();
        self.direct.clear();
        // The one run of each message in the field's array, where it is one: only in `run`.
        let shape = first.data.shape();
        let run_of = |regions: &[Region]| match (arrays, regions) {
            (Some(_), [r]) if fields.len() == 1 => contiguous_run(shape, r),
            _ => None,
        };
        for ((peer, regions), buf) in plan.recvs.iter().zip(&mut self.recv) {
            let run = run_of(regions).filter(|_| *peer != me);
            self.direct.push(run.is_some());
            if *peer == me {
                continue;
            }
            let (ptr, len) = match (run, arrays) {
                // SAFETY (of the pointer): the run lies within the array (`contiguous_run`).
                (Some((start, len)), Some(a)) => (unsafe { a[0].add(start) }, len),
                _ => {
                    // The message overwrites it all: a kept buffer of this length is used as it is.
                    buf.resize(fields.len() * regions.iter().map(volume).sum::<usize>(), T::default());
                    (buf.as_mut_ptr(), buf.len())
                }
            };
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            // SAFETY: see `HaloExchange::buffers`, and `HaloExchange::run` for the ghost cells.
            unsafe { ffi::MPI_Irecv(ptr as *mut c_void, count(len), datatype, *peer as c_int, tag, comm, &mut req) };
            self.requests.push(req);
            self.expected.push((*peer, len));
        }
        // In `run`, the last message goes out with a blocking send (Open MPI's is cheaper than
        // an Isend and a wait: some 20 ns a message): every rank posted its receives before
        // sending, so it cannot deadlock, and the other sends are in flight meanwhile.
        let last = arrays.and(plan.sends.iter().rposition(|(p, _)| *p != me));
        for (i, ((peer, regions), buf)) in plan.sends.iter().zip(&mut self.send).enumerate() {
            let (ptr, len) = match run_of(regions).filter(|_| *peer != me) {
                // SAFETY (of the pointer): owned cells of a field borrowed until the wait, which
                // MPI only reads; the run lies within the array.
                Some((start, len)) => (unsafe { first.data.as_ptr().add(start) }, len),
                None => {
                    buf.clear();
                    buf.reserve(fields.len() * regions.iter().map(volume).sum::<usize>());
                    for f in fields {
                        for r in regions {
                            pack(&f.data, r, buf);
                        }
                    }
                    if *peer == me {
                        continue; // periodic images of this rank's own cells: no message
                    }
                    (buf.as_ptr(), buf.len())
                }
            };
            // SAFETY: see `HaloExchange::buffers`; a send buffer is only read.
            unsafe {
                if Some(i) == last {
                    ffi::MPI_Send(ptr as *const c_void, count(len), datatype, *peer as c_int, tag, comm);
                } else {
                    let mut req = ffi::RSMPI_REQUEST_NULL;
                    ffi::MPI_Isend(ptr as *const c_void, count(len), datatype, *peer as c_int, tag, comm, &mut req);
                    self.requests.push(req);
                }
            }
        }
        self.plan = Some((ghost, stencil, plan));
        (me, seq)
    }

    /// Wait for the messages posted by `post` (exchange `seq` on rank `me`), check their
    /// lengths, and fill the ghost cells of `fields`, those given to `post`.
    fn complete(&mut self, me: usize, seq: u64, fields: &mut [&mut Field<T>]) -> Result<(), HaloError> {
        let datatype = T::equivalent_datatype().as_raw();
        // SAFETY: every request was posted by `post` on buffers (and fields) still alive.
        unsafe { wait_checked_with(&mut self.requests, &self.expected, datatype, seq, &mut self.statuses)? };
        if !fields.iter().map(|f| f.id()).eq(self.fields.iter().copied()) {
            let given: Vec<u64> = fields.iter().map(|f| f.id()).collect();
            return Err(HaloError::OtherFields { seq, began: describe(&self.fields), got: describe(&given) });
        }
        let plan = &self.plan.as_ref().expect("a plan while in flight").2;
        for (((peer, regions), buf), _) in plan.recvs.iter().zip(&self.recv).zip(&self.direct).filter(|(_, d)| !**d) {
            let buf = if *peer == me {
                &self.send[plan.sends.iter().position(|(p, _)| p == peer).expect("loopback plan is symmetric")]
            } else {
                buf
            };
            let mut src = &buf[..];
            for f in fields.iter_mut() {
                for r in regions {
                    unpack(&mut f.data, r, &mut src);
                }
            }
        }
        Ok(())
    }
}

/// Wait for `requests`, whose first `expected.len()` are receives of `expected[i].1` elements
/// of `datatype` from rank `expected[i].0`, and check that each brought exactly that many.
///
/// # Safety
/// Each request must have been posted on buffers that are still alive.
pub(crate) unsafe fn wait_checked(
    requests: &mut Vec<ffi::MPI_Request>,
    expected: &[(usize, usize)],
    datatype: ffi::MPI_Datatype,
    seq: u64,
) -> Result<(), HaloError> {
    wait_checked_with(requests, expected, datatype, seq, &mut Vec::new())
}

/// [`wait_checked`] with the statuses in `statuses`, kept by the caller for the next wait.
///
/// # Safety
/// As [`wait_checked`].
unsafe fn wait_checked_with(
    requests: &mut Vec<ffi::MPI_Request>,
    expected: &[(usize, usize)],
    datatype: ffi::MPI_Datatype,
    seq: u64,
    statuses: &mut Vec<ffi::MPI_Status>,
) -> Result<(), HaloError> {
    if requests.is_empty() {
        return Ok(());
    }
    statuses.clear();
    statuses.resize(requests.len(), std::mem::zeroed());
    ffi::MPI_Waitall(count(requests.len()), requests.as_mut_ptr(), statuses.as_mut_ptr());
    requests.clear();
    for (status, &(peer, len)) in statuses.iter().zip(expected) {
        let mut got: c_int = 0;
        ffi::MPI_Get_count(status, datatype, &mut got);
        if got < 0 || got as usize != len {
            return Err(HaloError::MessageSize { seq, peer, expected: len, got: got.into() });
        }
    }
    Ok(())
}

/// Wait for `requests` and forget them.
///
/// # Safety
/// Each request must have been posted on buffers that are still alive.
pub(crate) unsafe fn wait_all(requests: &mut Vec<ffi::MPI_Request>) {
    if !requests.is_empty() {
        ffi::MPI_Waitall(count(requests.len()), requests.as_mut_ptr(), ffi::RSMPI_STATUSES_IGNORE);
        requests.clear();
    }
}

impl<T> Drop for HaloExchange<T> {
    fn drop(&mut self) {
        // SAFETY: every request was posted by `begin` on buffers this handle still owns.
        unsafe { wait_all(&mut self.buffers.requests) }
    }
}

/// A message length as MPI's `int` count.
///
/// # Panics
/// Past 2^31 - 1 elements: one face message of that size (16 GiB of f64) is beyond any block
/// a rank holds; the message names it.
pub(crate) fn count(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or_else(|_| panic!("a halo message of {n} elements: MPI counts stop at 2^31 - 1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Dimension;

    #[test]
    fn overlap_boxes_cover_every_cell_once() {
        for shape in [vec![7], vec![1, 5], vec![2, 2], vec![6, 5], vec![3, 1, 4], vec![5, 6, 7], vec![0, 3]] {
            for reach in 1..=3 {
                let (inner, shell) = overlap_boxes(&shape, reach);
                let mut seen = ndarray::ArrayD::<u8>::zeros(shape.clone());
                for b in std::iter::once(&inner).chain(&shell) {
                    seen.slice_each_axis_mut(|ax| Slice::from(b[ax.axis.index()].clone())).mapv_inplace(|c| c + 1);
                }
                assert!(seen.iter().all(|&c| c == 1), "{shape:?} reach {reach}: {seen:?}");
                // The inner box is exactly the cells at least `reach` from every face.
                for (idx, _) in seen.indexed_iter() {
                    let far = idx.slice().iter().zip(&shape).all(|(&i, &n)| i >= reach && i + reach < n);
                    let inside = idx.slice().iter().zip(&inner).all(|(i, r)| r.contains(i));
                    assert_eq!(far, inside, "{shape:?} reach {reach} at {idx:?}");
                }
            }
        }
    }

    #[test]
    fn contiguous_runs_are_rows_whole_rows_and_whole_planes() {
        // A 6 x 8 block with its ghosts: a face across the rows is one row (a run); a face across
        // the columns is a cell per row (not one); a run of whole rows is one.
        assert_eq!(contiguous_run(&[6, 8], &vec![4..5, 1..7]), Some((33, 6)));
        assert_eq!(contiguous_run(&[6, 8], &vec![1..5, 6..7]), None);
        assert_eq!(contiguous_run(&[6, 8], &vec![1..3, 0..8]), Some((8, 16)));
        assert_eq!(contiguous_run(&[6, 8], &vec![2..3, 3..4]), Some((19, 1)));
        // 3-D: an outer plane without its ghost columns is rows with gaps; with them, one run.
        assert_eq!(contiguous_run(&[4, 5, 6], &vec![1..2, 1..4, 1..5]), None);
        assert_eq!(contiguous_run(&[4, 5, 6], &vec![1..2, 1..4, 0..6]), Some((36, 18)));
        assert_eq!(contiguous_run(&[4, 5, 6], &vec![3..4, 2..3, 1..5]), Some((103, 4)));
        // Every run found is exactly the cells of its box, in C order.
        let a = ndarray::ArrayD::from_shape_fn(vec![4, 5, 6], |i| i[0] * 100 + i[1] * 10 + i[2]);
        let flat = a.as_slice().unwrap();
        for r in [vec![1..2, 1..4, 0..6], vec![3..4, 2..3, 1..5], vec![0..4, 0..5, 0..6], vec![2..3, 4..5, 0..6]] {
            let (start, len) = contiguous_run(&[4, 5, 6], &r).unwrap();
            let mut packed = Vec::new();
            pack(&a, &r, &mut packed);
            assert_eq!(&flat[start..start + len], &packed[..], "{r:?}");
        }
    }

    #[test]
    fn exchange_tags_follow_the_sequence_and_stay_valid() {
        assert_eq!(tag_of(0), 1024);
        assert_eq!(tag_of(1), 1025);
        assert_ne!(tag_of(7), tag_of(8));
        // Wrapped after TAG_SPAN exchanges, always within the tags MPI guarantees (32767).
        assert_eq!(tag_of(TAG_SPAN), tag_of(0));
        assert!((0..3 * TAG_SPAN).step_by(997).chain([u64::MAX]).all(|s| (0..=32767).contains(&tag_of(s))));
    }

    #[test]
    fn a_rank_exchanges_with_its_neighbours_only_at_10000_ranks() {
        // The plans of a rank inside a 3-D grid of 8, 1,000 and 10,000 ranks (no MPI: the plan is
        // arithmetic): at most 26 peers for a box stencil, 6 for a star, whatever P.
        for p in [8, 1000, 10_000] {
            let (global, periodic) = ([2000, 2000, 2000], [true, true, true]);
            let grid = crate::auto_grid(&global, &periodic, p).unwrap();
            let d = Decomposition::for_rank(&global, &grid, &periodic, p / 2 + 1).unwrap();
            for (stencil, most) in [(Stencil::Box, 26), (Stencil::Star, 6)] {
                let plan = Plan::new(&d, 2, stencil);
                let peers = |l: &[(usize, Vec<Region>)]| l.iter().filter(|(r, _)| *r != d.rank()).count();
                assert!(peers(&plan.sends) <= most && peers(&plan.recvs) <= most, "P={p} {grid:?} {stencil:?}: {plan:?}");
                assert_eq!(peers(&plan.sends), peers(&plan.recvs));
                if p >= 1000 {
                    assert_eq!(peers(&plan.recvs), most, "P={p} grid {grid:?}");
                }
            }
        }
    }
}
