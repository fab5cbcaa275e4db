//! Test program for checkpoint/restart: `ckpt MODE DIR [STEP] [key=value...]`, launched by
//! tests/checkpoint.rs under mpirun.
//!
//! Every field holds `v(k) = k/2 + 1/(k+1) + 1000·salt` at global C-order index `k` (as f32 for
//! f32 fields), so any reader, at any rank count or in Python, knows what each element must be.

use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use ndarray::{ArrayD, ArrayViewD, IxDyn, Slice};
use rankwise::io::{Checkpoint, CheckpointDir, Element, IoError, Layout};
use rankwise::runtime::{self, BadInput, Decomposition, Exit, Field, InitOptions, Runtime};

type R = Result<Exit, Box<dyn std::error::Error + Send + Sync>>;

/// name, global shape, f32?, salt
const FIELDS: [(&str, &[usize], bool, f64); 5] = [
    ("a1", &[37], false, 0.0),
    ("b2", &[13, 11], true, 1.0),
    ("c3", &[7, 5, 6], false, 2.0),
    ("d3", &[4, 3, 5], true, 3.0),
    ("tiny", &[2], false, 4.0),
];

fn value(k: usize, salt: f64) -> f64 {
    k as f64 * 0.5 + 1.0 / (k as f64 + 1.0) + 1000.0 * salt
}

/// This rank's block of `global`: a near-cubic grid of ranks (like MPI_Dims_create), balanced
/// splits; with more ranks than elements along an axis some blocks are empty.
fn owned(global: &[usize], size: usize, rank: usize) -> (Vec<usize>, Vec<usize>) {
    let mut grid = vec![1usize; global.len()];
    let (mut n, mut p) = (size, 2);
    let mut factors = vec![];
    while n > 1 {
        while n % p == 0 {
            factors.push(p);
            n /= p;
        }
        p += 1;
    }
    for f in factors.into_iter().rev() {
        let d = (0..grid.len()).min_by_key(|&d| grid[d]).unwrap();
        grid[d] *= f;
    }
    let (mut start, mut shape, mut r) = (vec![0; global.len()], vec![0; global.len()], rank);
    for d in (0..global.len()).rev() {
        let c = r % grid[d];
        r /= grid[d];
        start[d] = c * global[d] / grid[d];
        shape[d] = (c + 1) * global[d] / grid[d] - start[d];
    }
    (start, shape)
}

fn linear(global: &[usize], idx: &[usize]) -> usize {
    idx.iter().zip(global).fold(0, |acc, (&i, &n)| acc * n + i)
}

fn expected<T: Element>(global: &[usize], start: &[usize], shape: &[usize], salt: f64, cast: fn(f64) -> T) -> ArrayD<T> {
    ArrayD::from_shape_fn(IxDyn(shape), |i| {
        let g: Vec<usize> = (0..shape.len()).map(|d| start[d] + i[d]).collect();
        cast(value(linear(global, &g), salt))
    })
}

fn opt(args: &[String], key: &str) -> Option<usize> {
    args.iter().find_map(|a| a.strip_prefix(&format!("{key}=")).and_then(|v| v.parse().ok()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = InitOptions { preferred: Some(runtime::Threading::Multiple), ..InitOptions::default() };
    runtime::run(opts, |rt: &mut Runtime| -> R {
        let (Some(mode), Some(dir)) = (args.first(), args.get(1)) else {
            return Err(BadInput("usage: ckpt MODE DIR [STEP] [keep=K] [deflate=L] [kill=RANK]".into()).into());
        };
        let step: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut dir = CheckpointDir::new(dir).keep(opt(&args, "keep").unwrap_or(0));
        // A node-local level, with the shared file every second snapshot (flush=K: every K-th).
        if let Some(local) = args.iter().find_map(|a| a.strip_prefix("local=")) {
            dir = dir.local(local, opt(&args, "flush").unwrap_or(2) as u64);
        }
        let w = rt.world();
        match mode.as_str() {
            "write" => write(w, &dir, step, &args)?,
            "read" => read(w, &dir)?,
            "read-sentinel" => read_sentinel(w, &dir)?,
            "async-fail" => async_fail(w, &dir)?,
            "snapshots" => snapshots(w, &dir, step, args.iter().find_map(|a| a.strip_prefix("local=")))?,
            "errors" => errors(w, &dir),
            "field-write" => field_write(rt, &dir, step)?,
            "field-read" => field_read(rt, &dir)?,
            "verify" => {
                for (path, info) in dir.list()? {
                    match info {
                        Ok(i) => println!("list {} step={} fields={}", path.display(), i.step, i.fields.len()),
                        Err(e) => println!("list {} damaged: {e}", path.display()),
                    }
                }
                let (good, bad) = dir.newest_valid()?;
                for e in bad {
                    println!("invalid: {e}");
                }
                println!("newest valid: {}", good.map_or("none".into(), |i| i.step.to_string()));
            }
            other => return Err(BadInput(format!("unknown mode {other:?}")).into()),
        }
        Ok(Exit::Done)
    })
}

fn write(w: &SimpleCommunicator, dir: &CheckpointDir, step: u64, args: &[String]) -> Result<(), IoError> {
    let (rank, size) = (w.rank() as usize, w.size() as usize);
    let mut ck = dir.create(w, step, step as f64 * 0.1)?;
    ck.param("alpha", 0.25)?.param("n", 64i64)?.param("name", "heat")?.param("implicit", true)?;
    if let Some(level) = opt(args, "deflate") {
        ck.layout(Layout { chunk: None, deflate: Some(level as u8) });
    }
    let mut modes = vec![];
    for (name, global, single, salt) in FIELDS {
        let (start, shape) = owned(global, size, rank);
        let mode = if single {
            ck.write_block(name, global, &start, expected(global, &start, &shape, salt, |x| x as f32).view())?
        } else {
            // As a field's interior inside ghost layers: written in place, not copied.
            let padded = ghosted(expected(global, &start, &shape, salt, |x| x), f64::NAN);
            ck.write_block(name, global, &start, interior(&padded))?
        };
        modes.push(mode.to_string());
    }
    println!("rank={rank} modes={}", modes.join(","));
    if opt(args, "kill") == Some(rank) {
        // Data written, checkpoint not committed: die the hardest way there is.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    let path = ck.commit()?;
    if rank == 0 {
        let info = rankwise::io::inspect(&path)?;
        let sums: Vec<String> = info.fields.iter().map(|f| format!("{}:{:016x}", f.name, f.checksum)).collect();
        println!("wrote {} checksums={}", path.display(), sums.join(","));
    }
    Ok(())
}

fn read(w: &SimpleCommunicator, dir: &CheckpointDir) -> Result<(), IoError> {
    let (rank, size) = (w.rank() as usize, w.size() as usize);
    let restored = dir.restore(w, |ck| {
        let mut wrong = 0usize;
        for (name, global, single, salt) in FIELDS {
            let (start, shape) = owned(global, size, rank);
            wrong += if single {
                // Into a field's interior, in place.
                let mut padded = ghosted(ArrayD::<f32>::zeros(IxDyn(&shape)), f32::NAN);
                ck.read_block_into(name, global, &start, padded.slice_each_axis_mut(|a| Slice::from(1..a.len as isize - 1)))?;
                mismatches(interior(&padded).to_owned(), expected(global, &start, &shape, salt, |x| x as f32))
            } else {
                mismatches(ck.read_block::<f64>(name, global, &start, &shape)?, expected(global, &start, &shape, salt, |x| x))
            };
        }
        Ok(wrong)
    })?;
    let Some(r) = restored else {
        println!("rank={rank} no checkpoint");
        return Ok(());
    };
    for s in &r.skipped {
        println!("rank={rank} skipped: {s}");
    }
    let i = &r.info;
    let params: Vec<String> = i.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let sums: Vec<String> = i.fields.iter().map(|f| format!("{}:{:016x}", f.name, f.checksum)).collect();
    println!(
        "rank={rank} restored step={} time={:?} ranks={} params={} wrong={} checksums={}",
        i.step, i.time, i.ranks, params.join(","), r.value, sums.join(",")
    );
    Ok(())
}

/// Restore every field into memory that holds -3 beforehand; print how many elements are wrong
/// (restored) or no longer -3 (nothing restored): the program's memory sees a checkpoint's data
/// only when all of it verified.
fn read_sentinel(w: &SimpleCommunicator, dir: &CheckpointDir) -> Result<(), IoError> {
    let (rank, size) = (w.rank() as usize, w.size() as usize);
    let mut bufs: Vec<(ArrayD<f64>, ArrayD<f32>)> = FIELDS
        .iter()
        .map(|(_, global, _, _)| {
            let shape = owned(global, size, rank).1;
            (ArrayD::from_elem(IxDyn(&shape), -3.0), ArrayD::from_elem(IxDyn(&shape), -3.0))
        })
        .collect();
    let restored = dir.restore(w, |ck| {
        for ((name, global, single, _), (b64, b32)) in FIELDS.iter().zip(bufs.iter_mut()) {
            let start = owned(global, size, rank).0;
            match single {
                true => ck.read_block_into(name, global, &start, b32.view_mut())?,
                false => ck.read_block_into(name, global, &start, b64.view_mut())?,
            }
        }
        Ok(())
    });
    let outcome = match &restored {
        Ok(Some(r)) => format!("step={}", r.info.step),
        Ok(None) => "none".into(),
        Err(e) => format!("error: {e}"),
    };
    let mut wrong = 0;
    for ((_, global, single, salt), (b64, b32)) in FIELDS.iter().zip(&bufs) {
        let (start, shape) = owned(global, size, rank);
        wrong += match (&restored, single) {
            (Ok(Some(_)), true) => mismatches(b32.clone(), expected(global, &start, &shape, *salt, |x| x as f32)),
            (Ok(Some(_)), false) => mismatches(b64.clone(), expected(global, &start, &shape, *salt, |x| x)),
            (_, true) => b32.iter().filter(|&&x| x != -3.0).count(),
            (_, false) => b64.iter().filter(|&&x| x != -3.0).count(),
        };
    }
    println!("rank={rank} sentinel restored={outcome} wrong={wrong}");
    Ok(())
}

/// Snapshots of steps 10, 20, .. `last` of every field, submitted to `dir`'s levels.
fn snapshots(w: &SimpleCommunicator, dir: &CheckpointDir, last: u64, local: Option<&str>) -> Result<(), IoError> {
    let (rank, size) = (w.rank() as usize, w.size() as usize);
    for step in (10..=last).step_by(10) {
        let mut s = dir.snapshot(step, step as f64 * 0.1);
        s.param("alpha", 0.25).param("n", 64i64).param("name", "heat").param("implicit", true);
        for (name, global, single, salt) in FIELDS {
            let (start, shape) = owned(global, size, rank);
            match single {
                true => s.write_block(name, global, &start, expected(global, &start, &shape, salt, |x| x as f32).view()),
                false => s.write_block(name, global, &start, expected(global, &start, &shape, salt, |x| x).view()),
            };
        }
        let at = s.submit(w)?;
        if rank == 0 {
            println!("snapshot {step} at {}", at.display());
        }
        // The node-local files of this step, as the node (one here) holds them.
        if let (0, Some(local)) = (rank, local) {
            for f in rankwise_io::local::list(local.as_ref()).iter().filter(|f| f.step == step) {
                let name = f.path.file_name().unwrap_or_default().to_string_lossy();
                println!("local {name} inode={}", std::fs::metadata(&f.path).map_or(0, |m| std::os::unix::fs::MetadataExt::ino(&m)));
            }
        }
    }
    Ok(())
}

/// A background checkpoint that fails (its directory is a file) is reported by the next call, on
/// every rank, once.
fn async_fail(w: &SimpleCommunicator, dir: &CheckpointDir) -> Result<(), IoError> {
    let rank = w.rank() as usize;
    let file = dir.root().join("a-file");
    if rank == 0 {
        std::fs::create_dir_all(dir.root()).and_then(|()| std::fs::write(&file, b"")).expect("scratch");
    }
    w.barrier();
    let (start, shape) = owned(&[37], w.size() as usize, rank);
    let mut s = CheckpointDir::new(&file).asynchronous(true).snapshot(1, 0.1);
    s.write_block("a1", &[37], &start, expected(&[37], &start, &shape, 0.0, |x| x).view());
    let submitted = s.submit(w)?;
    println!("rank={rank} submitted {}", submitted.display());
    let next = dir.create(w, 2, 0.2).map(drop);
    println!("rank={rank} next call: {}", next.err().map_or("ok".into(), |e| e.to_string()));
    let again = dir.create(w, 2, 0.2).and_then(|c| c.commit());
    println!("rank={rank} then: {}", again.map_or_else(|e| e.to_string(), |p| format!("wrote {}", p.display())));
    Ok(())
}

/// The global shape of the Field written and read by `field-write` and `field-read`.
const FIELD_SHAPE: [usize; 3] = [9, 7, 5];

/// A `Field` (ghost width 1, ghosts NaN) written with `write_field`.
fn field_write(rt: &Runtime, dir: &CheckpointDir, step: u64) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let d = std::sync::Arc::new(Decomposition::new(rt, &FIELD_SHAPE, &[false; 3])?);
    let mut f = Field::<f64>::new(&d, 1);
    f.data_mut().fill(f64::NAN);
    f.fill_with(|g| value(linear(&FIELD_SHAPE, g), 5.0));
    let mut ck = dir.create(rt.world(), step, step as f64 * 0.1)?;
    let mode = ck.write_field("u", &f)?;
    ck.commit()?;
    println!("rank={} field written mode={mode}", d.rank());
    Ok(())
}

/// The newest checkpoint's `u` read with `read_field` into a `Field` of ghost width 2 whose
/// cells start at -7: every owned cell must hold the formula, every ghost still -7.
fn field_read(rt: &Runtime, dir: &CheckpointDir) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let d = std::sync::Arc::new(Decomposition::new(rt, &FIELD_SHAPE, &[false; 3])?);
    let mut f = Field::<f64>::new(&d, 2);
    f.data_mut().fill(-7.0);
    let path = dir.newest()?.ok_or("no checkpoint")?;
    Checkpoint::open(rt.world(), &path)?.read_field("u", &mut f)?;
    let start: Vec<usize> = d.owned().iter().map(|r| r.start).collect();
    let (mut cells, mut wrong) = (0, 0);
    for (i, v) in f.interior().indexed_iter() {
        let g: Vec<usize> = (0..3).map(|k| start[k] + i[k]).collect();
        cells += 1;
        wrong += (v.to_bits() != value(linear(&FIELD_SHAPE, &g), 5.0).to_bits()) as usize;
    }
    f.interior_mut().fill(-7.0);
    let ghosts_touched = f.data().iter().filter(|&&v| v != -7.0).count();
    println!("rank={} field read cells={cells} wrong={wrong} ghosts_touched={ghosts_touched}", d.rank());
    Ok(())
}

/// `a` inside one ghost layer on every side (filled with NaN).
fn ghosted<T: Element>(a: ArrayD<T>, nan: T) -> ArrayD<T> {
    let mut p = ArrayD::from_elem(IxDyn(&a.shape().iter().map(|n| n + 2).collect::<Vec<_>>()), nan);
    p.slice_each_axis_mut(|ax| Slice::from(1..ax.len as isize - 1)).assign(&a);
    p
}

fn interior<T>(p: &ArrayD<T>) -> ArrayViewD<'_, T> {
    p.slice_each_axis(|ax| Slice::from(1..ax.len as isize - 1))
}

fn mismatches<T: Element>(got: ArrayD<T>, want: ArrayD<T>) -> usize {
    assert_eq!(got.shape(), want.shape());
    got.iter().zip(want.iter()).filter(|(a, b)| a.bits() != b.bits()).count()
}

/// User errors are reported clearly and identically on every rank.
fn errors(w: &SimpleCommunicator, dir: &CheckpointDir) {
    let path = dir.newest().unwrap().expect("a checkpoint to read");
    let ck = match Checkpoint::open(w, &path) {
        Ok(ck) => ck,
        Err(e) => return println!("error: {e}"),
    };
    let (start, shape) = owned(&[37], w.size() as usize, w.rank() as usize);
    let show = |r: Result<ArrayD<f64>, IoError>| println!("error: {}", r.map(|_| "none".to_string()).unwrap_or_else(|e| e.to_string()));
    show(ck.read_block::<f64>("nope", &[37], &start, &shape));
    show(ck.read_block::<f64>("a1", &[38], &start, &shape));
    show(ck.read_block::<f64>("b2", &[13, 11], &[0, 0], &[0, 0]));
    show(ck.read_block::<f64>("a1", &[37], &[30], &[10]));
    // A checkpoint abandoned after a failed write leaves no `.partial` file behind.
    let mut writer = dir.create(w, 99, 0.0).expect("a writer");
    let failed = writer.write_block("x", &[4], &[3], ArrayD::<f64>::zeros(IxDyn(&[2])).view()).map(drop).unwrap_err();
    drop(writer);
    w.barrier();
    println!("error: {failed}; partial left: {}", dir.path_for(99).with_extension("h5.partial").exists());
}
