//! The README promises MPICH too: a short smoke set under MPICH inside every `make test` (the
//! whole suite under MPICH is `RANKWISE_MPI=mpich make test`). It builds only the two examples it
//! runs, with `scripts/env.sh`'s MPICH selection into MPICH's own target folder, and launches them
//! with `mpirun.mpich`: start-up, heat bit-identical on 1 and 3 ranks, a checkpoint written on 4
//! ranks restored on 2, and bad input as one line and exit code 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{clean_cargo_env, Job, Outcome, Scratch};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The MPICH builds of `examples`, in MPICH's target folder; the launches of this test binary
/// go through `mpirun.mpich`.
fn mpich_examples(examples: &[&str]) -> PathBuf {
    let missing: Vec<&str> = ["mpirun.mpich", "mpicc.mpich"].into_iter().filter(|t| !on_path(t)).collect();
    assert!(missing.is_empty(), "{missing:?} not installed: run scripts/setup.sh (Debian packages mpich libmpich-dev libhdf5-mpich-dev)");
    // Every launch of this test binary (common::Job) goes through Hydra.
    std::env::set_var("RANKWISE_MPIRUN", "mpirun.mpich");
    let mut build = String::from(". scripts/env.sh && cargo build --profile test");
    for e in examples {
        build.push_str(&format!(" --example {e}"));
    }
    build.push_str(" && echo \"$CARGO_TARGET_DIR\"");
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(&build).current_dir(ROOT).env("RANKWISE_MPI", "mpich");
    clean_cargo_env(&mut bash);
    // An Open MPI build's target folder must not leak into MPICH's.
    if std::env::var("RANKWISE_MPI").as_deref() != Ok("mpich") {
        bash.env_remove("CARGO_TARGET_DIR");
    }
    let o = bash.output().unwrap();
    assert!(o.status.success(), "the MPICH build failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let target = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
    target.join("debug").join("examples")
}

fn on_path(tool: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|d| d.join(tool).exists())
}

/// rank 0's `final ` line.
fn final_line(o: &Outcome) -> String {
    o.assert_success().line(0, "final ").to_string()
}

fn heat(bin: &Path, np: usize, dir: &Path, sets: &[&str]) -> Outcome {
    let mut job = Job::with_path(np, bin.join("heat")).dir(dir).timeout(300);
    for s in sets {
        job = job.args(["--set", s]);
    }
    job.run()
}

#[test]
fn mpich_smoke_set_launch_bits_restart_and_bad_input() {
    let bin = mpich_examples(&["hello", "heat"]);
    // The binaries link MPICH (and MPICH's HDF5), not Open MPI.
    for e in ["hello", "heat"] {
        let ldd = Command::new("ldd").arg(bin.join(e)).output().unwrap();
        let libs = String::from_utf8_lossy(&ldd.stdout);
        assert!(libs.contains("libmpich") && !libs.contains("libmpi.so"), "{e} links:\n{libs}");
    }

    // Launch: 4 ranks that know each other (rank 0 prints what each one reported).
    let o = Job::with_path(4, bin.join("hello")).run();
    o.assert_success();
    for r in 0..4 {
        assert!(o.line(0, &format!("rank {r} of 4 ")).contains(&format!("(node-local rank {r} of 4)")), "{}", o.show());
    }
    o.line(0, "allreduce: sum of rank+1 over 4 ranks = 10 (expected 10)");

    // Heat on 1 and 3 ranks: the same bits.
    let s = Scratch::new("mpich");
    let base = ["n=24", "steps=60", "progress.every=0"];
    let one = final_line(&heat(&bin, 1, s.path(), &base));
    let three = final_line(&heat(&bin, 3, s.path(), &base));
    assert_eq!(one, three, "heat under MPICH differs between 1 and 3 ranks");

    // A checkpoint written on 4 ranks, restored on 2: the bits of an uninterrupted run.
    let ck = format!("checkpoint.dir={}", s.path().join("ck").display());
    let first = heat(&bin, 4, s.path(), &["n=24", "steps=30", "checkpoint.every=20", "checkpoint.at_end=false", &ck]);
    first.assert_success();
    assert!(s.path().join("ck/ckpt-0000000020.h5").exists(), "{}", first.show());
    let second = heat(&bin, 2, s.path(), &["n=24", "steps=60", "progress.every=0", &ck]);
    assert_eq!(final_line(&second), one, "restored on 2 ranks from 4:\n{}", second.show());
    assert!(second.stderr.contains("restarted from step 20 (4 ranks wrote it, 2 now)"), "{}", second.show());

    // Bad input: one line on rank 0, exit code 2.
    let o = heat(&bin, 2, s.path(), &["n=1"]);
    assert_eq!(o.code, Some(2), "{}", o.show());
    let errs: Vec<&String> = o.rank_errs.iter().flatten().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errs, ["error: --set n: `n` = 1: need at least 2 cells per side"], "{}", o.show());
}
