//! The runtime under real mpirun: start-up at 1-4 ranks, node-local ranks, typed collectives,
//! timers, and the failure policy (a panic or error on one rank ends the whole job, fast).

mod common;
use common::Job;

#[test]
fn init_and_finalize_at_1_to_4_ranks() {
    for np in 1..=4 {
        let o = Job::new(np, "rt-basics").args(["init"]).run();
        o.assert_success();
        for r in 0..np {
            let l = o.line(r, "rank=");
            assert!(l.starts_with(&format!("rank={r} size={np} ")), "{l}\n{}", o.show());
            // One host: the node communicator is the world.
            assert!(l.contains(&format!("local_rank={r} local_size={np} ")), "{l}");
            assert!(l.contains("threading=Funneled"), "{l}");
            // Each rank names its GPU where the driver shows some (round robin), else none.
            match rankwise::kernels::cuda::device_count().unwrap_or(0) {
                0 => assert!(l.contains("gpu=no GPU"), "no GPU here, so every rank says so: {l}"),
                gpus => assert!(l.contains(&format!("gpu=GPU {} of {gpus}", r % gpus)), "{gpus} GPUs here: {l}"),
            }
        }
    }
}

#[test]
fn thread_multiple_is_granted() {
    let o = Job::new(2, "rt-basics").args(["multiple"]).run();
    o.assert_success();
    assert!(o.line(1, "rank=").contains("threading=Multiple"), "{}", o.show());
}

#[test]
fn typed_allreduce_and_broadcast() {
    for np in 1..=4 {
        let o = Job::new(np, "rt-basics").args(["collectives"]).run();
        o.assert_success();
        let isum: i64 = (0..np as i64).map(|r| r * 10).sum();
        for r in 0..np {
            let expect = format!(
                "rank={r} isum={isum} fmax={} vmin=[7, {}] bcast=[1.5, -2.25, {}.0]",
                np as f64 - 0.5,
                101 - np,
                np
            );
            assert_eq!(o.line(r, "rank="), expect, "{}", o.show());
        }
    }
}

#[test]
fn a_panic_on_one_rank_aborts_the_job_in_seconds() {
    for (np, bad) in [(2, 1), (4, 2), (3, 0)] {
        let o = Job::new(np, "rt-basics").args(["panic", &bad.to_string()]).timeout(60).run();
        assert!(!o.timed_out, "the job hung after a panic\n{}", o.show());
        assert!(o.code.is_some_and(|c| c != 0), "{}", o.show());
        assert!(o.elapsed.as_secs() < 30, "took {:?}", o.elapsed);
        let err = o.rank_errs[bad].join("\n");
        assert!(err.contains(&format!("rank {bad}: panicked at")), "{}", o.show());
        assert!(err.contains(&format!("deliberate panic on rank {bad}")), "{}", o.show());
        assert!(!o.stdout.contains("passed a barrier"), "{}", o.show());
    }
}

#[test]
fn an_error_on_one_rank_aborts_the_job() {
    let o = Job::new(3, "rt-basics").args(["error", "2"]).timeout(60).run();
    assert!(!o.timed_out, "{}", o.show());
    assert_eq!(o.code, Some(1), "{}", o.show());
    assert!(o.rank_errs[2].join("\n").contains("rank 2: error: disk on fire on rank 2; aborting the job"), "{}", o.show());
}

#[test]
fn bad_input_is_one_line_from_rank_0_and_exit_2() {
    let o = Job::new(3, "rt-basics").args(["bad-input"]).run();
    assert_eq!(o.code, Some(2), "{}", o.show());
    let lines: Vec<_> = o.rank_errs.iter().flatten().filter(|l| l.contains("n must be positive")).collect();
    assert_eq!(lines, vec!["error: n must be positive, got -3"], "{}", o.show());
    assert!(o.rank_errs[0].iter().any(|l| l == "error: n must be positive, got -3"));
}

#[test]
fn requeue_exit_code() {
    let o = Job::new(2, "rt-basics").args(["requeue"]).run();
    assert_eq!(o.code, Some(75), "{}", o.show());
}

#[test]
fn timers_report_min_avg_max_over_ranks() {
    let o = Job::new(3, "rt-basics").args(["timers"]).run();
    o.assert_success();
    // Rank r sleeps 20 ms r+1 times: min ~0.02, max ~0.06, most calls 3.
    let l = o.line(0, "work ");
    let f = |k: &str| -> f64 { l.split(&format!("{k}=")).nth(1).unwrap().split(' ').next().unwrap().parse().unwrap() };
    assert_eq!(f("calls"), 3.0, "{l}");
    assert!(f("min") >= 0.02 && f("min") < f("max"), "{l}");
    assert!(f("max") >= 0.06, "{l}");
    assert!(f("avg") > f("min") && f("avg") < f("max"), "{l}");
    assert_eq!(o.line(0, "only-rank-0"), "only-rank-0 min=0.000 max=0.500");
    // The finalize report printed on rank 0's stderr too.
    assert!(o.rank_errs[0].iter().any(|l| l.starts_with("timers over 3 ranks")), "{}", o.show());
}

#[test]
fn hello_example_reports_every_rank_and_the_allreduce() {
    let o = Job::new(4, "hello").run();
    o.assert_success();
    for r in 0..4 {
        assert!(o.ranks[0].iter().any(|l| l.starts_with(&format!("rank {r} of 4 on "))), "{}", o.show());
    }
    assert!(o.ranks[0].iter().any(|l| l == "allreduce: sum of rank+1 over 4 ranks = 10 (expected 10)"), "{}", o.show());
}

#[test]
fn hello_rejects_unknown_inputs() {
    let o = Job::new(2, "hello").args(["--set", "nonsense=1"]).run();
    assert_eq!(o.code, Some(2), "{}", o.show());
    assert!(o.rank_errs[0].iter().any(|l| l == "error: --set nonsense: unknown input `nonsense`"), "{}", o.show());
}
