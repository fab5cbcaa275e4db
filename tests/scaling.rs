//! The scale model's two programs: comm-bench measures (tiny mode, 2 ranks), scale-model fits and
//! predicts; on synthetic points it must give back the costs they were made from.

mod common;

use std::process::Command;

use common::{program, Job, Scratch};

/// Run scale-model with `--set` arguments; (exit code, stdout, stderr).
fn model(sets: &[String]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(program("scale-model"));
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    let out = cmd.output().expect("cannot run scale-model");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The value of `key=` in the `FIT series=SERIES transport=T` line.
fn fitted(report: &str, series: &str, transport: &str, key: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("FIT series={series} transport={transport} ")))
        .unwrap_or_else(|| panic!("no fit of {series} over {transport}\n{report}"));
    let v = line.split_whitespace().find_map(|t| t.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key} in {line}"));
    v.parse().unwrap()
}

/// The rows of the prediction table under the heading that contains `title`.
fn table<'a>(report: &'a str, title: &str) -> Vec<Vec<&'a str>> {
    report
        .lines()
        .skip_while(|l| !(l.starts_with("# Predicted") && l.contains(title)))
        .skip(3)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect()
}

#[test]
fn a_tiny_measurement_gives_a_sane_model() {
    // Built first: a build beside the measurement would take the cores it measures.
    program("scale-model");
    let scratch = Scratch::new("scaling");
    let run = Job::new(2, "comm-bench")
        .args(["--set", "tiny=true", "--set", &format!("dir={}", scratch.path().display())])
        .timeout(90)
        .run();
    run.assert_success();
    let points: String = run.ranks[0].iter().filter(|l| l.starts_with("POINT ")).map(|l| format!("{l}\n")).collect();
    for s in ["pingpong", "exchange", "allreduce", "heat2d", "heat3d", "ckpt_write", "ckpt_read"] {
        assert!(points.contains(&format!("series={s} transport=shm np=2 ")), "no {s} points\n{}", run.show());
    }
    assert!(!scratch.path().join("ckpt").exists(), "the benchmark left its checkpoints behind");
    let file = scratch.path().join("points.txt");
    std::fs::write(&file, &points).unwrap();

    let (code, report, err) = model(&[format!("points={}", file.display())]);
    assert_eq!(code, Some(0), "{report}{err}");
    for s in ["pingpong", "exchange", "allreduce", "ckpt_write", "ckpt_read"] {
        assert!(fitted(&report, s, "shm", "latency_us") >= 0.0, "{report}");
        assert!(fitted(&report, s, "shm", "bandwidth_GBs") > 0.0, "{report}");
    }
    assert!(fitted(&report, "heat3d", "shm", "rate_Gcells_s") > 0.0, "{report}");
    for title in ["weak", "strong"] {
        let rows = table(&report, title);
        let nodes: Vec<&str> = rows.iter().map(|r| r[0]).collect();
        assert_eq!(nodes, ["1", "10", "100", "1000"], "{report}");
        // One node exchanges nothing over the network; more do.
        assert_eq!(rows[0][4], "0.0 µs", "{report}");
        assert!(rows[1..].iter().all(|r| r[4] != "0.0 µs"), "{report}");
    }
}

/// Points made from known costs, exactly.
fn synthetic() -> String {
    let mut s = String::new();
    let mut point = |series: &str, np: usize, size: &str, seconds: f64| {
        s += &format!("POINT series={series} transport=shm np={np} {size} seconds={seconds:e}\n");
    };
    for b in [8.0, 1024.0, 65536.0, 1048576.0] {
        point("pingpong", 2, &format!("msgs=1 bytes={b}"), 2e-6 + b / 5e9);
        point("exchange", 2, &format!("msgs=1 bytes={b}"), 5e-6 + b / 2e9);
        for np in [2usize, 4] {
            point("allreduce", np, &format!("bytes={b}"), (np as f64).log2() * (1e-6 + b / 1e9));
        }
        point("ckpt_write", 2, &format!("bytes={}", b * 1024.0), 0.1 + b * 1024.0 / 1e9);
        point("ckpt_read", 2, &format!("bytes={}", b * 1024.0), 0.05 + b * 1024.0 / 2e9);
    }
    // Smaller blocks run faster (from the caches): the model takes the largest one's rate.
    for (c, rate) in [(1e4, 1e9), (1e6, 2e8), (1e7, 1e8)] {
        point("heat3d", 2, &format!("cells={c}"), c / rate);
    }
    s
}

#[test]
fn the_model_gives_back_known_costs_and_rejects_bad_input() {
    let scratch = Scratch::new("scaling-model");
    let file = scratch.path().join("points.txt");
    std::fs::write(&file, synthetic()).unwrap();
    let (code, report, err) = model(&[format!("points={}", file.display()), "check.n=100".into()]);
    assert_eq!(code, Some(0), "{report}{err}");
    for (series, latency_us, gbs) in [("pingpong", 2.0, 5.0), ("exchange", 5.0, 2.0), ("allreduce", 1.0, 1.0), ("ckpt_write", 1e5, 1.0), ("ckpt_read", 5e4, 2.0)] {
        assert!((fitted(&report, series, "shm", "latency_us") - latency_us).abs() < 1e-3 * latency_us, "{series}\n{report}");
        assert!((fitted(&report, series, "shm", "bandwidth_GBs") - gbs).abs() < 1e-3 * gbs, "{series}\n{report}");
    }
    assert!((fitted(&report, "heat3d", "shm", "rate_Gcells_s") - 0.1).abs() < 1e-6, "{report}");

    // By hand, one node of 512^3 cells: 2 ranks at 1e8 cells/s compute in 512^3 / 2e8 s; its
    // 1 GiB checkpoint takes 0.1 s + 2^30 B at 1 GB/s (below the link and the filesystem).
    let weak = table(&report, "weak");
    assert_eq!(weak[0][3], "671.09 ms", "{report}");
    assert_eq!(weak[0][8], "1.17 s", "{report}");
    // A 10x10x10 node grid: six faces of 512^2 doubles per node, 2 MiB each, over the assumed
    // 1.5 us / 12 GB/s network plus the runtime's own 3 us and 2 GB/s - 5 GB/s per message and byte.
    let face = 8.0 * 512.0 * 512.0;
    let halo = 6.0 * (1.5e-6 + 3e-6) + 6.0 * face * (1.0 / 12e9 + 1.0 / 2e9 - 1.0 / 5e9);
    assert_eq!(weak[3][1], "10x10x10");
    assert_eq!(weak[3][4], format!("{:.2} ms", halo * 1e3), "{report}");

    // The check here: 100^3 on 2 ranks of 1e8 cells/s each, split in two along the first axis:
    // one message of two 100^2 faces over shared memory (the ping-pong), plus the runtime's costs.
    let bytes = 2.0 * 8.0 * 100.0 * 100.0;
    let step = 50.0 * 100.0 * 100.0 / 1e8 + (2e-6 + 3e-6) + bytes * (1.0 / 5e9 + 1.0 / 2e9 - 1.0 / 5e9) + (2e-6 + 32.0 / 5e9);
    assert!(report.contains(&format!("CHECK heat dim=3 n=100 ranks=2 step_ms={:.3} ", step * 1e3)), "{step}\n{report}");

    let (code, _, err) = model(&[format!("points={}", scratch.path().join("missing.txt").display())]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("error: cannot read the points file") && err.lines().count() == 1, "{err}");
    let (code, _, err) = model(&[format!("points={}", file.display()), "net.latncy_us=2".into()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("net.latncy_us") && err.lines().count() == 1, "{err}");
}
