//! Recovery inside an allocation after a node is lost (jobs submitted with `--no-kill`, which
//! Slurm keeps running with the dead node dropped from their node list): which nodes are left,
//! where to relaunch, and the record of recoveries kept in the job's `Comment` for
//! `rankwise status`.
//!
//! What is left comes from the controller, never from the environment: `SLURM_JOB_NODELIST` is
//! the start-up list and Slurm does not update it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::hostlist::expand_hostlist;
use crate::{Error, Result, Slurm};

/// The shape a job runs in: `nodes` nodes of `ranks_per_node` ranks, never fewer than
/// `min_nodes` nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub nodes: usize,
    pub ranks_per_node: usize,
    pub min_nodes: usize,
}

/// Where to (re)launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The full shape: on the nodes that ran before where they survive, then on spares.
    Full { nodes: Vec<String> },
    /// Too few nodes for the full shape but at least the minimum: fewer ranks.
    Fewer { nodes: Vec<String>, ranks: usize },
    /// Fewer nodes than the minimum are left.
    TooFew { left: usize, min_nodes: usize },
}

impl Placement {
    /// The nodes and rank count to launch on, `None` for [`Placement::TooFew`].
    pub fn launch(&self, shape: &Shape) -> Option<(&[String], usize)> {
        match self {
            Placement::Full { nodes } => Some((nodes, shape.nodes * shape.ranks_per_node)),
            Placement::Fewer { nodes, ranks } => Some((nodes, *ranks)),
            Placement::TooFew { .. } => None,
        }
    }
}

/// Choose nodes from `alive` (in the allocation's order) for `shape`, keeping those of `ran_on`
/// that survive first: their node-local checkpoints are still there.
pub fn place(shape: &Shape, alive: &[String], ran_on: &[String]) -> Placement {
    let min = shape.min_nodes.max(1);
    if alive.len() < min {
        return Placement::TooFew { left: alive.len(), min_nodes: min };
    }
    let mut nodes: Vec<String> = ran_on.iter().filter(|n| alive.contains(n)).cloned().collect();
    nodes.extend(alive.iter().filter(|n| !ran_on.contains(n)).cloned());
    nodes.truncate(shape.nodes);
    if nodes.len() == shape.nodes {
        Placement::Full { nodes }
    } else {
        let ranks = nodes.len() * shape.ranks_per_node;
        Placement::Fewer { nodes, ranks }
    }
}

/// Slurm node states (`sinfo %T`) of a node that cannot run a step: down, drained, failing, or
/// not responding (a trailing `*`).
pub fn is_unusable(state: &str) -> bool {
    let s = state.to_ascii_lowercase();
    s.ends_with('*') || ["down", "drain", "fail", "maint", "reboot", "power"].iter().any(|b| s.starts_with(b))
}

/// One recovery, as logged and recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Which nodes were lost.
    pub lost: Vec<String>,
    /// When (UTC, `HH:MM:SS`).
    pub at: String,
    /// Ranks and nodes from now on.
    pub ranks: usize,
    pub nodes: Vec<String>,
}

impl std::fmt::Display for Recovery {
    /// The log line's body: `lost rw-node2 at 10:02:03 UTC, now 4 ranks on rw-node1,rw-node3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lost {} at {} UTC, now {} ranks on {}", self.lost.join(","), self.at, self.ranks, self.nodes.join(","))
    }
}

impl Recovery {
    /// The recovery as one word, for the job's record: `lost:n2@10:02:03Z,ranks:4,nodes:n1+n3`.
    pub fn word(&self) -> String {
        format!("lost:{}@{}Z,ranks:{},nodes:{}", self.lost.join("+"), self.at, self.ranks, self.nodes.join("+"))
    }
}

/// The job's record of recoveries: `.rankwise-recoveries-ID` in its working directory (which
/// every node sees), one [`Recovery::word`] a line. A file, not the job's `Comment`: the
/// controller refuses updates to a job for a while after it lost a node.
pub fn recovery_record(workdir: &Path, job: &str) -> PathBuf {
    workdir.join(format!(".rankwise-recoveries-{job}"))
}

/// Append one recovery to the job's record.
pub fn record_recovery(workdir: &Path, job: &str, r: &Recovery) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(recovery_record(workdir, job))?;
    writeln!(f, "{}", r.word())
}

/// How many recoveries the job's record holds, and the last one's word (`None` if none).
pub fn read_recoveries(workdir: &Path, job: &str) -> Option<(usize, String)> {
    let text = std::fs::read_to_string(recovery_record(workdir, job)).ok()?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    Some((lines.len(), lines.last()?.to_string()))
}

impl Slurm {
    /// The nodes of job `id` that can run a step now: the job's current node list from the
    /// controller, without those `sinfo` calls down, drained or not responding.
    pub fn nodes_left(&self, id: &str) -> Result<Vec<String>> {
        let job = self.show_job(id)?.into_iter().next().ok_or_else(|| Error::Parse(format!("scontrol knows no job {id}")))?;
        let list = job.get("NodeList").filter(|l| !l.is_empty() && *l != "(null)");
        let Some(list) = list else { return Ok(Vec::new()) };
        let nodes = expand_hostlist(list)?;
        let out = self.query("sinfo", &["--noheader", "--Node", "--format=%N %T", "--nodes", list])?;
        let unusable: Vec<&str> = out.lines().filter_map(|l| l.split_once(' ')).filter(|(_, s)| is_unusable(s.trim())).map(|(n, _)| n).collect();
        Ok(nodes.into_iter().filter(|n| !unusable.contains(&n.as_str())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn spares_first_then_fewer_ranks_then_a_floor() {
        let shape = Shape { nodes: 2, ranks_per_node: 2, min_nodes: 1 };
        // First launch: the first nodes of the allocation; the rest are spares.
        assert_eq!(place(&shape, &names(&["a", "b", "c"]), &[]), Placement::Full { nodes: names(&["a", "b"]) });
        // `a` lost: `b` keeps its place (its node-local files), the spare `c` joins.
        assert_eq!(place(&shape, &names(&["b", "c"]), &names(&["a", "b"])), Placement::Full { nodes: names(&["b", "c"]) });
        // No spare: fewer ranks.
        let p = place(&shape, &names(&["b"]), &names(&["a", "b"]));
        assert_eq!(p, Placement::Fewer { nodes: names(&["b"]), ranks: 2 });
        assert_eq!(p.launch(&shape), Some((&names(&["b"])[..], 2)));
        // Below the minimum: refuse, saying how many are left.
        let floor = Shape { min_nodes: 2, ..shape };
        assert_eq!(place(&floor, &names(&["b"]), &names(&["a", "b"])), Placement::TooFew { left: 1, min_nodes: 2 });
        assert_eq!(place(&shape, &[], &[]), Placement::TooFew { left: 0, min_nodes: 1 });
    }

    #[test]
    fn unusable_states() {
        for s in ["down", "down*", "drained", "draining", "idle*", "mixed*", "fail", "allocated*"] {
            assert!(is_unusable(s), "{s}");
        }
        for s in ["idle", "mixed", "allocated", "completing"] {
            assert!(!is_unusable(s), "{s}");
        }
    }

    #[test]
    fn records_append_one_line_per_recovery() {
        let dir = std::env::temp_dir().join(format!("rankwise-recoveries-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_recoveries(&dir, "7"), None);
        let r = Recovery { lost: names(&["n2"]), at: "10:02:03".into(), ranks: 4, nodes: names(&["n1", "n3"]) };
        assert_eq!(r.to_string(), "lost n2 at 10:02:03 UTC, now 4 ranks on n1,n3");
        record_recovery(&dir, "7", &r).unwrap();
        let r2 = Recovery { lost: names(&["n1"]), at: "10:03:00".into(), ranks: 2, nodes: names(&["n3"]) };
        record_recovery(&dir, "7", &r2).unwrap();
        assert_eq!(read_recoveries(&dir, "7"), Some((2, "lost:n1@10:03:00Z,ranks:2,nodes:n3".into())));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
