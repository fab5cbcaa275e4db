//! The progress contract between a program and the `rankwise` launcher that supervises it.
//!
//! The launcher sets [`STATUS_FILE_ENV`] to a path; rank 0 reports through [`Progress`], which
//! replaces that file atomically (write a temporary beside it, then rename) with a few lines of
//! TOML, so the launcher never reads half a file:
//!
//! ```toml
//! step = 120
//! time = 0.06
//! checkpoint = "ckpt/heat-000120.h5"   # newest complete checkpoint; absent before the first
//! ```
//!
//! Rank 0 writes it at most once per [`STATUS_INTERVAL`] (a step can take a millisecond; a
//! parallel filesystem should not see a thousand renames a second) and at every checkpoint.
//!
//! After a failure the launcher relaunches the program with [`RESTART_COUNT_ENV`] set to the
//! number of the relaunch; the program itself restores its newest checkpoint that verifies and
//! says which (one path: the launcher does not choose for it). Without a launcher both ends
//! are no-ops.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Runtime;

/// Where rank 0 writes its [`Status`]; set by the launcher.
pub const STATUS_FILE_ENV: &str = "RANKWISE_STATUS_FILE";
/// How many times the launcher has relaunched the program (1 for the first relaunch).
pub const RESTART_COUNT_ENV: &str = "RANKWISE_RESTART_COUNT";

/// How far a run got: the last step taken, its simulated time, and the newest checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub step: u64,
    pub time: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
}

impl Status {
    /// Replace the file at `path` atomically with this status.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let text = toml::to_string(self).map_err(io::Error::other)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    /// The status in the file at `path`.
    pub fn read(path: &Path) -> io::Result<Status> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.message().to_string()))
    }
}

/// How often [`Progress::step`] writes the status file at most.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Rank 0's reporter of progress; on other ranks, and when no launcher asked, it does nothing.
#[derive(Debug)]
pub struct Progress {
    file: Option<PathBuf>,
    status: Status,
    interval: Duration,
    /// When the file was last written (None: never), and whether `status` changed since.
    written: Option<Instant>,
    pending: bool,
}

impl Progress {
    /// The reporter for this rank, writing at most once per [`STATUS_INTERVAL`]; every rank may
    /// make one and call it alike.
    pub fn new(rt: &Runtime) -> Progress {
        Progress::with_interval(rt, STATUS_INTERVAL)
    }

    /// As [`Progress::new`], writing at most once per `interval` (and at every checkpoint).
    pub fn with_interval(rt: &Runtime, interval: Duration) -> Progress {
        Progress::to(std::env::var_os(STATUS_FILE_ENV).filter(|_| rt.is_root()).map(PathBuf::from), interval)
    }

    fn to(file: Option<PathBuf>, interval: Duration) -> Progress {
        Progress { file, status: Status::default(), interval, written: None, pending: false }
    }

    /// Report that `step` is done at simulated `time`. Cheap enough for every step: the file
    /// is written when [`STATUS_INTERVAL`] has passed since it last was (on rank 0 only).
    pub fn step(&mut self, step: u64, time: f64) -> io::Result<()> {
        self.status.step = step;
        self.status.time = time;
        self.pending = true;
        if self.written.is_none_or(|t| t.elapsed() >= self.interval) {
            self.flush()?;
        }
        Ok(())
    }

    /// Report a complete checkpoint at `path`, written after `step`, now: the newest one a
    /// relaunch can resume from.
    pub fn checkpointed(&mut self, step: u64, time: f64, path: &Path) -> io::Result<()> {
        self.status.checkpoint = Some(path.to_path_buf());
        self.status.step = step;
        self.status.time = time;
        self.pending = true;
        self.flush()
    }

    /// Write what the last calls reported, if the file does not say it yet (before an exit
    /// that is not the end of the run, or a deliberate stop).
    pub fn flush(&mut self) -> io::Result<()> {
        if let (true, Some(f)) = (self.pending, &self.file) {
            self.status.write(f)?;
            self.written = Some(Instant::now());
        }
        self.pending = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("rankwise-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("status");
        let s = Status { step: 120, time: 0.06, checkpoint: None };
        s.write(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "step = 120\ntime = 0.06\n");
        assert_eq!(Status::read(&f).unwrap(), s);
        let s = Status { checkpoint: Some("ckpt/heat-000120.h5".into()), ..s };
        s.write(&f).unwrap();
        assert_eq!(Status::read(&f).unwrap(), s);
        assert!(!dir.join("status.tmp").exists());
        std::fs::write(&f, "step = \"x\"\n").unwrap();
        assert_eq!(Status::read(&f).unwrap_err().kind(), io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn progress_writes_on_an_interval_and_at_every_checkpoint() {
        let dir = std::env::temp_dir().join(format!("rankwise-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("status");
        let mut p = Progress::to(Some(f.clone()), Duration::from_secs(3600));
        let step = |f: &Path| Status::read(f).unwrap().step;
        p.step(1, 0.1).unwrap();
        assert_eq!(step(&f), 1, "the first step is written at once");
        for s in 2..=1000 {
            p.step(s, s as f64 * 0.1).unwrap();
        }
        assert_eq!(step(&f), 1, "no more writes within the interval");
        p.checkpointed(1000, 100.0, Path::new("ckpt/c-1000.h5")).unwrap();
        assert_eq!(Status::read(&f).unwrap().checkpoint.as_deref(), Some(Path::new("ckpt/c-1000.h5")));
        p.step(1001, 100.1).unwrap();
        assert_eq!(step(&f), 1000);
        p.flush().unwrap();
        assert_eq!(step(&f), 1001);
        // A zero interval writes every step.
        let mut p = Progress::to(Some(f.clone()), Duration::ZERO);
        p.step(7, 0.7).unwrap();
        p.step(8, 0.8).unwrap();
        assert_eq!(step(&f), 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
