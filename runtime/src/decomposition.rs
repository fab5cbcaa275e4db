//! A global index space (1-3 dims) split into blocks over a Cartesian grid of ranks.
//!
//! Ranks are numbered row-major over the grid (the last dimension varies fastest), like
//! `MPI_Cart_create` without reordering. In each dimension `n` cells are split into `p` contiguous
//! blocks whose sizes differ by at most one, the larger ones first.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mpi::topology::{Communicator, SimpleCommunicator};
use thiserror::Error;

use crate::halo::{Plan, Stencil};
use crate::Runtime;

/// An impossible decomposition request; the user's input to fix.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecompositionError {
    #[error("a decomposition has 1 to 3 dimensions, not {0}")]
    Dims(usize),
    #[error("global shape {global:?} has a zero-sized dimension")]
    Empty { global: Vec<usize> },
    #[error("{what} has {got} entries but the global shape {global:?} has {ndim}")]
    Length { what: &'static str, got: usize, global: Vec<usize>, ndim: usize },
    #[error("rank grid {grid:?} holds {product} ranks but the job has {size}")]
    GridSize { grid: Vec<usize>, product: usize, size: usize },
    #[error("rank grid {grid:?} puts more ranks ({ranks}) than cells ({cells}) along dimension {dim}")]
    TooManyRanks { grid: Vec<usize>, dim: usize, ranks: usize, cells: usize },
    #[error("rank {rank} is outside a job of {size} ranks")]
    Rank { rank: usize, size: usize },
}

/// Which ranks own which blocks of a global index space, as seen by one rank.
pub struct Decomposition {
    global: Vec<usize>,
    grid: Vec<usize>,
    periodic: Vec<bool>,
    rank: usize,
    coords: Vec<usize>,
    owned: Vec<Range<usize>>,
    comm: Option<SimpleCommunicator>,
    /// Halo exchange plans, built on first use, shared by every field on this decomposition.
    plans: Mutex<HashMap<(usize, Stencil), Arc<Plan>>>,
    /// Halo exchanges begun on this decomposition (host and device alike): every rank begins
    /// them in the same order, so the count names the same exchange on every rank.
    exchanges: AtomicU64,
}

impl Decomposition {
    /// Collective. Split `global` over all ranks with the rank grid chosen by [`auto_grid`]
    /// (balanced, least halo surface).
    pub fn new(rt: &Runtime, global: &[usize], periodic: &[bool]) -> Result<Decomposition, DecompositionError> {
        check_shape(global, periodic)?;
        let grid = auto_grid(global, periodic, rt.size())?;
        let mut d = Decomposition::build(global, &grid, periodic, rt.rank());
        d.comm = Some(rt.world().duplicate());
        Ok(d)
    }

    /// Collective. Split `global` over the user's rank grid, whose product must be the world size.
    pub fn with_grid(
        rt: &Runtime,
        global: &[usize],
        grid: &[usize],
        periodic: &[bool],
    ) -> Result<Decomposition, DecompositionError> {
        check_grid(global, grid, periodic, rt.size())?;
        let mut d = Decomposition::build(global, grid, periodic, rt.rank());
        d.comm = Some(rt.world().duplicate());
        Ok(d)
    }

    /// The decomposition as rank `rank` of a job of `grid`'s product ranks sees it, without MPI
    /// (for tests and tools). It has no communicator: fields on it cannot communicate.
    pub fn for_rank(
        global: &[usize],
        grid: &[usize],
        periodic: &[bool],
        rank: usize,
    ) -> Result<Decomposition, DecompositionError> {
        let size = grid.iter().product();
        check_grid(global, grid, periodic, size)?;
        if rank >= size {
            return Err(DecompositionError::Rank { rank, size });
        }
        Ok(Decomposition::build(global, grid, periodic, rank))
    }

    fn build(global: &[usize], grid: &[usize], periodic: &[bool], rank: usize) -> Decomposition {
        let coords = rank_coords(grid, rank);
        let owned = (0..global.len()).map(|d| block(global[d], grid[d], coords[d])).collect();
        Decomposition {
            global: global.to_vec(),
            grid: grid.to_vec(),
            periodic: periodic.to_vec(),
            rank,
            coords,
            owned,
            comm: None,
            plans: Mutex::default(),
            exchanges: AtomicU64::new(0),
        }
    }

    pub fn ndim(&self) -> usize {
        self.global.len()
    }
    pub fn global_shape(&self) -> &[usize] {
        &self.global
    }
    /// Ranks along each dimension.
    pub fn grid(&self) -> &[usize] {
        &self.grid
    }
    pub fn periodic(&self) -> &[bool] {
        &self.periodic
    }
    /// Number of ranks the decomposition spans.
    pub fn size(&self) -> usize {
        self.grid.iter().product()
    }
    pub fn rank(&self) -> usize {
        self.rank
    }
    /// This rank's position in the rank grid.
    pub fn coords(&self) -> &[usize] {
        &self.coords
    }
    /// This rank's global index ranges, one per dimension (empty where it owns no cells).
    pub fn owned(&self) -> &[Range<usize>] {
        &self.owned
    }
    /// The global index ranges that `rank` owns.
    pub fn owned_by(&self, rank: usize) -> Vec<Range<usize>> {
        let c = rank_coords(&self.grid, rank);
        (0..self.ndim()).map(|d| block(self.global[d], self.grid[d], c[d])).collect()
    }
    /// Owned cells per dimension, without ghosts.
    pub fn local_shape(&self) -> Vec<usize> {
        self.owned.iter().map(|r| r.len()).collect()
    }
    /// Number of cells this rank owns.
    pub fn local_len(&self) -> usize {
        self.owned.iter().map(|r| r.len()).product()
    }
    /// The rank at grid coordinates `coords`.
    pub fn rank_at(&self, coords: &[usize]) -> usize {
        coords.iter().zip(&self.grid).fold(0, |r, (&c, &g)| r * g + c)
    }
    /// The grid coordinates of `rank`.
    pub fn coords_of(&self, rank: usize) -> Vec<usize> {
        rank_coords(&self.grid, rank)
    }

    /// The rank at `offset` from this one in the rank grid (wrapping in periodic dimensions), or
    /// None past a non-periodic edge.
    pub fn neighbour(&self, offset: &[isize]) -> Option<usize> {
        assert_eq!(offset.len(), self.ndim(), "neighbour offset needs one entry per dimension");
        let mut c = Vec::with_capacity(self.ndim());
        for d in 0..self.ndim() {
            let (g, x) = (self.grid[d] as isize, self.coords[d] as isize + offset[d]);
            if self.periodic[d] {
                c.push(x.rem_euclid(g) as usize);
            } else if (0..g).contains(&x) {
                c.push(x as usize);
            } else {
                return None;
            }
        }
        Some(self.rank_at(&c))
    }

    /// The rank that owns global index `global`.
    pub fn owner(&self, global: &[usize]) -> usize {
        let c: Vec<usize> = (0..self.ndim()).map(|d| block_of(self.global[d], self.grid[d], global[d])).collect();
        self.rank_at(&c)
    }
    /// The index within this rank's owned block (no ghosts) of global index `global`, if owned here.
    pub fn to_local(&self, global: &[usize]) -> Option<Vec<usize>> {
        let inside = global.iter().zip(&self.owned).all(|(i, r)| r.contains(i));
        inside.then(|| global.iter().zip(&self.owned).map(|(i, r)| i - r.start).collect())
    }
    /// The global index of `local`, an index within this rank's owned block.
    pub fn to_global(&self, local: &[usize]) -> Vec<usize> {
        local.iter().zip(&self.owned).map(|(i, r)| i + r.start).collect()
    }

    /// What fields and I/O on this decomposition communicate on (a duplicate of the world, so
    /// their messages never meet the program's own).
    ///
    /// Panics for a decomposition made by [`Decomposition::for_rank`], which has none.
    pub fn comm(&self) -> &SimpleCommunicator {
        self.comm.as_ref().expect("a Decomposition made by for_rank has no communicator")
    }

    /// The halo exchange plan for ghost width `ghost` and `stencil`, built once.
    pub(crate) fn plan(&self, ghost: usize, stencil: Stencil) -> Arc<Plan> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        plans.entry((ghost, stencil)).or_insert_with(|| Arc::new(Plan::new(self, ghost, stencil))).clone()
    }

    /// The sequence number of the next halo exchange on this decomposition, and its MPI tag.
    pub(crate) fn next_exchange(&self) -> (u64, std::ffi::c_int) {
        let seq = self.exchanges.fetch_add(1, Ordering::Relaxed);
        (seq, crate::halo::tag_of(seq))
    }
}

impl std::fmt::Debug for Decomposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decomposition")
            .field("global", &self.global)
            .field("grid", &self.grid)
            .field("periodic", &self.periodic)
            .field("rank", &self.rank)
            .field("owned", &self.owned)
            .finish()
    }
}

/// The rank grid [`Decomposition::new`] uses for `size` ranks: among all factorisations of
/// `size` into `global.len()` factors, the one that leaves no rank empty if any can, then cuts
/// the least halo surface, then balances the largest block, then (as `MPI_Dims_create`) puts
/// more ranks on earlier dimensions.
pub fn auto_grid(global: &[usize], periodic: &[bool], size: usize) -> Result<Vec<usize>, DecompositionError> {
    check_shape(global, periodic)?;
    let mut best: Option<((usize, usize, usize), Vec<usize>)> = None;
    for grid in factorisations(size, global.len()) {
        let empty_dims = (0..global.len()).filter(|&d| grid[d] > global[d]).count();
        let surface: usize = (0..global.len())
            .map(|d| {
                let cuts = if periodic[d] && grid[d] > 1 { grid[d] } else { grid[d] - 1 };
                cuts * global.iter().enumerate().filter(|&(e, _)| e != d).map(|(_, n)| n).product::<usize>()
            })
            .sum();
        let largest: usize = (0..global.len()).map(|d| global[d].div_ceil(grid[d])).product();
        let key = (empty_dims, surface, largest);
        // Factorisations come with earlier dimensions largest first, so ties keep the first.
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, grid));
        }
    }
    Ok(best.expect("size >= 1 has a factorisation").1)
}

/// Every way of writing `size` as an ordered product of `ndim` factors, in decreasing
/// lexicographic order.
fn factorisations(size: usize, ndim: usize) -> Vec<Vec<usize>> {
    if ndim == 1 {
        return vec![vec![size]];
    }
    let mut out = Vec::new();
    for f in (1..=size).rev().filter(|f| size % f == 0) {
        for mut rest in factorisations(size / f, ndim - 1) {
            rest.insert(0, f);
            out.push(rest);
        }
    }
    out
}

fn check_shape(global: &[usize], periodic: &[bool]) -> Result<(), DecompositionError> {
    if !(1..=3).contains(&global.len()) {
        return Err(DecompositionError::Dims(global.len()));
    }
    if global.contains(&0) {
        return Err(DecompositionError::Empty { global: global.to_vec() });
    }
    if periodic.len() != global.len() {
        let (got, ndim) = (periodic.len(), global.len());
        return Err(DecompositionError::Length { what: "periodic", got, global: global.to_vec(), ndim });
    }
    Ok(())
}

fn check_grid(global: &[usize], grid: &[usize], periodic: &[bool], size: usize) -> Result<(), DecompositionError> {
    check_shape(global, periodic)?;
    if grid.len() != global.len() {
        let (got, ndim) = (grid.len(), global.len());
        return Err(DecompositionError::Length { what: "rank grid", got, global: global.to_vec(), ndim });
    }
    let product = grid.iter().product();
    if product != size || grid.contains(&0) {
        return Err(DecompositionError::GridSize { grid: grid.to_vec(), product, size });
    }
    if let Some(d) = (0..grid.len()).find(|&d| grid[d] > global[d]) {
        return Err(DecompositionError::TooManyRanks { grid: grid.to_vec(), dim: d, ranks: grid[d], cells: global[d] });
    }
    Ok(())
}

fn rank_coords(grid: &[usize], mut rank: usize) -> Vec<usize> {
    let mut c = vec![0; grid.len()];
    for d in (0..grid.len()).rev() {
        c[d] = rank % grid[d];
        rank /= grid[d];
    }
    c
}

/// Block `i` of `n` cells split into `p` blocks: the first `n % p` blocks get one cell more.
pub(crate) fn block(n: usize, p: usize, i: usize) -> Range<usize> {
    let (q, r) = (n / p, n % p);
    let start = i * q + i.min(r);
    start..start + q + usize::from(i < r)
}

/// The block that holds cell `x` of `n` cells split into `p` blocks.
fn block_of(n: usize, p: usize, x: usize) -> usize {
    let (q, r) = (n / p, n % p);
    if x < r * (q + 1) {
        x / (q + 1)
    } else {
        r + (x - r * (q + 1)) / q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_tile_the_range_and_differ_by_at_most_one() {
        for n in 1..40 {
            for p in 1..=n {
                let b: Vec<_> = (0..p).map(|i| block(n, p, i)).collect();
                assert_eq!(b[0].start, 0);
                assert_eq!(b[p - 1].end, n);
                assert!(b.windows(2).all(|w| w[0].end == w[1].start));
                let (lo, hi) = (b.iter().map(|r| r.len()).min().unwrap(), b.iter().map(|r| r.len()).max().unwrap());
                assert!(hi - lo <= 1 && lo >= 1, "n={n} p={p}: {b:?}");
                for x in 0..n {
                    assert!(b[block_of(n, p, x)].contains(&x), "n={n} p={p} x={x}");
                }
            }
        }
    }

    #[test]
    fn auto_grid_is_balanced_and_cuts_the_least_surface() {
        assert_eq!(auto_grid(&[100, 100], &[false, false], 4).unwrap(), [2, 2]);
        assert_eq!(auto_grid(&[100, 100], &[false, false], 2).unwrap(), [2, 1]);
        // Cut across the long dimension.
        assert_eq!(auto_grid(&[100, 1000], &[false, false], 2).unwrap(), [1, 2]);
        assert_eq!(auto_grid(&[64, 64, 64], &[false; 3], 8).unwrap(), [2, 2, 2]);
        assert_eq!(auto_grid(&[64, 64, 64], &[false; 3], 12).unwrap(), [3, 2, 2]);
        assert_eq!(auto_grid(&[10], &[true], 3).unwrap(), [3]);
        // A periodic dimension costs one cut more.
        assert_eq!(auto_grid(&[100, 100], &[true, false], 2).unwrap(), [1, 2]);
        // A thin dimension is not split past its cells when another can take the ranks.
        assert_eq!(auto_grid(&[2, 1000], &[false, false], 4).unwrap(), [1, 4]);
        assert_eq!(auto_grid(&[3, 3], &[false, false], 4).unwrap(), [2, 2]);
        // Unavoidable: more ranks than cells.
        assert_eq!(auto_grid(&[2], &[false], 3).unwrap(), [3]);
    }

    #[test]
    fn ranks_neighbours_and_index_maps() {
        let d = Decomposition::for_rank(&[10, 7], &[3, 2], &[false, true], 3).unwrap();
        assert_eq!(d.coords(), [1, 1]);
        assert_eq!(d.owned(), [4..7, 4..7]);
        assert_eq!(d.owned_by(0), [0..4, 0..4]);
        assert_eq!(d.owned_by(5), [7..10, 4..7]);
        assert_eq!(d.local_shape(), [3, 3]);
        assert_eq!(d.neighbour(&[0, 1]), Some(2)); // periodic wrap to column 0
        assert_eq!(d.neighbour(&[1, 0]), Some(5));
        assert_eq!(d.neighbour(&[-2, 0]), None);
        assert_eq!(d.owner(&[9, 0]), 4);
        assert_eq!(d.to_local(&[5, 6]), Some(vec![1, 2]));
        assert_eq!(d.to_local(&[3, 6]), None);
        assert_eq!(d.to_global(&[1, 2]), [5, 6]);
    }

    #[test]
    fn impossible_requests_are_clear_errors() {
        let e = |r: Result<Decomposition, DecompositionError>| r.unwrap_err().to_string();
        assert_eq!(
            e(Decomposition::for_rank(&[4, 2], &[1, 3], &[false, false], 0)),
            "rank grid [1, 3] puts more ranks (3) than cells (2) along dimension 1"
        );
        assert_eq!(e(Decomposition::for_rank(&[4, 0], &[1, 1], &[false, false], 0)), "global shape [4, 0] has a zero-sized dimension");
        assert_eq!(e(Decomposition::for_rank(&[4; 4], &[1; 4], &[false; 4], 0)), "a decomposition has 1 to 3 dimensions, not 4");
        assert_eq!(
            e(Decomposition::for_rank(&[4, 4], &[2, 2], &[false], 0)),
            "periodic has 1 entries but the global shape [4, 4] has 2"
        );
        assert_eq!(e(Decomposition::for_rank(&[4, 4], &[2, 2], &[false, false], 4)), "rank 4 is outside a job of 4 ranks");
    }
}
