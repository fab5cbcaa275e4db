//! Stop requests under real mpirun: a signal on one rank becomes the same decision on every
//! rank, at the same step; an early warning checkpoints and carries on until the deadline.

mod common;
use common::{Job, Outcome};

/// Every rank's checkpoint lines, as (step, stop, reason).
fn checkpoints(o: &Outcome, np: usize) -> Vec<Vec<(u64, bool, String)>> {
    (0..np)
        .map(|r| {
            o.ranks[r]
                .iter()
                .filter(|l| l.starts_with("rank="))
                .map(|l| {
                    let f = |k: &str| l.split(&format!(" {k}=")).nth(1).unwrap().split(' ').next().unwrap().to_string();
                    (f("step").parse().unwrap(), f("stop") == "true", f("reason"))
                })
                .collect()
        })
        .collect()
}

#[test]
fn usr2_on_one_rank_stops_every_rank_at_the_same_step() {
    for (np, who, when) in [(4, 2, 5), (3, 0, 3)] {
        let o = Job::new(np, "stop-check").args(["signal", &who.to_string(), &when.to_string()]).run();
        assert_eq!(o.code, Some(75), "checkpointed and asked to be requeued\n{}", o.show());
        for cps in checkpoints(&o, np) {
            // No time limit: a signal is a preemption, stop at once.
            assert_eq!(cps, vec![(when, true, "Preemption".to_string())], "{}", o.show());
        }
    }
}

#[test]
fn term_stops_too() {
    let o = Job::new(2, "stop-check").args(["term", "1", "4"]).run();
    assert_eq!(o.code, Some(75), "{}", o.show());
    for cps in checkpoints(&o, 2) {
        assert_eq!(cps, vec![(4, true, "Preemption".to_string())], "{}", o.show());
    }
}

#[test]
fn an_early_warning_checkpoints_then_carries_on_until_the_wall_time() {
    // 3 s wall time, 10 s warning window: USR2 at step 5 is the time limit's early warning.
    let o = Job::new(3, "stop-check").args(["window", "1", "5"]).run();
    assert_eq!(o.code, Some(75), "{}", o.show());
    let all = checkpoints(&o, 3);
    assert!(all.iter().all(|c| *c == all[0]), "ranks disagree\n{}", o.show());
    let cps = &all[0];
    assert_eq!(cps.len(), 2, "{}", o.show());
    assert_eq!(cps[0], (5, false, "TimeLimit".to_string()), "{}", o.show());
    assert!(cps[1].0 > 5 && cps[1].1 && cps[1].2 == "TimeLimit", "{}", o.show());
    // Stopped before the limit, with the margin (0.5 s) left, not long before it.
    let elapsed: f64 = o.ranks[0].last().unwrap().rsplit("elapsed=").next().unwrap().parse().unwrap();
    assert!((2.0..3.0).contains(&elapsed), "stopped at {elapsed} s\n{}", o.show());
}
