//! Recovery inside a Slurm allocation (`rankwise run --restarts K` under srun, in a job with
//! `--no-kill`): after a failed step, ask Slurm which nodes are left, and relaunch there, on a
//! spare with the same ranks or on fewer ranks. And a standby supervisor on a second node that
//! takes over when the node running the batch script (and this supervisor) is lost.
//!
//! Why a standby and not a requeue or a follow-up job: under `--no-kill` Slurm keeps a job that
//! lost its batch host RUNNING on its other nodes, with no script left to act, so neither a
//! requeue nor an `afternotok` dependency ever fires; and a requeue would cost the credential
//! wait plus a new allocation (41-43 s here) where a relaunch inside the allocation costs a step
//! launch. The standby acts only once Slurm has dropped the batch host from the job's node list
//! (declared it DOWN and ended everything of the job on it), so the two can never both run.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rankwise_slurm::{place, read_recoveries, record_recovery, Job, Placement, Recovery, Shape, Slurm};

use crate::launch::Request;

/// Names the batch host in a standby supervisor's environment.
pub const STANDBY_ENV: &str = "RANKWISE_STANDBY_FOR";

/// How often a standby asks the controller about the batch host.
const STANDBY_POLL: Duration = Duration::from_secs(1);

/// The job this supervisor relaunches in.
pub struct InAllocation {
    slurm: Slurm,
    pub job: String,
    shape: Shape,
    /// The nodes of the last launch.
    ran_on: Vec<String>,
    /// Recoveries so far (continued from the job's record by a standby that takes over).
    pub recoveries: u32,
    /// The job's working directory, which holds its record of recoveries.
    workdir: PathBuf,
}

/// What a failed step means.
pub enum Verdict {
    /// No node was lost: an ordinary failure.
    NoLoss,
    /// Nodes were lost; `req` now names the nodes and ranks to relaunch on.
    Relaunch(Recovery),
    /// Too few nodes are left: the final message.
    GiveUp(String),
}

impl InAllocation {
    /// For `np` ranks (`ranks_per_node` each where given, else as the allocation spreads them)
    /// in the job of this environment; `None` outside Slurm.
    pub fn from_env(np: usize, ranks_per_node: Option<usize>, min_nodes: Option<usize>) -> Result<Option<InAllocation>> {
        let Some(job) = Job::from_env()? else { return Ok(None) };
        let nodes = job.nodes.len().max(1);
        let ppn = ranks_per_node.unwrap_or_else(|| np.div_ceil(nodes)).max(1);
        let shape = Shape { nodes: np.div_ceil(ppn), ranks_per_node: ppn, min_nodes: min_nodes.unwrap_or(1) };
        if shape.min_nodes > shape.nodes {
            bail!("--min-nodes {} is more than the {} nodes that {np} ranks need", shape.min_nodes, shape.nodes);
        }
        let slurm = Slurm::new();
        let id = job.id.to_string();
        let workdir = match slurm.show_job(&id).ok().and_then(|j| j.first()?.get("WorkDir").map(PathBuf::from)) {
            Some(d) => d,
            None => std::env::current_dir()?,
        };
        let recoveries = read_recoveries(&workdir, &id).map_or(0, |(n, _)| n as u32);
        Ok(Some(InAllocation { slurm, job: id, shape, ran_on: Vec::new(), recoveries, workdir }))
    }

    /// Place the first launch on the nodes Slurm has for the job now. `false` when Slurm
    /// cannot say (then the run goes on without recovery inside the allocation, as srun places it).
    pub fn first(&mut self, req: &mut Request) -> Result<bool> {
        let alive = match self.slurm.nodes_left(&self.job) {
            Ok(alive) => alive,
            Err(e) => {
                eprintln!("rankwise: warning: no recovery inside the allocation: cannot ask Slurm for the job's nodes: {e}");
                return Ok(false);
            }
        };
        match place(&self.shape, &alive, &[]) {
            Placement::TooFew { left, min_nodes } => bail!("job {}: {left} usable nodes, fewer than the minimum {min_nodes}", self.job),
            p => self.apply(&p, req),
        }
        Ok(true)
    }

    fn apply(&mut self, p: &Placement, req: &mut Request) {
        let (nodes, ranks) = p.launch(&self.shape).expect("a placement with nodes");
        req.np = ranks;
        req.nodelist = Some(nodes.to_vec());
        self.ran_on = nodes.to_vec();
    }

    /// After a failed step: were nodes lost (Slurm no longer counts them in the job, or calls
    /// them down or not responding)? If so, choose where to relaunch.
    pub fn after_failure(&mut self, req: &mut Request) -> Result<Verdict> {
        let alive = self.slurm.nodes_left(&self.job)?;
        let lost: Vec<String> = self.ran_on.iter().filter(|n| !alive.contains(n)).cloned().collect();
        if lost.is_empty() {
            return Ok(Verdict::NoLoss);
        }
        let p = place(&self.shape, &alive, &self.ran_on);
        if let Placement::TooFew { left, min_nodes } = p {
            return Ok(Verdict::GiveUp(format!(
                "rankwise: giving up: lost {}; {left} usable nodes left in job {}, fewer than the minimum {min_nodes} (--min-nodes)",
                lost.join(","),
                self.job
            )));
        }
        self.apply(&p, req);
        Ok(Verdict::Relaunch(self.record(lost, req.np)))
    }

    /// Count and record one recovery (for `rankwise status`).
    pub fn record(&mut self, lost: Vec<String>, ranks: usize) -> Recovery {
        self.recoveries += 1;
        let r = Recovery { lost, at: utc_now(), ranks, nodes: self.ran_on.clone() };
        if let Err(e) = record_recovery(&self.workdir, &self.job, &r) {
            eprintln!("rankwise: warning: cannot record the recovery in {}: {e}", self.workdir.display());
        }
        r
    }

    /// A standby that takes over ends the steps its lost supervisor launched: their srun died
    /// with the batch host, and Slurm would hold their CPUs for many seconds.
    pub fn cancel_orphan_steps(&self) {
        let mine = std::env::var("SLURM_STEP_ID").ok().map(|s| format!("{}.{s}", self.job));
        for step in self.slurm.steps(&self.job).unwrap_or_default() {
            let numbered = step.rsplit('.').next().is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()));
            if numbered && Some(&step) != mine.as_ref() {
                let _ = self.slurm.cancel(&step, None, false);
            }
        }
    }

    /// A standby that takes over writes where the batch script wrote: the job's output files.
    pub fn take_over_output(&self) -> Result<()> {
        let job = self.slurm.show_job(&self.job)?.into_iter().next().context("the job is gone")?;
        for (key, fd) in [("StdOut", 1), ("StdErr", 2)] {
            let Some(path) = job.get(key) else { continue };
            let f = std::fs::OpenOptions::new().append(true).create(true).open(path).with_context(|| format!("cannot open the job's {key} {path}"))?;
            // SAFETY: dup2 onto our own standard descriptors; `f` stays valid for the call.
            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&f), fd) };
        }
        Ok(())
    }

    /// Start a standby supervisor (this same command line) on a node of the job other than
    /// this one and outside the step's nodes where possible; `None` when the job has no other
    /// node. Its output goes to the job's own output files: this host may die.
    pub fn start_standby(&self) -> Option<Child> {
        let me = this_node();
        let alive = self.slurm.nodes_left(&self.job).ok()?;
        let others = alive.iter().filter(|n| **n != me);
        let node = others.clone().find(|n| !self.ran_on.contains(n)).or_else(|| others.last())?.clone();
        let mut c = Command::new("srun");
        step_vars().iter().for_each(|k| {
            c.env_remove(k);
        });
        // --overlap: the standby holds no CPU the program's steps need.
        c.args(["--overlap", "--nodes=1", "--ntasks=1", "--mpi=none", "--open-mode=append", "--quiet"])
            .arg(format!("--nodelist={node}"))
            // Its output goes nowhere until it takes over (then: the job's own files).
            .args(["--output=/dev/null", "--error=/dev/null"])
            .arg(std::env::current_exe().ok()?)
            .args(std::env::args_os().skip(1))
            .env(STANDBY_ENV, &me)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        match c.spawn() {
            Ok(child) => Some(child),
            Err(e) => {
                eprintln!("rankwise: warning: no standby supervisor: cannot start srun: {e}");
                None
            }
        }
    }
}

/// This node's name as Slurm knows it.
pub fn this_node() -> String {
    std::env::var("SLURMD_NODENAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes.
        unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned()
    })
}

/// The variables of the standby's own step that must not reach the steps it launches: srun
/// would read them as options (task and node counts, output files, the step's node list).
pub fn step_vars() -> Vec<String> {
    const JOB_LEVEL: [&str; 10] = [
        "SLURM_JOB_ID", "SLURM_JOBID", "SLURM_CONF", "SLURM_JOB_NODELIST", "SLURM_JOB_NAME", "SLURM_SUBMIT_DIR",
        "SLURM_CLUSTER_NAME", "SLURM_JOB_PARTITION", "SLURM_RESTART_COUNT", "SLURMD_NODENAME",
    ];
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("SLURM") && !JOB_LEVEL.contains(&k.as_str()) || k.starts_with("PMIX_") || k.starts_with("OMPI_MCA_orte"))
        .collect()
}

/// As a standby for `batch_host`: wait until Slurm drops that node from the job (it is dead,
/// and everything of the job on it with it); then `true`: supervise from here. `false`: the job
/// ended, or this standby was told to stop.
pub fn stand_by(alloc: &InAllocation, batch_host: &str, stop: impl Fn() -> bool) -> Result<bool> {
    loop {
        if stop() {
            return Ok(false);
        }
        let job = alloc.slurm.show_job(&alloc.job).context("standby: cannot ask Slurm about the job")?;
        let Some(job) = job.first() else { return Ok(false) };
        if job.state() != "RUNNING" {
            return Ok(false);
        }
        let nodes = job.get("NodeList").map(rankwise_slurm::expand_hostlist).transpose()?.unwrap_or_default();
        if !nodes.iter().any(|n| n == batch_host) {
            return Ok(true);
        }
        let t = Instant::now();
        while t.elapsed() < STANDBY_POLL && !stop() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl InAllocation {
    /// End the job once a standby has finished it: the batch script that would have ended it
    /// died with its host, and Slurm would keep the allocation to its time limit.
    pub fn finish(&self, code: i32) {
        if code == rankwise_slurm::EXIT_REQUEUE {
            // What the batch script would have done: the program checkpointed and stopped.
            eprintln!("rankwise: checkpoint written, requeueing job {} (as its batch script would)", self.job);
            match self.slurm.requeue(&self.job) {
                Ok(()) => return,
                Err(e) => eprintln!("rankwise: requeue of job {} failed: {e}; resubmit it to continue from the checkpoint", self.job),
            }
        }
        eprintln!("rankwise: job {} done after {} recoveries (exit code {code}); ending its allocation", self.job, self.recoveries);
        if let Err(e) = self.slurm.cancel(&self.job, None, false) {
            eprintln!("rankwise: cannot end job {}: {e}", self.job);
        }
    }
}

/// `HH:MM:SS`, UTC.
fn utc_now() -> String {
    let s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
