//! The matmul example: SUMMA on 1-4 ranks (square and non-square rank grids, n that no grid
//! divides, panels cut by block edges) agrees with a serial product; bad input is one line.

mod common;
use common::{Job, Outcome};

fn matmul(np: usize, sets: &[&str]) -> Outcome {
    Job::new(np, "matmul").args(sets.iter().flat_map(|s| ["--set", s])).run()
}

/// The relative error on rank 0's `check <what>` line, if it printed one.
fn check(o: &Outcome, what: &str) -> Option<f64> {
    let prefix = format!("check {what} rel_error=");
    o.ranks[0].iter().find_map(|l| l.strip_prefix(&prefix)).map(|e| e.parse().unwrap())
}

#[test]
fn summa_matches_the_serial_product_on_1_to_4_ranks() {
    for (np, sets, grid) in [
        (1, vec!["n=97", "block=16"], "1x1"),
        (2, vec!["n=203", "block=32"], "2x1"),
        (3, vec!["n=203", "block=50"], "3x1"),
        (3, vec!["n=130", "block=7", "grid=[1,3]"], "1x3"),
        (4, vec!["n=203", "block=1000"], "2x2"),
        (4, vec!["n=61", "block=1", "grid=[4,1]"], "4x1"),
    ] {
        let o = matmul(np, &sets);
        o.assert_success();
        assert!(o.line(0, "summa ").contains(&format!(" grid={grid} ")), "{}", o.show());
        for what in ["matvec", "gather"] {
            let err = check(&o, what).unwrap_or_else(|| panic!("no {what} check\n{}", o.show()));
            assert!(err < 1e-13, "{what} error {err:e}\n{}", o.show());
        }
    }
}

#[test]
fn past_gather_max_only_the_matvec_check_runs() {
    let o = matmul(2, &["n=300", "check.gather_max=100", "reference=true"]);
    o.assert_success();
    assert!(check(&o, "matvec").unwrap() < 1e-13, "{}", o.show());
    assert!(check(&o, "gather").is_none(), "{}", o.show());
    assert!(o.line(0, "reference dgemm n=300 ranks=1 ").contains(" ratio="), "{}", o.show());
}

#[test]
fn the_inputs_file_runs() {
    let o = Job::new(2, "matmul")
        .args(["--inputs", concat!(env!("CARGO_MANIFEST_DIR"), "/examples/inputs/matmul.toml")])
        .args(["--set", "n=256"])
        .run();
    o.assert_success();
    assert!(o.line(0, "summa ").starts_with("summa n=256 grid=2x1 block=256 backend=cpu ranks=2 "), "{}", o.show());
}

#[test]
fn bad_inputs_are_one_line_and_exit_2() {
    let mut cases = vec![
        ("n=0", "error: --set n: `n` = 0: the matrix needs at least one row".to_string()),
        ("block=0", "error: --set block: `block` = 0: the panel width must be at least 1".into()),
        ("backend=gpu", "error: --set backend: `backend` = \"gpu\": expected \"cpu\" or \"cuda\"".into()),
        ("grid=[3,1]", "error: rank grid [3, 1] holds 3 ranks but the job has 2".into()),
        ("blok=3", "error: --set blok: unknown input `blok`".into()),
        ("summa.overlap=yes", "error: --set summa.overlap: `summa.overlap` = \"yes\": expected bool".into()),
    ];
    // Without a GPU, asking for CUDA is the user's input to fix (with one, it runs).
    if !rankwise::kernels::cuda::device_count().is_ok_and(|n| n > 0) {
        cases.push(("backend=cuda", "error: backend = \"cuda\" needs a GPU on every rank: no GPU (".into()));
    }
    for (set, msg) in cases {
        let o = matmul(2, &[set]);
        assert_eq!(o.code, Some(2), "{}", o.show());
        let errs: Vec<&String> = o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect();
        assert!(errs.len() == 1 && errs[0].starts_with(&msg), "want {msg:?}\n{}", o.show());
    }
}

#[test]
fn overlapped_broadcasts_give_the_same_bits() {
    // 2x2, eight panels of uneven widths: the pipelined product sums what the unpipelined one does.
    let sums = ["true", "false"].map(|on| {
        let o = matmul(4, &["n=203", "block=32", &format!("summa.overlap={on}")]);
        o.assert_success();
        let summa = o.line(0, "summa ");
        assert!(summa.contains(" grid=2x2 "), "{}", o.show());
        summa.split_once(" checksum=").unwrap_or_else(|| panic!("no checksum\n{}", o.show())).1.to_string()
    });
    assert_eq!(sums[0], sums[1]);
}
