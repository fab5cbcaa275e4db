//! sbatch scripts from a job description: directives, setup lines, the launch line, and the
//! trap that turns the checkpoint signal into "checkpoint, exit 75, requeue".

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Deserialize;

use crate::sweep::Sweep;
use crate::time::parse_duration;
use crate::{Error, Result, EXIT_REQUEUE};

/// What starts the ranks inside the allocation.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Launcher {
    /// `rankwise run -n <the job's tasks> PROGRAM -- ARGS` (the launcher picks srun inside the job).
    #[default]
    Rankwise,
    /// `srun --mpi=<mpi> PROGRAM ARGS`.
    Srun,
    /// `mpirun PROGRAM ARGS` (it reads the allocation itself), or `$RANKWISE_MPIRUN` where the
    /// job has that variable (`mpirun.mpich`), as `rankwise run` does.
    Mpirun,
}

/// A batch job: resources, setup and what to run. Loads from the `[job]` section of a TOML
/// file ([`JobSpec::from_toml`]); every field but `program` is optional.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobSpec {
    pub name: Option<String>,
    pub nodes: Option<u32>,
    pub ntasks: Option<u32>,
    pub ntasks_per_node: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub gpus_per_node: Option<u32>,
    /// Wall-time limit in any Slurm format (`30`, `1:30:00`, `2-00:00:00`).
    pub time: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// stdout and stderr paths (Slurm's `%j`, `%A`, `%a` patterns work).
    pub output: Option<String>,
    pub error: Option<String>,
    /// Working directory of the job.
    pub chdir: Option<String>,
    /// Signal sent to the batch script `signal_secs` before the time limit, to checkpoint.
    /// USR2 by default: NCCL takes USR1.
    pub signal: String,
    pub signal_secs: u32,
    /// Requeue the job when the program exits 75 (checkpointed, not done).
    pub requeue: bool,
    /// `--no-kill` (with the rankwise launcher and `restarts`): a lost node leaves the job
    /// running on the others, and `rankwise run --restarts K` relaunches there (off: Slurm ends
    /// or requeues the whole job).
    pub no_kill: bool,
    /// Nodes allocated beyond `nodes` and kept idle: a relaunch after a node loss takes one
    /// and keeps the rank count. Needs `nodes` and `ntasks_per_node`.
    pub spare_nodes: u32,
    /// After node losses, run on no fewer nodes than this (default 1).
    pub min_nodes: Option<u32>,
    /// `rankwise run --restarts`: relaunches after a failure or a lost node (launcher rankwise).
    pub restarts: u32,
    /// Any further sbatch options, e.g. `["--exclusive", "--constraint=a100"]`.
    pub sbatch: Vec<String>,
    /// Shell lines run before the launch, after the `env` exports, as written (`module load
    /// ...`): they are the user's own shell code, so they are not quoted.
    pub setup: Vec<String>,
    /// Variables exported before the launch (values quoted).
    pub env: BTreeMap<String, String>,
    pub launcher: Launcher,
    /// The `rankwise` command for [`Launcher::Rankwise`].
    pub rankwise: String,
    /// srun's `--mpi` for [`Launcher::Srun`]: `pmix` for Open MPI, `pmi2` for MPICH.
    pub mpi: String,
    pub program: String,
    pub args: Vec<String>,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            name: None,
            nodes: None,
            ntasks: None,
            ntasks_per_node: None,
            cpus_per_task: None,
            gpus_per_node: None,
            time: None,
            partition: None,
            account: None,
            qos: None,
            output: None,
            error: None,
            chdir: None,
            signal: "USR2".into(),
            signal_secs: 120,
            requeue: true,
            no_kill: true,
            spare_nodes: 0,
            min_nodes: None,
            restarts: 3,
            sbatch: Vec::new(),
            setup: Vec::new(),
            env: BTreeMap::new(),
            launcher: Launcher::default(),
            rankwise: "rankwise".into(),
            mpi: "pmix".into(),
            program: String::new(),
            args: Vec::new(),
        }
    }
}

impl JobSpec {
    /// The `[job]` section of a TOML document (other sections are left to their owners). It may
    /// leave `program` out for the command line to fill in: [`JobSpec::script`] checks the whole.
    pub fn from_toml(text: &str) -> Result<JobSpec> {
        #[derive(Deserialize)]
        struct Doc {
            job: Option<toml::Value>,
        }
        let doc: Doc = toml::from_str(text).map_err(|e| Error::Spec(e.message().to_string()))?;
        let job = doc.job.ok_or_else(|| Error::Spec("no [job] section".into()))?;
        job.try_into().map_err(|e: toml::de::Error| Error::Spec(format!("[job]: {}", e.message())))
    }

    /// Check what sbatch would otherwise reject only at submission.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Spec(m));
        if self.program.is_empty() {
            return bad("no program to run".into());
        }
        if let Some(t) = &self.time {
            parse_duration(t)?;
        }
        if signal_number(&self.signal).is_none() {
            return bad(format!("signal `{}` is not one of USR1 USR2 TERM INT HUP URG", self.signal));
        }
        if self.spare_nodes > 0 && (self.nodes.is_none() || self.ntasks_per_node.is_none() || self.ntasks.is_some()) {
            return bad("spare nodes need `nodes` and `ntasks_per_node` (not `ntasks`): the job runs on `nodes` of them".into());
        }
        if let (Some(m), Some(n)) = (self.min_nodes, self.nodes) {
            if m == 0 || m > n {
                return bad(format!("min_nodes {m} must be between 1 and nodes ({n})"));
            }
        }
        for k in self.env.keys() {
            if !is_identifier(k) {
                return bad(format!("env: `{k}` is not a variable name"));
            }
        }
        Ok(())
    }

    /// The checkpoint signal without its `SIG` prefix, as bash and sbatch both take it.
    fn signal_name(&self) -> &str {
        self.signal.strip_prefix("SIG").unwrap_or(&self.signal)
    }

    /// The batch script for one job.
    pub fn script(&self) -> Result<String> {
        self.render(None)
    }

    /// The batch script for a job array: task `i` runs parameter set `i` of `sweep`.
    pub fn sweep_script(&self, sweep: &Sweep) -> Result<String> {
        self.render(Some(sweep))
    }

    fn directives(&self, sweep: Option<&Sweep>) -> Vec<(&'static str, String)> {
        let mut d = Vec::new();
        let mut opt = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                d.push((k, v));
            }
        };
        opt("job-name", self.name.clone());
        opt("nodes", self.nodes.map(|n| (n + self.spare_nodes).to_string()));
        opt("ntasks", self.ntasks.map(|n| n.to_string()));
        opt("ntasks-per-node", self.ntasks_per_node.map(|n| n.to_string()));
        opt("cpus-per-task", self.cpus_per_task.map(|n| n.to_string()));
        opt("gpus-per-node", self.gpus_per_node.map(|n| n.to_string()));
        opt("time", self.time.clone());
        opt("partition", self.partition.clone());
        opt("account", self.account.clone());
        opt("qos", self.qos.clone());
        // A sweep task's output goes into its folder, not one file per task beside the submission.
        opt("output", self.output.clone().or_else(|| sweep.map(Sweep::output_pattern)));
        opt("error", self.error.clone());
        opt("chdir", self.chdir.clone());
        opt("array", sweep.map(Sweep::array_range));
        opt("signal", Some(format!("B:{}@{}", self.signal_name(), self.signal_secs)));
        // Only where `rankwise run` supervises and may relaunch: anything else would just lose
        // the node's share of the step, where Slurm would requeue the job.
        if self.no_kill && self.launcher == Launcher::Rankwise && self.restarts > 0 {
            d.push(("no-kill", String::new()));
        }
        if self.requeue {
            d.push(("requeue", String::new()));
            // A requeued run appends to the first run's output instead of truncating it.
            d.push(("open-mode", "append".into()));
        }
        d
    }

    fn render(&self, sweep: Option<&Sweep>) -> Result<String> {
        self.validate()?;
        let mut s = String::from("#!/bin/bash\n# Generated by rankwise.\n");
        for (k, v) in self.directives(sweep) {
            if v.is_empty() {
                writeln!(s, "#SBATCH --{k}").unwrap();
            } else {
                writeln!(s, "#SBATCH --{k}={}", directive_quote(k, &v)?).unwrap();
            }
        }
        for o in &self.sbatch {
            writeln!(s, "#SBATCH {}", directive_quote("sbatch", o)?).unwrap();
        }
        write!(
            s,
            r#"
# The checkpoint signal (and TERM) reach this script only: pass them on to the running step.
# Trapped first, as unhandled they would end the script; and bash runs a trap only between
# commands, hence the step in the background and `wait`.
forward() {{ echo "rankwise: job $SLURM_JOB_ID got SIG$1, passing it to the program" >&2; kill -s "$1" "$step" 2>/dev/null; }}
trap 'forward {sig}' {sig}
"#,
            sig = self.signal_name(),
        )
        .unwrap();
        if self.signal_name() != "TERM" {
            s.push_str("trap 'forward TERM' TERM\n");
        }
        s.push('\n');
        for (k, v) in &self.env {
            writeln!(s, "export {k}={}", quote(v)).unwrap();
        }
        for line in &self.setup {
            writeln!(s, "{line}").unwrap();
        }
        let mut launch: Vec<String> = match self.launcher {
            // Tasks as the job has them: sbatch sets SLURM_NTASKS when tasks are asked for (also
            // per node), else Slurm runs one per node.
            Launcher::Rankwise => {
                let ranks = match (self.spare_nodes, self.nodes, self.ntasks_per_node) {
                    // SLURM_NTASKS would count the spares' tasks too.
                    (1.., Some(n), Some(m)) => (n * m).to_string(),
                    _ => "\"${SLURM_NTASKS:-$SLURM_JOB_NUM_NODES}\"".into(),
                };
                let mut l = vec![quote(&self.rankwise), "run".into(), "-n".into(), ranks];
                if let Some(m) = self.ntasks_per_node {
                    l.extend(["--ranks-per-node".into(), m.to_string()]);
                }
                if self.restarts > 0 {
                    l.extend(["--restarts".into(), self.restarts.to_string()]);
                }
                if let Some(m) = self.min_nodes {
                    l.extend(["--min-nodes".into(), m.to_string()]);
                }
                if let Some(c) = self.cpus_per_task {
                    l.extend(["--threads".into(), c.to_string()]);
                }
                l
            }
            Launcher::Srun => vec!["srun".into(), quote(&format!("--mpi={}", self.mpi))],
            Launcher::Mpirun => vec!["\"${RANKWISE_MPIRUN:-mpirun}\"".into()],
        };
        launch.push(quote(&self.program));
        if self.launcher == Launcher::Rankwise {
            launch.push("--".into()); // the rest is the program's, even `-n` or `--set`
        }
        launch.extend(self.args.iter().map(|a| quote(a)));
        if let Some(sweep) = sweep {
            s.push_str(&sweep.selection()?);
            launch.push("\"${params[@]}\"".into());
        }
        writeln!(s, "{} &\nstep=$!\nwhile kill -0 \"$step\" 2>/dev/null; do wait \"$step\"; done\nwait \"$step\"; status=$?", launch.join(" ")).unwrap();
        if self.requeue {
            write!(
                s,
                r#"if [ "$status" -eq {EXIT_REQUEUE} ]; then
  echo "rankwise: checkpoint written, requeueing job $SLURM_JOB_ID (restart ${{SLURM_RESTART_COUNT:-0}})" >&2
  scontrol requeue "$SLURM_JOB_ID" && exit 0
  echo "rankwise: requeue of job $SLURM_JOB_ID failed; resubmit it to continue from the checkpoint" >&2
fi
"#
            )
            .unwrap();
        }
        s.push_str("exit \"$status\"\n");
        Ok(s)
    }
}

/// Quote a word for the shell: single quotes keep everything literal, and a single quote is
/// written as `'\''` (close, escaped quote, reopen).
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Quote a value for an `#SBATCH` line. The shell sees the line as a comment, so the only way
/// out is a line break (refused); sbatch's own parser splits at blanks, ends the line at an
/// unescaped `#`, and knows `"..."` and backslash escapes.
fn directive_quote(key: &str, value: &str) -> Result<String> {
    if value.chars().any(|c| c.is_control()) {
        return Err(Error::Spec(format!("{key}: {value:?} holds a line break or control character")));
    }
    let mut q = String::from("\"");
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '#') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    Ok(q)
}

fn is_identifier(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The signals a job may ask for before its limit, and their numbers on Linux.
pub fn signal_number(name: &str) -> Option<i32> {
    Some(match name.strip_prefix("SIG").unwrap_or(name) {
        "HUP" => 1,
        "INT" => 2,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "URG" => 23,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec { program: "/bin/echo".into(), ..JobSpec::default() }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(directive_quote("job-name", r#"a "b" #1 \x"#).unwrap(), r#""a \"b\" \#1 \\x""#);
        assert!(directive_quote("job-name", "a\nb").is_err());
    }

    #[test]
    fn directives_and_launch_line() {
        let s = JobSpec {
            name: Some("heat 2d".into()),
            nodes: Some(2),
            ntasks_per_node: Some(4),
            time: Some("1:00:00".into()),
            partition: Some("gpu".into()),
            setup: vec!["module load openmpi".into()],
            env: [("OMP_NUM_THREADS".to_string(), "1".to_string())].into(),
            args: vec!["--set".into(), "n=64".into()],
            ..spec()
        }
        .script()
        .unwrap();
        for line in [
            "#!/bin/bash\n",
            "#SBATCH --job-name=\"heat 2d\"\n",
            "#SBATCH --nodes=\"2\"\n",
            "#SBATCH --ntasks-per-node=\"4\"\n",
            "#SBATCH --time=\"1:00:00\"\n",
            "#SBATCH --signal=\"B:USR2@120\"\n",
            "#SBATCH --no-kill\n#SBATCH --requeue\n",
            "\nexport OMP_NUM_THREADS='1'\nmodule load openmpi\n",
            "'rankwise' run -n \"${SLURM_NTASKS:-$SLURM_JOB_NUM_NODES}\" --ranks-per-node 4 --restarts 3 '/bin/echo' -- '--set' 'n=64' &\n",
            "trap 'forward USR2' USR2\n",
            "if [ \"$status\" -eq 75 ]; then\n",
            "scontrol requeue \"$SLURM_JOB_ID\"",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
        assert!(!s.contains("--ntasks="), "{s}");
        let s = JobSpec { launcher: Launcher::Srun, requeue: false, signal: "SIGUSR1".into(), signal_secs: 60, ..spec() }.script().unwrap();
        assert!(s.contains("srun '--mpi=pmix' '/bin/echo' &\n") && s.contains("B:USR1@60"), "{s}");
        assert!(!s.contains("requeue"), "{s}");
    }

    #[test]
    fn spare_nodes_are_allocated_but_not_run_on() {
        let s = JobSpec { nodes: Some(2), ntasks_per_node: Some(2), spare_nodes: 1, min_nodes: Some(1), restarts: 5, ..spec() }.script().unwrap();
        assert!(s.contains("#SBATCH --nodes=\"3\"\n") && s.contains("#SBATCH --no-kill\n"), "{s}");
        assert!(s.contains("run -n 4 --ranks-per-node 2 --restarts 5 --min-nodes 1 '/bin/echo'"), "{s}");
        let s = JobSpec { no_kill: false, ..spec() }.script().unwrap();
        assert!(!s.contains("no-kill"), "{s}");
        let e = |s: JobSpec| s.script().unwrap_err().to_string();
        assert!(e(JobSpec { spare_nodes: 1, ntasks: Some(4), ..spec() }).contains("spare nodes need `nodes` and `ntasks_per_node`"));
        assert!(e(JobSpec { nodes: Some(2), min_nodes: Some(3), ..spec() }).contains("min_nodes 3 must be between 1 and nodes (2)"));
    }

    #[test]
    fn bad_specs_are_refused() {
        let e = |s: JobSpec| s.script().unwrap_err().to_string();
        assert_eq!(e(JobSpec::default()), "job: no program to run");
        assert!(e(JobSpec { time: Some("soon".into()), ..spec() }).contains("`soon` is not a Slurm time"));
        assert!(e(JobSpec { signal: "KILL".into(), ..spec() }).contains("signal `KILL`"));
        assert!(e(JobSpec { env: [("A B".into(), "1".into())].into(), ..spec() }).contains("`A B` is not a variable"));
        assert!(e(JobSpec { name: Some("x\n#SBATCH --foo".into()), ..spec() }).contains("line break"));
    }

    #[test]
    fn from_toml() {
        let s = JobSpec::from_toml(
            "[run]\nsteps = 10\n[job]\nname = \"t\"\nntasks = 4\ntime = \"10\"\nlauncher = \"mpirun\"\n\
             program = \"heat\"\nargs = [\"--set\", \"n=8\"]\nsetup = [\"module load x\"]\n",
        )
        .unwrap();
        assert_eq!((s.ntasks, s.launcher, s.signal.as_str(), s.requeue), (Some(4), Launcher::Mpirun, "USR2", true));
        assert_eq!(s.args, ["--set", "n=8"]);
        assert!(JobSpec::from_toml("[job]\nprogram = \"x\"\nnmaes = 1\n").unwrap_err().to_string().contains("unknown field `nmaes`"));
        assert_eq!(JobSpec::from_toml("x = 1").unwrap_err().to_string(), "job: no [job] section");
    }
}
