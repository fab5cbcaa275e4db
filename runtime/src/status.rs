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
//! After a failure the launcher relaunches the program with [`RESTART_ENV`] set to that
//! checkpoint, which [`restart_from`] returns, and [`RESTART_COUNT_ENV`] to the number of the
//! relaunch. Without a launcher both ends are no-ops.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Runtime;

/// Where rank 0 writes its [`Status`]; set by the launcher.
pub const STATUS_FILE_ENV: &str = "RANKWISE_STATUS_FILE";
/// The checkpoint a relaunched program resumes from; set by the launcher.
pub const RESTART_ENV: &str = "RANKWISE_RESTART";
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

/// Rank 0's reporter of progress; on other ranks, and when no launcher asked, it does nothing.
#[derive(Debug)]
pub struct Progress {
    file: Option<PathBuf>,
    status: Status,
}

impl Progress {
    /// The reporter for this rank; every rank may make one and call it alike.
    pub fn new(rt: &Runtime) -> Progress {
        let file = std::env::var_os(STATUS_FILE_ENV).filter(|_| rt.is_root()).map(PathBuf::from);
        // Until this run writes its own, the checkpoint it resumed from is the newest.
        Progress { file, status: Status { checkpoint: restart_from(), ..Status::default() } }
    }

    /// Report that `step` is done at simulated `time`. Cheap enough for every step: one small
    /// file written and renamed, on rank 0 only.
    pub fn step(&mut self, step: u64, time: f64) -> io::Result<()> {
        self.status.step = step;
        self.status.time = time;
        self.publish()
    }

    /// Report a complete checkpoint at `path`, written after `step`: a relaunch resumes from it.
    pub fn checkpointed(&mut self, step: u64, time: f64, path: &Path) -> io::Result<()> {
        self.status.checkpoint = Some(path.to_path_buf());
        self.step(step, time)
    }

    fn publish(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => self.status.write(f),
            None => Ok(()),
        }
    }
}

/// The checkpoint to resume from, when the launcher relaunched this program after a failure.
pub fn restart_from() -> Option<PathBuf> {
    std::env::var_os(RESTART_ENV).filter(|p| !p.is_empty()).map(PathBuf::from)
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
}
