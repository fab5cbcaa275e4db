//! The GPU paths under real mpirun: device-field exchanges equal host-field exchanges bit for
//! bit at 1-4 ranks (program: tests/programs/device_fields.rs), and the heat example on the GPU
//! gives the CPU's answer to rounding, checkpoints and restarts included. Without a usable GPU
//! each test skips with one line; scripts/gpu-check.sh runs them on a machine that has one.

mod common;
use common::{Job, Outcome, Scratch};

/// Boxes of 1 to 3 axes, periodic or not, star and box stencils, ghosts wider than a block
/// (`8:1:3` at 4 ranks), periodic images of a rank's own cells (1 rank). Every rank owns cells
/// at 1-4 ranks: a device block needs some.
const SPECS: &[&str] = &[
    "13:0:1:star", "8:1:3:box", "12x10:00:1:star", "11x7:10:2:box", "9x13:11:2:star", "6x5:01:1:box",
    "8x8:11:1:box", "6x5x4:000:1:box", "7x6x5:101:2:star", "5x4x4:111:2:box", "4x4x4:111:1:star",
];

fn gpu_here() -> bool {
    match rankwise::kernels::CudaBackend::new(0) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping CUDA test: no usable CUDA back end ({e})");
            false
        }
    }
}

#[test]
fn device_field_exchange_equals_field_exchange_at_1_to_4_ranks() {
    if !gpu_here() {
        return;
    }
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

/// The final line's `l2_error` and `checksum`.
fn result(o: &Outcome) -> (f64, String) {
    o.assert_success();
    let line = o.line(0, "final ");
    let get = |key: &str| line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key} in {line}")).to_string();
    (get("l2_error").parse().unwrap(), get("checksum"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs()
}

#[test]
fn heat_on_the_gpu_gives_the_cpu_answer_to_rounding() {
    if !gpu_here() {
        return;
    }
    for sets in [["n=24", "dim=2", "steps=50"], ["n=10", "dim=3", "steps=20"]] {
        let (cpu, _) = result(&heat(2, &[&sets[..], &["backend=cpu"]].concat()));
        let gpu: Vec<(f64, String)> = (1..=4).map(|np| result(&heat(np, &[&sets[..], &["backend=cuda"]].concat()))).collect();
        // Each cell's update is the same instructions whatever the split: the same bits.
        assert!(gpu.iter().all(|g| g.1 == gpu[0].1), "{sets:?}: {gpu:?}");
        assert!(close(gpu[0].0, cpu), "{sets:?}: l2 error {} on the GPU, {cpu} on the CPU", gpu[0].0);
    }
    // Checkpoints copy the device field to the host; a restart (on another rank count) uploads it.
    let (reference, _) = result(&heat(3, &["n=20", "steps=40"]));
    let s = Scratch::new("gpu-heat-restart");
    let dir = format!("checkpoint.dir={}", s.path().join("ckpt").display());
    result(&heat(4, &["n=20", "steps=25", "checkpoint.every=10", "backend=cuda", &dir]));
    let o = heat(2, &["n=20", "steps=40", "checkpoint.every=10", "backend=cuda", &dir]);
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 20")), "{}", o.show());
    assert!(close(result(&o).0, reference), "{}", o.show());
}
