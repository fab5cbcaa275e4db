//! Fuzzing of checkpoint files, short and deterministic (scripts/fuzz.sh runs the long campaigns):
//! real checkpoints damaged by a seeded mutator go through `rankwise_io::verify` and
//! `rankwise ckpt verify`, and through a restore by every rank of a 2- and a 4-rank job. No case
//! may crash, hang, be accepted with data or metadata other than the original's, leave the
//! program's memory changed after a failed restore, or be judged differently by verify and
//! restore. The program tests/programs/ckpt_fuzz.rs does the work; a failure names its seed.
//!
//! Sizes: `RANKWISE_FUZZ_VERIFY`, `RANKWISE_FUZZ_RESTORE` (cases; 0 skips), `RANKWISE_FUZZ_SEED`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{program, rankwise_bin, run_with_timeout, Scratch};

fn env(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Run one campaign and check its summary: every case answered, no crash, no hang, no failure.
fn campaign(args: &[String], minutes: u64) {
    let mut cmd = Command::new(program("ckpt-fuzz"));
    // A file that makes libhdf5 loop is judged damaged after this long, within the watchdog's 5 s.
    cmd.env("RANKWISE_CKPT_CHECK_TIMEOUT", "2");
    cmd.args(args);
    let shown = format!("ckpt-fuzz {}", args.join(" "));
    let out = run_with_timeout(cmd, shown, Duration::from_secs(60 * minutes), 1);
    let summary = out.stdout.lines().find(|l| l.contains(" campaign: ")).unwrap_or_else(|| panic!("no summary\n{}", out.show()));
    println!("{summary}");
    assert!(summary.contains("crashes 0, hangs 0, failed cases 0"), "{summary}\n{}", out.show());
    assert_eq!(out.code, Some(0), "{}", out.show());
}

#[test]
fn damaged_checkpoints_through_verify_and_ckpt_verify() {
    let cases = env("RANKWISE_FUZZ_VERIFY", 400);
    if cases == 0 {
        return;
    }
    let s = Scratch::new("fuzz-verify");
    let from = env("RANKWISE_FUZZ_SEED", 0);
    let bin = rankwise_bin();
    let args = [
        "campaign-verify".to_string(),
        s.path().display().to_string(),
        format!("cases={cases}"),
        format!("from={from}"),
        "every=4".into(),
        format!("rankwise={}", bin.display()),
    ];
    campaign(&args, 20);
}

fn restore(np: u64, cases: u64) {
    if cases == 0 {
        return;
    }
    let s = Scratch::new(&format!("fuzz-restore-{np}"));
    let from = env("RANKWISE_FUZZ_SEED", 0);
    let args = ["campaign-restore".to_string(), s.path().display().to_string(), format!("np={np}"), format!("cases={cases}"), format!("from={from}")];
    campaign(&args, 20);
}

#[test]
fn damaged_checkpoints_through_a_2_rank_restore() {
    restore(2, env("RANKWISE_FUZZ_RESTORE", 40));
}

#[test]
fn damaged_checkpoints_through_a_4_rank_restore() {
    restore(4, env("RANKWISE_FUZZ_RESTORE", 40) / 3);
}
