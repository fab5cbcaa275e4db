//! Thin wrappers over the Slurm client commands (sbatch, squeue, scontrol, scancel).
//!
//! Each command inherits the caller's whole environment (SLURM_CONF above all: without it a
//! client looks the controller up in DNS), plus what [`Slurm::env`] adds. Queries ask for times
//! in UTC so they parse without a time-zone database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::time::{parse_duration, parse_timestamp};
use crate::{Error, Result};

/// How to reach Slurm: where its commands are and what to add to their environment.
#[derive(Clone, Debug, Default)]
pub struct Slurm {
    dir: Option<PathBuf>,
    envs: Vec<(String, String)>,
}

impl Slurm {
    /// The commands on `PATH`, with the caller's environment.
    pub fn new() -> Slurm {
        Slurm::default()
    }
    /// Run the commands from `dir` instead of `PATH`.
    pub fn program_dir(mut self, dir: impl Into<PathBuf>) -> Slurm {
        self.dir = Some(dir.into());
        self
    }
    /// Add (or override) one variable for every command, e.g. `SLURM_CONF`.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Slurm {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// A command ready to run, for what these wrappers do not cover (e.g. `sinfo`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.dir.as_ref().map_or_else(|| PathBuf::from(program), |d| d.join(program)));
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Run a query; its stdout if it succeeds, else an error with its stderr. Times come in UTC
    /// (not for sbatch: the job would inherit the time zone).
    pub fn output(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut cmd = self.command(program);
        cmd.env("TZ", "UTC").env("SLURM_TIME_FORMAT", "standard");
        run(cmd, program, args)
    }

    /// Submit a batch script with `sbatch --parsable` (plus `args`, which override the script's
    /// `#SBATCH` lines) and return the job id.
    pub fn submit(&self, script: &Path, args: &[&str]) -> Result<u64> {
        let script = script.to_string_lossy();
        let mut all = vec!["--parsable"];
        all.extend_from_slice(args);
        all.push(&script);
        let out = run(self.command("sbatch"), "sbatch", &all)?;
        // `--parsable` prints `ID` or `ID;CLUSTER`.
        let id = out.trim().split(';').next().unwrap_or_default();
        id.parse().map_err(|_| Error::Parse(format!("sbatch printed `{}`, not a job id", out.trim())))
    }

    /// [`Slurm::output`] for a query, which changes nothing and so may be asked again: up to three
    /// tries, 0.1 and 0.2 s apart, while a signal ends the command. A client whose connection the
    /// busy controller closes dies of SIGPIPE, before it could say anything.
    pub fn query(&self, program: &str, args: &[&str]) -> Result<String> {
        for wait in [100, 200] {
            match self.output(program, args) {
                Err(Error::Command { status, .. }) if status.starts_with("signal") => std::thread::sleep(Duration::from_millis(wait)),
                r => return r,
            }
        }
        self.output(program, args)
    }

    /// Every record `scontrol show job` has for `id` (an array job has one per task).
    pub fn show_job(&self, id: &str) -> Result<Vec<JobInfo>> {
        let out = self.query("scontrol", &["show", "job", "--oneliner", id])?;
        Ok(out.lines().filter(|l| !l.trim().is_empty()).map(JobInfo::parse).collect())
    }

    /// The accounting records of job `id` from sacct (one per array task; steps left out), with
    /// scontrol's keys: for jobs the controller has forgotten. An error where accounting is off.
    pub fn accounting(&self, id: &str) -> Result<Vec<JobInfo>> {
        const KEYS: [&str; 6] = ["JobId", "JobState", "ExitCode", "RunTime", "NodeList", "JobName"];
        let format = "JobID,State,ExitCode,Elapsed,NodeList,JobName"; // the name last: it may hold `|`
        let out = self.query("sacct", &["--noheader", "--parsable2", "--allocations", "--jobs", id, "--format", format])?;
        Ok(out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| JobInfo { fields: KEYS.iter().zip(l.splitn(KEYS.len(), '|')).map(|(k, v)| (k.to_string(), v.to_string())).collect() })
            .collect())
    }

    /// The queued or running jobs of `id` (array tasks too), as `(job id, state)`, from squeue.
    pub fn queue(&self, id: &str) -> Result<Vec<(String, String)>> {
        let out = self.query("squeue", &["--noheader", "--jobs", id, "--format", "%i %T"])?;
        Ok(out.lines().filter_map(|l| l.split_once(' ')).map(|(i, s)| (i.into(), s.trim().into())).collect())
    }

    /// The steps of job `id` now, as `ID.STEP` (`ID.batch` and `ID.extern` too), from squeue.
    pub fn steps(&self, id: &str) -> Result<Vec<String>> {
        let out = self.query("squeue", &["--noheader", "--steps", "--jobs", id, "--format", "%i"])?;
        Ok(out.split_whitespace().map(str::to_string).collect())
    }

    /// When Slurm will end job `id` (queued or running), from `squeue -o %e`; `None` if unknown
    /// or unlimited.
    pub fn end_time(&self, id: &str) -> Result<Option<SystemTime>> {
        let out = self.query("squeue", &["--noheader", "--jobs", id, "--format", "%e"])?;
        match out.lines().next() {
            Some(t) => parse_timestamp(t),
            None => Err(Error::Parse(format!("squeue knows no job {id}"))),
        }
    }

    /// `scancel`: the whole job, or with `signal` only signal it; `batch_only` signals just the
    /// batch script (which the generated scripts forward to the running step).
    pub fn cancel(&self, id: &str, signal: Option<&str>, batch_only: bool) -> Result<()> {
        let sig = signal.map(|s| format!("--signal={s}"));
        let mut args: Vec<&str> = sig.iter().map(String::as_str).collect();
        if batch_only {
            args.push("--batch");
        }
        args.push(id);
        self.output("scancel", &args).map(drop)
    }

    /// `scontrol update jobid=ID KEY=VALUE...`: change a job, e.g. one requeued after a node
    /// failure, which keeps its first run's node and task counts, so that it fits the nodes left
    /// (`NumTasks=2`, then `NumNodes=1-2`: Slurm checks the node count against the tasks).
    pub fn update(&self, id: &str, fields: &[&str]) -> Result<()> {
        let job = format!("jobid={id}");
        let mut args = vec!["update", job.as_str()];
        args.extend_from_slice(fields);
        self.output("scontrol", &args).map(drop)
    }

    /// `scontrol requeue`: end the job now and queue it again (it must be running or done).
    pub fn requeue(&self, id: &str) -> Result<()> {
        self.output("scontrol", &["requeue", id]).map(drop)
    }
}

fn run(mut cmd: Command, program: &str, args: &[&str]) -> Result<String> {
    let line = format!("{program} {}", args.join(" "));
    let out = cmd.args(args).output().map_err(|source| Error::Spawn { command: line.clone(), source })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One job record of `scontrol show job`: every `Key=Value` field, with typed getters for the
/// ones the runtime and launcher need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobInfo {
    pub fields: BTreeMap<String, String>,
}

impl JobInfo {
    /// Parse one `--oneliner` record. Values may hold spaces (a job name, a command line): a
    /// word that does not start with `Key=` continues the previous value.
    pub fn parse(line: &str) -> JobInfo {
        let mut fields = BTreeMap::new();
        let mut last: Option<String> = None;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            match word.split_once('=') {
                Some((k, v)) if is_key(k) => {
                    fields.insert(k.to_string(), v.to_string());
                    last = Some(k.to_string());
                }
                _ => {
                    if let Some(v) = last.as_ref().and_then(|k| fields.get_mut(k)) {
                        v.push(' ');
                        v.push_str(word);
                    }
                }
            }
        }
        JobInfo { fields }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
    /// `PENDING`, `RUNNING`, `COMPLETED`, `TIMEOUT`, `PREEMPTED`, ...
    pub fn state(&self) -> &str {
        self.get("JobState").unwrap_or("UNKNOWN")
    }
    pub fn restarts(&self) -> u32 {
        self.get("Restarts").and_then(|r| r.parse().ok()).unwrap_or(0)
    }
    /// `ExitCode=C:S`: the batch script's exit code and the signal that ended it.
    pub fn exit_code(&self) -> Option<(i32, i32)> {
        let (c, s) = self.get("ExitCode")?.split_once(':')?;
        Some((c.parse().ok()?, s.parse().ok()?))
    }
    pub fn end_time(&self) -> Result<Option<SystemTime>> {
        parse_timestamp(self.get("EndTime").unwrap_or("Unknown"))
    }
    pub fn time_limit(&self) -> Result<Option<Duration>> {
        parse_duration(self.get("TimeLimit").unwrap_or("UNLIMITED"))
    }
}

/// Slurm's keys are CamelCase words, some with `:` or `/` (`ReqB:S:C:T`, `Socks/Node`).
fn is_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_uppercase()) && k.chars().all(|c| c.is_ascii_alphanumeric() || ":/_".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_records() {
        let j = JobInfo::parse(
            "JobId=17 JobName=my job=x 'y' UserId=root(0) JobState=RUNNING Reason=None Requeue=1 Restarts=1 \
             ExitCode=0:0 RunTime=00:00:05 TimeLimit=00:02:00 EndTime=2026-11-27T06:10:05 Command=/a b/run.sh",
        );
        assert_eq!(j.get("JobName"), Some("my job=x 'y'"));
        assert_eq!(j.get("Command"), Some("/a b/run.sh"));
        assert_eq!((j.state(), j.restarts(), j.exit_code()), ("RUNNING", 1, Some((0, 0))));
        assert_eq!(j.time_limit().unwrap(), Some(Duration::from_secs(120)));
        assert!(j.end_time().unwrap().is_some());
    }

    /// A query killed by a signal is asked again; one that fails with a message is not.
    #[test]
    fn a_query_killed_by_a_signal_is_asked_again() {
        let dir = std::env::temp_dir().join(format!("rankwise-query-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |body: &str| {
            let path = dir.join("scontrol");
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        };
        let slurm = Slurm::new().program_dir(&dir);
        let tries = dir.join("tries");
        let t = tries.display();
        // Dies of SIGPIPE twice, then answers.
        script(&format!("echo x >> {t}; [ $(wc -l < {t}) -le 2 ] && kill -PIPE $$; echo 'JobId=7 JobState=RUNNING'"));
        assert_eq!(slurm.show_job("7").unwrap()[0].state(), "RUNNING");
        assert_eq!(std::fs::read_to_string(&tries).unwrap().lines().count(), 3);
        // Always killed: the third try's error comes back.
        std::fs::remove_file(&tries).unwrap();
        script(&format!("echo x >> {t}; kill -PIPE $$"));
        assert!(matches!(slurm.show_job("7"), Err(Error::Command { status, .. }) if status.contains("signal")));
        assert_eq!(std::fs::read_to_string(&tries).unwrap().lines().count(), 3);
        // A refusal is an answer: asked once.
        std::fs::remove_file(&tries).unwrap();
        script(&format!("echo x >> {t}; echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"));
        assert!(slurm.show_job("7").unwrap_err().to_string().contains("Invalid job id"));
        assert_eq!(std::fs::read_to_string(&tries).unwrap().lines().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_command_is_an_error_naming_it() {
        let e = Slurm::new().program_dir("/nonexistent").submit(Path::new("x.sh"), &[]).unwrap_err();
        assert!(e.to_string().starts_with("cannot run `sbatch --parsable x.sh`"), "{e}");
    }
}
