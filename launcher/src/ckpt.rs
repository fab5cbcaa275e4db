//! `rankwise ckpt list|verify|inspect`: the serial checkpoint tools of rankwise-io (no MPI).

use std::path::Path;

use anyhow::{bail, Result};
use rankwise_io::{inspect, verify, CheckpointDir, CheckpointInfo, IoError};

/// One line per checkpoint in `dir`, oldest first: step, time, size, writing ranks, validity; then
/// one per file of the node-local level in `local` that this host sees.
pub fn list(dir: &Path, local: Option<&Path>) -> Result<i32> {
    if !dir.is_dir() {
        bail!("no checkpoint directory {}", dir.display());
    }
    let found = CheckpointDir::new(dir).checkpoints()?;
    if found.is_empty() {
        println!("no checkpoints in {}", dir.display());
    }
    for (step, path) in found {
        let meta = inspect(&path).ok();
        let (time, ranks) = meta.map_or(("?".into(), "?".into()), |i| (i.time.to_string(), i.ranks.to_string()));
        let state = match verify(&path) {
            Ok(_) => "valid".to_string(),
            Err(e) => format!("invalid: {}", reason(&e)),
        };
        println!("step={step} time={time} size={} ranks={ranks} {state}  {}", size(&path), path.display());
    }
    if let Some(root) = local {
        for f in rankwise_io::local::list(root) {
            let state = f.valid.as_ref().map_or_else(|e| format!("invalid: {}", reason(e)), |()| "valid".into());
            let kind = if f.own { "own" } else { "partner copy" };
            println!("local step={} rank={} of {} {kind} size={} {state}  {}", f.step, f.rank, f.ranks, size(&f.path), f.path.display());
        }
    }
    Ok(0)
}

/// Check every field of FILE, or of every checkpoint in DIR, against its checksum; 1 if any is damaged.
pub fn verify_cmd(path: &Path) -> Result<i32> {
    let files = if path.is_dir() {
        let dir = CheckpointDir::new(path);
        let files: Vec<_> = dir.checkpoints()?.into_iter().map(|(_, p)| p).collect();
        if files.is_empty() {
            bail!("no checkpoints in {}", path.display());
        }
        files
    } else {
        checkpoint_file(path)?;
        vec![path.to_path_buf()]
    };
    let mut bad = 0;
    for f in &files {
        match verify(f) {
            Ok(i) => println!("ok {} (step {}, {} fields)", f.display(), i.step, i.fields.len()),
            Err(e) => {
                bad += 1;
                println!("invalid {}: {}", f.display(), reason(&e));
            }
        }
    }
    if path.is_dir() {
        let (newest, _) = CheckpointDir::new(path).newest_valid()?;
        println!("newest valid: {}", newest.map_or("none".into(), |i| format!("step {}", i.step)));
    }
    Ok(if bad > 0 { 1 } else { 0 })
}

/// A checkpoint's metadata: step, time, versions, ranks, parameters, fields.
pub fn inspect_cmd(path: &Path) -> Result<i32> {
    checkpoint_file(path)?;
    let i: CheckpointInfo = inspect(path)?;
    println!("file      {} ({})", path.display(), size(path));
    println!("step      {}", i.step);
    println!("time      {}", i.time);
    println!("ranks     {}", i.ranks);
    println!("format    {} (written by Rankwise {})", i.format_version, i.rankwise_version);
    for (k, v) in &i.params {
        println!("param     {k} = {v}");
    }
    for f in &i.fields {
        println!("field     {} {} {:?} checksum {:016x}", f.name, f.dtype, f.shape, f.checksum);
    }
    Ok(0)
}

/// Bad input (exit 2) unless `path` is an HDF5 file.
fn checkpoint_file(path: &Path) -> Result<()> {
    let mut magic = [0u8; 8];
    let ok = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
    match ok {
        Err(e) if !path.exists() => bail!("{}: {e}", path.display()),
        _ if path.is_dir() => bail!("{} is a directory, not a checkpoint file", path.display()),
        Ok(()) if &magic == b"\x89HDF\r\n\x1a\n" => Ok(()),
        _ => bail!("{} is not a checkpoint (not an HDF5 file)", path.display()),
    }
}

fn reason(e: &IoError) -> String {
    match e {
        IoError::Corrupt { reason, .. } => reason.clone(),
        e => e.to_string(),
    }
}

fn size(path: &Path) -> String {
    let n = std::fs::metadata(path).map_or(0, |m| m.len()) as f64;
    match n {
        n if n < 1024.0 => format!("{n} B"),
        n if n < 1024.0 * 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{:.1} MiB", n / 1024.0 / 1024.0),
    }
}
