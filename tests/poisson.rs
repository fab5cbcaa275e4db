//! The poisson example: CG converges, the error falls at second order, and the iterates are
//! bit-identical on any rank count with either reproducible dot product.

mod common;
use common::{Job, Outcome, Scratch};

fn final_line(o: &Outcome) -> String {
    o.assert_success();
    o.line(0, "final ").to_string()
}

fn field<T: std::str::FromStr>(line: &str, key: &str) -> T {
    let v = line.split(' ').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key} in {line}"));
    v.parse().unwrap_or_else(|_| panic!("bad {key} in {line}"))
}

fn poisson(np: usize, sets: &[&str]) -> Outcome {
    Job::new(np, "poisson").args(sets.iter().flat_map(|s| ["--set", s])).run()
}

/// The part of the final line that must not depend on the rank count (not the timing).
fn result(o: &Outcome) -> String {
    let line = final_line(o);
    ["iterations", "residual", "l2_error", "checksum"].map(|k| format!("{k}={}", field::<String>(&line, k))).join(" ")
}

#[test]
fn converges_to_the_tolerance() {
    let line = final_line(&poisson(2, &["n=48", "cg.tol=1e-9"]));
    let (iters, res): (u64, f64) = (field(&line, "iterations"), field(&line, "residual"));
    assert!(res <= 1e-9 && iters > 10 && iters < 200, "{line}");
    // cg.tol = 0 runs exactly cg.max_iter iterations.
    let line = final_line(&poisson(1, &["n=48", "cg.tol=0", "cg.max_iter=7"]));
    assert!(field::<u64>(&line, "iterations") == 7 && field::<f64>(&line, "residual") > 1e-3, "{line}");
}

#[test]
fn error_falls_at_second_order() {
    for (dim, sizes) in [("dim=2", [16, 32, 64]), ("dim=3", [8, 16, 32])] {
        let err: Vec<f64> =
            sizes.iter().map(|n| field(&final_line(&poisson(2, &[&format!("n={n}"), dim])), "l2_error")).collect();
        assert!(err[0] / err[1] > 3.7 && err[1] / err[2] > 3.7, "{dim}: errors {err:?}");
    }
}

#[test]
fn same_iterates_at_1_2_4_ranks_with_either_reproducible_dot() {
    for dot in ["cg.dot=rows", "cg.dot=exact"] {
        let two_d: Vec<String> = [1, 2, 4].iter().map(|&np| result(&poisson(np, &["n=24", dot]))).collect();
        assert!(two_d.iter().all(|l| *l == two_d[0]), "{dot}: {two_d:#?}");
        let three_d: Vec<String> = [1, 3, 4].iter().map(|&np| result(&poisson(np, &["n=10", "dim=3", dot]))).collect();
        assert!(three_d.iter().all(|l| *l == three_d[0]), "{dot}: {three_d:#?}");
    }
    // The plain sum converges alike, to rounding.
    let plain = final_line(&poisson(3, &["n=24", "cg.dot=plain"]));
    let rows = final_line(&poisson(3, &["n=24"]));
    let (a, b): (f64, f64) = (field(&plain, "l2_error"), field(&rows, "l2_error"));
    assert!((a - b).abs() <= 1e-6 * b, "{plain}\n{rows}");
}

#[test]
fn fused_sweeps_give_the_bits_of_the_separate_loops() {
    // Whole and split runs of rows (three threads on 100 rows: six runs of 16 or 17), the ranks'
    // first and last rows next to a neighbour's, ranks with two rows and one with a single row
    // (which takes the separate loops beside the others' sweeps), both summations.
    for (np, threads, n) in [(1, "1", 37), (1, "3", 100), (3, "3", 100), (4, "2", 9), (3, "1", 5)] {
        for dot in ["cg.dot=rows", "cg.dot=plain"] {
            let run = |fuse: &str| {
                let sets = [&format!("n={n}"), dot, "cg.tol=0", "cg.max_iter=40", fuse];
                let job = Job::new(np, "poisson").args(sets.iter().flat_map(|s| ["--set", s])).env("RAYON_NUM_THREADS", threads);
                result(&job.run())
            };
            let (fused, separate) = (run("cg.fuse=true"), run("cg.fuse=false"));
            assert_eq!(fused, separate, "np={np} threads={threads} n={n} {dot}");
        }
    }
}

#[test]
fn bad_inputs_are_one_line_and_exit_2() {
    for (np, sets, msg) in [
        (2, vec!["n=1"], "error: --set n: `n` = 1: need at least 2 cells per side"),
        (2, vec!["dim=4"], "error: --set dim: `dim` = 4: must be 2 or 3"),
        (2, vec!["cg.tol=-1"], "error: --set cg.tol: `cg.tol` = -1: must be in [0, 1) (0 runs exactly cg.max_iter iterations)"),
        (2, vec!["cg.dot=fast"], "error: --set cg.dot: `cg.dot` = \"fast\": must be rows, exact or plain"),
        (2, vec!["cg.maxiter=3"], "error: --set cg.maxiter: unknown input `cg.maxiter`"),
        (2, vec!["backend=cuda"], "error: --set backend: `backend` = \"cuda\": this example runs on the CPU back end only, for now"),
        (4, vec!["n=3"], "error: rank grid [4, 1] puts more ranks (4) than cells (3) along dimension 0"),
    ] {
        let o = poisson(np, &sets);
        assert_eq!(o.code, Some(2), "{}", o.show());
        assert_eq!(o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect::<Vec<_>>(), vec![msg], "{}", o.show());
    }
}

#[test]
fn the_inputs_file_runs() {
    let s = Scratch::new("poisson-inputs");
    let o = Job::new(2, "poisson")
        .args(["--inputs", concat!(env!("CARGO_MANIFEST_DIR"), "/examples/inputs/poisson.toml")])
        .args(["--set", "n=32"])
        .dir(s.path())
        .run();
    assert!(field::<f64>(&final_line(&o), "residual") <= 1e-10, "{}", o.show());
}
