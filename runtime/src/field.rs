//! A distributed field: one rank's block of a global array, with ghost layers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mpi::datatype::{Equivalence, Partition, PartitionMut};
use mpi::traits::*;
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, Slice};

use crate::halo::{HaloBuffers, HaloExchange, Stencil};
use crate::Decomposition;

/// One rank's block of a global array over a [`Decomposition`], stored as an ndarray of the
/// owned cells plus `ghost` layers on every side (row-major, the last dimension contiguous).
///
/// Ghost cells past a non-periodic edge of the domain belong to the program (boundary
/// conditions): exchanges never touch them. A field keeps the message buffers of its last
/// exchange (the first field's, for several at once), so repeating it allocates nothing.
pub struct Field<T> {
    /// Unique in the process (a clone gets its own): what a split-phase exchange checks that it
    /// finishes on.
    id: u64,
    decomposition: Arc<Decomposition>,
    ghost: usize,
    pub(crate) data: ArrayD<T>,
    /// The message buffers of this field's last halo exchange, for its next one.
    halo_buffers: Mutex<HaloBuffers<T>>,
}

impl<T: Equivalence + Copy + Default> Field<T> {
    /// A field of `T::default()` (zero) over `d` with `ghost` layers.
    pub fn new(d: &Arc<Decomposition>, ghost: usize) -> Field<T> {
        let shape: Vec<usize> = d.local_shape().iter().map(|n| n + 2 * ghost).collect();
        Field {
            id: next_id(),
            decomposition: d.clone(),
            ghost,
            data: crate::memory::zeroed(IxDyn(&shape)),
            halo_buffers: Mutex::default(),
        }
    }

    /// Set every owned cell to `f(global index)`.
    pub fn fill_with(&mut self, f: impl Fn(&[usize]) -> T) {
        let start: Vec<usize> = self.decomposition.owned().iter().map(|r| r.start).collect();
        let mut global = start.clone();
        for (idx, v) in self.interior_mut().indexed_iter_mut() {
            for (k, g) in global.iter_mut().enumerate() {
                *g = start[k] + idx[k];
            }
            *v = f(&global);
        }
    }

    /// Collective. Fill the ghost cells from their owners (faces only for [`Stencil::Star`],
    /// faces, edges and corners for [`Stencil::Box`]), periodic images included. A face that is
    /// one contiguous run of the block (a row of a 2-D block split across rows) travels straight
    /// from the owned cells into the neighbour's ghost cells, without packing.
    ///
    /// # Panics
    /// When a message arrives with the wrong length (ranks that disagree on the decomposition):
    /// the panic aborts the job with the message of [`HaloError::MessageSize`](crate::HaloError::MessageSize).
    pub fn exchange(&mut self, stencil: Stencil) {
        if let Err(e) = HaloExchange::run(&mut [self], stencil) {
            panic!("{e}");
        }
    }

    /// Collective. Split phase: pack and post the messages and return; compute on the interior
    /// meanwhile, then call [`HaloExchange::finish`], which writes the ghost cells.
    pub fn begin_exchange(&self, stencil: Stencil) -> HaloExchange<T> {
        HaloExchange::begin(&[self], stencil)
    }

    /// Collective. Exchange the halos of several fields (same decomposition and ghost width) in
    /// one round: one message per neighbour for all of them.
    ///
    /// # Panics
    /// As [`Field::exchange`].
    pub fn exchange_many(fields: &mut [&mut Field<T>], stencil: Stencil) {
        if let Err(e) = HaloExchange::run(fields, stencil) {
            panic!("{e}");
        }
    }

    /// Collective. Split-phase form of [`Field::exchange_many`]; finish with
    /// [`HaloExchange::finish_many`] on the same fields in the same order.
    pub fn begin_exchange_many(fields: &[&Field<T>], stencil: Stencil) -> HaloExchange<T> {
        HaloExchange::begin(fields, stencil)
    }

    /// Collective. The whole global array (owned cells only) on rank `root`, None elsewhere.
    ///
    /// A tool for small fields (tests, serial checks, a small picture): `root` holds the whole
    /// array, and for a moment twice, so its memory grows with the field and the job's size,
    /// and on a large field it runs out. For a checksum use `rankwise_io::checksum::field_checksum`
    /// (an all-reduce), for output a checkpoint writer (every rank writes its block), and for a
    /// picture gather only the plane it shows.
    ///
    /// # Panics
    /// On `root` when the field has more than 2^31 - 1 cells in all (MPI's `int` counts and
    /// offsets); the panic aborts the job with that message.
    pub fn gather(&self, root: usize) -> Option<ArrayD<T>> {
        let d = &self.decomposition;
        let mine: Vec<T> = self.interior().iter().copied().collect();
        let proc = d.comm().process_at_rank(root as i32);
        if d.rank() != root {
            proc.gather_varcount_into(&mine[..]);
            return None;
        }
        let (counts, displs) = self.partition();
        let mut all = vec![T::default(); d.global_shape().iter().product()];
        proc.gather_varcount_into_root(&mine[..], &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]));
        let mut global = ArrayD::from_elem(IxDyn(d.global_shape()), T::default());
        for r in 0..d.size() {
            let owned = d.owned_by(r);
            let shape: Vec<usize> = owned.iter().map(|x| x.len()).collect();
            let part = &all[displs[r] as usize..][..counts[r] as usize];
            let block = ArrayViewD::from_shape(IxDyn(&shape), part).expect("block matches its ranges");
            global.slice_each_axis_mut(|ax| Slice::from(owned[ax.axis.index()].clone())).assign(&block);
        }
        Some(global)
    }

    /// Collective. Set the owned cells from `global`, given on rank `root` (ignored elsewhere);
    /// the inverse of [`Field::gather`]. Ghost cells are left as they were.
    ///
    /// Like `gather`, a tool for small fields: `root` holds the whole array. Initial states are
    /// better computed on every rank ([`Field::fill_with`]) or read from a checkpoint, where each
    /// rank reads only its block.
    ///
    /// # Panics
    /// On `root` when `global` has the wrong shape or more than 2^31 - 1 cells.
    pub fn scatter(&mut self, root: usize, global: Option<&ArrayD<T>>) {
        let d = self.decomposition.clone();
        let mut mine = vec![T::default(); d.local_len()];
        let proc = d.comm().process_at_rank(root as i32);
        if d.rank() == root {
            let global = global.expect("scatter needs the global array on the root rank");
            assert_eq!(global.shape(), d.global_shape(), "scatter: the global array has the wrong shape");
            let (counts, displs) = self.partition();
            let mut all = Vec::with_capacity(global.len());
            for r in 0..d.size() {
                let owned = d.owned_by(r);
                all.extend(global.slice_each_axis(|ax| Slice::from(owned[ax.axis.index()].clone())).iter().copied());
            }
            proc.scatter_varcount_into_root(&Partition::new(&all[..], &counts[..], &displs[..]), &mut mine[..]);
        } else {
            proc.scatter_varcount_into(&mut mine[..]);
        }
        let shape = d.local_shape();
        self.interior_mut().assign(&ArrayViewD::from_shape(IxDyn(&shape), &mine[..]).expect("local shape"));
    }

    /// Cells per rank and their offsets in rank order, for gather and scatter.
    fn partition(&self) -> (Vec<i32>, Vec<i32>) {
        let d = &self.decomposition;
        let cells = (0..d.size()).map(|r| d.owned_by(r).iter().map(|x| x.len()).product::<usize>());
        counts_and_offsets(cells).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A gather or scatter too large for MPI's `int` counts and offsets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("gather/scatter of {cells} cells (rank {rank} ends at cell {end}): MPI's counts and offsets stop at 2^31 - 1; write large fields with the parallel HDF5 writers instead")]
pub struct CountError {
    pub rank: usize,
    pub cells: usize,
    pub end: usize,
}

/// MPI's counts and displacements for blocks of `cells[r]` cells laid out one after another,
/// checked: none of them, nor the total, may pass `i32::MAX`.
pub(crate) fn counts_and_offsets(cells: impl Iterator<Item = usize> + Clone) -> Result<(Vec<i32>, Vec<i32>), CountError> {
    let (mut counts, mut displs, mut end) = (Vec::new(), Vec::new(), 0usize);
    for (rank, c) in cells.clone().enumerate() {
        let start = end;
        end = start.saturating_add(c);
        match (i32::try_from(c), i32::try_from(start), i32::try_from(end)) {
            (Ok(c), Ok(s), Ok(_)) => {
                counts.push(c);
                displs.push(s);
            }
            _ => return Err(CountError { rank, cells: cells.fold(0usize, |a, c| a.saturating_add(c)), end }),
        }
    }
    Ok((counts, displs))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A new field identity (host and device fields draw from one sequence).
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl<T> Field<T> {
    /// This field's identity in error messages (`field #3`); unique in the process.
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn decomposition(&self) -> &Arc<Decomposition> {
        &self.decomposition
    }
    /// Ghost layers on each side.
    pub fn ghost(&self) -> usize {
        self.ghost
    }
    /// The local block, ghosts included.
    pub fn data(&self) -> ArrayViewD<'_, T> {
        self.data.view()
    }
    pub fn data_mut(&mut self) -> ArrayViewMutD<'_, T> {
        self.data.view_mut()
    }
    /// The global index of `data()[0, 0, ..]` (the first ghost cell; negative past the low edge).
    pub fn origin(&self) -> Vec<isize> {
        self.decomposition.owned().iter().map(|r| r.start as isize - self.ghost as isize).collect()
    }
    /// The owned cells, without ghosts.
    pub fn interior(&self) -> ArrayViewD<'_, T> {
        self.region(&vec![0; self.data.ndim()])
    }
    pub fn interior_mut(&mut self) -> ArrayViewMutD<'_, T> {
        self.region_mut(&vec![0; self.data.ndim()])
    }

    /// Make `block`, an array of this field's local shape with ghosts (that of [`Field::data`]),
    /// the field's storage, without copying it: its interior becomes the owned cells, while the
    /// ghost cells keep their values (copied across). A verified checkpoint read hands its buffer
    /// over this way. Returns the old storage.
    ///
    /// # Panics
    /// When `block` has another shape or is not in standard (C) order.
    pub fn replace_interior(&mut self, mut block: ArrayD<T>) -> ArrayD<T>
    where
        T: Clone,
    {
        assert!(block.shape() == self.data.shape() && block.is_standard_layout(), "replace_interior: a block of shape {:?} in C order is needed, got {:?}", self.data.shape(), block.shape());
        let g = self.ghost;
        for ax in 0..block.ndim() {
            let n = block.len_of(Axis(ax));
            for side in [Slice::from(0..g), Slice::from(n - g..n)] {
                block.slice_axis_mut(Axis(ax), side).assign(&self.data.slice_axis(Axis(ax), side));
            }
        }
        std::mem::replace(&mut self.data, block)
    }

    /// One part of the local block: per dimension, `-1` the low ghost layers, `0` the owned
    /// range, `1` the high ghost layers. All zeros is the interior; one non-zero entry a face,
    /// two an edge, three a corner.
    pub fn region(&self, side: &[isize]) -> ArrayViewD<'_, T> {
        let r = self.ranges(side);
        self.data.slice_each_axis(|ax| Slice::from(r[ax.axis.index()].clone()))
    }
    pub fn region_mut(&mut self, side: &[isize]) -> ArrayViewMutD<'_, T> {
        let r = self.ranges(side);
        self.data.slice_each_axis_mut(|ax| Slice::from(r[ax.axis.index()].clone()))
    }

    pub(crate) fn halo_buffers(&self) -> MutexGuard<'_, HaloBuffers<T>> {
        // Held only to swap the buffers, which cannot panic midway.
        self.halo_buffers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The same, through an exclusive borrow: no lock taken.
    pub(crate) fn halo_buffers_mut(&mut self) -> &mut HaloBuffers<T> {
        self.halo_buffers.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    fn ranges(&self, side: &[isize]) -> Vec<std::ops::Range<usize>> {
        assert_eq!(side.len(), self.data.ndim(), "a region names one side per dimension");
        let g = self.ghost;
        side.iter()
            .zip(self.decomposition.local_shape())
            .map(|(s, n)| match s {
                -1 => 0..g,
                0 => g..g + n,
                1 => g + n..2 * g + n,
                _ => panic!("region sides are -1, 0 or 1, not {s}"),
            })
            .collect()
    }
}

impl<T: Clone> Clone for Field<T> {
    fn clone(&self) -> Self {
        Field {
            id: next_id(),
            decomposition: self.decomposition.clone(),
            ghost: self.ghost,
            data: self.data.clone(),
            halo_buffers: Mutex::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_interior_takes_the_interior_and_keeps_the_ghosts() {
        let d = Arc::new(Decomposition::for_rank(&[5, 4, 3], &[2, 1, 1], &[false; 3], 1).unwrap());
        let mut f: Field<f64> = Field::new(&d, 1);
        f.data_mut().fill(-7.0); // ghosts: boundary values the program set
        f.fill_with(|g| (g[0] * 100 + g[1] * 10 + g[2]) as f64);
        let before = f.data().to_owned();
        let old = f.replace_interior(ArrayD::from_elem(f.data().raw_dim(), 0.5));
        assert_eq!(old, before);
        for (i, v) in f.data().indexed_iter() {
            let ghost = (0..3).any(|k| i[k] == 0 || i[k] + 1 == f.data().shape()[k]);
            assert_eq!(*v, if ghost { -7.0 } else { 0.5 }, "at {i:?}");
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.replace_interior(ArrayD::from_elem(IxDyn(&[2, 2, 2]), 0.0))));
        assert!(r.is_err(), "a block of another shape is refused");
    }

    #[test]
    fn views_origin_and_fill_follow_the_global_index() {
        // Rank 1 of a 2 x 1 grid over 5 x 4 cells owns rows 3..5: a 2 x 4 block, 2 ghost layers.
        let d = Arc::new(Decomposition::for_rank(&[5, 4], &[2, 1], &[false, false], 1).unwrap());
        let mut f: Field<f64> = Field::new(&d, 2);
        assert_eq!(f.data().shape(), [6, 8]);
        assert_eq!(f.origin(), [1, -2]);
        f.fill_with(|g| (g[0] * 10 + g[1]) as f64);
        assert_eq!(f.interior().shape(), [2, 4]);
        assert_eq!(f.interior()[[0, 0]], 30.0);
        assert_eq!(f.interior()[[1, 3]], 43.0);
        assert_eq!(f.data()[[2, 2]], 30.0);
        assert_eq!(f.region(&[-1, 0]).shape(), [2, 4]);
        assert_eq!(f.region(&[1, 1]).shape(), [2, 2]);
        assert_eq!(f.region(&[0, -1]).shape(), [2, 2]);
        // Only the owned cells were written.
        assert_eq!(f.data().sum(), f.interior().sum());
        f.region_mut(&[-1, -1]).fill(1.0);
        assert_eq!(f.data()[[1, 1]], 1.0);
        assert_eq!(f.data()[[1, 2]], 0.0);
    }

    #[test]
    fn gather_counts_are_checked_at_sizes_past_2_31() {
        // 4 ranks of 2^29 cells: the last ends exactly at 2^31, one past i32::MAX.
        let quarter = 1usize << 29;
        let (c, d) = counts_and_offsets([quarter - 1; 4].into_iter().chain([3])).unwrap();
        assert_eq!(c, [quarter as i32 - 1, quarter as i32 - 1, quarter as i32 - 1, quarter as i32 - 1, 3]);
        assert_eq!(d[4], 4 * (quarter as i32 - 1));
        let e = counts_and_offsets([quarter; 4].into_iter()).unwrap_err();
        assert_eq!(e, CountError { rank: 3, cells: 1 << 31, end: 1 << 31 });
        assert!(e.to_string().contains("2147483648 cells"), "{e}");
        // One rank alone past the limit, and totals that would wrap a u64 too.
        assert_eq!(counts_and_offsets([1usize << 31].into_iter()).unwrap_err().rank, 0);
        assert_eq!(counts_and_offsets([usize::MAX, usize::MAX].into_iter()).unwrap_err().cells, usize::MAX);
        // 10,000 ranks of 200,000 cells = 2e9 cells: still fits.
        let (_, d) = counts_and_offsets(std::iter::repeat_n(200_000usize, 10_000)).unwrap();
        assert_eq!(d[9_999], 9_999 * 200_000);
        assert!(counts_and_offsets(std::iter::repeat_n(220_000usize, 10_000)).is_err());
    }

    #[test]
    fn clones_are_other_fields() {
        let d = Arc::new(Decomposition::for_rank(&[4], &[1], &[false], 0).unwrap());
        let f: Field<f64> = Field::new(&d, 1);
        let g = f.clone();
        assert_ne!(f.id(), g.id());
        assert_ne!(f.id(), Field::<f64>::new(&d, 1).id());
    }
}
