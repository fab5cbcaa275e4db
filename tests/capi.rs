//! The C, C++ and Fortran API as their users meet it: `make install` into a prefix, the examples
//! built against the installed library with mpicc/mpifort and `pkg-config --cflags --libs
//! rankwise`, run under mpirun (and `rankwise run`) at 1-4 ranks, checked against the Rust heat
//! example, restarted on another rank count; every error path of the C API; a C++ program.

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Job, Outcome, Scratch};

/// `make install PREFIX=...` once per test run (this profile's build), then the programs.
struct Installed {
    prefix: PathBuf,
    heat_c: PathBuf,
    heat_f: PathBuf,
    errors: PathBuf,
    fields: PathBuf,
    cxx: PathBuf,
}

fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().join("capi-install");
        let _ = std::fs::remove_dir_all(&dir);
        let prefix = dir.join("prefix");
        let profile = common::build_profile()[1];
        let mut make = Command::new("make");
        make.current_dir(root).arg("install").arg(format!("PREFIX={}", prefix.display())).env("RANKWISE_PROFILE", profile);
        common::clean_cargo_env(&mut make);
        let st = make.status().expect("cannot run make");
        assert!(st.success(), "make install failed");
        for f in ["lib/librankwise.so", "lib/librankwise.a", "lib/librankwisef.a", "include/rankwise.h", "include/rankwise.mod", "lib/pkgconfig/rankwise.pc"] {
            assert!(prefix.join(f).exists(), "make install left no {f}");
        }
        let flags = pkg_config(&prefix);
        let build = |compiler: &str, src: &str, out: &str, extra: &[&str]| -> PathBuf {
            let exe = dir.join(out);
            let o = Command::new(compiler)
                .args(["-O2", "-o"])
                .arg(&exe)
                .arg(root.join(src))
                .args(flags.split_whitespace())
                .args(extra)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
            assert!(o.status.success(), "{compiler} {src} failed:\n{}", String::from_utf8_lossy(&o.stderr));
            exe
        };
        Installed {
            heat_c: build("mpicc", "examples/c/heat.c", "heat-c", &["-lm"]),
            heat_f: build("mpifort", "examples/fortran/heat.f90", "heat-f", &[]),
            errors: build("mpicc", "tests/capi/errors.c", "errors", &[]),
            fields: build("mpicc", "tests/capi/fields.c", "fields", &[]),
            cxx: build("mpicxx", "tests/capi/header.cpp", "header-cpp", &["-Wall", "-Wextra", "-pedantic"]),
            prefix,
        }
    })
}

/// What a user's build gets from `pkg-config --cflags --libs rankwise`.
fn pkg_config(prefix: &Path) -> String {
    let o = Command::new("pkg-config")
        .args(["--cflags", "--libs", "rankwise"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("cannot run pkg-config");
    assert!(o.status.success(), "pkg-config rankwise: {}", String::from_utf8_lossy(&o.stderr));
    let flags = String::from_utf8(o.stdout).unwrap();
    assert!(flags.contains(&format!("-I{}", prefix.join("include").display())) && flags.contains("-lrankwise"), "{flags}");
    flags
}

fn final_line(o: &Outcome) -> String {
    o.assert_success();
    o.line(0, "final ").to_string()
}

fn run(np: usize, program: &Path, sets: &[&str]) -> Outcome {
    Job::with_path(np, program.to_path_buf()).args(sets.iter().flat_map(|s| ["--set", s])).run()
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('='))).unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn c_and_fortran_heat_match_the_rust_example_at_1_to_4_ranks() {
    let p = installed();
    let sets = ["n=24", "steps=50"];
    let lines: Vec<String> = (1..=4).flat_map(|np| [final_line(&run(np, &p.heat_c, &sets)), final_line(&run(np, &p.heat_f, &sets))]).collect();
    assert!(lines.iter().all(|l| *l == lines[0]), "{lines:#?}");
    // The Rust example on the same inputs: the same step, time and error, and its final state's
    // stored checksum (position-keyed, as the C and Fortran programs print) is theirs.
    let s = Scratch::new("capi-rust-heat");
    let out = format!("output.dir={}", s.path().display());
    let rust = final_line(&Job::new(2, "heat").args(sets.iter().chain([&out.as_str(), &"output.png=false"]).flat_map(|s| ["--set", s])).run());
    for key in ["step", "time", "l2_error"] {
        assert_eq!(field(&rust, key), field(&lines[0], key), "{rust}\n{}", lines[0]);
    }
    let info = rankwise::io::inspect(&s.path().join("heat-final.h5")).unwrap();
    assert_eq!(format!("{:016x}", info.field("u").unwrap().checksum), field(&lines[0], "checksum"));
}

#[test]
fn restart_on_another_rank_count_is_bit_identical_in_c_and_fortran() {
    let p = installed();
    let reference = final_line(&run(3, &p.heat_c, &["n=20", "steps=40"]));
    for (first, second) in [(&p.heat_c, &p.heat_c), (&p.heat_c, &p.heat_f), (&p.heat_f, &p.heat_f)] {
        let s = Scratch::new("capi-restart");
        let dir = format!("checkpoint.dir={}", s.path().join("ckpt").display());
        // 25 steps at 4 ranks leave checkpoints at steps 10 and 20 (none at the end); 2 ranks resume at 20.
        final_line(&run(4, first, &["n=20", "steps=25", "checkpoint.every=10", "checkpoint.at_end=false", &dir]));
        assert!(!s.path().join("ckpt/ckpt-0000000025.h5").exists());
        assert!(s.path().join("ckpt/ckpt-0000000020.h5").exists());
        let o = run(2, second, &["n=20", "steps=40", "checkpoint.every=10", &dir]);
        assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 20 (2 ranks now)")), "{}", o.show());
        assert_eq!(final_line(&o), reference, "{} then {}", first.display(), second.display());
        // Another run's checkpoints (another alpha) are refused in one line, and left alone.
        let o = run(2, second, &["n=20", "steps=40", "alpha=2", &dir]);
        assert_eq!(o.code, Some(2), "{}", o.show());
        let errors: Vec<&String> = o.rank_errs[0].iter().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{}", o.show());
        assert!(errors[0].contains("alpha") && errors[0].ends_with("use another checkpoint.dir, or move that one away"), "{}", o.show());
        // The second run's newest: its end's.
        assert!(s.path().join("ckpt/ckpt-0000000040.h5").exists());
    }
}

#[test]
fn rankwise_run_launches_them_with_the_inputs_file() {
    let p = installed();
    let inputs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/inputs/heat.toml");
    let s = Scratch::new("capi-run");
    for prog in [&p.heat_c, &p.heat_f] {
        let mut cmd = Command::new(common::rankwise_bin());
        common::mpi_env(&mut cmd);
        cmd.current_dir(s.path()).args(["run", "-n", "2"]).arg(prog).arg("-i").arg(&inputs);
        cmd.args(["--set", "n=16", "--set", "steps=30", "--set", "checkpoint.every=10", "--set", "progress.every=0"]);
        let o = common::run_with_timeout(cmd, format!("rankwise run {}", prog.display()), std::time::Duration::from_secs(120), 2);
        assert_eq!(o.code, Some(0), "{}", o.show());
        assert!(o.stdout.contains("final step=30 "), "{}", o.show());
        // The inputs file's output.dir: the final state and its picture.
        // Checkpoints every 10 steps and at the end, the newest 2 kept.
        for f in ["heat-out/heat-final.h5", "heat-out/heat-final.xmf", "heat-out/heat-final.png", "heat-ckpt/ckpt-0000000020.h5", "heat-ckpt/ckpt-0000000030.h5"] {
            assert!(s.path().join(f).exists(), "{} wrote no {f}\n{}", prog.display(), o.show());
        }
        let _ = std::fs::remove_dir_all(s.path().join("heat-ckpt"));
    }
}

#[test]
fn bad_inputs_are_one_line_and_exit_2() {
    let p = installed();
    for prog in [&p.heat_c, &p.heat_f] {
        for (sets, says) in [(&["stesp=3"][..], "unknown input `stesp`"), (&["n=1"][..], "need at least 2 cells per side"), (&["dim=4"][..], "2-D")] {
            let o = run(2, prog, sets);
            assert_eq!(o.code, Some(2), "{}", o.show());
            let errors: Vec<&String> = o.rank_errs.iter().flatten().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(errors.len(), 1, "{}", o.show());
            assert!(errors[0].contains(says), "{}", o.show());
        }
    }
}

#[test]
fn every_error_path_of_the_c_api_returns_a_code_and_a_message() {
    let p = installed();
    let o = Job::with_path(2, p.errors.clone()).run();
    assert_eq!(o.code, Some(0), "{}", o.show());
    let lines = &o.ranks[0];
    assert!(lines.iter().all(|l| !l.starts_with("FAIL")), "{}", o.show());
    for name in [
        "before-init", "null-out", "comm-null", "inter-communicator", "null-handle", "freed-handle", "freed-destroy", "foreign-handle",
        "wrong-kind", "bad-stencil", "ndim", "too-many-ranks", "wrap-shape", "wrap-null", "stencil-ghost", "stencil-null",
        "stencil-overlap", "stencil-strides", "backend-name", "singular", "csr-index", "exchange-finish-null", "config-type",
        "config-unknown", "config-buffer", "config-args", "verify-missing", "restore-nothing", "timer-stop", "runtime-destroy",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(&format!("ok {name}: "))), "no ok {name}\n{}", o.show());
    }
    assert!(lines.iter().any(|l| l == "0 failed"), "{}", o.show());
}

#[test]
fn fields_over_caller_or_rankwise_memory_exchange_sum_and_checkpoint_alike() {
    let p = installed();
    for np in 1..=4 {
        let s = Scratch::new("capi-fields");
        let o = Job::with_path(np, p.fields.clone()).args([s.path().join("ckpt").display().to_string()]).run();
        assert_eq!(o.code, Some(0), "{}", o.show());
        assert_eq!(o.line(0, "fields"), "fields ok");
    }
}

#[test]
fn a_cxx_program_includes_the_header() {
    let p = installed();
    let o = Command::new(&p.cxx).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // lap(u) of a 2 among ones: -4 at the centre, +1 beside it.
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "lap center=-4 neighbour=1 dot=20");
    assert!(p.prefix.join("include/rankwise.h").exists());
}
