//! Rankwise on a real one-node Slurm, started by this test (scripts/slurm-cluster.sh) and torn
//! down at the end, also when a test fails. A harness of its own (`harness = false`) so that
//! every test shares one cluster: `cargo test --test slurm [NAME...]`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use rankwise::slurm::{JobInfo, JobSpec, Launcher, ParamSet, Slurm, Sweep};

const TESTS: &[(&str, fn(&Cluster))] = &[
    ("hello_with_4_tasks_through_srun_pmix", hello_through_srun),
    ("hello_with_4_tasks_through_mpirun_in_the_allocation", hello_through_mpirun),
    ("hostile_names_and_arguments_run_exactly_the_intended_command", hostile_names),
    ("a_job_array_of_3_parameter_sets_writes_3_separate_outputs", job_array),
    ("usr2_to_the_batch_script_stops_every_rank_and_requeues_the_job_once", signal_and_requeue),
    ("the_stop_policy_learns_the_time_left_from_slurm", time_left_from_slurm),
    ("rankwise_sbatch_then_status_and_cancel", cli_sbatch_status_cancel),
    ("rankwise_sweep_of_3_sets_writes_3_correct_outputs", cli_sweep),
    ("rankwise_run_under_srun_shows_a_bad_inputs_line_alone", cli_bad_input_under_srun),
    ("heat_cut_by_its_time_limit_requeues_and_ends_bit_identical", heat_time_limit),
    ("heat_with_no_warning_signal_checkpoints_from_the_end_time_and_requeues", heat_time_limit_without_signal),
    ("heat_preempted_at_2_random_moments_ends_bit_identical", heat_preempted),
    ("bad_input_on_one_task_alone_under_srun_exits_2_at_2_and_4_tasks", bad_input_on_one_task),
    ("a_program_under_srun_with_the_wrong_pmi_stops_naming_both", wrong_pmi_under_srun),
];

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let chosen: Vec<_> = TESTS.iter().filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str()))).collect();
    if chosen.is_empty() {
        return;
    }
    let cluster = Cluster::up();
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let t = Instant::now();
        let ok = std::panic::catch_unwind(|| test(&cluster)).is_ok();
        println!("test {name} ... {} ({:.1} s)", if ok { "ok" } else { "FAILED" }, t.elapsed().as_secs_f64());
        if !ok {
            failed.push(*name);
        }
    }
    drop(cluster);
    println!("\n{} passed, {} failed{}", chosen.len() - failed.len(), failed.len(), if failed.is_empty() { String::new() } else { format!(": {}", failed.join(", ")) });
    std::process::exit(if failed.is_empty() { 0 } else { 1 });
}

/// The cluster for this test run: up once, down on drop (after a failure too).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    slurm: Slurm,
}

impl Cluster {
    fn up() -> Cluster {
        // A fixed folder: a run that was killed left its cluster there, and `down` clears it.
        let dir = common::program("hello").parent().unwrap().parent().unwrap().join("scratch").join("slurm-cluster");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-cluster.sh");
        let run = |cmd: &str| Command::new(&script).arg(cmd).arg(&dir).output().expect("cannot run scripts/slurm-cluster.sh");
        run("down");
        let out = run("up");
        assert!(
            out.status.success(),
            "cannot start the test Slurm cluster:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = dir.join("slurm.conf");
        // SLURM_CONF for every client; the rest reaches the job because sbatch exports it.
        let mut slurm = Slurm::new().env("SLURM_CONF", conf.to_str().unwrap());
        let mut probe = Command::new("true");
        for (k, v) in common::mpi_env(&mut probe).get_envs() {
            slurm = slurm.env(k.to_str().unwrap(), v.unwrap().to_str().unwrap());
        }
        Cluster { dir, conf, slurm }
    }

    /// A fresh folder for one test's job files.
    fn workdir(&self, name: &str) -> PathBuf {
        let d = self.dir.join("jobs").join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Write the script, submit it, wait until every record of the job has ended.
    fn run(&self, dir: &Path, script: &str, timeout: u64) -> (u64, Vec<JobInfo>) {
        let path = dir.join("job.sh");
        std::fs::write(&path, script).unwrap();
        let id = self.slurm.submit(&path, &[&format!("--chdir={}", dir.display())]).unwrap();
        (id, self.wait(id, timeout))
    }

    fn wait(&self, id: u64, timeout: u64) -> Vec<JobInfo> {
        let start = Instant::now();
        loop {
            let jobs = self.slurm.show_job(&id.to_string()).unwrap();
            if !jobs.is_empty() && jobs.iter().all(|j| ENDED.contains(&j.state())) {
                return jobs;
            }
            if start.elapsed() > Duration::from_secs(timeout) {
                let _ = self.slurm.cancel(&id.to_string(), None, false);
                panic!("job {id} did not end in {timeout} s: {jobs:#?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/slurmctld.log")).unwrap_or_default().lines().rev().take(20).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-cluster.sh");
        let _ = Command::new(script).arg("down").arg(&self.dir).status();
    }
}

const ENDED: &[&str] = &["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"];

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.as_ref().display()))
}

/// A job that starts its tasks with srun, through the PMI of the MPI of these tests.
fn srun_spec() -> JobSpec {
    JobSpec { launcher: Launcher::Srun, mpi: common::srun_mpi().into(), ..JobSpec::default() }
}

fn hello_job(launcher: Launcher) -> JobSpec {
    JobSpec {
        name: Some("hello".into()),
        ntasks: Some(4),
        time: Some("2".into()),
        output: Some("out.txt".into()),
        launcher,
        program: common::program("hello").to_str().unwrap().into(),
        ..srun_spec()
    }
}

fn assert_hello(c: &Cluster, name: &str, launcher: Launcher) {
    let dir = c.workdir(name);
    let (id, jobs) = c.run(&dir, &hello_job(launcher).script().unwrap(), 60);
    let out = read(dir.join("out.txt"));
    assert_eq!((jobs[0].state(), jobs[0].exit_code()), ("COMPLETED", Some((0, 0))), "job {id}:\n{out}");
    for r in 0..4 {
        assert!(out.lines().any(|l| l.starts_with(&format!("rank {r} of 4 on "))), "rank {r} missing:\n{out}");
    }
    assert!(out.lines().any(|l| l == "allreduce: sum of rank+1 over 4 ranks = 10 (expected 10)"), "{out}");
}

fn hello_through_srun(c: &Cluster) {
    assert_hello(c, "srun", Launcher::Srun);
}

fn hello_through_mpirun(c: &Cluster) {
    assert_hello(c, "mpirun", Launcher::Mpirun);
}

/// Strings that would run `touch pwned` if any of them reached a shell unquoted.
const HOSTILE: &[&str] = &[
    "two words",
    "it's",
    "\"double\"",
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    "$HOME ${PATH} $1 $@",
    "line one\nline two",
    "back\\slash # hash",
    "*",
    "",
    "--set",
];

fn hostile_names(c: &Cluster) {
    let dir = c.workdir("hostile");
    let name = "j'ob \"x\" $(touch pwned) `touch pwned` # \\ ;&|";
    let spec = JobSpec {
        name: Some(name.into()),
        output: Some("out file.txt".into()),
        time: Some("1".into()),
        // Each argument on its own, NUL-terminated, so the test sees argv exactly.
        program: "/usr/bin/printf".into(),
        args: std::iter::once("%s\\0").chain(HOSTILE.iter().copied()).map(String::from).collect(),
        env: [("HOSTILE".to_string(), HOSTILE.join("|"))].into(),
        setup: vec![r#"printf '%s' "$SLURM_JOB_NAME" > name.txt; printf '%s' "$HOSTILE" > env.txt"#.into()],
        ..srun_spec()
    };
    let script = spec.script().unwrap();
    let argv = |out: &str| -> Vec<String> { out.split('\0').map(String::from).collect() };
    let mut expect: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    expect.push(String::new()); // after the last NUL

    // Under bash alone (srun replaced by a stand-in that drops its options).
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("srun"), "#!/bin/sh\nshift\nexec \"$@\"\n").unwrap();
    Command::new("chmod").arg("+x").arg(bin.join("srun")).status().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash").arg("-c").arg(&script).env("PATH", path).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(argv(&String::from_utf8(out.stdout).unwrap()), expect, "under bash:\n{script}");
    assert_eq!(read(dir.join("env.txt")), HOSTILE.join("|"));

    // Under Slurm: the job name goes through sbatch's own parser too.
    let (id, jobs) = c.run(&dir, &script, 60);
    assert_eq!(jobs[0].state(), "COMPLETED", "job {id}: {jobs:?}");
    assert_eq!(argv(&read(dir.join("out file.txt"))), expect, "under Slurm:\n{script}");
    assert_eq!(read(dir.join("name.txt")), name);
    assert_eq!(read(dir.join("env.txt")), HOSTILE.join("|"));
    assert!(!dir.join("pwned").exists(), "a hostile string ran as shell code:\n{script}");

    // A line break in a job name could end the #SBATCH comment: refused, not rendered.
    let e = JobSpec { name: Some("x\ntouch pwned".into()), ..spec }.script().unwrap_err();
    assert!(e.to_string().contains("line break"), "{e}");
}

fn job_array(c: &Cluster) {
    let dir = c.workdir("array");
    let set = |n: &str, label: &str| ParamSet::from([("n".into(), n.into()), ("label".into(), label.into())]);
    let sweep = Sweep::list(vec![set("8", "small"), set("16", "it's big"), set("32", "$(huge)")]).max_parallel(2).dir("runs");
    let spec = JobSpec {
        name: Some("sweep".into()),
        output: Some("task-%a.txt".into()),
        time: Some("1".into()),
        program: "/bin/sh".into(),
        // The task's arguments, one per line, into a file in the folder it runs in.
        args: vec!["-c".into(), "printf '%s\\n' \"$@\" > result.txt".into(), "sh".into()],
        ..srun_spec()
    };
    let script = spec.sweep_script(&sweep).unwrap();
    assert!(script.contains("#SBATCH --array=\"0-2%2\"\n"), "{script}");
    let (id, jobs) = c.run(&dir, &script, 60);
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert!(jobs.iter().all(|j| j.state() == "COMPLETED"), "array {id}: {jobs:#?}");
    for (i, (n, label)) in [("8", "small"), ("16", "it's big"), ("32", "$(huge)")].iter().enumerate() {
        let task = dir.join("runs").join(i.to_string());
        assert_eq!(read(task.join("result.txt")), format!("--set\nlabel={label}\n--set\nn={n}\n"), "task {i}");
        let params: toml::Table = toml::from_str(&read(task.join("params.toml"))).unwrap();
        assert_eq!((params["n"].as_str(), params["label"].as_str()), (Some(*n), Some(*label)), "task {i}");
    }
}

fn time_left_from_slurm(c: &Cluster) {
    let dir = c.workdir("time-left");
    let spec = JobSpec {
        ntasks: Some(2),
        time: Some("3".into()),
        output: Some("out.txt".into()),
        program: common::program("stop-check").to_str().unwrap().into(),
        args: vec!["time-left".into()],
        ..srun_spec()
    };
    let (id, jobs) = c.run(&dir, &spec.script().unwrap(), 60);
    let out = read(dir.join("out.txt"));
    assert_eq!(jobs[0].state(), "COMPLETED", "job {id}:\n{out}");
    for r in 0..2 {
        let line = out.lines().find(|l| l.starts_with(&format!("rank={r} "))).unwrap_or_else(|| panic!("no rank {r}:\n{out}"));
        let secs: u64 = line.split("Some(").nth(1).and_then(|s| s.strip_suffix(')')).unwrap_or_else(|| panic!("{line}")).parse().unwrap();
        // A 3-minute limit, a few seconds of which have gone.
        assert!((150..=180).contains(&secs), "{line}");
    }
}

/// `program ARGS` on `n` tasks through srun with PMI plugin `mpi`, after the shell lines
/// `setup`; the job's exit code, and its output for messages.
fn srun_job(c: &Cluster, name: &str, n: u32, program: &Path, args: &[&str], mpi: &str, setup: Vec<String>) -> (Option<(i32, i32)>, String, PathBuf) {
    let dir = c.workdir(name);
    let spec = JobSpec {
        ntasks: Some(n),
        time: Some("2".into()),
        output: Some("out.txt".into()),
        program: program.to_str().unwrap().into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        mpi: mpi.into(),
        setup,
        ..srun_spec()
    };
    let (id, jobs) = c.run(&dir, &spec.script().unwrap(), 90);
    let out = read(dir.join("out.txt"));
    (jobs[0].exit_code(), format!("job {id} {}:\n{out}", jobs[0].state()), dir)
}

/// Bad input on one task alone, the others at the end (they agree: one line, exit 2) or waiting
/// for it in a collective (it aborts the step after the grace period, exit 2): never a hang.
fn bad_input_on_one_task(c: &Cluster) {
    let rt_basics = common::program("rt-basics");
    for n in [2, 4] {
        let bad = (n - 1).to_string();
        let (code, out, _) = srun_job(c, &format!("bad-alone-{n}"), n, &rt_basics, &["bad-input-alone", &bad], common::srun_mpi(), vec![]);
        assert_eq!(code, Some((2, 0)), "{out}");
        let want = format!("error: rank {bad}: the block of rank {bad} fails a check");
        assert_eq!(out.lines().filter(|l| l.contains("fails a check")).collect::<Vec<_>>(), [want.as_str()], "{out}");

        let (code, out, _) = srun_job(c, &format!("bad-stuck-{n}"), n, &rt_basics, &["bad-input-stuck", &bad], common::srun_mpi(), vec![]);
        assert_eq!(code.map(|c| c.0), Some(2), "{out}");
        let want = format!("rank {bad}: error: the block of rank {bad} fails a check (the other ranks did not stop with it within 10s); aborting the job");
        assert!(out.contains(&want), "{want}\n{out}");
        assert!(!out.contains("passed a barrier"), "{out}");
    }
}

/// An MPICH program under srun with Open MPI's PMI plugin (pmix) starts every task as rank 0
/// of 1: it notices (srun's variables say 3 tasks) and task 0 says so on one line naming both;
/// exit 2. (Open MPI under MPICH's pmi2 stops in MPI_Init with its own message.) The same
/// program run alone in the batch script of a 3-task job is a one-rank run, not refused.
fn wrong_pmi_under_srun(c: &Cluster) {
    let hello = if common::hydra() { common::program("hello") } else { common::other_mpi().hello };
    let direct = format!("{} > direct.txt 2>&1; echo \"direct exit $?\" >> direct.txt", hello.display());
    let (code, out, dir) = srun_job(c, "wrong-pmi", 3, &hello, &[], "pmix", vec![direct]);
    assert_eq!(code, Some((2, 0)), "{out}");
    let lines: Vec<_> = out.lines().filter(|l| l.starts_with("error: this program is linked with MPICH")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("but srun started it (SLURM_STEP_NUM_TASKS=3) (srun's --mpi plugin must match"), "{out}");
    assert!(!out.contains("rank 0 of 1"), "{out}");
    let direct = read(dir.join("direct.txt"));
    assert!(direct.contains("rank 0 of 1 on ") && direct.ends_with("direct exit 0\n"), "{direct}");
}

/// The whole chain of a preemption: Slurm signals the batch script, the script passes the signal
/// to srun and srun to the ranks, the ranks agree to stop at the same step and exit 75, the
/// script requeues the job once, and the second run (SLURM_RESTART_COUNT=1) finishes.
fn signal_and_requeue(c: &Cluster) {
    let dir = c.workdir("requeue");
    let spec = JobSpec {
        ntasks: Some(2),
        output: Some("out.txt".into()),
        time: Some("10".into()),
        program: common::program("stop-check").to_str().unwrap().into(),
        args: vec!["slurm".into()],
        ..srun_spec()
    };
    let path = dir.join("job.sh");
    std::fs::write(&path, spec.script().unwrap()).unwrap();
    let id = c.slurm.submit(&path, &[&format!("--chdir={}", dir.display())]).unwrap();
    let start = Instant::now();
    while !dir.join("started").exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "the job never started: {:?}", c.slurm.show_job(&id.to_string()));
        std::thread::sleep(Duration::from_millis(50));
    }
    // What Slurm does at `--signal=B:USR2@N`: signal the batch script only.
    c.slurm.cancel(&id.to_string(), Some("USR2"), true).unwrap();
    let jobs = c.wait_restarted(id, 90);
    let out = read(dir.join("out.txt"));
    assert_eq!((jobs[0].state(), jobs[0].restarts()), ("COMPLETED", 1), "{jobs:?}\n{out}");
    assert!(out.contains("got SIGUSR2, passing it to the program"), "{out}");
    // Far from the 10-minute limit: a preemption, agreed by both ranks at the same step.
    let stops: Vec<&str> = out.lines().filter(|l| l.contains(" stop=")).collect();
    assert_eq!(stops.len(), 2, "{out}");
    let step = |l: &str| l.split(' ').nth(1).unwrap().to_string();
    assert_eq!(step(stops[0]), step(stops[1]), "{out}");
    assert!(stops.iter().all(|l| l.contains("stop=true reason=Preemption")), "{out}");
    assert_eq!(out.matches("requeueing job").count(), 1, "{out}");
    for r in 0..2 {
        assert!(out.contains(&format!("rank={r} resumed after restart 1")), "{out}");
    }
}

impl Cluster {
    /// Wait until the job has been requeued and its next run has ended.
    fn wait_restarted(&self, id: u64, timeout: u64) -> Vec<JobInfo> {
        let start = Instant::now();
        loop {
            let jobs = self.slurm.show_job(&id.to_string()).unwrap();
            if jobs[0].restarts() > 0 {
                return self.wait(id, timeout.saturating_sub(start.elapsed().as_secs()));
            }
            assert!(start.elapsed() < Duration::from_secs(timeout), "job {id} was never requeued: {jobs:#?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Cluster {
    /// `rankwise ARGS` in `dir`, with this cluster's config and the MPI settings (sbatch passes
    /// the environment on to the job).
    fn rankwise(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(common::rankwise_bin());
        common::mpi_env(&mut cmd).env("SLURM_CONF", &self.conf).current_dir(dir).args(args);
        cmd.output().unwrap()
    }

    /// `rankwise sbatch|sweep ARGS`: the job id it printed.
    fn submit(&self, dir: &Path, args: &[&str]) -> u64 {
        let o = self.rankwise(dir, args);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "rankwise {args:?}: {o:?}");
        text.trim().parse().unwrap_or_else(|_| panic!("rankwise {args:?} printed {text:?}, not a job id"))
    }

    /// `rankwise status ID`, which must succeed.
    fn status(&self, id: u64) -> String {
        let o = self.rankwise(&self.dir, &["status", &id.to_string()]);
        assert!(o.status.success(), "rankwise status {id}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    }

    fn wait_running(&self, id: u64) {
        let start = Instant::now();
        while self.slurm.show_job(&id.to_string()).unwrap()[0].state() != "RUNNING" {
            assert!(start.elapsed() < Duration::from_secs(30), "job {id} never ran: {:?}", self.slurm.show_job(&id.to_string()));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn cli_sbatch_status_cancel(c: &Cluster) {
    let dir = c.workdir("cli");
    common::program("hello");
    // Through `rankwise run` in the job: 4 tasks from the job, srun with pmix.
    let id = c.submit(&dir, &["sbatch", "-J", "cli hello", "-n", "4", "-t", "2", "-o", "out.txt", "hello"]);
    let jobs = c.wait(id, 60);
    let out = read(dir.join("out.txt"));
    assert_eq!(jobs[0].state(), "COMPLETED", "job {id}:\n{out}");
    assert!(out.lines().any(|l| l == "allreduce: sum of rank+1 over 4 ranks = 10 (expected 10)"), "{out}");
    let st = c.status(id);
    assert!(st.starts_with(&format!("job={id} state=COMPLETED reason=None restarts=0 run_time=")) && st.ends_with(" exit_code=0:0\n"), "{st}");
    assert_eq!(st.lines().count(), 1, "{st}");

    let id = c.submit(&dir, &["sbatch", "-t", "2", "-o", "sleep.txt", "--launcher", "srun", "/bin/sleep", "300"]);
    c.wait_running(id);
    let st = c.status(id);
    let left = st.split(" time_left=0-00:").nth(1).and_then(|t| t.get(..5)).unwrap_or_else(|| panic!("{st}"));
    let secs = left[..2].parse::<u64>().unwrap() * 60 + left[3..].parse::<u64>().unwrap();
    assert!(st.starts_with(&format!("job={id} state=RUNNING ")) && (90..=120).contains(&secs), "{st}");
    let o = c.rankwise(&dir, &["cancel", &id.to_string()]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("job {id}: cancelled\n"), "{o:?}");
    assert_eq!(c.wait(id, 30)[0].state(), "CANCELLED");
    assert!(c.status(id).starts_with(&format!("job={id} state=CANCELLED ")));

    // A job Slurm never had: its error, on one line, exit 1.
    let o = c.rankwise(&dir, &["status", "999999"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && err.starts_with("error: ") && err.lines().count() == 1, "{o:?}");

    // The controller does not know it, so status asked sacct (the real one, seen through a
    // wrapper that logs its arguments): without slurmdbd it answers that accounting is off.
    let spy = dir.join("spy");
    std::fs::create_dir_all(&spy).unwrap();
    let real = String::from_utf8(Command::new("bash").args(["-c", "command -v sacct"]).output().unwrap().stdout).unwrap().trim().to_string();
    let log = dir.join("sacct-calls.txt");
    let wrapper = spy.join("sacct");
    std::fs::write(&wrapper, format!("#!/bin/bash\necho \"$*\" >> '{}'\nexec '{real}' \"$@\"\n", log.display())).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(common::rankwise_bin());
    common::mpi_env(&mut cmd).env("SLURM_CONF", &c.conf).env("PATH", format!("{}:{}", spy.display(), std::env::var("PATH").unwrap()));
    let o = cmd.args(["status", "999999"]).current_dir(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(1) && err.starts_with("error: ") && err.lines().count() == 1, "{o:?}");
    let calls = std::fs::read_to_string(&log).unwrap_or_else(|_| panic!("rankwise status never asked sacct: {o:?}"));
    assert!(calls.lines().any(|l| l.contains("--jobs 999999")), "{calls}");
    let real = c.slurm.output("sacct", &["--noheader", "--jobs", "999999"]);
    assert!(real.as_ref().is_err_and(|e| e.to_string().contains("accounting storage is disabled")), "sacct here: {real:?}");
}

fn cli_sweep(c: &Cluster) {
    let dir = c.workdir("cli-sweep");
    std::fs::write(dir.join("params.toml"), "[sweep]\nsets = [{ n = 16 }, { n = 24 }, { n = 32 }]\ndir = \"runs\"\n").unwrap();
    // Without a checkpoint folder heat refuses to stop: the checkpoint signal must not come
    // (with the default 120 s, Slurm sends it at once to a 2-minute job).
    let args = ["--set", "steps=50"];
    // No output file named: each task's goes into its own folder, runs/i.
    let id = c.submit(&dir, &[&["sweep", "--params", "params.toml", "--max-parallel", "2", "-n", "2", "-t", "2", "--signal", "30", "heat"][..], &args].concat());
    let jobs = c.wait(id, 90);
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert!(jobs.iter().all(|j| j.state() == "COMPLETED"), "array {id}: {jobs:#?}");
    let status = c.status(id);
    assert_eq!(status.lines().filter(|l| l.contains(" state=COMPLETED ")).count(), 3, "{status}");
    for (i, n) in ["16", "24", "32"].iter().enumerate() {
        let direct = common::Job::new(2, "heat").args(args).args(["--set", &format!("n={n}")]).run();
        let expect = direct.assert_success().line(0, "final ");
        let out = read(dir.join("runs").join(i.to_string()).join(format!("slurm-{id}_{i}.out")));
        assert!(out.lines().any(|l| l == expect), "task {i}: not {expect}\n{out}");
        let params: toml::Table = toml::from_str(&read(dir.join("runs").join(i.to_string()).join("params.toml"))).unwrap();
        assert_eq!(params["n"].as_str(), Some(*n), "task {i}");
    }
    let beside: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).filter(|f| f.to_string_lossy().ends_with(".out")).collect();
    assert!(beside.is_empty(), "task output beside the submission: {beside:?}");
}

/// `rankwise run` inside a job launches with srun; the program's bad-input line is all the job's
/// output shows (srun's "Exited with exit code 2" is dropped), and the job fails with exit 2.
fn cli_bad_input_under_srun(c: &Cluster) {
    let dir = c.workdir("cli-bad-input");
    let id = c.submit(&dir, &["sbatch", "-n", "2", "-t", "2", "-o", "out.txt", "hello", "--set", "nn=1"]);
    let jobs = c.wait(id, 60);
    let out = read(dir.join("out.txt"));
    assert_eq!(out, "error: --set nn: unknown input `nn`\n", "job {id}: {jobs:#?}");
    assert_eq!(jobs[0].state(), "FAILED", "{jobs:#?}");
}

/// Heat at 4 ranks, checkpointing every few seconds, from an inputs file that gives the steps.
/// Progress lines come often enough that the preemption test sees every moment it picks, also
/// on a slow machine (few steps: MPICH's busy-polling ranks oversubscribed).
fn heat_inputs(dir: &Path, steps: u64) {
    let text = format!("n = 256\nsteps = {steps}\n[checkpoint]\ndir = \"ckpt\"\nevery = 20000\n[progress]\nevery = 500\n");
    std::fs::write(dir.join("heat.toml"), text).unwrap();
}

/// The steps of the heat runs: as many as the time-limit test's first run managed, and a few
/// more (so the figures follow this machine's speed), else this many.
static HEAT_STEPS: OnceLock<u64> = OnceLock::new();
const HEAT_STEPS_DEFAULT: u64 = 60_000;

/// The final line of an uninterrupted run of `steps` (under mpirun), once per step count.
fn reference(steps: u64) -> String {
    static DONE: std::sync::Mutex<Vec<(u64, String)>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, line)) = done.iter().find(|(s, _)| *s == steps) {
        return line.clone();
    }
    let s = common::Scratch::new("slurm-heat-reference");
    heat_inputs(s.path(), steps);
    let t = Instant::now();
    let o = common::Job::new(4, "heat").args(["-i", "heat.toml"]).dir(s.path()).timeout(300).run();
    let line = o.assert_success().line(0, "final ").to_string();
    println!("  reference: {line} ({:.1} s uninterrupted under mpirun)", t.elapsed().as_secs_f64());
    done.push((steps, line.clone()));
    line
}

/// Numbers after `prefix` on each line that has it, e.g. the steps of "restarted from step N".
fn numbers_after(out: &str, prefix: &str) -> Vec<u64> {
    out.lines().filter_map(|l| l.split(prefix).nth(1)).map(|r| r.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()).collect()
}

/// The time limit: `--time=1`, the checkpoint signal 58 s before it (Slurm sends it up to half a
/// minute late), a stop margin of 20 s. The
/// signal comes first (checkpoint, carry on); then the end time that the runtime learnt from
/// Slurm stops the run (checkpoint, exit 75) and the script requeues it. While it waits, the
/// test sets the steps to where it stopped plus 5000 and gives the job 5 minutes: the next run
/// resumes and finishes, equal to an uninterrupted run of as many steps.
fn heat_time_limit(c: &Cluster) {
    let dir = c.workdir("heat-time-limit");
    heat_inputs(&dir, 1 << 40);
    let id = c.submit(&dir, &["sbatch", "-n", "4", "-t", "1", "--signal", "58", "-o", "out.txt", "heat", "-i", "heat.toml", "--set", "stop.margin=20"]);
    let start = Instant::now();
    while c.slurm.show_job(&id.to_string()).unwrap()[0].restarts() == 0 {
        assert!(start.elapsed() < Duration::from_secs(90), "job {id} was never requeued:\n{}", read(dir.join("out.txt")));
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = read(dir.join("out.txt"));
    let cut = *numbers_after(&first, "stopping at step ").first().unwrap_or_else(|| panic!("no stop:\n{first}"));
    let steps = cut + 5000;
    heat_inputs(&dir, steps);
    c.slurm.output("scontrol", &["update", &format!("JobId={id}"), "TimeLimit=5"]).unwrap();
    let jobs = c.wait(id, 120);
    let out = read(dir.join("out.txt"));
    assert_eq!((jobs[0].state(), jobs[0].exit_code(), jobs[0].restarts()), ("COMPLETED", Some((0, 0)), 1), "{jobs:?}\n{out}");
    let expect = reference(steps);
    assert!(out.lines().any(|l| l == expect), "not the uninterrupted {expect}:\n{out}");
    // Stopped by the end time, 20 s (the margin) and two steps before it.
    let stop: Vec<&str> = first.lines().filter(|l| l.ends_with("s left: checkpoint and stop")).collect();
    assert_eq!(stop.len(), 1, "{first}");
    let left = numbers_after(stop[0], ": TimeLimit, ")[0];
    assert!((15..=22).contains(&left), "{}", stop[0]);
    assert!(first.contains("got SIGUSR2, passing it to the program") && first.contains("s left: checkpoint, then carry on"), "{first}");
    assert_eq!(out.matches("requeueing job").count(), 1, "{out}");
    assert_eq!(numbers_after(&out, "restarted from step "), [cut], "resumes where it stopped:\n{out}");
    println!("  cut at step {cut}, {left} s before the limit, after a checkpoint on USR2; resumed at {cut}: no step lost");
    let _ = HEAT_STEPS.set(steps);
}

/// A time limit and no warning signal at all (the script's `#SBATCH --signal` line removed): the
/// ranks learn the end time from Slurm, checkpoint `stop.margin` seconds (plus two steps) before
/// it and exit 75; the script requeues, and the requeued run resumes from that step and ends with
/// the bits of an uninterrupted run.
fn heat_time_limit_without_signal(c: &Cluster) {
    let dir = c.workdir("heat-time-limit-no-signal");
    heat_inputs(&dir, 1 << 40);
    let o = c.rankwise(&dir, &["sbatch", "--dry-run", "-n", "4", "-t", "1", "-o", "out.txt", "heat", "-i", "heat.toml", "--set", "stop.margin=20"]);
    assert!(o.status.success(), "{o:?}");
    let script: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().filter(|l| !l.starts_with("#SBATCH --signal")).collect();
    assert!(!script.iter().any(|l| l.contains("--signal")), "{script:#?}");
    std::fs::write(dir.join("job.sh"), script.join("\n") + "\n").unwrap();
    let id = c.slurm.submit(&dir.join("job.sh"), &["--chdir", dir.to_str().unwrap()]).unwrap();
    let start = Instant::now();
    while c.slurm.show_job(&id.to_string()).unwrap()[0].restarts() == 0 {
        assert!(start.elapsed() < Duration::from_secs(90), "job {id} was never requeued:\n{}", read(dir.join("out.txt")));
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = read(dir.join("out.txt"));
    assert!(!first.contains("got SIG"), "a signal came after all:\n{first}");
    let cut = *numbers_after(&first, "stopping at step ").first().unwrap_or_else(|| panic!("no stop:\n{first}"));
    let stop: Vec<&str> = first.lines().filter(|l| l.ends_with("s left: checkpoint and stop")).collect();
    assert_eq!(stop.len(), 1, "{first}");
    let left = numbers_after(stop[0], ": TimeLimit, ")[0];
    assert!((15..=22).contains(&left), "{}", stop[0]);
    let steps = cut + 2000;
    heat_inputs(&dir, steps);
    c.slurm.output("scontrol", &["update", &format!("JobId={id}"), "TimeLimit=5"]).unwrap();
    let jobs = c.wait(id, 120);
    let out = read(dir.join("out.txt"));
    assert_eq!((jobs[0].state(), jobs[0].exit_code(), jobs[0].restarts()), ("COMPLETED", Some((0, 0)), 1), "{jobs:?}\n{out}");
    assert_eq!(out.matches("requeueing job").count(), 1, "{out}");
    assert_eq!(numbers_after(&out, "restarted from step "), [cut], "resumes where it stopped:\n{out}");
    let expect = reference(steps);
    assert!(out.lines().any(|l| l == expect), "not the uninterrupted {expect}:\n{out}");
    println!("  no signal: cut at step {cut}, {left} s before the limit; resumed at {cut}");
}

/// Preemption: USR2 to the batch script (`scancel --signal=USR2 --batch`), then to the ranks
/// (`rankwise cancel --signal USR2`), each at a random step, far from the time limit.
fn heat_preempted(c: &Cluster) {
    let steps = *HEAT_STEPS.get().unwrap_or(&HEAT_STEPS_DEFAULT);
    let dir = c.workdir("heat-preempted");
    heat_inputs(&dir, steps);
    let id = c.submit(&dir, &["sbatch", "-n", "4", "-t", "10", "-o", "out.txt", "heat", "-i", "heat.toml"]);
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    let mut moments = Vec::new();
    // Moments that leave the run a third of its steps to go: heat is fast, and a signal that
    // arrives after the run has ended tests nothing.
    for (k, range) in [(0.1, 0.3), (0.45, 0.65)].iter().enumerate() {
        let at = (steps as f64 * (range.0 + (range.1 - range.0) * ((seed >> (k * 16)) % 1000) as f64 / 1000.0)) as u64;
        let start = Instant::now();
        // This run (after k restarts) has passed step `at`, then a random fraction of a second more.
        while !out_runs(&dir).get(k).is_some_and(|run| numbers_after(run, "INFO  step ").last().is_some_and(|s| *s >= at)) {
            assert!(start.elapsed() < Duration::from_secs(120), "run {k} never reached step {at}:\n{}", read(dir.join("out.txt")));
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis((seed >> (k * 16 + 8)) % 200));
        let sent = Instant::now();
        if k == 0 {
            c.slurm.cancel(&id.to_string(), Some("USR2"), true).unwrap();
        } else {
            let o = c.rankwise(&dir, &["cancel", &id.to_string(), "--signal", "USR2"]);
            assert_eq!(String::from_utf8_lossy(&o.stdout), format!("job {id}: sent USR2\n"), "{o:?}");
        }
        while !out_runs(&dir).get(k + 1).is_some_and(|run| run.contains("restarted from step")) {
            assert!(sent.elapsed() < Duration::from_secs(120), "no restart after interruption {k}:\n{}", read(dir.join("out.txt")));
            std::thread::sleep(Duration::from_millis(50));
        }
        moments.push((at, sent.elapsed()));
    }
    let jobs = c.wait(id, 120);
    let out = read(dir.join("out.txt"));
    assert_eq!((jobs[0].state(), jobs[0].restarts()), ("COMPLETED", 2), "{jobs:?}\n{out}");
    let expect = reference(steps);
    assert!(out.lines().any(|l| l == expect), "not the uninterrupted {expect}:\n{out}");
    assert_eq!(out.lines().filter(|l| l.contains(": Preemption, ") && l.ends_with("s left: checkpoint and stop")).count(), 2, "{out}");
    let (stopped, resumed) = (numbers_after(&out, "stopping at step "), numbers_after(&out, "restarted from step "));
    assert_eq!(stopped, resumed, "each run resumes where the last stopped:\n{out}");
    for (k, ((at, down), step)) in moments.iter().zip(&stopped).enumerate() {
        println!(
            "  interruption {}: signalled once past step {at}, stopped at step {step} with a checkpoint and resumed there (0 steps lost), {:.1} s from the signal to the resumed run",
            k + 1,
            down.as_secs_f64()
        );
    }
}

/// The job's output split at each requeue (runs append to it).
fn out_runs(dir: &Path) -> Vec<String> {
    let out = std::fs::read_to_string(dir.join("out.txt")).unwrap_or_default();
    let mut runs = vec![String::new()];
    for l in out.lines() {
        runs.last_mut().unwrap().push_str(l);
        runs.last_mut().unwrap().push('\n');
        if l.contains("requeueing job") {
            runs.push(String::new());
        }
    }
    runs
}
