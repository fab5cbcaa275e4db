//! The runtime under real mpirun: start-up at 1-4 and 8 ranks (oversubscribed), node-local ranks, typed collectives,
//! timers, and the failure policy (a panic or error on one rank ends the whole job, fast).

mod common;
use common::Job;

#[test]
fn init_and_finalize_at_1_to_4_and_8_ranks() {
    for np in [1, 2, 3, 4, 8] {
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

/// Bad input on one rank alone, the others at the end of the run: they agree, the failing
/// rank's error is shown once, every rank exits 2.
#[test]
fn bad_input_on_one_rank_alone_is_agreed_and_shown_once() {
    for (np, bad) in [(2, 1), (4, 2), (4, 0), (8, 7)] {
        let o = Job::new(np, "rt-basics").args(["bad-input-alone", &bad.to_string()]).timeout(60).run();
        assert!(!o.timed_out, "{}", o.show());
        assert_eq!(o.code, Some(2), "{}", o.show());
        let lines: Vec<_> = o.rank_errs.iter().flatten().filter(|l| l.contains("fails a check")).collect();
        let want = if bad == 0 { "error: the block of rank 0 fails a check".to_string() } else { format!("error: rank {bad}: the block of rank {bad} fails a check") };
        assert_eq!(lines, vec![&want], "{}", o.show());
        assert!(o.rank_errs[bad].contains(&want), "{}", o.show());
        assert!(!o.stderr.contains("MPI_ABORT"), "{}", o.show());
    }
}

/// Bad input on one rank alone while the others wait for it in a collective: after the grace
/// period the failing rank shows its error and aborts the job with exit code 2; nothing hangs.
#[test]
fn bad_input_on_one_rank_while_the_others_wait_aborts_with_2() {
    for (np, bad) in [(2, 1), (4, 2)] {
        let o = Job::new(np, "rt-basics").args(["bad-input-stuck", &bad.to_string()]).timeout(90).run();
        assert!(!o.timed_out, "the job hung\n{}", o.show());
        assert_eq!(o.code, Some(2), "{}", o.show());
        let want = format!("rank {bad}: error: the block of rank {bad} fails a check (the other ranks did not stop with it within 10s); aborting the job");
        assert!(o.rank_errs[bad].contains(&want), "{want}\n{}", o.show());
        assert!(!o.stdout.contains("passed a barrier"), "{}", o.show());
    }
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
    assert_eq!(o.line(0, "only-last-rank"), "only-last-rank min=0.000 max=0.250");
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

/// Started by the other MPI's mpirun, every process is rank 0 of a job of its own: each notices
/// at start-up (the launcher's variables say 3 ranks), the one that launcher calls rank 0 names
/// both MPIs on one line, and the job exits 2. Both directions: this build's program under the
/// other MPI's mpirun, and the other MPI's program under this build's.
#[test]
fn a_program_started_by_the_other_mpis_mpirun_stops_naming_both() {
    let other = common::other_mpi();
    for (mpirun, prog) in [(other.mpirun.to_string(), common::program("hello")), (common::mpirun(), other.hello.clone())] {
        let mut cmd = std::process::Command::new(&mpirun);
        common::mpi_env(&mut cmd).arg("-np").arg("3").arg(&prog);
        let o = common::run_with_timeout(cmd, format!("{mpirun} -np 3 {}", prog.display()), std::time::Duration::from_secs(60), 3);
        assert!(!o.timed_out, "{}", o.show());
        assert_eq!(o.code, Some(2), "{}", o.show());
        let lines: Vec<_> = o.stderr.lines().filter(|l| l.starts_with("error: this program is linked with")).collect();
        assert_eq!(lines.len(), 1, "one line, from the launcher's rank 0\n{}", o.show());
        let l = lines[0];
        assert!(l.contains("Open MPI") && l.contains("MPICH") && l.contains("SIZE=3)") && l.contains("ran as 3 separate jobs of one rank"), "{l}");
        assert!(!o.stdout.contains("rank 0 of 1"), "{}", o.show());
    }
}
