//! Asynchronous checkpoints (`checkpoint.mode = "async"`): the same files and the same final bits
//! as synchronous ones, and a rank killed while a background flush is in flight leaves the previous
//! checkpoint valid, from which the supervised run ends bit-identical.

mod common;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{mpi_env, program, rankwise_bin, Job, Outcome, Scratch};

fn heat(np: usize, sets: &[&str]) -> Outcome {
    heat_with(np, sets, "262144")
}

/// heat, its fields written straight into the file (past the page cache) when their runs there
/// are at least `direct` bytes long (`RANKWISE_CKPT_DIRECT_RUN`).
fn heat_with(np: usize, sets: &[&str], direct: &str) -> Outcome {
    let o = Job::new(np, "heat").args(sets.iter().flat_map(|s| ["--set", s])).env("RANKWISE_CKPT_DIRECT_RUN", direct).run();
    o.assert_success();
    o
}

#[test]
fn async_and_sync_write_the_same_files_and_end_with_the_same_bits() {
    let s = Scratch::new("async-same");
    for np in [1, 3, 4] {
        let mut finals = vec![];
        // Through MPI-IO, and (async-direct) straight into the file.
        for (name, mode, direct) in [("sync", "sync", "262144"), ("async", "async", "262144"), ("async-direct", "async", "0")] {
            let dir = format!("checkpoint.dir={}", s.path().join(format!("{name}{np}")).display());
            let o = heat_with(np, &["n=40", "steps=130", "checkpoint.every=30", "checkpoint.keep=0", &dir, &format!("checkpoint.mode={mode}")], direct);
            finals.push(o.line(0, "final ").to_string());
        }
        assert!(finals.iter().all(|f| f == &finals[0]), "{finals:?}");
        // 130: the checkpoint at the end.
        for step in [30, 60, 90, 120, 130] {
            let name = format!("ckpt-{step:010}.h5");
            let a = std::fs::read(s.path().join(format!("sync{np}")).join(&name)).unwrap();
            for other in ["async", "async-direct"] {
                let b = std::fs::read(s.path().join(format!("{other}{np}")).join(&name)).unwrap();
                assert!(a == b, "{name} at {np} ranks differs between sync and {other}");
            }
        }
    }
    // A restart from an asynchronous run's checkpoint, on another rank count, ends alike.
    let dir = format!("checkpoint.dir={}", s.path().join("async4").display());
    let o = heat(2, &["n=40", "steps=200", &dir, "checkpoint.mode=async"]);
    let reference = heat(3, &["n=40", "steps=200"]);
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 130 (4 ranks wrote it, 2 now)")), "{}", o.show());
    assert_eq!(o.line(0, "final "), reference.line(0, "final "));
}

#[test]
fn a_bad_mode_is_one_line_and_exit_2() {
    let o = Job::new(2, "heat").args(["--set", "checkpoint.mode=later"]).run();
    assert_eq!(o.code, Some(2), "{}", o.show());
    let errors: Vec<&String> = o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors, ["error: --set checkpoint.mode: `checkpoint.mode` = \"later\": expected sync or async"], "{}", o.show());
}

#[test]
fn a_failed_background_flush_is_reported_by_the_next_call_on_every_rank() {
    let s = Scratch::new("async-fail");
    let o = Job::new(3, "ckpt").args(["async-fail", s.path().to_str().unwrap()]).run();
    o.assert_success();
    for r in 0..3 {
        // The rank that failed says why; the others, where and what it said.
        let next = o.line(r, &format!("rank={r} next call: "));
        assert!(next.contains("a-file: File exists"), "{}", o.show());
        assert_eq!(r != 0, next.contains("another rank failed in preparing the checkpoint directory: rank 0: "), "{}", o.show());
        assert!(o.line(r, &format!("rank={r} then: ")).ends_with("ckpt-0000000002.h5"), "{}", o.show());
    }
}

/// The PID of a rank of heat whose arguments name `dir`.
fn a_rank(heat: &std::path::Path, dir: &std::path::Path) -> Option<i32> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let ours = args.first()? == heat.to_str()? && args.iter().any(|a| a.contains(dir.to_str().unwrap()));
        ours.then(|| e.file_name().to_str()?.parse::<i32>().ok()).flatten()
    })
}

#[test]
fn a_rank_killed_during_a_background_flush_leaves_the_previous_checkpoint_valid() {
    let heat_bin = program("heat");
    let s = Scratch::new("async-kill");
    let sets = |dir: &std::path::Path| -> Vec<String> {
        ["n=384", "steps=1200", "checkpoint.every=100", "checkpoint.mode=async", &format!("checkpoint.dir={}", dir.display())]
            .iter()
            .flat_map(|kv| ["--set".to_string(), kv.to_string()])
            .collect()
    };
    let reference = Job::new(2, "heat").args(sets(&s.path().join("a"))).run();
    reference.assert_success();
    let reference = reference.line(0, "final ").to_string();

    let dir = s.path().join("b");
    let mut cmd = Command::new(rankwise_bin());
    mpi_env(&mut cmd);
    cmd.args(["run", "-n", "2", "--restarts", "2", "--backoff", "0", "heat"]).args(sets(&dir));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Wait until a flush is under way after one checkpoint was committed: a `.partial` file
    // beside a committed `.h5`. Then kill a rank.
    let start = Instant::now();
    let (partial, committed) = loop {
        assert!(start.elapsed() < Duration::from_secs(120), "no background flush seen");
        let names: Vec<String> = std::fs::read_dir(&dir).map_or(vec![], |d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect());
        let partial = names.iter().find(|n| n.ends_with(".h5.partial")).cloned();
        let committed = names.iter().filter(|n| n.ends_with(".h5")).max().cloned();
        if let (Some(p), Some(c)) = (partial, committed) {
            break (p, c);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let pid = a_rank(&heat_bin, &dir).expect("no heat rank running");
    // SAFETY: kill(2) of a rank of the job this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(stderr.matches("rankwise: restart ").count(), 1, "{stderr}");
    // The relaunch continued from a committed checkpoint: the one seen, or a newer one if the
    // flush completed before the kill took effect; never from the one being written.
    let step: u64 = committed.trim_start_matches("ckpt-").trim_end_matches(".h5").parse().unwrap();
    let flushing: u64 = partial.trim_start_matches("ckpt-").trim_end_matches(".h5.partial").parse().unwrap();
    let resumed = stderr.lines().find_map(|l| l.split("restarted from step ").nth(1)?.split(' ').next()?.parse::<u64>().ok());
    assert!(resumed.is_some_and(|r| r == step || r == flushing), "{step} {flushing}\n{stderr}");
    assert!(stdout.lines().any(|l| l == reference), "not the uninterrupted run's {reference}\n{stdout}\n{stderr}");
}
