//! Checkpoint/restart under real mpirun with real HDF5 files: round trips at 1-4 ranks, restarts
//! on other rank counts, damage detection with fallback, a rank killed mid-write, and an
//! independent reader (h5py).

mod common;
use std::path::Path;
use std::process::Command;

use common::{Job, Outcome, Scratch};

fn write(np: usize, dir: &Path, step: u64, extra: &[&str]) -> Outcome {
    let o = Job::new(np, "ckpt").args(["write", dir.to_str().unwrap(), &step.to_string()]).args(extra).run();
    o.assert_success();
    o
}

fn read(np: usize, dir: &Path) -> Outcome {
    let o = Job::new(np, "ckpt").args(["read", dir.to_str().unwrap()]).run();
    o.assert_success();
    o
}

/// The checksums a write printed.
fn written_sums(o: &Outcome) -> String {
    o.line(0, "wrote ").split("checksums=").nth(1).unwrap().to_string()
}

/// Every rank restored `step` (written at `ranks` ranks) with every element bit-identical.
fn assert_restored(o: &Outcome, np: usize, step: u64, ranks: usize, sums: &str) {
    for r in 0..np {
        let want = format!(
            "rank={r} restored step={step} time={:?} ranks={ranks} params=alpha=0.25,implicit=true,n=64,name=\"heat\" wrong=0 checksums={sums}",
            step as f64 * 0.1
        );
        assert_eq!(o.line(r, &format!("rank={r} restored")), want, "{}", o.show());
    }
}

fn h5(dir: &Path, step: u64) -> std::path::PathBuf {
    dir.join(format!("ckpt-{step:010}.h5"))
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("/usr/bin/python3").arg("-c").arg(script).args(args).output().expect("python3 (scripts/setup.sh installs it)");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn round_trip_at_1_to_4_ranks_and_restart_on_other_rank_counts() {
    let s = Scratch::new("ckpt-roundtrip");
    let shm = Scratch::under(Path::new("/dev/shm"), "ckpt-roundtrip");
    let mut sums = None;
    for np in 1..=4 {
        // Through MPI-IO (the test's fields are too small for direct writes by default), and
        // straight into the file whatever the runs' length: past the page cache on a disk, from
        // the block into the file's pages on a filesystem in memory.
        for (name, root, direct, mode) in [("w", &s, "262144", "contiguous-collective"), ("d", &s, "0", "direct"), ("m", &shm, "0", "direct")] {
            let dir = root.path().join(format!("{name}{np}"));
            let o = Job::new(np, "ckpt").args(["write", dir.to_str().unwrap(), "7"]).env("RANKWISE_CKPT_DIRECT_RUN", direct).run();
            o.assert_success();
            for r in 0..np {
                // Every field, including the ones this rank owns none of, went the same way.
                assert_eq!(o.line(r, "rank="), format!("rank={r} modes={}", [mode; 5].join(",")), "{}", o.show());
            }
            // The checksums depend on neither the rank count nor the way.
            let got = written_sums(&o);
            assert_eq!(sums.get_or_insert_with(|| got.clone()), &got);
            assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".partial")));
        }
    }
    let sums = sums.unwrap();
    // N -> N, 4 -> 1, 2, 3 and 1, 2, 3 -> 4; the direct writes' files on as many, fewer and more.
    let direct = [(4, 4), (4, 1), (1, 4), (3, 2)].map(|(w, r)| ("d", &s, w, r)).into_iter().chain([("m", &shm, 2, 3), ("m", &shm, 4, 4)]);
    for (name, root, w, r) in [(1, 1), (2, 2), (3, 3), (4, 4), (4, 1), (4, 2), (4, 3), (1, 4), (2, 4), (3, 4)].map(|(w, r)| ("w", &s, w, r)).into_iter().chain(direct) {
        let o = read(r, &root.path().join(format!("{name}{w}")));
        assert_restored(&o, r, 7, w, &sums);
    }
}

#[test]
fn an_independent_reader_sees_the_shapes_values_metadata_and_checksums() {
    let s = Scratch::new("ckpt-h5py");
    write(3, s.path(), 5, &[]);
    write(3, s.path(), 6, &["deflate=4"]);
    // Written by each rank straight into the file.
    let direct = s.path().join("direct");
    Job::new(3, "ckpt").args(["write", direct.to_str().unwrap(), "5"]).env("RANKWISE_CKPT_DIRECT_RUN", "0").run().assert_success();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/checkpoint_h5py.py");
    for (file, step, compression) in [(h5(s.path(), 5), 5, "None"), (h5(s.path(), 6), 6, "gzip"), (h5(&direct, 5), 5, "None")] {
        let out = Command::new("/usr/bin/python3").arg(script).arg(file).arg(step.to_string()).arg("3").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("h5py ok"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(&format!("c3 ok {compression}")), "{text}");
    }
    // h5dump, the HDF5 project's own reader, agrees on the layout.
    let out = Command::new("h5dump").args(["-H", "-A"]).arg(h5(s.path(), 5)).output().expect("h5dump (hdf5-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DATASET \"c3\"") && text.contains("SIMPLE { ( 7, 5, 6 ) / ( 7, 5, 6 ) }"), "{text}");
    // The compressed checkpoint reads back at another rank count.
    let o = read(2, s.path());
    assert_eq!(o.line(0, "rank=0 restored").split(' ').nth(2), Some("step=6"), "{}", o.show());
    assert!(o.line(1, "rank=1 restored").contains(" wrong=0 "), "{}", o.show());
}

#[test]
fn damaged_checkpoints_are_reported_and_skipped() {
    let s = Scratch::new("ckpt-damage");
    let d = s.path();
    for step in [10, 20, 30, 40] {
        write(2, d, step, &[]);
    }
    // 40: flip bytes inside a dataset's data.
    let offset: u64 = python("import h5py,sys; print(h5py.File(sys.argv[1])['c3'].id.get_offset())", &[h5(d, 40).to_str().unwrap()])
        .trim()
        .parse()
        .unwrap();
    let mut bytes = std::fs::read(h5(d, 40)).unwrap();
    for b in &mut bytes[offset as usize + 17..offset as usize + 20] {
        *b ^= 0x5a;
    }
    std::fs::write(h5(d, 40), bytes).unwrap();
    let o = read(3, d);
    assert!(o.line(0, "rank=0 restored").contains("step=30 "), "{}", o.show());
    assert!(o.line(2, "rank=2 skipped: ").contains("ckpt-0000000040.h5: corrupt checkpoint: field `c3` has checksum"), "{}", o.show());
    assert!(o.rank_errs[0].iter().any(|l| l.contains("ckpt-0000000040.h5") && l.contains("trying the previous checkpoint")), "{}", o.show());

    // 30: truncated.
    let f = std::fs::OpenOptions::new().write(true).open(h5(d, 30)).unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    // 20: an attribute deleted.
    python("import h5py,sys; del h5py.File(sys.argv[1], 'r+')['b2'].attrs['checksum']", &[h5(d, 20).to_str().unwrap()]);
    let o = read(2, d);
    assert!(o.line(1, "rank=1 restored").contains("step=10 "), "{}", o.show());
    let skipped = o.ranks[0].iter().filter(|l| l.starts_with("rank=0 skipped: ")).cloned().collect::<Vec<_>>().join("\n");
    assert!(skipped.contains("0040.h5: corrupt checkpoint: field `c3` has checksum"), "{skipped}");
    assert!(skipped.contains("0030.h5: corrupt checkpoint: unreadable"), "{skipped}");
    assert!(skipped.contains("0020.h5: corrupt checkpoint: attribute `checksum`"), "{skipped}");

    // The serial tools (what `rankwise ckpt list|verify` call) see the same.
    let o = Job::new(1, "ckpt").args(["verify", d.to_str().unwrap()]).run();
    o.assert_success();
    assert_eq!(o.line(0, "newest valid: "), "newest valid: 10", "{}", o.show());
    assert_eq!(o.ranks[0].iter().filter(|l| l.starts_with("invalid: ")).count(), 3, "{}", o.show());
    assert!(o.line(0, &format!("list {}", h5(d, 30).display())).contains("damaged: "), "{}", o.show());
}

#[test]
fn a_rank_killed_while_writing_leaves_the_previous_checkpoint_valid() {
    let s = Scratch::new("ckpt-kill");
    let d = s.path();
    let sums = written_sums(&write(3, d, 10, &[]));
    let o = Job::new(3, "ckpt").args(["write", d.to_str().unwrap(), "20", "kill=1"]).timeout(60).run();
    assert!(!o.timed_out && o.code != Some(0), "{}", o.show());
    assert!(!h5(d, 20).exists(), "an incomplete checkpoint looks complete");
    assert!(d.join("ckpt-0000000020.h5.partial").exists(), "the write was not under way when the rank died");
    assert_restored(&read(2, d), 2, 10, 3, &sums);
    // The next checkpoint clears the leftover.
    write(2, d, 20, &["keep=1"]);
    let names: Vec<String> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["ckpt-0000000020.h5", "ckpt-0000000020.xmf"], "keep=1 keeps the newest only");
}

#[test]
fn user_errors_are_clear() {
    let s = Scratch::new("ckpt-errors");
    let d = s.path();
    write(2, d, 3, &[]);
    let o = Job::new(3, "ckpt").args(["errors", d.to_str().unwrap()]).run();
    o.assert_success();
    for r in 0..3 {
        let errs: Vec<&String> = o.ranks[r].iter().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errs.len(), 5, "{}", o.show());
        assert!(errs[0].ends_with("no field `nope` (it has: a1, b2, c3, d3, tiny)"), "{}", errs[0]);
        assert_eq!(errs[1], "error: field `a1`: global shape [37] in the file, [38] expected");
        assert_eq!(errs[2], "error: field `b2`: element type f32 in the file, f64 expected");
        assert_eq!(errs[3], "error: field `a1`: block at [30] of shape [10] does not fit in the global shape [37]");
        assert_eq!(errs[4], "error: field `x`: block at [3] of shape [2] does not fit in the global shape [4]; partial left: false");
    }
    // A damaged version number is damage: skipped, never taken for a newer format.
    let path = h5(d, 3);
    std::fs::copy(&path, d.join("pristine")).unwrap();
    python("import h5py,sys; h5py.File(sys.argv[1], 'r+').attrs['format_version'] = 99", &[path.to_str().unwrap()]);
    let o = read(2, d);
    assert_eq!(o.line(1, "rank=1 "), "rank=1 no checkpoint", "{}", o.show());
    assert!(o.stderr.contains("ckpt-0000000003.h5: corrupt checkpoint: attribute `format_version` is damaged (it reads 99)"), "{}", o.show());
    // A file from a newer format (its check value matches) is an error, not a silent fallback.
    std::fs::copy(d.join("pristine"), &path).unwrap();
    let newer = "import h5py,sys; M=(1<<64)-1
def fmix(h):
    h ^= h >> 33; h = h * 0xFF51AFD7ED558CCD & M; h ^= h >> 33; h = h * 0xC4CEB9FE1A85EC53 & M; return h ^ (h >> 33)
a = h5py.File(sys.argv[1], 'r+').attrs; a['format_version'] = 99; a['version_check'] = fmix(99 ^ 0x72616E6B77697365)";
    python(newer, &[path.to_str().unwrap()]);
    let o = Job::new(2, "ckpt").args(["read", d.to_str().unwrap()]).run();
    assert!(o.code.is_some_and(|c| c != 0), "{}", o.show());
    assert!(o.stderr.contains("written by a newer Rankwise (format version 99, this one reads up to 2)"), "{}", o.show());
}

#[test]
fn a_field_written_at_3_ranks_reads_back_at_2_ranks_with_wider_ghosts() {
    let s = Scratch::new("ckpt-field");
    let d = s.path().to_str().unwrap();
    let o = Job::new(3, "ckpt").args(["field-write", d, "4"]).run();
    o.assert_success();
    for r in 0..3 {
        assert_eq!(o.line(r, "rank="), format!("rank={r} field written mode=contiguous-collective"), "{}", o.show());
    }
    let o = Job::new(2, "ckpt").args(["field-read", d]).run();
    o.assert_success();
    let mut cells = 0;
    for r in 0..2 {
        let l = o.line(r, &format!("rank={r} field read "));
        assert!(l.ends_with(" wrong=0 ghosts_touched=0"), "{}", o.show());
        cells += l.split("cells=").nth(1).unwrap().split(' ').next().unwrap().parse::<usize>().unwrap();
    }
    assert_eq!(cells, 9 * 7 * 5, "{}", o.show());
}
