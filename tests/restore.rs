//! Restart you can trust: whatever is damaged in a checkpoint, its data never reach the program's
//! memory, every rank takes the same path (the previous checkpoint), and a damaged attribute is
//! damage, never "another run's checkpoint" or "a newer format". Real files, real mpirun, at 2
//! and 4 ranks, through the test program, through heat and through `rankwise run --restarts`.

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{mpi_env, rankwise_bin, run_with_timeout, Job, Outcome, Scratch};

fn h5(dir: &Path, step: u64) -> PathBuf {
    dir.join(format!("ckpt-{step:010}.h5"))
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3").arg("-c").arg(script).args(args).output().expect("python3 (scripts/setup.sh installs it)");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Flip bits in the middle of field `name`'s data, as a failing disk or a bad copy would.
fn damage_data(path: &Path, name: &str) {
    let script = "import h5py,sys; d=h5py.File(sys.argv[1])[sys.argv[2]]; print(d.id.get_offset(), d.id.get_storage_size())";
    let out = python(script, &[path.to_str().unwrap(), name]);
    let v: Vec<usize> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[v[0] + v[1] / 2] ^= 0x10;
    bytes[v[0] + v[1] - 1] ^= 0x81;
    std::fs::write(path, bytes).unwrap();
}

/// Change one attribute as damage would: the metadata checksum no longer matches.
fn damage_attr(path: &Path, group: &str, attr: &str, value: &str) {
    let script = format!("import h5py,sys; h5py.File(sys.argv[1], 'r+')['{group}'].attrs['{attr}'] = {value}");
    python(&script, &[path.to_str().unwrap()]);
}

fn sentinel(np: usize, dir: &Path) -> Outcome {
    let o = Job::new(np, "ckpt").args(["read-sentinel", dir.to_str().unwrap()]).run();
    o.assert_success();
    o
}

fn all_ranks(o: &Outcome, np: usize, want: &str) {
    for r in 0..np {
        assert_eq!(o.line(r, &format!("rank={r} sentinel")), format!("rank={r} sentinel {want}"), "{}", o.show());
    }
}

#[test]
fn a_failed_restore_leaves_the_programs_memory_as_it_was() {
    let s = Scratch::new("restore-memory");
    let d = s.path();
    for step in [10, 20, 30] {
        Job::new(3, "ckpt").args(["write", d.to_str().unwrap(), &step.to_string()]).run().assert_success();
    }
    // 30: the last field read is damaged, after four fields that verify.
    damage_data(&h5(d, 30), "tiny");
    // 20: a parameter changed (the metadata checksum sees it).
    damage_attr(&h5(d, 20), "parameters", "n", "65");
    for np in [2, 4] {
        let o = sentinel(np, d);
        all_ranks(&o, np, "restored=step=10 wrong=0");
        assert!(o.stderr.contains("ckpt-0000000030.h5: corrupt checkpoint: field `tiny` has checksum"), "{}", o.show());
        assert!(o.stderr.contains("ckpt-0000000020.h5: corrupt checkpoint: metadata checksum"), "{}", o.show());
    }
    // Nothing valid left: every buffer still holds what it held before.
    damage_data(&h5(d, 10), "d3");
    for np in [2, 4] {
        all_ranks(&sentinel(np, d), np, "restored=none wrong=0");
    }
}

/// A verified read goes in slabs, each summed while the next is read: with slabs of one row
/// (so some ranks read nothing in some of them) the data still arrive exactly, and damage in a
/// late slab still keeps every buffer as it was.
#[test]
fn a_read_in_many_slabs_restores_exactly_and_sees_damage() {
    let s = Scratch::new("restore-slabs");
    let d = s.path();
    for step in [10, 20] {
        Job::new(3, "ckpt").args(["write", d.to_str().unwrap(), &step.to_string()]).run().assert_success();
    }
    let slabbed = |np: usize| {
        let o = Job::new(np, "ckpt").args(["read-sentinel", d.to_str().unwrap()]).env("RANKWISE_CKPT_READ_SLAB", "8").run();
        o.assert_success();
        o
    };
    for np in [2, 4] {
        all_ranks(&slabbed(np), np, "restored=step=20 wrong=0");
    }
    damage_data(&h5(d, 20), "c3");
    for np in [2, 4] {
        let o = slabbed(np);
        all_ranks(&o, np, "restored=step=10 wrong=0");
        assert!(o.stderr.contains("ckpt-0000000020.h5: corrupt checkpoint: field `c3` has checksum"), "{}", o.show());
    }
    damage_data(&h5(d, 10), "a1");
    all_ranks(&slabbed(4), 4, "restored=none wrong=0");
}

#[test]
fn a_file_that_cannot_be_checked_in_time_is_skipped_by_every_rank() {
    let s = Scratch::new("restore-timeout");
    let d = s.path();
    Job::new(2, "ckpt").args(["write", d.to_str().unwrap(), "5"]).run().assert_success();
    let o = Job::new(2, "ckpt").args(["read-sentinel", d.to_str().unwrap()]).env("RANKWISE_CKPT_CHECK_TIMEOUT", "0").run();
    o.assert_success();
    all_ranks(&o, 2, "restored=none wrong=0");
    assert!(o.stderr.contains("corrupt checkpoint: checking it took more than 0 s"), "{}", o.show());
}

fn heat(np: usize, sets: &[&str]) -> Outcome {
    Job::new(np, "heat").args(sets.iter().flat_map(|s| ["--set", s])).run()
}

fn final_line(o: &Outcome) -> String {
    o.assert_success();
    o.line(0, "final ").to_string()
}

/// The case: heat leaves one checkpoint at step 100, bits are flipped in it, and the run is
/// continued to 300: it must say so, start from step 0 with its initial state intact, and end as an
/// uninterrupted run does. A damaged parameter is the same (not "another run's checkpoint").
#[test]
fn damaged_checkpoints_never_reach_heats_field_at_2_and_4_ranks() {
    for np in [2, 4] {
        let reference = final_line(&heat(np, &["n=48", "steps=300"]));
        let s = Scratch::new(&format!("restore-heat-{np}"));
        let dir = s.path().join("c");
        let set_dir = format!("checkpoint.dir={}", dir.display());
        let first = ["n=48", "steps=200", "checkpoint.every=100", "checkpoint.at_end=false", &set_dir];
        for damage in ["data", "param"] {
            std::fs::remove_dir_all(&dir).ok();
            final_line(&heat(np, &first));
            match damage {
                "data" => damage_data(&h5(&dir, 100), "u"),
                _ => damage_attr(&h5(&dir, 100), "parameters", "n", "47"),
            }
            let o = heat(np, &["n=48", "steps=300", &set_dir]);
            assert_eq!(final_line(&o), reference, "{damage}: {}", o.show());
            let warned = |text: &str| o.rank_errs[0].iter().any(|l| l.contains(text));
            assert!(warned("ckpt-0000000100.h5: corrupt checkpoint: "), "{}", o.show());
            assert!(warned("1 newer damaged checkpoint(s) skipped: starting from step 0"), "{}", o.show());
        }
    }
}

/// Every checkpoint damaged, under the supervising launcher: the run starts over and completes.
#[test]
fn every_checkpoint_damaged_under_rankwise_run_restarts() {
    let reference = final_line(&heat(2, &["n=32", "steps=60"]));
    let s = Scratch::new("restore-supervised");
    let dir = s.path().join("c");
    let set_dir = format!("checkpoint.dir={}", dir.display());
    final_line(&heat(2, &["n=32", "steps=50", "checkpoint.every=20", "checkpoint.at_end=false", &set_dir]));
    damage_data(&h5(&dir, 20), "u");
    damage_attr(&h5(&dir, 40), "/", "step", "41");
    let mut cmd = Command::new(rankwise_bin());
    mpi_env(&mut cmd);
    cmd.args(["run", "-n", "2", "--restarts", "2", "--backoff", "0", "heat", "--"]);
    cmd.args(["--set", "n=32", "--set", "steps=60", "--set", &set_dir]);
    let line = format!("{cmd:?}");
    let o = run_with_timeout(cmd, line, Duration::from_secs(120), 0);
    assert_eq!(o.code, Some(0), "{}", o.show());
    assert!(o.stdout.contains(&reference), "not the uninterrupted run's {reference}\n{}", o.show());
    assert!(o.stderr.contains("2 newer damaged checkpoint(s) skipped: starting from step 0"), "{}", o.show());
}

/// The block tables of format 2 have no size limit (format 1 kept them in one attribute, at most
/// 64 KiB: about 1,360 ranks in 3-D): a table of 100,000 rows, with its checksum and the metadata
/// checksum made anew by an independent implementation (tests/ckpt_meta.py), restores and
/// verifies; the same table damaged does not.
#[test]
fn a_block_table_of_100000_rows_restores_and_its_damage_is_seen() {
    let s = Scratch::new("restore-table");
    let d = s.path();
    Job::new(2, "ckpt").args(["write", d.to_str().unwrap(), "5"]).run().assert_success();
    let meta = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ckpt_meta.py");
    let file = h5(d, 5);
    let f = file.to_str().unwrap();
    // Python's metadata checksum is Rust's.
    let sums: Vec<String> = python(&format!("exec(open('{meta}').read())"), &["digest", f]).split_whitespace().map(String::from).collect();
    assert_eq!(sums[0], sums[1], "stored and recomputed meta_checksum");
    assert_eq!(python(&format!("exec(open('{meta}').read())"), &["blocks", f, "c3", "100000"]).trim(), "ok");
    let o = Job::new(2, "ckpt").args(["read", d.to_str().unwrap()]).run();
    o.assert_success();
    assert!(o.line(1, "rank=1 restored").starts_with("rank=1 restored step=5 ") && o.line(1, "rank=1 restored").contains(" wrong=0 "), "{}", o.show());
    let verify = |expect_ok: bool| {
        let out = Command::new(rankwise_bin()).args(["ckpt", "verify", f]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.success(), expect_ok, "{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    verify(true);
    python("import h5py,sys; t=h5py.File(sys.argv[1], 'r+')['rankwise']['c3']; t[77777, 1] = 5", &[f]);
    assert!(verify(false).contains("block table of `c3`: checksum mismatch"));
    let o = Job::new(2, "ckpt").args(["read", d.to_str().unwrap()]).run();
    o.assert_success();
    assert_eq!(o.line(0, "rank=0 "), "rank=0 no checkpoint", "{}", o.show());
}
