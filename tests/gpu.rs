//! The GPU paths under real mpirun: device-field exchanges equal host-field exchanges bit for
//! bit at 1-4 ranks (program: tests/programs/device_fields.rs); the heat example on the GPU gives
//! the CPU's bits at any rank count, restarts from its checkpoints as an uninterrupted GPU run
//! ends, and on the CPU from a GPU checkpoint; matmul with `backend = "cuda"`; each rank names
//! its GPU. They need a GPU: `#[ignore]`d here, run by `make gpu-check` (`--include-ignored`).

mod common;
use common::{Job, Outcome, Scratch};

/// Boxes of 1 to 3 axes, periodic or not, star and box stencils, ghosts wider than a block
/// (`8:1:3` at 4 ranks), periodic images of a rank's own cells (1 rank). Every rank owns cells
/// at 1-4 ranks: a device block needs some.
const SPECS: &[&str] = &[
    "13:0:1:star", "8:1:3:box", "12x10:00:1:star", "11x7:10:2:box", "9x13:11:2:star", "6x5:01:1:box",
    "8x8:11:1:box", "6x5x4:000:1:box", "7x6x5:101:2:star", "5x4x4:111:2:box", "4x4x4:111:1:star",
];

#[test]
#[ignore = "needs a GPU"]
fn device_field_exchange_equals_field_exchange_at_1_to_4_ranks() {
    for np in 1..=4 {
        let o = Job::new(np, "device-fields").args(SPECS).timeout(300).run();
        o.assert_success();
        for r in 0..np {
            let l = o.line(r, "rank=");
            assert!(l.ends_with(" bad=0"), "{l}\n{}", o.show());
            let runs: usize = l.split("runs=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
            assert!(runs >= 3 * SPECS.len(), "{l}");
        }
    }
}

fn heat(np: usize, sets: &[&str]) -> Outcome {
    Job::new(np, "heat").args(sets.iter().flat_map(|s| ["--set", s])).timeout(300).run()
}

/// The final line's `l2_error` and `checksum` (of every bit of the field).
fn result(o: &Outcome) -> (String, String) {
    o.assert_success();
    let line = o.line(0, "final ");
    let get = |key: &str| line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key} in {line}\n{}", o.show())).to_string();
    (get("l2_error"), get("checksum"))
}

fn on_the_gpu(o: &Outcome) -> bool {
    o.rank_errs[0].iter().any(|l| l.contains("heat on the GPU: "))
}

/// The GPU kernels round as the CPU ones (no FMA, the same order), and each cell's update is the
/// same instructions whatever the split: the same bits on either, at any rank count.
#[test]
#[ignore = "needs a GPU"]
fn heat_on_the_gpu_gives_the_cpu_bits_at_1_to_4_ranks() {
    for sets in [["n=24", "dim=2", "steps=50"], ["n=10", "dim=3", "steps=20"]] {
        let cpu = result(&heat(2, &[&sets[..], &["backend=cpu"]].concat()));
        for np in 1..=4 {
            let o = heat(np, &[&sets[..], &["backend=cuda"]].concat());
            assert!(on_the_gpu(&o), "{}", o.show());
            assert_eq!(result(&o), cpu, "{sets:?} at {np} ranks: GPU (l2_error, checksum) vs the CPU's\n{}", o.show());
        }
    }
    // `auto` chooses the GPU where every rank has one.
    let o = heat(2, &["n=24", "steps=50", "backend=auto"]);
    assert!(on_the_gpu(&o), "{}", o.show());
    assert_eq!(result(&o), result(&heat(1, &["n=24", "steps=50"])));
}

/// Checkpoints copy the device field to the host; a restart (on another rank count) uploads it
/// and ends as an uninterrupted GPU run does, bit for bit; the CPU continues a GPU checkpoint
/// likewise.
#[test]
#[ignore = "needs a GPU"]
fn a_gpu_restart_ends_as_the_uninterrupted_gpu_run_and_the_cpu_continues_it() {
    let uninterrupted = result(&heat(3, &["n=20", "steps=40", "backend=cuda"]));
    let s = Scratch::new("gpu-heat-restart");
    let dir = format!("checkpoint.dir={}", s.path().join("ckpt").display());
    result(&heat(4, &["n=20", "steps=25", "checkpoint.every=10", "checkpoint.at_end=false", "backend=cuda", &dir]));
    let o = heat(2, &["n=20", "steps=40", "checkpoint.every=10", "checkpoint.at_end=false", "backend=cuda", &dir]);
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 20")), "{}", o.show());
    assert_eq!(result(&o), uninterrupted, "restarted on the GPU\n{}", o.show());
    // The newest checkpoint (step 30) was written from the GPU: the CPU goes on from it.
    let o = heat(3, &["n=20", "steps=40", "checkpoint.every=10", "backend=cpu", &dir]);
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 30")), "{}", o.show());
    assert_eq!(result(&o), uninterrupted, "restarted on the CPU\n{}", o.show());
}

/// SUMMA with the local products on each rank's GPU: the program checks C against A (B x) and
/// one serial dgemm, and fails beyond 1e-10.
#[test]
#[ignore = "needs a GPU"]
fn matmul_on_the_gpu_passes_its_checks_at_1_to_4_ranks() {
    for np in 1..=4 {
        let o = Job::new(np, "matmul").args(["--set", "n=300", "--set", "block=64", "--set", "backend=cuda"]).timeout(300).run();
        o.assert_success();
        assert!(o.line(0, "summa ").contains(" backend=cuda "), "{}", o.show());
        let err: f64 = o.line(0, "check gather ").split("rel_error=").nth(1).unwrap().parse().unwrap();
        assert!(err < 1e-13, "{}", o.show());
    }
}

/// One GPU for two ranks: each names it and says it is shared, and the node's first rank warns.
#[test]
#[ignore = "needs a GPU"]
fn each_rank_names_its_gpu_and_who_shares_it() {
    let gpus = rankwise::kernels::cuda::device_count().unwrap();
    let o = Job::new(1, "rt-basics").args(["init"]).env("CUDA_VISIBLE_DEVICES", "0").run();
    o.assert_success();
    assert!(o.line(0, "rank=").ends_with("gpu=GPU 0 of 1 (CUDA_VISIBLE_DEVICES id 0)"), "{}", o.show());
    let o = Job::new(2, "rt-basics").args(["init"]).env("CUDA_VISIBLE_DEVICES", "0").run();
    o.assert_success();
    for r in 0..2 {
        assert!(o.line(r, "rank=").ends_with("gpu=GPU 0 of 1 (CUDA_VISIBLE_DEVICES id 0), shared by 2 ranks"), "{}", o.show());
    }
    assert!(o.rank_errs[0].iter().any(|l| l.contains("2 ranks on ") && l.contains(" share one GPU")), "{}", o.show());
    eprintln!("{gpus} GPUs here");
}
