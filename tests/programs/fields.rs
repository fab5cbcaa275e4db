//! Test program for decompositions, fields and reductions: `fields MODE [ARGS]`, launched by
//! tests/fields.rs under mpirun.
//!
//! - `halo SPEC...`: for each SPEC `SHAPE:PERIODIC:GHOST:STENCIL` (e.g. `11x7:10:2:box`) and every
//!   rank grid that fits, fill fields from a formula, exchange (one call, split phase, several
//!   together) and check every cell of the local blocks.
//! - `reuse SPEC...`: many exchanges in a row on the same fields (values changing between them,
//!   one field and two at once): every one gives the ghosts a fresh field's exchange gives, and
//!   after the first of each kind none allocates a message-sized buffer.
//! - `gather SHAPE...`: gather/scatter round trip, f64 and f32.
//! - `sums SHAPE`: reductions of awkward data, printed as bits.
//! - `heat NXxNY STEPS`: explicit 2-D heat steps; prints the checksum of the final field.
//! - `bits SHAPE...`: the field checksum (`rankwise_io::checksum::field_checksum`) after flipping each
//!   bit of each value in turn, f64 and f32: counts the flips it missed and the distinct sums.
//! - `grid SHAPE GRID`: a user-given rank grid (to test errors).
//! - `mismatch`: two split-phase exchanges in flight finished in the other order (each gets its
//!   own messages), then finishes on other fields or in another order (refused).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use ndarray::{ArrayD, Dimension, IxDyn};
use rankwise::io::checksum::{self, Element};
use rankwise::runtime::{self, reduce, BadInput, Decomposition, Exit, Field, InitOptions, Runtime, Stencil};

type E = Box<dyn std::error::Error + Send + Sync>;
type R = Result<Exit, E>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> R {
        let arg = |i: usize| args.get(i).map(String::as_str).ok_or_else(|| BadInput(format!("missing argument {i}")));
        match arg(0)? {
            "halo" => halo(rt, &args[1..])?,
            "reuse" => args[1..].iter().try_for_each(|s| reuse(rt, s))?,
            "gather" => args[1..].iter().try_for_each(|s| gather(rt, &shape(s)?))?,
            "sums" => sums(rt, &shape(arg(1)?)?)?,
            "heat" => heat(rt, &shape(arg(1)?)?, arg(2)?.parse()?)?,
            "bits" => {
                for s in &args[1..] {
                    let global = shape(s)?;
                    bits::<f64>(rt, &global)?;
                    bits::<f32>(rt, &global)?;
                }
            }
            "mismatch" => mismatch(rt)?,
            "grid" => {
                let (global, grid) = (shape(arg(1)?)?, shape(arg(2)?)?);
                let d = Decomposition::with_grid(rt, &global, &grid, &vec![false; global.len()])?;
                println!("rank={} owned={:?}", rt.rank(), d.owned());
            }
            other => return Err(BadInput(format!("unknown mode {other:?}")).into()),
        }
        Ok(Exit::Done)
    })
}

fn shape(s: &str) -> Result<Vec<usize>, BadInput> {
    s.split('x').map(|n| n.parse().map_err(|_| BadInput(format!("bad shape {s:?}")))).collect()
}

/// A distinct value for every global cell.
fn formula(g: &[usize], salt: f64) -> f64 {
    g.iter().rev().fold(0.0, |a, &i| a * 100.0 + i as f64) + salt
}

const SENTINEL: f64 = -1.0;

/// `SHAPE:PERIODIC:GHOST:STENCIL`, e.g. `11x7:10:2:box`.
fn parse_spec(spec: &str) -> Result<(Vec<usize>, Vec<bool>, usize, Stencil), E> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [sh, per, ghost, stencil] = parts[..] else { return Err(BadInput(format!("bad spec {spec:?}")).into()) };
    let periodic: Vec<bool> = per.chars().map(|c| c == '1').collect();
    let ghost: usize = ghost.parse().map_err(|_| BadInput(format!("bad ghost in {spec:?}")))?;
    Ok((shape(sh)?, periodic, ghost, if stencil == "box" { Stencil::Box } else { Stencil::Star }))
}

fn halo(rt: &Runtime, specs: &[String]) -> Result<(), E> {
    let (mut runs, mut checked, mut bad) = (0, 0, 0);
    for spec in specs {
        let (global, periodic, ghost, stencil) = parse_spec(spec)?;
        // The automatic grid, then every other grid of the job's size that fits the shape.
        let mut grids = vec![runtime::auto_grid(&global, &periodic, rt.size())?];
        grids.extend(all_grids(rt.size(), global.len()).into_iter().filter(|g| g.iter().zip(&global).all(|(p, n)| p <= n)));
        grids.dedup();
        for grid in grids {
            let d = Arc::new(if grid.iter().zip(&global).all(|(p, n)| p <= n) {
                Decomposition::with_grid(rt, &global, &grid, &periodic)?
            } else {
                Decomposition::new(rt, &global, &periodic)?
            });
            let mut fs: Vec<Field<f64>> = (0..4).map(|_| Field::new(&d, ghost)).collect();
            for (i, f) in fs.iter_mut().enumerate() {
                f.data_mut().fill(SENTINEL);
                f.fill_with(|g| formula(g, i as f64 * 0.25));
            }
            let [a, b, c, e] = &mut fs[..] else { unreachable!() };
            a.exchange(stencil);
            let h = b.begin_exchange(stencil);
            h.finish(b)?;
            Field::exchange_many(&mut [c, e], stencil);
            for (i, f) in fs.iter().enumerate() {
                let (n, errs) = check(f, stencil, i as f64 * 0.25);
                checked += n;
                for msg in errs.iter().take(3) {
                    println!("bad {spec} grid={grid:?} field={i}: {msg}");
                }
                bad += errs.len();
            }
            runs += 1;
        }
    }
    println!("rank={} runs={runs} checked={checked} bad={bad}", rt.rank());
    Ok(())
}

/// Counts this program's allocations of [`BIG`] bytes or more.
struct Counting;
static BIG_ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// Above an exchange's own bookkeeping (its list of requests), below every message of the
/// `reuse` specs the tests give.
const BIG: usize = 256;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BIG_ALLOCS.fetch_add((l.size() >= BIG) as usize, Relaxed);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        BIG_ALLOCS.fetch_add((l.size() >= BIG) as usize, Relaxed);
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        BIG_ALLOCS.fetch_add((new_size >= BIG) as usize, Relaxed);
        System.realloc(p, l, new_size)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn reuse(rt: &Runtime, spec: &str) -> Result<(), E> {
    let (global, periodic, ghost, stencil) = parse_spec(spec)?;
    let d = Arc::new(Decomposition::new(rt, &global, &periodic)?);
    let fresh = |salt: f64| {
        let mut f = Field::new(&d, ghost);
        f.data_mut().fill(SENTINEL);
        f.fill_with(|g| formula(g, salt));
        f
    };
    let (mut a, mut b) = (fresh(0.0), fresh(0.5));
    let (mut bad, mut allocs) = (0, 0);
    for round in 0..12 {
        let salt = round as f64;
        a.fill_with(|g| formula(g, salt));
        b.fill_with(|g| formula(g, salt + 0.5));
        let before = BIG_ALLOCS.load(Relaxed);
        // One field (whole and split phase), then two in one round: longer messages.
        match round % 3 {
            0 => a.exchange(stencil),
            1 => a.begin_exchange(stencil).finish(&mut a)?,
            _ => Field::exchange_many(&mut [&mut a, &mut b], stencil),
        }
        if round >= 3 {
            allocs += BIG_ALLOCS.load(Relaxed) - before;
        }
        let mut want = fresh(salt);
        want.exchange(stencil);
        bad += (a.data() != want.data()) as usize + check(&a, stencil, salt).1.len();
        if round % 3 == 2 {
            let mut want = fresh(salt + 0.5);
            want.exchange(stencil);
            bad += (b.data() != want.data()) as usize;
        }
    }
    println!("rank={} spec={spec} grid={:?} bad={bad} allocs={allocs}", rt.rank(), d.grid());
    Ok(())
}

fn mismatch(rt: &Runtime) -> Result<(), E> {
    let d = Arc::new(Decomposition::new(rt, &[11, 7], &[true, false])?);
    let fresh = |salt: f64| {
        let mut f: Field<f64> = Field::new(&d, 2);
        f.data_mut().fill(SENTINEL);
        f.fill_with(|g| formula(g, salt));
        f
    };
    let (mut a, mut b) = (fresh(0.0), fresh(0.5));
    // In flight together, finished in the other order: each exchange has its own tag.
    let (ha, hb) = (a.begin_exchange(Stencil::Box), b.begin_exchange(Stencil::Box));
    hb.finish(&mut b)?;
    ha.finish(&mut a)?;
    let bad = check(&a, Stencil::Box, 0.0).1.len() + check(&b, Stencil::Box, 0.5).1.len();
    // Finishes on what the exchange did not begin on are refused, and leave the ghosts alone.
    let (mut c, mut e) = (fresh(0.25), fresh(0.75));
    let swapped = Field::begin_exchange_many(&[&c, &e], Stencil::Star).finish_many(&mut [&mut e, &mut c]);
    let other = c.begin_exchange(Stencil::Star).finish(&mut a);
    let ghosts = |f: &Field<f64>| f.data().iter().filter(|&&v| v == SENTINEL).count() == f.data().len() - f.interior().len();
    let untouched = ghosts(&c) && ghosts(&e) && check(&a, Stencil::Box, 0.0).1.is_empty();
    println!("rank={} bad={bad} untouched={untouched}", rt.rank());
    println!("rank={} swapped: {}", rt.rank(), swapped.map_or_else(|e| e.to_string(), |()| "accepted".into()));
    println!("rank={} other: {}", rt.rank(), other.map_or_else(|e| e.to_string(), |()| "accepted".into()));
    // Exchanges after refused ones still work.
    c.exchange(Stencil::Star);
    println!("rank={} after={}", rt.rank(), check(&c, Stencil::Star, 0.25).1.len());
    Ok(())
}

/// Every cell of the local block: the owned ones and the ghosts an exchange fills hold the
/// formula (at the periodic image), the others still the sentinel.
fn check(f: &Field<f64>, stencil: Stencil, salt: f64) -> (usize, Vec<String>) {
    let d = f.decomposition();
    let origin = f.origin();
    let mut errs = Vec::new();
    let data = f.data();
    for (idx, &v) in data.indexed_iter() {
        let mut global = Vec::new();
        let (mut outside, mut reachable) = (0, true);
        for k in 0..d.ndim() {
            let x = origin[k] + idx[k] as isize;
            let n = d.global_shape()[k] as isize;
            if x < 0 || !d.owned()[k].contains(&(x as usize)) {
                outside += 1;
            }
            if !(0..n).contains(&x) && !d.periodic()[k] {
                reachable = false;
            }
            global.push(x.rem_euclid(n) as usize);
        }
        let filled = reachable && (outside <= 1 || stencil == Stencil::Box);
        let want = if filled { formula(&global, salt) } else { SENTINEL };
        if v != want {
            errs.push(format!("local {:?} (global {global:?}) holds {v}, expected {want}", idx.slice()));
        }
    }
    (data.len(), errs)
}

fn all_grids(size: usize, ndim: usize) -> Vec<Vec<usize>> {
    if ndim == 1 {
        return vec![vec![size]];
    }
    (1..=size)
        .filter(|f| size % f == 0)
        .flat_map(|f| all_grids(size / f, ndim - 1).into_iter().map(move |mut g| { g.insert(0, f); g }))
        .collect()
}

fn gather(rt: &Runtime, global: &[usize]) -> Result<(), E> {
    let d = Arc::new(Decomposition::new(rt, global, &vec![false; global.len()])?);
    let mut a: Field<f64> = Field::new(&d, 1);
    a.fill_with(|g| formula(g, 0.5) / 3.0);
    let mut ok = true;
    let whole = a.gather(0);
    if let Some(w) = &whole {
        ok &= w.indexed_iter().all(|(i, &v)| v == formula(i.slice(), 0.5) / 3.0);
    }
    // Scatter the gathered array into a fresh field: the owned cells come back bit for bit.
    let mut b: Field<f64> = Field::new(&d, 2);
    b.scatter(0, whole.as_ref());
    ok &= b.interior() == a.interior();
    // f32, rooted on the last rank.
    let root = rt.size() - 1;
    let mut c: Field<f32> = Field::new(&d, 0);
    let src = (rt.rank() == root).then(|| ArrayD::from_shape_fn(IxDyn(global), |i| (formula(i.slice(), 0.0) as f32).sqrt()));
    c.scatter(root, src.as_ref());
    ok &= c.gather(root) == src;
    println!("rank={} shape={global:?} roundtrip={}", rt.rank(), if ok { "exact" } else { "WRONG" });
    Ok(())
}

/// Awkward values: magnitudes over 40 decades, both signs, and pairs that cancel.
fn awkward(g: &[usize]) -> f64 {
    let mut h = g.iter().fold(0x9e3779b97f4a7c15u64, |h, &i| (h ^ i as u64).wrapping_mul(0x100000001b3));
    h ^= h >> 29;
    let m = (h % 100_000) as f64 / 977.0 - 50.0;
    m * 10f64.powi(((h >> 17) % 41) as i32 - 20)
}

fn sums(rt: &Runtime, global: &[usize]) -> Result<(), E> {
    let d = Arc::new(Decomposition::new(rt, global, &vec![false; global.len()])?);
    let mut f: Field<f64> = Field::new(&d, 1);
    f.fill_with(awkward);
    let mut ones: Field<f64> = Field::new(&d, 1);
    ones.fill_with(|g| g[0] as f64 + 1.0);
    let mut small: Field<f32> = Field::new(&d, 1);
    small.fill_with(|g| g.iter().sum::<usize>() as f32 - 3.0);
    // An infinity on the first rank only, and with minus infinity on the last: IEEE rules.
    let last: Vec<usize> = global.iter().map(|n| n - 1).collect();
    let mut inf: Field<f64> = Field::new(&d, 1);
    inf.fill_with(|g| if g.iter().all(|&k| k == 0) { f64::INFINITY } else { 1.0 });
    let mut nan: Field<f64> = Field::new(&d, 1);
    nan.fill_with(|g| if g.iter().all(|&k| k == 0) { f64::INFINITY } else if g == last { f64::NEG_INFINITY } else { 1.0 });
    println!(
        "rank={} repro={:016x} plain={:016x} rdot={:016x} min={} max={} sum_int={} dot_int={} norm2_int={} f32sum={} f32min={} f32max={} f32repro={} repro_inf={} repro_nan={}",
        rt.rank(),
        reduce::reproducible_sum(&f).to_bits(),
        reduce::sum(&f).to_bits(),
        reduce::reproducible_dot(&f, &ones).to_bits(),
        reduce::min(&f),
        reduce::max(&f),
        reduce::sum(&ones),
        reduce::dot(&ones, &ones),
        reduce::norm2(&ones),
        reduce::sum(&small),
        reduce::min(&small),
        reduce::max(&small),
        reduce::reproducible_sum(&small),
        reduce::reproducible_sum(&inf),
        reduce::reproducible_sum(&nan),
    );
    // The true values, from the formulas over every global index, in one process.
    let all: Vec<Vec<usize>> = ndarray::indices(global).into_iter().map(|i| i.slice().to_vec()).collect();
    let (lo, hi) = all.iter().map(|g| awkward(g)).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let dot: f64 = all.iter().map(|g| awkward(g) * (g[0] as f64 + 1.0)).sum();
    let abs: f64 = all.iter().map(|g| (awkward(g) * (g[0] as f64 + 1.0)).abs()).sum();
    println!(
        "truth rank={} true_min={lo} true_max={hi} true_dot={dot:e} true_abs_dot={abs:e} dot={:e} norm2={:e} true_norm2={:e}",
        rt.rank(),
        reduce::dot(&f, &ones),
        reduce::norm2(&f),
        all.iter().map(|g| awkward(g) * awkward(g)).sum::<f64>().sqrt(),
    );
    Ok(())
}

/// A value's bits as `u64` and back, for the bit flips of [`bits`].
trait Flip: Element + mpi::datatype::Equivalence + std::ops::Neg<Output = Self> {
    const BITS: u32;
    fn flip(self, bit: u32) -> Self;
    fn from_f64(x: f64) -> Self;
}
impl Flip for f64 {
    const BITS: u32 = 64;
    fn flip(self, bit: u32) -> f64 {
        f64::from_bits(self.to_bits() ^ (1 << bit))
    }
    fn from_f64(x: f64) -> f64 {
        x
    }
}
impl Flip for f32 {
    const BITS: u32 = 32;
    fn flip(self, bit: u32) -> f32 {
        f32::from_bits(self.to_bits() ^ (1 << bit))
    }
    fn from_f64(x: f64) -> f32 {
        x as f32
    }
}

/// Every single-bit change of every value changes the field checksum, and to a different sum each
/// time; so do the signs of any two values flipped together and the whole field negated (which
/// FNV-1a over whole words missed for an even cell count); and the
/// distributed sum is the serial definition's over the gathered array.
fn bits<T: Flip>(rt: &Runtime, global: &[usize]) -> Result<(), E> {
    let d = Arc::new(Decomposition::new(rt, global, &vec![true; global.len()])?);
    let mut f: Field<T> = Field::new(&d, 1);
    f.fill_with(|g| T::from_f64(awkward(g)));
    let base = checksum::field_checksum(&f);
    let serial = f.gather(0).map(|w| checksum::run_sum(0, &w.iter().copied().collect::<Vec<T>>()));
    let (mut sums, mut flips) = (vec![base], 0usize);
    let cells = global.iter().product::<usize>();
    let start: Vec<usize> = d.owned().iter().map(|r| r.start).collect();
    // Flip `bit` of global cell `cell` (C order) on the rank that owns it.
    let flip = |f: &mut Field<T>, cell: usize, bit: u32| {
        let mut g = vec![0; global.len()];
        let mut rest = cell;
        for k in (0..global.len()).rev() {
            g[k] = rest % global[k];
            rest /= global[k];
        }
        if d.owned().iter().zip(&g).all(|(r, x)| r.contains(x)) {
            let local: Vec<usize> = g.iter().zip(&start).map(|(x, s)| x - s).collect();
            let v = &mut f.interior_mut()[local.as_slice()];
            *v = v.flip(bit);
        }
    };
    for cell in 0..cells {
        for bit in 0..T::BITS {
            flip(&mut f, cell, bit);
            sums.push(checksum::field_checksum(&f));
            flips += 1;
            flip(&mut f, cell, bit);
        }
    }
    let missed = sums[1..].iter().filter(|&&s| s == base).count();
    sums.sort_unstable();
    sums.dedup();
    // The sign of two values flipped: FNV-1a over whole words cannot see it.
    let mut pairs_missed = 0;
    for a in 0..cells {
        for b in a + 1..cells {
            flip(&mut f, a, T::BITS - 1);
            flip(&mut f, b, T::BITS - 1);
            pairs_missed += usize::from(checksum::field_checksum(&f) == base);
            flip(&mut f, a, T::BITS - 1);
            flip(&mut f, b, T::BITS - 1);
        }
    }
    f.interior_mut().mapv_inplace(|x| -x);
    let negated = checksum::field_checksum(&f);
    if let Some(serial) = serial {
        println!(
            "bits {} shape={global:?} checksum={base:016x} serial={serial:016x} flips={flips} missed={missed} distinct={} pairs_missed={pairs_missed} negated_differs={}",
            T::DTYPE,
            sums.len() - 1,
            negated != base
        );
    }
    Ok(())
}

/// Explicit 5-point heat steps with zero (Dirichlet) values past the edges, overlapping the halo
/// exchange with the rows that need no ghost.
fn heat(rt: &Runtime, global: &[usize], steps: usize) -> Result<(), E> {
    let d = Arc::new(Decomposition::new(rt, global, &[false, false])?);
    let mut u: Field<f64> = Field::new(&d, 1);
    let mut v: Field<f64> = Field::new(&d, 1);
    u.fill_with(|g| ((g[0] * 7 + g[1] * 13) % 17) as f64 / 16.0);
    let (nx, ny) = (d.local_shape()[0], d.local_shape()[1]);
    for _ in 0..steps {
        let h = u.begin_exchange(Stencil::Star);
        // Cells that read no ghost first (local indices count the ghost layer: 1..=nx owned).
        step(&u, &mut v, 2..nx, 2..ny);
        h.finish(&mut u)?;
        if nx > 0 && ny > 0 {
            step(&u, &mut v, 1..2, 1..ny + 1);
            step(&u, &mut v, nx.max(2)..nx + 1, 1..ny + 1);
            step(&u, &mut v, 2..nx, 1..2);
            step(&u, &mut v, 2..nx, ny.max(2)..ny + 1);
        }
        std::mem::swap(&mut u, &mut v);
    }
    let hash = checksum::field_checksum(&u);
    let total = reduce::reproducible_sum(&u);
    if rt.is_root() {
        println!("heat hash={hash:016x} sum={total:e}");
    }
    Ok(())
}

/// Update the cells `rows` x `cols` (local indices, ghosts included) of `v` from `u`.
fn step(u: &Field<f64>, v: &mut Field<f64>, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
    let (a, mut b) = (u.data(), v.data_mut());
    for i in rows {
        for j in cols.clone() {
            let c = a[[i, j]];
            b[[i, j]] = c + 0.2 * (a[[i - 1, j]] + a[[i + 1, j]] + a[[i, j - 1]] + a[[i, j + 1]] - 4.0 * c);
        }
    }
}
