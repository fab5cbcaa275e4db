//! Fuzzing of checkpoint files: real checkpoints (2-D and 3-D, f64 and f32, contiguous and
//! chunked+deflate, with parameters, several fields) damaged by a seeded mutator ([`mutate`]), then
//! read by `rankwise_io::verify` and `rankwise ckpt verify`, and restored by every rank of an MPI job.
//!
//! `ckpt-fuzz campaign-verify ROOT [cases=N] [from=SEED] [batch=B] [every=K] [rankwise=BIN] [timeout=SECS]`
//! `ckpt-fuzz campaign-restore ROOT [np=2] [cases=N] [from=SEED] [batch=B] [watchdog=SECS]`
//!
//! A campaign writes the base checkpoints once (`write`, under mpirun), then runs its cases in
//! batches in child processes (`verify-batch`, or `restore-batch` under mpirun), so that a crash
//! or a hang costs one case, not the campaign: the child says `start SEED CASE` before each case and
//! `done SEED OUTCOME ok|FAIL:KINDS MUTATION` after it; a case that started and never finished
//! is a crash (the child died) or a hang (a watchdog or the time-out fired), and the next batch
//! goes on after it. The campaign prints every failure with its seed and one summary line of
//! counts (`verify campaign: ...` / `restore campaign: ...`); exit 0 iff nothing failed.
//! Replay one case: `from=SEED cases=1`.

#[path = "mutate.rs"]
mod mutate;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::traits::*;
use rankwise::io::{verify, Checkpoint, CheckpointDir, CheckpointInfo, FieldInfo, IoError, Layout};
use rankwise::runtime::{self, Decomposition, Exit, Field, InitOptions, Runtime};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// name, global shape, stored as f32
const FIELDS: [(&str, &[usize], bool); 4] = [("u", &[24, 20], false), ("p", &[5, 6, 7], false), ("v", &[6, 7, 8], true), ("w", &[9, 5], true)];
/// How the fields are stored: everything contiguous; everything chunked+deflate; a mix of
/// contiguous, chunked and chunked+deflate fields in one file.
const VARIANTS: [&str; 3] = ["contig", "deflate", "mixed"];
/// Names the mutator aims at: attributes, the parameters and the fields.
const NAMES: [&str; 16] = [
    "format", "format_version", "rankwise_version", "checksum_algorithm", "step", "time", "ranks", "parameters", "alpha",
    "model", "implicit", "checksum", "dtype", "blocks", "p", "w",
];
const SENTINEL: f64 = -12345.0;

fn value(k: usize, salt: f64) -> f64 {
    k as f64 * 0.5 + 1.0 / (k as f64 + 1.0) + 1000.0 * salt
}

fn layout(variant: &str, field: usize, shape: &[usize]) -> Layout {
    let chunk = Some(shape.iter().map(|n| n.div_ceil(2)).collect());
    match (variant, field) {
        ("contig", _) | ("mixed", 0 | 3) => Layout::default(),
        ("mixed", 1) => Layout { chunk, deflate: None },
        _ => Layout { chunk, deflate: Some(4) },
    }
}

fn bases(root: &Path, variant: &str) -> CheckpointDir {
    CheckpointDir::new(root.join("bases").join(variant))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, root) = (args.first().map(String::as_str).unwrap_or(""), PathBuf::from(args.get(1).map_or("", |s| s.as_str())));
    let opt = |key: &str, default: u64| -> u64 {
        args.iter().find_map(|a| a.strip_prefix(&format!("{key}=")).map(|v| v.parse().unwrap_or_else(|_| fail(&format!("{key}={v}: not a number"))))).unwrap_or(default)
    };
    let text = |key: &str| args.iter().find_map(|a| a.strip_prefix(&format!("{key}=")).map(String::from));
    if root.as_os_str().is_empty() {
        fail("usage: ckpt-fuzz campaign-verify|campaign-restore|write|verify-batch|restore-batch ROOT [key=value...]");
    }
    // The serial modes never start MPI: a campaign outlives the jobs it launches.
    let code = match mode {
        "campaign-verify" => {
            let mut cmd = vec!["verify-batch".to_string(), root.display().to_string()];
            cmd.extend(text("rankwise").map(|b| format!("rankwise={b}")));
            cmd.push(format!("every={}", opt("every", 1)));
            let timeout = Duration::from_secs(opt("timeout", 5));
            campaign("verify", &root, 2, None, cmd, opt("from", 0), opt("cases", 200), opt("batch", 500), timeout)
        }
        "campaign-restore" => {
            let (np, watchdog) = (opt("np", 2), opt("watchdog", 5));
            let cmd = vec!["restore-batch".to_string(), root.display().to_string(), format!("watchdog={watchdog}")];
            let timeout = Duration::from_secs(30 + 2 * watchdog);
            campaign("restore", &root, np, Some(np), cmd, opt("from", 0), opt("cases", 50), opt("batch", 100), timeout)
        }
        "verify-one" => verify(&root).is_err() as i32,
        "verify-batch" => verify_batch(&root, opt("from", 0), opt("to", 0), opt("every", 1), text("rankwise")),
        "write" | "restore-batch" => runtime::run(InitOptions::default(), |rt: &mut Runtime| -> Result<Exit, Error> {
            if mode == "write" {
                write(rt, &root)?;
            } else {
                restore_batch(rt, &root, opt("from", 0), opt("to", 0), opt("watchdog", 5))?;
            }
            Ok(Exit::Done)
        }),
        other => fail(&format!("unknown mode {other:?}")),
    };
    std::process::exit(code)
}

fn fail(msg: &str) -> ! {
    eprintln!("ckpt-fuzz: {msg}");
    std::process::exit(2)
}

// ---------------------------------------------------------------------------------------------
// The base checkpoints

/// Collective. For each variant, checkpoints of steps 1 and 2 (different data) in `ROOT/bases/VARIANT`.
fn write(rt: &Runtime, root: &Path) -> Result<(), Error> {
    for variant in VARIANTS {
        let dir = bases(root, variant);
        for step in [1u64, 2] {
            let mut fields = Fields::new(rt)?;
            fields.fill(step as f64);
            let mut ck = dir.create(rt.world(), step, step as f64 * 0.5)?;
            ck.param("alpha", 0.25)?.param("n", 24i64)?.param("model", "heat")?.param("implicit", true)?;
            for (i, (name, shape, _)) in FIELDS.iter().enumerate() {
                ck.layout(layout(variant, i, shape));
                match &fields.0[i] {
                    Mem::F64(f) => ck.write_field(name, f)?,
                    Mem::F32(f) => ck.write_field(name, f)?,
                };
            }
            ck.commit()?;
        }
    }
    Ok(())
}

/// The program's memory: one field per entry of [`FIELDS`], with a ghost layer.
struct Fields(Vec<Mem>);

enum Mem {
    F64(Field<f64>),
    F32(Field<f32>),
}

impl Fields {
    fn new(rt: &Runtime) -> Result<Fields, Error> {
        let mut v = Vec::new();
        for (_, shape, single) in FIELDS {
            let d = Arc::new(Decomposition::new(rt, shape, &vec![false; shape.len()])?);
            v.push(if single { Mem::F32(Field::new(&d, 1)) } else { Mem::F64(Field::new(&d, 1)) });
        }
        Ok(Fields(v))
    }

    /// Every cell (ghosts too) the sentinel, then the interior the data of `salt`.
    fn fill(&mut self, salt: f64) {
        self.sentinel();
        for (m, (_, shape, _)) in self.0.iter_mut().zip(FIELDS) {
            let k = |g: &[usize]| value(g.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i), salt);
            match m {
                Mem::F64(f) => f.fill_with(k),
                Mem::F32(f) => f.fill_with(|g| k(g) as f32),
            }
        }
    }

    fn sentinel(&mut self) {
        for m in &mut self.0 {
            match m {
                Mem::F64(f) => f.data_mut().fill(SENTINEL),
                Mem::F32(f) => f.data_mut().fill(SENTINEL as f32),
            }
        }
    }

    /// Every cell's bits, ghosts included, in one list.
    fn bits(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for m in &self.0 {
            match m {
                Mem::F64(f) => out.extend(f.data().iter().map(|x| x.to_bits())),
                Mem::F32(f) => out.extend(f.data().iter().map(|x| x.to_bits() as u64)),
            }
        }
        out
    }

    /// Collective. Read every field, as a program restoring all its state does.
    fn load(&mut self, ck: &Checkpoint<'_>) -> Result<(), IoError> {
        ck.expect_param("alpha", 0.25)?;
        ck.expect_param("n", 24i64)?;
        ck.expect_param("model", "heat")?;
        ck.expect_param("implicit", true)?;
        for (m, (name, _, _)) in self.0.iter_mut().zip(FIELDS) {
            match m {
                Mem::F64(f) => ck.read_field(name, f)?,
                Mem::F32(f) => ck.read_field(name, f)?,
            }
        }
        Ok(())
    }
}

/// Metadata with the path left out, to compare a damaged copy with its original.
fn same_info(a: &CheckpointInfo, b: &CheckpointInfo) -> bool {
    CheckpointInfo { path: PathBuf::new(), ..a.clone() } == CheckpointInfo { path: PathBuf::new(), ..b.clone() }
}

/// What differs between two checkpoints' metadata, in one word (for failure lines).
fn info_diff(a: &CheckpointInfo, b: &CheckpointInfo) -> String {
    let what = if a.step != b.step {
        "step".to_string()
    } else if a.time.to_bits() != b.time.to_bits() {
        "time".into()
    } else if a.format_version != b.format_version || a.rankwise_version != b.rankwise_version {
        "format".into()
    } else if a.ranks != b.ranks {
        "ranks".into()
    } else if a.params != b.params {
        "params".into()
    } else {
        match a.fields.iter().zip(&b.fields).find(|(x, y)| x != y) {
            Some((x, y)) if x.shape != y.shape => format!("{}.shape", x.name),
            Some((x, y)) if x.blocks != y.blocks => format!("{}.blocks", x.name),
            Some((x, _)) => format!("{}.attrs", x.name),
            None => "fields".into(),
        }
    };
    format!("wrong-metadata:{what}")
}

/// A whole field's bits, read in this process alone.
fn field_bits(ck: &Checkpoint<'_>, f: &FieldInfo) -> Result<Vec<u64>, IoError> {
    let start = vec![0; f.shape.len()];
    Ok(match f.dtype.as_str() {
        "f32" => ck.read_slab::<f32>(&f.name, &start, &f.shape)?.iter().map(|x| x.to_bits() as u64).collect(),
        _ => ck.read_slab::<f64>(&f.name, &start, &f.shape)?.iter().map(|x| x.to_bits()).collect(),
    })
}

fn all_bits(path: &Path) -> Result<Vec<Vec<u64>>, IoError> {
    let ck = Checkpoint::open_serial(path)?;
    ck.info().fields.iter().map(|f| field_bits(&ck, f)).collect()
}

/// The original file of a case, its bytes, its metadata and where the mutator aims.
struct Base {
    bytes: Vec<u8>,
    info: CheckpointInfo,
    targets: mutate::Targets,
}

fn load_base(root: &Path, variant: &str, step: u64) -> Result<Base, Error> {
    let path = bases(root, variant).path_for(step);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e} (write the bases first)", path.display()))?;
    let info = verify(&path)?;
    let targets = mutate::Targets::find(&bytes, &NAMES);
    Ok(Base { bytes, info, targets })
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------------------------------------
// verify: rankwise_io::verify in this process, and the `rankwise ckpt verify` command

fn verify_batch(root: &Path, from: u64, to: u64, every: u64, rankwise: Option<String>) -> i32 {
    let run = || -> Result<(), Error> {
        let mut base = Vec::new();
        for v in VARIANTS {
            let b = load_base(root, v, 2)?;
            let data = all_bits(&bases(root, v).path_for(2))?;
            base.push((v, b, data));
        }
        let work = root.join("verify");
        std::fs::create_dir_all(&work)?;
        let file = work.join("mutated.h5");
        for seed in from..to {
            let (variant, b, data) = &base[(seed % VARIANTS.len() as u64) as usize];
            let mut bytes = b.bytes.clone();
            let what = mutate::mutate(&mut bytes, seed, &b.targets);
            std::fs::write(&file, &bytes)?;
            say(format!("start {seed} {variant} {what}"));
            let mut fails = Vec::new();
            let verdict = verify(&file);
            let outcome = match &verdict {
                Ok(info) => {
                    if !same_info(info, &b.info) {
                        fails.push(info_diff(info, &b.info));
                    }
                    match all_bits(&file) {
                        Ok(d) if d == *data => {}
                        Ok(_) => fails.push("wrong-data".into()),
                        Err(_) => fails.push("accepted-unreadable".into()),
                    }
                    "accepted".to_string()
                }
                Err(e) => format!("rejected-{}", kind(e)),
            };
            if let Some(bin) = rankwise.as_deref().filter(|_| every > 0 && seed % every == 0) {
                if let Some(f) = cli_verify(bin, &file, verdict.is_ok()) {
                    fails.push(f.into());
                }
            }
            let status = if fails.is_empty() { "ok".to_string() } else { format!("FAIL:{}", fails.join(",")) };
            say(format!("done {seed} {outcome} {status} {variant} {what}"));
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => fail(&e.to_string()),
    }
}

/// `verify` of `file` in a child process: whether it accepts; `Err` when it crashed or hung.
fn child_verify(file: &Path) -> Result<bool, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(me).arg("verify-one").arg(file).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            return match st.code() {
                Some(0) => Ok(true),
                Some(1) => Ok(false),
                _ => Err(format!("crashed ({st})")),
            };
        }
        if t0.elapsed() > Duration::from_secs(3) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("hung (no answer in 3 s)".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What kind of error, in one word.
fn kind(e: &IoError) -> &'static str {
    match e {
        IoError::Corrupt { .. } => "corrupt",
        IoError::Version { .. } => "version",
        IoError::Param { .. } => "param",
        IoError::MissingField { .. } => "missing-field",
        IoError::Shape { .. } => "shape",
        IoError::Dtype { .. } => "dtype",
        IoError::Block { .. } => "block",
        IoError::Hdf5 { .. } => "hdf5",
        IoError::File { .. } => "file",
        IoError::OtherRank { .. } => "other-rank",
        _ => "other",
    }
}

/// `rankwise ckpt verify FILE` must answer as `verify` did: 0 when it accepts, 1 (or 2 for a file
/// that is not HDF5 at all) when it rejects; never a crash or a hang.
fn cli_verify(bin: &str, file: &Path, accepted: bool) -> Option<&'static str> {
    let cmd = Command::new(bin).args(["ckpt", "verify"]).arg(file).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let mut child = cmd.unwrap_or_else(|e| fail(&format!("cannot run {bin}: {e}")));
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().ok().flatten() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(3) {
            let _ = child.kill();
            let _ = child.wait();
            return Some("cli-hang");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    match (status.code(), accepted) {
        (None, _) => Some("cli-crash"),
        (Some(0), true) | (Some(1 | 2), false) => None,
        _ => Some("cli-disagrees"),
    }
}

// ---------------------------------------------------------------------------------------------
// restore: every rank of a job, a fresh checkpoint directory per case

static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
static CASE: AtomicU64 = AtomicU64::new(0);

/// A hung collective costs seconds, not the allocation: past the deadline, say which case and
/// end this rank (mpirun then ends the others).
fn watchdog(rank: i32, secs: u64) {
    let t0 = Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        let d = DEADLINE_MS.load(Ordering::SeqCst);
        if d != 0 && t0.elapsed().as_millis() as u64 > d {
            say(format!("HANG {} rank {rank}: the case took more than {secs} s", CASE.load(Ordering::SeqCst)));
            unsafe { libc::_exit(86) };
        }
    });
    DEADLINE_MS.store(0, Ordering::SeqCst);
    START.get_or_init(|| t0);
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn arm(seed: u64, secs: u64) {
    CASE.store(seed, Ordering::SeqCst);
    let now = START.get().map_or(0, |t| t.elapsed().as_millis() as u64);
    DEADLINE_MS.store(now + secs * 1000, Ordering::SeqCst);
}

/// Outcomes, as numbers every rank can compare.
const OUTCOMES: [&str; 5] = ["restored-newer", "restored-older", "none", "error", "misjudged"];

/// Collective. Each case: a fresh directory with the intact step 1 (except one case in four) and
/// a damaged step 2; every rank restores it into memory that holds a sentinel.
fn restore_batch(rt: &Runtime, root: &Path, from: u64, to: u64, secs: u64) -> Result<(), Error> {
    let w = rt.world();
    let (rank, size) = (w.rank(), w.size());
    let mut base = Vec::new();
    for v in VARIANTS {
        base.push((v, load_base(root, v, 1)?, load_base(root, v, 2)?));
    }
    let dir = CheckpointDir::new(root.join(format!("restore-np{size}")));
    let mut fields = Fields::new(rt)?;
    let mut want = Vec::new();
    for salt in [1.0, 2.0] {
        fields.fill(salt);
        want.push(fields.bits());
    }
    fields.sentinel();
    let sentinel = fields.bits();
    watchdog(rank, secs);
    for seed in from..to {
        let (variant, older, newer) = &base[(seed % VARIANTS.len() as u64) as usize];
        let with_older = seed % 4 != 3;
        arm(seed, secs);
        let mut what = String::new();
        let mut verified = 0u8;
        if rank == 0 {
            let _ = std::fs::remove_dir_all(dir.root());
            std::fs::create_dir_all(dir.root())?;
            if with_older {
                std::fs::write(dir.path_for(1), &older.bytes)?;
            }
            let mut bytes = newer.bytes.clone();
            what = mutate::mutate(&mut bytes, seed, &newer.targets);
            say(format!("start {seed} {variant} {} {what}", if with_older { "older" } else { "alone" }));
            std::fs::write(dir.path_for(2), &bytes)?;
            // What verify says of the damaged file, for the agreement check: in a child process,
            // so that a crash there leaves the restore of this case to be tried.
            verified = match child_verify(&dir.path_for(2)) {
                Ok(accepted) => accepted as u8,
                Err(how) => {
                    say(format!("verify {seed} {how}"));
                    2
                }
            };
            say("phase restore".into());
        }
        arm(seed, secs);
        w.barrier();
        fields.sentinel();
        let r = dir.restore(w, |ck| fields.load(ck));
        let mem = fields.bits();
        let (outcome, bad_info) = match &r {
            Ok(Some(r)) if r.info.step == 2 => (0u8, (!same_info(&r.info, &newer.info)).then(|| info_diff(&r.info, &newer.info))),
            Ok(Some(r)) => (1, (!same_info(&r.info, &older.info)).then(|| info_diff(&r.info, &older.info))),
            Ok(None) => (2, None),
            Err(IoError::Param { .. } | IoError::Version { .. }) => (4, None),
            Err(_) => (3, None),
        };
        // The memory must hold the restored checkpoint's data, or what it held before.
        let bad_mem = match outcome {
            0 => mem != want[1],
            1 => mem != want[0],
            _ => mem != sentinel,
        };
        let flags = (bad_mem as u8) | (bad_info.is_some() as u8) << 1;
        let (mut lo, mut hi, mut any) = (0u8, 0u8, 0u8);
        w.all_reduce_into(&outcome, &mut lo, SystemOperation::min());
        w.all_reduce_into(&outcome, &mut hi, SystemOperation::max());
        w.all_reduce_into(&flags, &mut any, SystemOperation::bitwise_or());
        DEADLINE_MS.store(0, Ordering::SeqCst);
        if rank == 0 {
            let mut fails: Vec<String> = Vec::new();
            if lo != hi {
                fails.push("ranks-differ".to_string());
            }
            if any & 1 != 0 {
                fails.push((if outcome < 2 { "wrong-data" } else { "memory-changed" }).to_string());
            }
            if any & 2 != 0 {
                fails.push(bad_info.clone().unwrap_or_else(|| "wrong-metadata".into()));
            }
            if outcome == 4 {
                fails.push("damage-taken-for-another-run".to_string());
            }
            if (outcome == 2 || outcome == 3) && with_older {
                fails.push("older-not-restored".to_string());
            }
            if verified == 2 {
                fails.push("verify-crashed-or-hung".into());
            } else if (verified == 1) != (outcome == 0) {
                fails.push((if verified == 1 { "verify-accepts-restore-rejects" } else { "restore-accepts-verify-rejects" }).to_string());
            }
            let mut name = OUTCOMES[outcome as usize].to_string();
            if let Err(e) = &r {
                name += &format!("-{}", kind(e));
            }
            let status = if fails.is_empty() { "ok".to_string() } else { format!("FAIL:{}", fails.join(",")) };
            let older = if with_older { "older" } else { "alone" };
            let detail = match &r {
                Err(e) => format!(" | {e}"),
                _ => String::new(),
            };
            say(format!("done {seed} {name} {status} {variant} {older} {what}{detail}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The campaign: batches in child processes, crashes and hangs told apart, counts

#[allow(clippy::too_many_arguments)]
fn campaign(name: &str, root: &Path, base_np: u64, np: Option<u64>, batch_cmd: Vec<String>, from: u64, cases: u64, batch: u64, timeout: Duration) -> i32 {
    let me = std::env::current_exe().expect("own path");
    std::fs::create_dir_all(root).unwrap_or_else(|e| fail(&format!("{}: {e}", root.display())));
    if !bases(root, VARIANTS[VARIANTS.len() - 1]).path_for(2).exists() {
        let mut cmd = mpirun(base_np);
        cmd.arg(&me).arg("write").arg(root);
        let st = cmd.status().unwrap_or_else(|e| fail(&format!("cannot run mpirun: {e}")));
        if !st.success() {
            fail("writing the base checkpoints failed");
        }
    }
    let t0 = Instant::now();
    let (end, mut seed) = (from + cases, from);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let (mut done, mut crashes, mut hangs, mut failed) = (0u64, 0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    let log = root.join(format!("{name}-stderr.log"));
    while seed < end {
        let to = (seed + batch).min(end);
        let mut cmd = match np {
            Some(n) => mpirun(n),
            None => Command::new(&me),
        };
        if np.is_some() {
            cmd.arg(&me);
        }
        cmd.args(&batch_cmd).arg(format!("from={seed}")).arg(format!("to={to}"));
        let errs = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(errs);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap_or_else(|e| fail(&format!("cannot start a batch: {e}")));
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut current, mut hang, mut timed_out) = (None::<u64>, None::<String>, false);
        let (mut case, mut phase) = (String::new(), "");
        loop {
            match rx.recv_timeout(timeout) {
                Ok(line) => {
                    let mut words = line.split_whitespace();
                    match words.next() {
                        Some("start") => {
                            current = words.next().and_then(|s| s.parse().ok());
                            case = words.collect::<Vec<_>>().join(" ");
                            phase = if np.is_some() { "in verify on rank 0" } else { "in verify" };
                        }
                        Some("phase") => phase = "in the restore",
                        // verify, in its own child, crashed or hung on this case's file too
                        Some("verify") => case += &format!("; verify {}", words.skip(1).collect::<Vec<_>>().join(" ")),
                        Some("done") => {
                            let s: u64 = words.next().and_then(|s| s.parse().ok()).unwrap_or(seed);
                            let outcome = words.next().unwrap_or("?").to_string();
                            *counts.entry(outcome).or_default() += 1;
                            done += 1;
                            if words.next().is_some_and(|st| st.starts_with("FAIL")) {
                                failed += 1;
                                failures.push(line.clone());
                                println!("{name} failure: seed {s}: {line}");
                            }
                            current = None;
                            seed = s + 1;
                        }
                        Some("HANG") => hang = Some(line.clone()),
                        _ => {}
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait().expect("wait");
        if let Some(s) = current {
            // The telling line of the child's stderr: a signal named by mpirun, else the last one.
            let errs = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = errs.lines().map(str::trim).filter(|l| l.chars().any(char::is_alphanumeric)).collect();
            let last_err = lines.iter().rev().find(|l| l.contains("signal")).or(lines.last()).copied().unwrap_or("").to_string();
            let line = if hang.is_some() || timed_out {
                hangs += 1;
                format!("HANG seed {s} ({case}) {phase}: {}", hang.unwrap_or_else(|| format!("no answer in {timeout:?}")))
            } else {
                crashes += 1;
                format!("CRASH seed {s} ({case}) {phase}: the batch ended with {status}; last stderr line: {last_err}")
            };
            println!("{name} failure: {line}");
            failures.push(line);
            done += 1;
            seed = s + 1;
        } else if seed < to {
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            fail(&format!("a {name} batch ended ({status}) before its cases at seed {seed}:\n{err}"));
        }
    }
    let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let ranks = np.map_or(String::new(), |n| format!(" on {n} ranks"));
    println!(
        "{name} campaign: {done} mutated checkpoints (seeds {from}..{end}){ranks} in {:.0} s: {} | crashes {crashes}, hangs {hangs}, failed cases {failed}",
        t0.elapsed().as_secs_f64(),
        counts.join(", ")
    );
    if failures.is_empty() { 0 } else { 1 }
}

/// `mpirun -np N` for a single-host job here (the environment of tests/common).
fn mpirun(np: u64) -> Command {
    let mut cmd = Command::new(std::env::var("RANKWISE_MPIRUN").unwrap_or_else(|_| "mpirun".into()));
    for (k, v) in [
        ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
        ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
        ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
        ("OMPI_MCA_btl", "self,vader"),
        ("OMPI_MCA_oob_tcp_if_include", "lo"),
        ("OMPI_MCA_mpi_yield_when_idle", "1"),
        ("OPENBLAS_NUM_THREADS", "1"),
        ("RAYON_NUM_THREADS", "1"),
        ("RUST_BACKTRACE", "0"),
    ] {
        cmd.env(k, v);
    }
    cmd.arg("-np").arg(np.to_string());
    cmd
}
