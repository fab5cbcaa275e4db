//! The node-local checkpoint level (`CheckpointDir::local`, heat's `checkpoint.local`): restores
//! at the same rank count from each rank's file or its partner's copy, falls back to the shared
//! file on another rank count or on damage, keeps nothing once a newer shared checkpoint or the
//! end of the run makes it redundant, and survives a rank killed mid-run bit for bit.

mod common;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{mpi_env, names, program, rankwise_bin, Job, Outcome, Scratch, SmallDisk};

fn ckpt(np: usize, args: &[&str]) -> Outcome {
    let o = Job::new(np, "ckpt").args(args).run();
    o.assert_success();
    o
}

fn restored_step(o: &Outcome, np: usize) -> u64 {
    let steps: Vec<u64> = (0..np)
        .map(|r| {
            let l = o.line(r, &format!("rank={r} restored "));
            assert!(l.contains(" wrong=0 "), "{}", o.show());
            l.split("step=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(steps.iter().all(|&s| s == steps[0]), "{}", o.show());
    steps[0]
}

#[test]
fn restores_from_its_own_files_or_a_partners_copy_and_falls_back_to_the_shared_file() {
    let s = Scratch::new("local-level");
    let (shared, local) = (s.path().join("shared"), s.path().join("local"));
    let (sh, lo) = (shared.to_str().unwrap(), format!("local={}", local.display()));
    // Snapshots 10..50, the shared file every second: shared 20 and 40, local 50 (older local
    // ones went when 40 was committed).
    ckpt(3, &["snapshots", sh, "50", &lo]);
    let l = names(&local);
    assert_eq!(l.len(), 6, "{l:?}");
    assert!(l.iter().all(|n| n.starts_with("ckpt-0000000050.")) && l.contains(&"ckpt-0000000050.copy-1-of-3.bin".to_string()), "{l:?}");
    assert_eq!(names(&shared).iter().filter(|n| n.ends_with(".h5")).count(), 2);

    assert_eq!(restored_step(&ckpt(3, &["read", sh, &lo]), 3), 50);
    // Another rank count: the shared file, quietly.
    for np in [2, 4] {
        let o = ckpt(np, &["read", sh, &lo]);
        assert_eq!(restored_step(&o, np), 40);
        assert!(!o.stderr.contains("WARN"), "{}", o.show());
    }
    // Rank 1's own file lost (its node gone): its partner's copy serves.
    std::fs::remove_file(local.join("ckpt-0000000050.rank-1-of-3.bin")).unwrap();
    let o = ckpt(3, &["read", sh, &lo]);
    assert_eq!(restored_step(&o, 3), 50);
    // The memory of a failed restore is untouched there too: rank 2's own file damaged in its
    // last block, so 50 is skipped for 40, every buffer -3 before, every value right after.
    let f = local.join("ckpt-0000000050.rank-2-of-3.bin");
    let mut bytes = std::fs::read(&f).unwrap();
    // The blocks end where the trailer begins: its header, digest, length and magic.
    let n = bytes.len() - 24 - u64::from_le_bytes(bytes[bytes.len() - 16..bytes.len() - 8].try_into().unwrap()) as usize;
    bytes[n - 3] ^= 0x40;
    std::fs::write(&f, bytes).unwrap();
    let o = ckpt(3, &["read-sentinel", sh, &lo]);
    for r in 0..3 {
        assert_eq!(o.line(r, &format!("rank={r} sentinel")), format!("rank={r} sentinel restored=step=40 wrong=0"), "{}", o.show());
    }
    assert!(o.stderr.contains("ckpt-0000000050.rank-2-of-3.bin: corrupt checkpoint: node-local block of `tiny` has checksum"), "{}", o.show());
    // `rankwise ckpt list --local` shows both levels, and the damage.
    let out = Command::new(rankwise_bin()).args(["ckpt", "list", sh, "--local", local.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 5, "{text}");
    assert!(lines[0].starts_with("step=20 ") && lines[1].starts_with("step=40 ") && lines[1].contains(" valid "), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("local step=50 rank=1 of 3 partner copy ") && l.contains(" valid ")), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("local step=50 rank=2 of 3 own ") && l.contains(" invalid: node-local block of `tiny`")), "{text}");
    // Both copies of rank 1 gone: 50 cannot be put together; 40 it is.
    std::fs::remove_file(local.join("ckpt-0000000050.copy-1-of-3.bin")).unwrap();
    assert_eq!(restored_step(&ckpt(3, &["read", sh, &lo]), 3), 40);
}

#[test]
fn between_shared_flushes_each_checkpoint_is_written_over_the_files_of_the_one_it_makes_obsolete() {
    let s = Scratch::new("local-reuse");
    let (shared, local) = (s.path().join("shared"), s.path().join("local"));
    let (sh, lo) = (shared.to_str().unwrap(), format!("local={}", local.display()));
    // Six snapshots, none of them shared: the files of 30 are those of 10 written over (a RAM
    // disk's pages used again), and so on; 50 and 60 are left, whole.
    let o = ckpt(3, &["snapshots", sh, "60", &lo, "flush=100"]);
    let inode = |step: u64, kind: &str, r: usize| -> String {
        o.line(0, &format!("local ckpt-{step:010}.{kind}-{r}-of-3.bin ")).split("inode=").nth(1).unwrap().to_string()
    };
    for kind in ["rank", "copy"] {
        for r in 0..3 {
            assert_ne!(inode(10, kind, r), inode(20, kind, r), "{}", o.show());
            for step in [30, 40, 50, 60] {
                assert_eq!(inode(step, kind, r), inode(step - 20, kind, r), "{kind} {r} {step}: {}", o.show());
            }
        }
    }
    let l = names(&local);
    assert_eq!(l.len(), 12, "{l:?}");
    assert!(l.iter().all(|n| n.starts_with("ckpt-0000000050.") || n.starts_with("ckpt-0000000060.")), "{l:?}");
    assert!(!shared.exists() || names(&shared).iter().all(|n| !n.ends_with(".h5")));
    // Every block of 60 verifies, from each rank's own file and, with rank 0's lost, its copy.
    assert_eq!(restored_step(&ckpt(3, &["read", sh, &lo]), 3), 60);
    std::fs::remove_file(local.join("ckpt-0000000060.rank-0-of-3.bin")).unwrap();
    assert_eq!(restored_step(&ckpt(3, &["read", sh, &lo]), 3), 60);
}

fn heat_sets(shared: &Path, local: &Path, extra: &[&str]) -> Vec<String> {
    let mut kv = vec![format!("checkpoint.dir={}", shared.display()), format!("checkpoint.local={}", local.display())];
    kv.extend(extra.iter().map(|s| s.to_string()));
    kv.into_iter().flat_map(|s| ["--set".to_string(), s]).collect()
}

#[test]
fn heat_with_a_local_level_keeps_no_local_files_once_it_completes_and_bad_inputs_are_one_line() {
    let s = Scratch::new("local-heat");
    let (shared, local) = (s.path().join("shared"), s.path().join("local"));
    let reference = Job::new(2, "heat").args(["--set", "n=32", "--set", "steps=100"]).run();
    let o = Job::new(2, "heat").args(heat_sets(&shared, &local, &["n=32", "steps=100", "checkpoint.every=10", "checkpoint.flush_every=4"])).run();
    o.assert_success();
    assert_eq!(o.line(0, "final "), reference.line(0, "final "));
    assert_eq!(names(&local), Vec::<String>::new());
    let h5: Vec<String> = names(&shared).into_iter().filter(|n| n.ends_with(".h5")).collect();
    // Every 4th of every 10 steps, and the end's (to the shared file: the local level is cleared).
    assert_eq!(h5, ["ckpt-0000000080.h5", "ckpt-0000000100.h5"]);
    for (sets, msg) in [
        (vec!["checkpoint.local=x"], "error: --set checkpoint.local: `checkpoint.local` = \"x\": needs checkpoint.dir (the shared level)"),
        (vec!["checkpoint.dir=y", "checkpoint.local=x", "checkpoint.flush_every=0"], "error: --set checkpoint.flush_every: `checkpoint.flush_every` = 0: must be at least 1"),
        (vec!["checkpoint.dir=y", "checkpoint.flush_every=3"], "error: --set checkpoint.flush_every: `checkpoint.flush_every` = 3: needs checkpoint.local (where the others go)"),
    ] {
        let o = Job::new(2, "heat").args(sets.iter().flat_map(|s| ["--set", s])).run();
        assert_eq!(o.code, Some(2), "{}", o.show());
        assert_eq!(o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect::<Vec<_>>(), vec![msg], "{}", o.show());
    }
}

/// A node-local disk too small for the next checkpoint fails the run saying so, with its free
/// space, and leaves the checkpoint before it whole and no `.partial`.
#[test]
fn a_full_node_local_disk_fails_the_run_saying_so_and_keeps_the_checkpoint_before_it() {
    let s = Scratch::new("local-full");
    // 2 ranks of 128 x 256 doubles: 0.5 MiB a rank and step with the partner copies; the
    // second checkpoint does not fit beside the first.
    let disk = SmallDisk::mount(s.path().join("small"), "1500k");
    let shared = s.path().join("shared");
    let o = Job::new(2, "heat").args(heat_sets(&shared, &disk.0, &["n=256", "steps=40", "checkpoint.every=10", "checkpoint.flush_every=4"])).run();
    assert_eq!(o.code, Some(1), "{}", o.show());
    // Every rank fails alike; whichever says it first names the file and the space left.
    let said = o.stderr.lines().find(|l| l.contains("error: ")).unwrap_or_default();
    assert!(said.contains("ckpt-0000000020.") && said.contains("No space left on device"), "{}", o.show());
    assert!(said.contains("(the filesystem of ") && said.contains(" bytes free)"), "{}", o.show());
    let left = names(&disk.0);
    assert!(left.iter().all(|n| !n.ends_with(".partial")), "{left:?}");
    for k in ["copy-0", "copy-1", "rank-0", "rank-1"] {
        assert!(left.contains(&format!("ckpt-0000000010.{k}-of-2.bin")), "{left:?}");
    }
}

/// A rank killed after a local checkpoint newer than the last shared one: the supervised relaunch
/// on the same rank count continues from the local level and ends with the uninterrupted bits.
#[test]
fn a_rank_killed_mid_run_resumes_from_the_local_level_bit_for_bit() {
    let heat = program("heat");
    let s = Scratch::new("local-kill");
    let (shared, local) = (s.path().join("shared"), s.path().join("local"));
    let extra = ["n=64", "steps=6000", "checkpoint.every=200", "checkpoint.flush_every=5"];
    let reference = Job::new(2, "heat").args(["--set", "n=64", "--set", "steps=6000"]).run();
    reference.assert_success();
    let reference = reference.line(0, "final ").to_string();

    let mut cmd = Command::new(rankwise_bin());
    mpi_env(&mut cmd);
    cmd.args(["run", "-n", "2", "--restarts", "1", "--backoff", "0", "heat"]).args(heat_sets(&shared, &local, &extra));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Wait for a local checkpoint past the first shared one (step 1000), not itself shared.
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(120), "no local checkpoint after the first shared one");
        let past = names(&local).iter().any(|n| {
            let step: u64 = n.trim_start_matches("ckpt-").split('.').next().unwrap().parse().unwrap_or(0);
            step > 1000 && step % 1000 != 0 && n.ends_with("-of-2.bin")
        });
        // The node-local level holds two checkpoints, and the one being written, however many
        // come between shared ones (four here).
        let mut held: Vec<String> = names(&local).into_iter().filter(|n| n.ends_with(".bin")).map(|n| n.split('.').next().unwrap().to_string()).collect();
        held.sort();
        held.dedup();
        assert!(held.len() <= 3, "{held:?}");
        if past && names(&shared).iter().any(|n| n.ends_with(".h5")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let rank = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let ours = args.first()? == heat.to_str()? && args.iter().any(|a| a.contains(local.to_str().unwrap()));
        ours.then(|| e.file_name().to_str()?.parse::<i32>().ok()).flatten()
    });
    // SAFETY: kill(2) of a rank of the job this test started.
    unsafe { libc::kill(rank.expect("no heat rank running"), libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let resumed = stderr.lines().find(|l| l.contains("restarted from step ")).unwrap_or_else(|| panic!("no restart\n{stderr}"));
    assert!(resumed.contains(".rank-0-of-2.bin"), "not from the local level: {resumed}\n{stderr}");
    assert!(stdout.lines().any(|l| l == reference), "not the uninterrupted run's {reference}\n{stdout}\n{stderr}");
    assert_eq!(names(&local), Vec::<String>::new(), "the completed run left local files");
}
