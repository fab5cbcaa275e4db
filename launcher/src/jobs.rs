//! Slurm jobs from the command line: `rankwise sbatch`, `sweep`, `status` and `cancel`, thin
//! wrappers over rankwise-slurm. Bad input fails with one line and exit 2 (through `main`); a
//! Slurm command that fails, with its message on one line and exit 1.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rankwise_slurm::{format_duration, signal_number, until, JobInfo, JobSpec, Launcher, Slurm, Sweep};

use crate::launch::{self, resolve_program, Choice, Flavour, Via};

/// A job as flags, named as sbatch names them; each overrides the `--spec` file's `[job]` section.
#[derive(clap::Args)]
pub struct JobArgs {
    /// TOML file whose [job] section describes the job (see rankwise_slurm::JobSpec).
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Job name.
    #[arg(short = 'J', long = "job-name", value_name = "NAME")]
    name: Option<String>,
    /// Nodes.
    #[arg(short = 'N', long, value_name = "N")]
    nodes: Option<u32>,
    /// Tasks (ranks) in all.
    #[arg(short = 'n', long, value_name = "N")]
    ntasks: Option<u32>,
    /// Tasks on each node.
    #[arg(long, value_name = "N")]
    ntasks_per_node: Option<u32>,
    /// CPUs per task: the threads of each rank.
    #[arg(short = 'c', long, value_name = "N")]
    cpus_per_task: Option<u32>,
    /// GPUs on each node.
    #[arg(long, value_name = "N")]
    gpus_per_node: Option<u32>,
    /// Time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS.
    #[arg(short = 't', long, value_name = "TIME")]
    time: Option<String>,
    /// Partition (queue).
    #[arg(short = 'p', long)]
    partition: Option<String>,
    /// Account charged.
    #[arg(short = 'A', long)]
    account: Option<String>,
    /// Quality of service.
    #[arg(short = 'q', long)]
    qos: Option<String>,
    /// File for stdout (%j: job id, %A: array id, %a: array task).
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<String>,
    /// File for stderr.
    #[arg(short = 'e', long, value_name = "FILE")]
    error: Option<String>,
    /// Working directory of the job.
    #[arg(short = 'D', long, value_name = "DIR")]
    chdir: Option<String>,
    /// A shell line run before the launch, e.g. "module load openmpi" (repeatable).
    #[arg(long, value_name = "LINE")]
    setup: Vec<String>,
    /// Signal to checkpoint on before the time limit: SECS before it, SIG, or SIG@SECS
    /// [default: USR2@120].
    #[arg(long, value_name = "[SIG@]SECS")]
    signal: Option<String>,
    /// Let a run that stopped with a checkpoint (exit 75) end the job instead of requeueing it.
    #[arg(long)]
    no_requeue: bool,
    /// Also allocate K spare nodes, kept idle: after a node is lost the job relaunches on a
    /// spare with the same rank count (needs -N and --ntasks-per-node).
    #[arg(long, value_name = "K")]
    spare_nodes: Option<u32>,
    /// After node losses, go on with no fewer than M nodes (default 1).
    #[arg(long, value_name = "M")]
    min_nodes: Option<u32>,
    /// Relaunches after a failure or a lost node, by `rankwise run --restarts K` [default: 3].
    #[arg(long, value_name = "K")]
    restarts: Option<u32>,
    /// Let Slurm end (or requeue) the whole job when a node is lost, instead of relaunching
    /// inside the allocation (leaves out `--no-kill`).
    #[arg(long)]
    kill_on_node_loss: bool,
    /// What starts the ranks in the job [default: rankwise].
    #[arg(long, value_enum)]
    launcher: Option<LauncherArg>,
    /// Print the batch script; submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// The program: a path, an example name, or a command on PATH [default: the spec's].
    program: Option<String>,
    /// Its arguments (everything after PROGRAM).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LauncherArg {
    /// rankwise run -n <the job's tasks>, which uses srun.
    Rankwise,
    /// srun --mpi=pmix (pmi2 when this host's mpirun is MPICH's).
    Srun,
    /// mpirun, which reads the allocation itself.
    Mpirun,
}

/// `rankwise sweep`: a job array over parameter sets.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// TOML file with a [sweep] section: `grid = { n = [64, 128] }` or `sets = [{ n = 64 }, ..]`,
    /// optionally `max_parallel` and `dir` (default "sweep": task i runs in sweep/i).
    #[arg(long, value_name = "FILE")]
    params: PathBuf,
    /// At most K tasks at once (overrides the file's max_parallel).
    #[arg(long, value_name = "K")]
    max_parallel: Option<u32>,
    #[command(flatten)]
    job: JobArgs,
}

impl JobArgs {
    /// The job: the spec file's section, the flags over it, the program found and made absolute
    /// (the job may start elsewhere), and this very rankwise to launch it.
    fn spec(&self) -> Result<JobSpec> {
        let mut s = match &self.spec {
            Some(f) => JobSpec::from_toml(&read(f)?).with_context(|| f.display().to_string())?,
            None => JobSpec::default(),
        };
        let pick = |flag: &Option<String>, spec: &mut Option<String>| {
            if flag.is_some() {
                spec.clone_from(flag);
            }
        };
        pick(&self.name, &mut s.name);
        pick(&self.time, &mut s.time);
        pick(&self.partition, &mut s.partition);
        pick(&self.account, &mut s.account);
        pick(&self.qos, &mut s.qos);
        pick(&self.output, &mut s.output);
        pick(&self.error, &mut s.error);
        pick(&self.chdir, &mut s.chdir);
        s.nodes = self.nodes.or(s.nodes);
        s.ntasks = self.ntasks.or(s.ntasks);
        s.ntasks_per_node = self.ntasks_per_node.or(s.ntasks_per_node);
        s.cpus_per_task = self.cpus_per_task.or(s.cpus_per_task);
        s.gpus_per_node = self.gpus_per_node.or(s.gpus_per_node);
        s.setup.extend(self.setup.iter().cloned());
        if let Some(sig) = &self.signal {
            (s.signal, s.signal_secs) = parse_signal(sig, &s.signal, s.signal_secs)?;
        }
        s.requeue &= !self.no_requeue;
        s.no_kill &= !self.kill_on_node_loss;
        s.spare_nodes = self.spare_nodes.unwrap_or(s.spare_nodes);
        s.min_nodes = self.min_nodes.or(s.min_nodes);
        s.restarts = self.restarts.unwrap_or(s.restarts);
        if let Some(l) = self.launcher {
            s.launcher = match l {
                LauncherArg::Rankwise => Launcher::Rankwise,
                LauncherArg::Srun => Launcher::Srun,
                LauncherArg::Mpirun => Launcher::Mpirun,
            };
        }
        if let Some(p) = &self.program {
            (s.program, s.args) = (p.clone(), self.args.clone());
        }
        if s.program.is_empty() {
            bail!("no program to run: give PROGRAM, or `program` in the [job] section of --spec");
        }
        s.program = absolute(&resolve_program(&s.program)?)?;
        if s.launcher == Launcher::Srun && s.mpi == JobSpec::default().mpi {
            // The PMI that the program's MPI speaks (else this host's mpirun's): MPICH under PMIx
            // sees only rank 0s.
            let flavour = match launch::linked_mpi(Path::new(&s.program)) {
                Some(l) => Some(l.flavour),
                None => match launch::choose(Choice::Mpirun, None) {
                    Ok(Via::Mpirun { flavour, .. }) => Some(flavour),
                    _ => None,
                },
            };
            if flavour == Some(Flavour::Mpich) {
                s.mpi = "pmi2".into();
            }
        }
        if s.launcher == Launcher::Rankwise && s.rankwise == JobSpec::default().rankwise {
            s.rankwise = absolute(&std::env::current_exe().context("cannot find this rankwise")?)?;
        }
        Ok(s)
    }
}

/// `--signal`: `SECS`, `SIG` or `SIG@SECS`, over the current signal and seconds.
fn parse_signal(text: &str, sig: &str, secs: u32) -> Result<(String, u32)> {
    let (name, given) = match text.split_once('@') {
        Some((n, s)) => (n, Some(s)),
        None if text.bytes().all(|b| b.is_ascii_digit()) => (sig, Some(text)),
        None => (text, None),
    };
    let secs = match given {
        Some(s) => s.parse().map_err(|_| anyhow::anyhow!("--signal {text:?}: `{s}` is not a number of seconds"))?,
        None => secs,
    };
    if signal_number(name).is_none() {
        bail!("--signal {text:?}: `{name}` is not one of USR1 USR2 TERM INT HUP URG");
    }
    Ok((name.to_string(), secs))
}

/// Print the batch script (`--dry-run`), or submit it and print the job id.
pub fn sbatch(job: &JobArgs) -> Result<i32> {
    let script = job.spec()?.script()?;
    submit(job.dry_run, &script)
}

/// As [`sbatch`], one job array over the parameter sets.
pub fn sweep(a: &SweepArgs) -> Result<i32> {
    let mut sweep = Sweep::from_toml(&read(&a.params)?).with_context(|| a.params.display().to_string())?;
    if let Some(k) = a.max_parallel {
        if k == 0 {
            bail!("--max-parallel must be at least 1");
        }
        sweep.max_parallel = Some(k);
    }
    let spec = a.job.spec()?;
    let script = spec.sweep_script(&sweep)?;
    if !a.job.dry_run && spec.output.is_none() {
        // Each task's output goes into its folder, which Slurm opens but does not make.
        let base = spec.chdir.as_deref().map(PathBuf::from).unwrap_or_default();
        for d in sweep.task_dirs() {
            let d = base.join(d);
            std::fs::create_dir_all(&d).with_context(|| format!("cannot make the task folder {}", d.display()))?;
        }
    }
    submit(a.job.dry_run, &script)
}

fn submit(dry_run: bool, script: &str) -> Result<i32> {
    if dry_run {
        print!("{script}");
        return Ok(0);
    }
    // sbatch keeps its own copy (`scontrol write batch_script JOBID` gives it back).
    let path = std::env::temp_dir().join(format!("rankwise-job-{}.sh", std::process::id()));
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    let id = Slurm::new().submit(&path, &[]);
    let _ = std::fs::remove_file(&path);
    Ok(match id {
        Ok(id) => {
            println!("{id}");
            0
        }
        Err(e) => failed(e),
    })
}

/// `rankwise status`: one line per record (an array has one per task) of scontrol, or of sacct
/// once the controller has forgotten the job.
pub fn status(id: &str) -> Result<i32> {
    check_job_id(id)?;
    let slurm = Slurm::new();
    let jobs = match slurm.show_job(id) {
        Ok(jobs) if !jobs.is_empty() => jobs,
        shown => match slurm.accounting(id) {
            Ok(jobs) if !jobs.is_empty() => jobs,
            _ => return Ok(failed(shown.err().unwrap_or_else(|| rankwise_slurm::Error::Parse(format!("Slurm knows no job {id}"))))),
        },
    };
    for j in &jobs {
        println!("{}", describe(j));
    }
    Ok(0)
}

/// `job=ID state=S reason=R restarts=N run_time=T time_left=T nodes=L exit_code=C:S`, with what
/// the record has.
fn describe(j: &JobInfo) -> String {
    let id = match (j.get("ArrayJobId"), j.get("ArrayTaskId")) {
        (Some(a), Some(t)) => format!("{a}_{t}"),
        _ => j.get("JobId").unwrap_or("?").to_string(),
    };
    let mut line = format!("job={id} state={}", j.state());
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            line.push_str(&format!(" {k}={v}"));
        }
    };
    let get = |k: &str| j.get(k).map(String::from);
    add("reason", get("Reason"));
    add("restarts", get("Restarts"));
    add("run_time", get("RunTime"));
    if j.state() == "RUNNING" {
        add("time_left", j.end_time().ok().flatten().map(|t| format_duration(until(t))));
    }
    add("nodes", get("NodeList").filter(|n| n != "(null)"));
    // Recoveries inside the allocation, as `rankwise run` records them in the working directory.
    if let (Some(dir), Some(id)) = (j.get("WorkDir"), j.get("JobId")) {
        if let Some((n, last)) = rankwise_slurm::read_recoveries(Path::new(dir), id) {
            add("recoveries", Some(n.to_string()));
            add("last_recovery", Some(last));
        }
    }
    add("exit_code", get("ExitCode"));
    line
}

/// `rankwise cancel`: end the job, or only send it a signal.
pub fn cancel(id: &str, signal: Option<&str>, batch: bool) -> Result<i32> {
    check_job_id(id)?;
    if let Some(s) = signal.filter(|s| signal_number(s).is_none() && s.strip_prefix("SIG").unwrap_or(s) != "KILL") {
        bail!("--signal {s:?} is not one of USR1 USR2 TERM INT HUP URG KILL");
    }
    if batch && signal.is_none() {
        bail!("--batch needs --signal (a cancel ends the whole job)");
    }
    Ok(match Slurm::new().cancel(id, signal, batch) {
        Ok(()) => {
            match signal {
                Some(s) => println!("job {id}: sent {s}{}", if batch { " to the batch script" } else { "" }),
                None => println!("job {id}: cancelled"),
            }
            0
        }
        Err(e) => failed(e),
    })
}

/// A job id as Slurm takes it: `123` or an array task `123_4`.
fn check_job_id(id: &str) -> Result<()> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match id.split_once('_') {
        Some((j, t)) => digits(j) && digits(t),
        None => digits(id),
    };
    if !ok {
        bail!("{id:?} is not a job id (like 1234, or 1234_5 for an array task)");
    }
    Ok(())
}

/// A Slurm command failed: its message, on one line; exit code 1.
fn failed(e: rankwise_slurm::Error) -> i32 {
    eprintln!("error: {}", e.to_string().split_whitespace().collect::<Vec<_>>().join(" "));
    1
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn absolute(p: &Path) -> Result<String> {
    let p = std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))?;
    p.into_os_string().into_string().map_err(|p| anyhow::anyhow!("{} is not UTF-8", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_forms() {
        let p = |t| parse_signal(t, "USR2", 120).map_err(|e| e.to_string());
        assert_eq!(p("60").unwrap(), ("USR2".into(), 60));
        assert_eq!(p("USR1").unwrap(), ("USR1".into(), 120));
        assert_eq!(p("SIGTERM@300").unwrap(), ("SIGTERM".into(), 300));
        assert!(p("KILL@5").unwrap_err().contains("`KILL` is not one of"));
        assert!(p("USR2@soon").unwrap_err().contains("`soon` is not a number of seconds"));
    }

    #[test]
    fn job_ids() {
        for ok in ["1", "1234", "12_3"] {
            assert!(check_job_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "x", "12_", "_3", "1;rm", "12 3"] {
            assert!(check_job_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        let j = JobInfo::parse(
            "JobId=43 ArrayJobId=42 ArrayTaskId=1 JobState=PENDING Reason=BeginTime Restarts=1 RunTime=00:00:00 \
             EndTime=Unknown NodeList=(null) ExitCode=0:0",
        );
        assert_eq!(describe(&j), "job=42_1 state=PENDING reason=BeginTime restarts=1 run_time=00:00:00 exit_code=0:0");
        let j = JobInfo::parse("JobId=7 JobState=RUNNING Reason=None Restarts=0 RunTime=00:00:05 EndTime=2999-01-01T00:00:00 NodeList=n1");
        assert!(describe(&j).starts_with("job=7 state=RUNNING reason=None restarts=0 run_time=00:00:05 time_left="), "{}", describe(&j));
        assert!(describe(&j).ends_with(" nodes=n1"), "{}", describe(&j));
        let dir = std::env::temp_dir().join(format!("rankwise-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = rankwise_slurm::Recovery { lost: vec!["n2".into()], at: "10:02:03".into(), ranks: 4, nodes: vec!["n1".into(), "n3".into()] };
        rankwise_slurm::record_recovery(&dir, "8", &r).unwrap();
        let j = JobInfo::parse(&format!("JobId=8 JobState=RUNNING NodeList=n[1,3] WorkDir={} ExitCode=0:0", dir.display()));
        let line = describe(&j);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(line.ends_with(" nodes=n[1,3] recoveries=1 last_recovery=lost:n2@10:02:03Z,ranks:4,nodes:n1+n3 exit_code=0:0"), "{line}");
    }
}
