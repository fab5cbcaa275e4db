//! The `rankwise` command under real mpirun: launching examples, bad input (one line each),
//! exit codes passed through, signals forwarded to the ranks, and supervised restarts after a
//! rank is SIGKILLed, ending with the same value as an uninterrupted run.

mod common;

use std::path::Path;
use std::os::fd::FromRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{mpi_env, program, rankwise_bin, run_with_timeout, Outcome, Scratch};

/// One job at a time (2 cores).
static ONE: Mutex<()> = Mutex::new(());

/// `rankwise ARGS` with the single-host MPI settings, but without the root and oversubscribe
/// variables: the launcher must add what this host needs itself.
fn rankwise(args: &[&str]) -> Command {
    let mut cmd = Command::new(rankwise_bin());
    mpi_env(&mut cmd);
    for k in ["OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "OMPI_MCA_rmaps_base_oversubscribe"] {
        cmd.env_remove(k);
    }
    cmd.args(args);
    cmd
}

fn run(cmd: Command) -> Outcome {
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let line = format!("{cmd:?}");
    run_with_timeout(cmd, line, Duration::from_secs(120), 0)
}

/// `rankwise run` starts a program with the mpirun of the MPI that program links, whichever MPI
/// rankwise itself links; an mpirun forced through RANKWISE_MPIRUN that does not match is
/// refused in one line.
#[test]
fn run_picks_the_mpirun_of_the_programs_mpi() {
    let other = common::other_mpi();
    let hello = other.hello.to_str().unwrap();
    let mut cmd = rankwise(&["run", "-n", "3", hello]);
    cmd.env_remove("RANKWISE_MPIRUN");
    let o = run(cmd);
    o.assert_success();
    for r in 0..3 {
        assert!(o.stdout.lines().any(|l| l.starts_with(&format!("rank {r} of 3 on "))), "{}", o.show());
    }
    let mut cmd = rankwise(&["run", "-n", "3", hello]);
    cmd.env("RANKWISE_MPIRUN", common::mpirun());
    let o = run(cmd);
    assert_eq!(o.code, Some(2), "{}", o.show());
    let (ours, theirs) = if common::hydra() { ("MPICH", "Open MPI") } else { ("Open MPI", "MPICH") };
    let want = format!("error: RANKWISE_MPIRUN={} is {ours}'s mpirun, but the program links {theirs} (", common::mpirun());
    assert!(o.stderr.starts_with(&want) && o.stderr.ends_with(&format!("): point RANKWISE_MPIRUN at {theirs}'s\n")), "{want}\n{}", o.show());
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.show());
}

fn steps_args<'a>(dir: &'a str, sets: &[&'a str]) -> Vec<String> {
    let mut v = vec!["steps".to_string(), "--set".into(), format!("dir={dir}")];
    for s in sets {
        v.extend(["--set".to_string(), s.to_string()]);
    }
    v
}

#[test]
fn runs_an_example_by_name_on_4_ranks() {
    program("hello");
    let o = run(rankwise(&["run", "-n", "4", "hello"]));
    o.assert_success();
    for r in 0..4 {
        assert!(o.stdout.contains(&format!("rank {r} of 4 on ")), "{}", o.show());
    }
    assert!(o.stdout.contains("allreduce: sum of rank+1 over 4 ranks = 10"), "{}", o.show());
}

/// Each rank's pool takes the cores it may use, shared with the other ranks on them: 4 ranks on
/// this 2-core machine take 1 thread each (not 2 each, 8 on 2 cores), 1 rank both;
/// RAYON_NUM_THREADS and `--threads` override it. hello says how many and why.
#[test]
fn each_rank_takes_its_share_of_the_cores_unless_told() {
    program("hello");
    let threads = |o: &Outcome| -> Vec<String> {
        let lines: Vec<String> = o.stdout.lines().filter(|l| l.starts_with("rank ")).map(|l| l.split(", ").nth(1).unwrap_or("").to_string()).collect();
        assert_eq!(lines.len(), 4, "{}", o.show());
        lines
    };
    let mut cmd = rankwise(&["run", "-n", "4", "hello"]);
    cmd.env_remove("RAYON_NUM_THREADS");
    let o = run(cmd);
    o.assert_success();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let total: usize = threads(&o).iter().map(|t| t.split(' ').next().unwrap().parse::<usize>().unwrap()).sum();
    assert!(total <= cpus.max(4), "{total} threads on {cpus} CPUs\n{}", o.show());
    if cpus == 2 {
        assert_eq!(threads(&o), vec!["1 thread (2 CPUs shared by 4 ranks)"; 4], "{}", o.show());
    }
    // One rank alone gets every core (Open MPI would bind it to one), and takes them all.
    let mut cmd = rankwise(&["run", "-n", "1", "hello"]);
    cmd.env_remove("RAYON_NUM_THREADS");
    let o = run(cmd);
    o.assert_success();
    if cpus == 2 {
        assert!(o.stdout.starts_with("rank 0 of 1 on ") && o.stdout.contains(", 2 threads (its 2 CPUs), "), "{}", o.show());
    }
    let mut cmd = rankwise(&["run", "-n", "4", "hello"]);
    cmd.env("RAYON_NUM_THREADS", "3");
    let o = run(cmd);
    o.assert_success();
    assert_eq!(threads(&o), vec!["3 threads (RAYON_NUM_THREADS)"; 4], "{}", o.show());
    let mut cmd = rankwise(&["run", "-n", "4", "--threads", "2", "hello"]);
    cmd.env_remove("RAYON_NUM_THREADS");
    let o = run(cmd);
    o.assert_success();
    assert_eq!(threads(&o), vec!["2 threads (RAYON_NUM_THREADS)"; 4], "{}", o.show());
}

#[test]
fn dry_run_prints_the_exact_command() {
    program("hello");
    let o = run(rankwise(&["run", "-n", "3", "-t", "2", "--dry-run", "hello", "-i", "/dev/null", "-s", "a=1", "--", "x y"]));
    o.assert_success();
    let line = o.stdout.trim();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains("RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 "), "{line}");
    assert!(line.ends_with("/examples/hello --inputs /dev/null --set a=1 'x y'"), "{line}");
    if common::hydra() {
        // Hydra passes the whole environment on, oversubscribes and binds nothing unasked.
        assert!(line.contains(&format!("{} -n 3 /", common::mpirun())), "{line}");
        assert!(!line.contains("OMPI_") && !line.contains(" -x "), "{line}");
        return;
    }
    assert!(line.contains(" -np 3 "), "{line}");
    assert!(line.contains(" --bind-to none -x RANKWISE_STATUS_FILE -x RAYON_NUM_THREADS -x OMP_NUM_THREADS "), "{line}");
    // SAFETY: geteuid cannot fail.
    assert_eq!(line.starts_with("OMPI_ALLOW_RUN_AS_ROOT=1") || line.contains(" OMPI_ALLOW_RUN_AS_ROOT=1 "), unsafe { libc::geteuid() } == 0, "{line}");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(line.contains("--oversubscribe"), 3 > cores, "{line}");
}

#[test]
fn a_scripts_own_arguments_come_before_the_inputs() {
    let o = run(rankwise(&["run", "-n", "2", "--dry-run", "python3", "heat.py", "x", "-i", "/dev/null", "-s", "a=1", "--", "-v"]));
    o.assert_success();
    let line = o.stdout.trim();
    assert!(line.ends_with("/python3 heat.py x --inputs /dev/null --set a=1 -v"), "{line}");
}

#[test]
fn dry_run_with_a_hostfile_passes_it_and_its_slots_to_mpirun() {
    let hello = program("hello");
    let s = Scratch::new("launcher-hostfile");
    let hosts = s.path().join("hosts");
    std::fs::write(&hosts, "node1 slots=2\nnode2 slots=2\n").unwrap();
    let mut cmd = rankwise(&["run", "-n", "4", "--hostfile", hosts.to_str().unwrap(), "--dry-run", "hello"]);
    // Open MPI reads its agent from this variable itself: nothing to add for it.
    cmd.env("OMPI_MCA_plm_rsh_agent", "/opt/agent.sh");
    let o = run(cmd);
    o.assert_success();
    let mpirun = o.stdout.split_whitespace().find(|w| w.ends_with(&common::mpirun())).unwrap_or_else(|| panic!("{}", o.show()));
    let status = o.stdout.split_whitespace().find(|w| w.starts_with("RANKWISE_STATUS_FILE=")).unwrap_or_else(|| panic!("{}", o.show()));
    if common::hydra() {
        // Hydra rejects `slots=` in its hostfiles: the launcher names the hosts, and the agent.
        let hydra = format!("{status} {mpirun} -n 4 -hosts node1:2,node2:2 -launcher rsh -launcher-exec /opt/agent.sh {}", hello.display());
        assert_eq!(o.stdout.trim(), hydra);
        return;
    }
    // SAFETY: geteuid cannot fail.
    let root = if unsafe { libc::geteuid() } == 0 { "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " } else { "" };
    assert_eq!(
        o.stdout.trim(),
        format!("{status} {root}{mpirun} -np 4 --hostfile {} -x RANKWISE_STATUS_FILE {}", hosts.display(), hello.display())
    );
}

#[test]
fn exit_codes_pass_through() {
    program("rt-basics");
    let o = run(rankwise(&["run", "-n", "2", "rt-basics", "--", "requeue"]));
    assert_eq!(o.code, Some(75), "{}", o.show());
    let o = run(rankwise(&["run", "-n", "3", "rt-basics", "--", "error", "2"]));
    assert_eq!(o.code, Some(1), "{}", o.show());
    assert!(o.stderr.contains("rankwise: the job failed at step 0 with exit code 1"), "{}", o.show());
    // mpirun's own message sometimes fails to print ("ORTE_ERROR_LOG: Out of resource in
    // show_help.c"); when it does print, the failed rank is named.
    if o.stderr.contains("MPI_ABORT was invoked on rank 2") {
        assert!(o.stderr.contains("rankwise: the job failed at step 0 with exit code 1: rank 2: MPI_Abort"), "{}", o.show());
    }
    // --set reaches the program, which rejects the unknown key.
    let o = run(rankwise(&["run", "-n", "2", "hello", "--set", "nonsense=1"]));
    assert_eq!(o.code, Some(2), "{}", o.show());
    assert!(o.stderr.contains("error: --set nonsense: unknown input `nonsense`"), "{}", o.show());
}

#[test]
fn bad_input_is_one_clear_line_and_exit_2() {
    program("hello");
    let s = Scratch::new("launcher-bad");
    let bad = s.path().join("bad.toml");
    std::fs::write(&bad, "n = 64\nsteps = = 3\n").unwrap();
    let bad = bad.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str)> = vec![
        (vec!["run", "-n", "0", "hello"], vec![], "error: invalid value '0' for '--np <N>': must be a whole number of at least 1"),
        (vec!["run", "hello"], vec![], "error: the following required arguments were not provided: --np <N>"),
        (vec!["run", "-n", "2", "no-such-program"], vec![], "error: unknown program \"no-such-program\": not an example in "),
        (vec!["run", "-n", "2", "./no/such/path"], vec![], "error: program ./no/such/path does not exist or is not executable"),
        (vec!["run", "-n", "2", "hello", "-i", bad], vec![], "bad.toml line 2: "),
        (vec!["run", "-n", "2", "hello", "-i", "/no/inputs.toml"], vec![], "error: cannot read inputs file /no/inputs.toml: "),
        (vec!["run", "-n", "2", "hello", "--set", "novalue"], vec![], "error: --set \"novalue\": expected key=value"),
        (vec!["run", "-n", "2", "hello"], vec![("RANKWISE_MPIRUN", "/no/mpirun")], "error: no mpirun found: RANKWISE_MPIRUN=/no/mpirun is not an executable"),
        (vec!["run", "-n", "2", "hello"], vec![("PATH", "/nonexistent")], "error: no mpirun found on PATH"),
        (vec!["run", "-n", "2", "--launcher", "srun", "hello"], vec![("PATH", "/nonexistent")], "error: no srun found on PATH"),
        (vec!["run", "-n", "2", "--gpus-per-rank", "1", "hello"], vec![], "error: --gpus-per-rank needs srun"),
        (vec!["run", "-n", "2", "--backoff=-1", "hello"], vec![], "error: --backoff must be between 0 and 3600 seconds"),
        (vec!["run", "-n", "2", "--hostfile", "/no/hosts", "hello"], vec![], "error: cannot read hostfile /no/hosts: No such file or directory"),
        (vec!["run", "-n", "2", "--hostfile", "/dev/null", "hello"], vec![], "error: hostfile /dev/null names no hosts (one per line: HOST slots=N)"),
        (vec!["run", "-n", "2", "--hostfile", "/dev/null", "hello"], vec![("SLURM_JOB_ID", "1")], "error: --hostfile is for mpirun: srun runs on the nodes of the Slurm job"),
        (vec!["launch"], vec![], "error: unrecognized subcommand 'launch'"),
    ];
    for (args, env, expect) in cases {
        let mut cmd = rankwise(&args);
        if env.iter().any(|(k, _)| *k == "PATH") {
            // The search on PATH is for when RANKWISE_MPIRUN is not set.
            cmd.env_remove("RANKWISE_MPIRUN");
        }
        cmd.envs(env.iter().copied());
        let o = run(cmd);
        assert_eq!(o.code, Some(2), "{args:?}\n{}", o.show());
        let lines: Vec<&str> = o.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line expected\n{}", o.show());
        assert!(lines[0].contains(expect), "{args:?}: expected {expect:?}\n{}", o.show());
        assert!(o.stdout.is_empty(), "{}", o.show());
    }
}

/// The examples' own bad-input errors under `rankwise run`: the whole of what the user sees is
/// the program's one line, and the exit code 2 (no launcher report that a rank exited non-zero).
#[test]
fn examples_bad_input_is_the_programs_line_alone() {
    let s = Scratch::new("launcher-examples-bad");
    let file = s.path().join("bad.toml");
    std::fs::write(&file, "n = \"big\"\n").unwrap();
    let f = file.to_str().unwrap();
    let bogus = "error: unexpected argument \"--bogus\" (expected --inputs FILE or --set key=value)".to_string();
    let cases = [
        ("hello", vec!["--set", "nn=3"], "error: --set nn: unknown input `nn`".to_string()),
        ("hello", vec!["-i", f], format!("error: {f} line 1: unknown input `n`")),
        ("hello", vec!["--", "--bogus"], bogus.clone()),
        ("heat", vec!["--set", "nn=3"], "error: --set nn: unknown input `nn`".into()),
        ("heat", vec!["--set", "n=1"], "error: --set n: `n` = 1: need at least 2 cells per side".into()),
        ("heat", vec!["-i", f], format!("error: {f} line 1: `n` = \"big\": expected usize")),
        ("heat", vec!["--", "--bogus"], bogus.clone()),
        ("poisson", vec!["--set", "cg.tl=0"], "error: --set cg.tl: unknown input `cg.tl`".into()),
        ("poisson", vec!["--set", "cg.dot=fast"], "error: --set cg.dot: `cg.dot` = \"fast\": must be rows, exact or plain".into()),
        ("poisson", vec!["-i", f], format!("error: {f} line 1: `n` = \"big\": expected usize")),
        ("poisson", vec!["--", "--bogus"], bogus.clone()),
        ("quickstart", vec!["--set", "nn=3"], "error: --set nn: unknown input `nn`".into()),
        ("quickstart", vec!["--set", "steps=-1"], "error: --set steps: `steps` = -1: expected u64".into()),
        ("quickstart", vec!["-i", f], format!("error: {f} line 1: `n` = \"big\": expected usize")),
        ("quickstart", vec!["--", "--bogus"], bogus),
    ];
    for (example, args, line) in cases {
        program(example);
        let mut cmd = rankwise(&["run", "-n", "2", example]);
        // quickstart's checkpoints would land in the working folder.
        cmd.args(&args).current_dir(s.path());
        let o = run(cmd);
        assert_eq!((o.code, o.stdout.as_str(), o.stderr.as_str()), (Some(2), "", format!("{line}\n").as_str()), "{example} {args:?}\n{}", o.show());
    }
}

/// A program that stops with a checkpoint (exit 75) shows its own lines only, and a program's
/// other exit codes keep the launcher's report, after the program's lines.
#[test]
fn requeue_is_quiet_and_other_exit_codes_keep_the_launchers_report() {
    let s = Scratch::new("launcher-exit-codes");
    let script = s.path().join("exits.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"stopping here\" >&2\nexit \"$1\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exits = |code: &str| run(rankwise(&["run", "-n", "2", script.to_str().unwrap(), "--", code]));
    let o = exits("75");
    assert_eq!((o.code, o.stdout.as_str(), o.stderr.as_str()), (Some(75), "", "stopping here\nstopping here\n"), "{}", o.show());
    let o = exits("3");
    assert_eq!(o.code, Some(3), "{}", o.show());
    assert!(o.stderr.starts_with("stopping here\nstopping here\n"), "{}", o.show());
    let last = o.stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("rankwise: the job failed at step 0 with exit code 3"), "{}", o.show());
    if !common::hydra() {
        // Either of its two boxes: Open MPI sometimes fails to print one ("ORTE_ERROR_LOG ... show_help").
        assert!(o.stderr.contains("a non-zero exit code") || o.stderr.contains("exited with non-zero status"), "Open MPI's report is kept\n{}", o.show());
    }
}

/// `rankwise info | head -3`, and every other subcommand whose reader goes away: no panic, no
/// backtrace, no message; `run` ends its job first (exit 141, as the shell reports a SIGPIPE).
#[test]
fn a_closed_pipe_ends_every_subcommand_quietly() {
    program("hello");
    let s = Scratch::new("launcher-pipe");
    let ck = s.path().join("ck");
    std::fs::create_dir_all(&ck).unwrap();
    let params = s.path().join("sweep.toml");
    std::fs::write(&params, "[sweep]\ngrid = { n = [8, 16] }\n").unwrap();
    let o = {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(format!("{} info | head -3", rankwise_bin().display())).env("RUST_BACKTRACE", "1");
        run(sh)
    };
    assert_eq!((o.code, o.stdout.lines().count(), o.stderr.as_str()), (Some(0), 3, ""), "{}", o.show());
    let subcommands: [&[&str]; 9] = [
        &["info"],
        &["--help"],
        &["completions", "bash"],
        &["ckpt", "list", ck.to_str().unwrap()],
        &["run", "-n", "2", "--dry-run", "hello"],
        &["sbatch", "--dry-run", "-n", "2", "-t", "5", "hello"],
        &["sweep", "--params", params.to_str().unwrap(), "--dry-run", "-n", "2", "-t", "5", "hello"],
        &["run", "-n", "2", "hello"],
        &["run", "-n", "1", "yes"],
    ];
    for args in subcommands {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) into a two-int array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are ours; the read end is closed before the child writes.
        let (read, write) = unsafe { (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1])) };
        drop(read);
        let mut cmd = rankwise(args);
        cmd.env("RUST_BACKTRACE", "1").stdout(write).stderr(Stdio::piped());
        let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr, "", "{args:?}: {:?}", out.status);
        let ended = out.status.signal() == Some(libc::SIGPIPE) || out.status.code() == Some(141);
        assert!(ended, "{args:?}: {:?}", out.status);
    }
}

#[test]
fn supervised_run_survives_sigkills_with_the_same_result() {
    program("steps");
    let s = Scratch::new("launcher-restarts");
    let (a, b) = (s.path().join("a"), s.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let sets = ["steps=20", "every=3"];
    let mut cmd = rankwise(&["run", "-n", "3"]);
    cmd.args(steps_args(a.to_str().unwrap(), &sets));
    let o = run(cmd);
    o.assert_success();
    let reference = o.stdout.lines().find(|l| l.starts_with("final ")).unwrap().to_string();

    // Killed at 8, the second run has not checkpointed yet: it must resume from 6 again.
    let sets = ["steps=20", "every=3", "kill_at=[7, 8, 13]"];
    let mut cmd = rankwise(&["run", "-n", "3", "--restarts", "3", "--backoff", "0.05"]);
    cmd.args(steps_args(b.to_str().unwrap(), &sets));
    let o = run(cmd);
    o.assert_success();
    assert!(o.stdout.contains(&reference), "not the uninterrupted run's {reference}\n{}", o.show());
    // MPICH 4.0's Hydra names the killed rank's PID, not its rank.
    let rank = if common::hydra() { "" } else { "rank 1: " };
    for (step, ckpt, n) in [(7, 6, 1), (8, 6, 2), (13, 12, 3)] {
        let failed = format!("rankwise: the job failed at step {step} with exit code 137: {rank}signal 9 (Killed)");
        assert!(o.stderr.contains(&failed), "{failed}\n{}", o.show());
        // One path: the launcher relaunches, the program says which checkpoint it restored.
        let restart = format!("rankwise: restart {n} of 3 in ");
        let relaunch = ": relaunching; the program resumes from its newest valid checkpoint, if any";
        assert!(o.stderr.lines().any(|l| l.starts_with(&restart) && l.ends_with(relaunch)), "{restart}..{relaunch}\n{}", o.show());
        let from = format!("resumed from checkpoint {}", b.join(format!("ckpt-{ckpt:06}.txt")).display());
        assert!(o.stderr.contains(&from), "{from}\n{}", o.show());
        assert!(o.stdout.contains(&format!("start step={ckpt} restart={n}")), "{}", o.show());
    }
    // The backoff doubles: 50 ms, then 100, then 200; the supervisor waited at least their sum.
    let waits: Vec<&str> = o.stderr.lines().filter_map(|l| l.strip_prefix("rankwise: restart ")).map(|l| l.split(" in ").nth(1).unwrap().split([' ', ':']).next().unwrap()).collect();
    assert_eq!(waits, ["50.0ms", "100.0ms", "200.0ms"], "{}", o.show());
    assert!(o.elapsed >= Duration::from_millis(350), "{:?}\n{}", o.elapsed, o.show());
    assert!(!o.stderr.contains("rankwise: restart 1 of 3 in 50.0ms from"), "{}", o.show());
}

#[test]
fn gives_up_when_a_restart_makes_no_progress_or_restarts_run_out() {
    program("steps");
    let s = Scratch::new("launcher-give-up");
    let dir = s.path().to_str().unwrap();
    let mut cmd = rankwise(&["run", "-n", "2", "--restarts", "5", "--backoff", "0"]);
    cmd.args(steps_args(dir, &["steps=20", "every=2", "kill_at=[5]", "kill_once=false"]));
    let o = run(cmd);
    assert_eq!(o.code, Some(137), "{}", o.show());
    assert!(o.stderr.contains("rankwise: giving up: step 5 failed twice, the restart made no progress"), "{}", o.show());
    assert_eq!(o.stderr.matches("rankwise: restart ").count(), 1, "{}", o.show());

    let s = Scratch::new("launcher-run-out");
    let mut cmd = rankwise(&["run", "-n", "2", "--restarts", "1", "--backoff", "0"]);
    cmd.args(steps_args(s.path().to_str().unwrap(), &["steps=20", "kill_at=[3, 6]"]));
    let o = run(cmd);
    assert_eq!(o.code, Some(137), "{}", o.show());
    assert!(o.stderr.contains("rankwise: giving up after 1 restarts"), "{}", o.show());
    assert!(o.stdout.contains("start step=3 restart=1"), "{}", o.show());
}

/// Start a long run of `program` with `args` (given the run's scratch folder), wait until rank 0
/// has reported a step, send `sig` to rankwise; check that no process of the job is left.
fn signal_mid_run(sig: i32, restarts: &str, program_name: &str, args: impl FnOnce(&Path) -> Vec<String>) -> (Outcome, Duration, Scratch) {
    program(program_name);
    let s = Scratch::new(&format!("launcher-signal-{sig}-{program_name}"));
    let status = s.path().join("status");
    let mut cmd = rankwise(&["run", "-n", "2", "--restarts", restarts, "--status-file", status.to_str().unwrap()]);
    cmd.args(args(s.path()));
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    while !status.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "no status file after a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    assert!(!status.exists(), "rankwise left its status file behind");
    let o = Outcome {
        command: format!("{cmd:?}"),
        code: out.status.code(),
        timed_out: false,
        elapsed: start.elapsed(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        ranks: vec![],
        rank_errs: vec![],
    };
    // Every rank (and mpirun) named the scratch folder on its command line: none may be left.
    let left = processes_naming(s.path());
    assert!(left.is_empty(), "processes of the job still running after rankwise exited: {left:?}\n{}", o.show());
    (o, took, s)
}

/// The processes whose command line names `path` (not this test process).
fn processes_naming(path: &Path) -> Vec<String> {
    let needle = path.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok().map(|c| (e.file_name(), c)))
        .map(|(pid, c)| (pid.to_string_lossy().into_owned(), String::from_utf8_lossy(&c).replace('\0', " ")))
        .filter(|(_, c)| c.contains(needle))
        .map(|(pid, c)| format!("{pid}: {c}"))
        .collect()
}

#[test]
fn usr1_reaches_the_ranks_which_checkpoint_and_exit_75() {
    let (o, took, s) = signal_mid_run(libc::SIGUSR1, "2", "steps", |d| steps_args(d.to_str().unwrap(), &["steps=100000", "sleep_ms=20"]));
    assert_eq!(o.code, Some(75), "{}", o.show());
    let step: u64 = o.stdout.split("stopped at step=").nth(1).and_then(|t| t.split_whitespace().next()).unwrap_or_else(|| panic!("{}", o.show())).parse().unwrap();
    // The checkpoint of the very step it stopped at, holding that step.
    let ckpt = std::fs::read_to_string(s.path().join(format!("ckpt-{step:06}.txt"))).unwrap_or_else(|e| panic!("no checkpoint of step {step}: {e}\n{}", o.show()));
    assert!(ckpt.starts_with(&format!("{step} ")), "{ckpt}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// TERM to `rankwise run` reaches heat's ranks, whose stop policy checkpoints and stops: the
/// checkpoint of that step is there and verifies, no rank is left, and nothing restarts.
#[test]
fn term_ends_the_job_with_a_checkpoint_and_is_not_restarted() {
    let (o, took, s) = signal_mid_run(libc::SIGTERM, "2", "heat", |d| {
        ["heat", "--set", "n=64", "--set", "steps=100000000", "--set", "progress.every=0"]
            .map(String::from)
            .into_iter()
            .chain(["--set".into(), format!("checkpoint.dir={}", d.join("ck").display())])
            .collect()
    });
    assert!(o.code.is_some_and(|c| c != 0), "{}", o.show());
    assert!(!o.stderr.contains("rankwise: restart"), "{}", o.show());
    let step: u64 = o.stderr.split("stopping at step ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap_or_else(|| panic!("{}", o.show())).parse().unwrap();
    assert!(o.stderr.contains(&format!("stopping at step {step} (Some(Preemption)); checkpoint written")), "{}", o.show());
    // Exit 75 is the program's verdict: no launcher report that a rank exited non-zero.
    if o.code == Some(75) {
        assert!(!o.stderr.contains("non-zero"), "{}", o.show());
    }
    let ckpt = s.path().join("ck").join(format!("ckpt-{step:010}.h5"));
    let v = run(rankwise(&["ckpt", "inspect", ckpt.to_str().unwrap()]));
    v.assert_success();
    assert!(v.stdout.contains(&format!("step      {step}\n")), "{}", v.show());
    run(rankwise(&["ckpt", "verify", s.path().join("ck").to_str().unwrap()])).assert_success();
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn info_describes_this_machine() {
    let o = run(rankwise(&["info"]));
    o.assert_success();
    let row = |k: &str| o.stdout.lines().find(|l| l.starts_with(k)).unwrap_or_else(|| panic!("no {k} row\n{}", o.show())).to_string();
    assert!(row("MPI ").contains("Open MPI v") || row("MPI ").contains("MPICH"), "{}", o.show());
    assert!(row("HDF5 ").contains(", parallel ("), "{}", o.show());
    assert!(row("BLAS ").contains("OpenBLAS"), "{}", o.show());
    let flavour = if common::hydra() { "MPICH" } else { "Open MPI" };
    assert!(row("launcher ").contains(&format!("{} ({flavour})", common::mpirun())), "{}", o.show());
    assert!(row("CUDA ").starts_with("CUDA      none") || row("CUDA ").contains("GPU"), "{}", o.show());
    assert_eq!(row("Slurm "), "Slurm     not inside a Slurm job");
    // The test environment sets both overrides (one thread per rank, one for OpenBLAS).
    assert!(row("threads ").starts_with("threads   1 per rank (RAYON_NUM_THREADS); OpenBLAS 1 (OPENBLAS_NUM_THREADS); "), "{}", o.show());
    let mut cmd = rankwise(&["info"]);
    cmd.env_remove("RAYON_NUM_THREADS").env_remove("OPENBLAS_NUM_THREADS").env_remove("OMP_NUM_THREADS");
    let o = run(cmd);
    let row = o.stdout.lines().find(|l| l.starts_with("threads ")).unwrap_or_else(|| panic!("{}", o.show())).to_string();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let want = format!("threads   per rank its CPUs shared by the ranks on them: {cpus} for 1 rank here, {} for 2, {} for 4 (RAYON_NUM_THREADS unset); OpenBLAS the same; ", (cpus / 2).max(1), (cpus / 4).max(1));
    assert!(row.starts_with(&want), "{want}\n{}", o.show());
}

#[test]
fn help_has_examples_and_completions_generate() {
    for sub in [&["--help"][..], &["run", "--help"], &["info", "--help"], &["completions", "--help"], &["ckpt", "--help"], &["ckpt", "list", "--help"], &["ckpt", "verify", "--help"], &["ckpt", "inspect", "--help"]] {
        let o = run(rankwise(sub));
        o.assert_success();
        assert!(o.stdout.contains("Example"), "{sub:?}\n{}", o.show());
    }
    let o = run(rankwise(&["completions", "bash"]));
    o.assert_success();
    assert!(o.stdout.contains("_rankwise()"), "{}", o.show());
}

/// The heat example under `--restarts`, one rank SIGKILLed from outside twice, each time at a
/// random moment after a new checkpoint: the final field has the bits of an uninterrupted run.
#[test]
fn supervised_heat_killed_twice_ends_with_the_uninterrupted_field() {
    let heat = program("heat");
    let s = Scratch::new("launcher-heat");
    let sets = |dir: &str| -> Vec<String> {
        // About a second a run on a quiet machine, so that the second kill finds the relaunch running.
        ["n=256", "steps=6000", "checkpoint.every=300", &format!("checkpoint.dir={dir}")]
            .iter()
            .flat_map(|kv| ["--set".to_string(), kv.to_string()])
            .collect()
    };
    let mut cmd = rankwise(&["run", "-n", "2", "heat"]);
    cmd.args(sets(s.path().join("a").to_str().unwrap()));
    let o = run(cmd);
    o.assert_success();
    let reference = o.stdout.lines().find(|l| l.starts_with("final ")).unwrap().to_string();

    let status = s.path().join("status");
    let dir = s.path().join("b");
    let mut cmd = rankwise(&["run", "-n", "2", "--restarts", "3", "--backoff", "0", "--status-file", status.to_str().unwrap(), "heat"]);
    cmd.args(sets(dir.to_str().unwrap()));
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    let checkpoint = || std::fs::read_to_string(&status).ok().and_then(|s| s.lines().find(|l| l.starts_with("checkpoint")).map(str::to_string));
    let mut seen = None;
    for kill in 0..2 {
        // Wait for a checkpoint newer than the last one seen, then kill at a random moment.
        loop {
            assert!(start.elapsed() < Duration::from_secs(120), "no new checkpoint after kill {kill}");
            let now = checkpoint();
            if now.is_some() && now != seen {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 40));
        // A rank is a process whose argv[0] is the heat binary and whose arguments name our folder.
        let ranks = || -> Vec<i32> {
            std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| {
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                let ours = args.first()? == heat.to_str()? && args.iter().any(|a| a.contains(dir.to_str().unwrap()));
                ours.then(|| e.file_name().to_str()?.parse::<i32>().ok()).flatten()
            }).collect()
        };
        let job = ranks();
        let pid = *job.first().expect("no heat rank running");
        // SAFETY: kill(2) of a rank of the job this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        // The killed job's ranks gone, the next kill waits for a checkpoint of the relaunch (one the
        // killed job wrote meanwhile does not count).
        while ranks().iter().any(|p| job.contains(p)) {
            assert!(start.elapsed() < Duration::from_secs(120), "the killed job's ranks stay");
            std::thread::sleep(Duration::from_millis(5));
        }
        seen = checkpoint();
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stderr.matches("rankwise: restart ").count(), 2, "{stderr}");
    assert!(stdout.lines().any(|l| l == reference), "not the uninterrupted run's {reference}\n{stdout}\n{stderr}");
}

/// Checkpoints of steps 10 and 20 written at 2 ranks by the `ckpt` test program.
fn checkpoints(name: &str) -> Scratch {
    let s = Scratch::new(name);
    for step in ["10", "20"] {
        common::Job::new(2, "ckpt").args(["write", s.path().to_str().unwrap(), step]).run().assert_success();
    }
    s
}

#[test]
fn ckpt_list_verify_and_inspect_describe_checkpoints() {
    let s = checkpoints("launcher-ckpt");
    let d = s.path().to_str().unwrap();
    let f20 = s.path().join("ckpt-0000000020.h5");
    let o = run(rankwise(&["ckpt", "list", d]));
    o.assert_success();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.show());
    assert!(lines[0].starts_with("step=10 time=1 size=") && lines[0].contains(" ranks=2 valid "), "{}", o.show());
    assert!(lines[1].starts_with("step=20 time=2 size=") && lines[1].ends_with(&format!("valid  {}", f20.display())), "{}", o.show());

    let o = run(rankwise(&["ckpt", "verify", d]));
    o.assert_success();
    assert!(o.stdout.contains(&format!("ok {} (step 20, 5 fields)", f20.display())), "{}", o.show());
    assert!(o.stdout.ends_with("newest valid: step 20\n"), "{}", o.show());

    let o = run(rankwise(&["ckpt", "inspect", f20.to_str().unwrap()]));
    o.assert_success();
    for want in ["step      20\n", "ranks     2\n", "param     alpha = 0.25\n", "field     c3 f64 [7, 5, 6] checksum "] {
        assert!(o.stdout.contains(want), "{want:?}\n{}", o.show());
    }

    // Flip bytes inside a dataset's data (as tests/checkpoint.rs does).
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import h5py,sys; print(h5py.File(sys.argv[1])['c3'].id.get_offset())"])
        .arg(&f20)
        .output()
        .unwrap();
    let offset: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let mut bytes = std::fs::read(&f20).unwrap();
    for b in &mut bytes[offset + 17..offset + 20] {
        *b ^= 0x5a;
    }
    std::fs::write(&f20, bytes).unwrap();
    for target in [d, f20.to_str().unwrap()] {
        let o = run(rankwise(&["ckpt", "verify", target]));
        assert_eq!(o.code, Some(1), "{}", o.show());
        assert!(o.stdout.contains(&format!("invalid {}: field `c3` has checksum", f20.display())), "{}", o.show());
    }
    let o = run(rankwise(&["ckpt", "verify", d]));
    assert!(o.stdout.contains("newest valid: step 10"), "{}", o.show());
    let o = run(rankwise(&["ckpt", "list", d]));
    o.assert_success();
    assert!(o.stdout.lines().nth(1).unwrap().contains(" ranks=2 invalid: field `c3` has checksum"), "{}", o.show());

    // Bad input: one `error:` line, exit 2.
    let not_h5 = s.path().join("ckpt-0000000020.xmf");
    let cases = [
        (vec!["ckpt", "list", "/no/such/dir"], "error: no checkpoint directory /no/such/dir".to_string()),
        (vec!["ckpt", "verify", "/no/such/file.h5"], "error: /no/such/file.h5: ".to_string()),
        (vec!["ckpt", "inspect", not_h5.to_str().unwrap()], format!("error: {} is not a checkpoint (not an HDF5 file)", not_h5.display())),
    ];
    for (args, expect) in cases {
        let o = run(rankwise(&args));
        assert_eq!(o.code, Some(2), "{args:?}\n{}", o.show());
        let lines: Vec<&str> = o.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}\n{}", o.show());
        assert!(lines[0].starts_with(&expect), "{args:?}: expected {expect:?}\n{}", o.show());
    }
}
