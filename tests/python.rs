//! The Python package as its users meet it: `pip install ./python` (built by maturin, installed
//! into a folder beside this build, not into the system), its pytest suite under mpirun at 1-4
//! ranks, and examples/python/heat.py against the Rust heat example: the same final line at
//! any rank count, restart 4 -> 2 bit-identical, bad inputs in one line, `rankwise run`.

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Job, Outcome, Scratch};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The interpreter the package is built for and tested with: `$RANKWISE_PYTHON`, else Debian's
/// /usr/bin/python3 (whose numpy, mpi4py and pytest scripts/setup.sh installs).
fn python() -> PathBuf {
    std::env::var_os("RANKWISE_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

/// `pip install ./python` into `target/<profile>/python-site`, once per test run.
fn site() -> &'static Path {
    static SITE: OnceLock<PathBuf> = OnceLock::new();
    SITE.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let site = exe.parent().unwrap().parent().unwrap().join("python-site");
        let _ = std::fs::remove_dir_all(&site);
        let tools = root().join("target/python-tools");
        assert!(tools.join("bin/maturin").exists(), "no maturin in {}: run scripts/setup.sh", tools.display());
        let path = format!("{}:{}", tools.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let mut pip = Command::new(python());
        pip.current_dir(root())
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-build-isolation", "--no-deps", "--target"])
            .arg(&site)
            .arg("./python")
            .env("PATH", path)
            .env("PYTHONPATH", &tools)
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
            .env("PIP_ROOT_USER_ACTION", "ignore");
        common::clean_cargo_env(&mut pip);
        let st = pip.status().expect("cannot run pip");
        assert!(st.success(), "pip install ./python failed");
        assert!(site.join("rankwise/__init__.py").exists() && site.join("rankwise/_rankwise.pyi").exists(), "the package in {} is incomplete", site.display());
        site
    })
}

/// `python -args` under mpirun at `np` ranks, with the installed package.
fn py(np: usize, args: &[&str]) -> Job {
    Job::with_path(np, python()).args(args).env("PYTHONPATH", &site().display().to_string()).env("PYTHONDONTWRITEBYTECODE", "1").timeout(300)
}

fn pytest(np: usize, files: &[&str]) -> Outcome {
    let s = Scratch::new("pytest");
    let mut args = vec!["-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no", "-x"];
    let paths: Vec<String> = files.iter().map(|f| root().join("tests/python").join(f).display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    py(np, &args).env("RANKWISE_TEST_SCRATCH", &s.path().display().to_string()).run()
}

/// Two MPI libraries in one process would crash at the first MPI call: the package refuses at
/// import, in one line. (A second MPI loaded by hand stands for an mpi4py built for another.)
#[test]
fn a_second_mpi_library_is_refused_at_import() {
    let second = if common::hydra() { "libmpi.so.40" } else { "libmpich.so.12" };
    // One process without mpirun, whose tags on each piece of a rank's stderr would split the line.
    let o = Command::new(python())
        .args(["-c", &format!("import ctypes; ctypes.CDLL('{second}'); import rankwise")])
        .env("PYTHONPATH", site())
        .output()
        .expect("cannot run python");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("ImportError: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.starts_with("ImportError: two MPI libraries in one process (libmpi"), "{line}");
    assert!(line.contains("libmpich.so.12") && line.contains("libmpi.so.40") && line.ends_with("must be built for the same MPI"), "{line}");
}

#[cfg_attr(rankwise_mpich, ignore = "needs an mpi4py built for MPICH (Debian's is built for Open MPI)")]
#[test]
fn kernels_on_numpy_arrays() {
    let o = pytest(1, &["test_kernels.py"]);
    passed_on_every_rank(&o, 1);
}

/// pytest passed on each of `np` ranks (its lines may interleave in mpirun's output).
fn passed_on_every_rank(o: &Outcome, np: usize) {
    o.assert_success();
    assert_eq!(o.stdout.matches(" passed in ").count(), np, "{}", o.show());
    assert!(!o.stdout.contains("failed") && !o.stdout.contains("skipped"), "{}", o.show());
}

#[cfg_attr(rankwise_mpich, ignore = "needs an mpi4py built for MPICH (Debian's is built for Open MPI)")]
#[test]
fn runtime_fields_and_checkpoints_at_1_to_4_ranks() {
    for np in 1..=4 {
        passed_on_every_rank(&pytest(np, &["test_parallel.py", "test_checkpoint.py"]), np);
    }
}

fn heat_py(np: usize, sets: &[&str], dir: &Path) -> Outcome {
    let script = root().join("examples/python/heat.py").display().to_string();
    let mut args = vec![script];
    args.extend(sets.iter().flat_map(|s| ["--set".to_string(), s.to_string()]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    py(np, &args).dir(dir).run()
}

fn final_line(o: &Outcome) -> String {
    o.assert_success();
    o.line(0, "final ").to_string()
}

#[cfg_attr(rankwise_mpich, ignore = "needs an mpi4py built for MPICH (Debian's is built for Open MPI)")]
#[test]
fn heat_py_gives_the_rust_line_and_restarts_4_to_2_bit_identical() {
    let s = Scratch::new("heat-py");
    let reference = final_line(&Job::new(3, "heat").args(["--set", "n=20", "--set", "steps=40"]).run());
    for np in [1, 4] {
        assert_eq!(final_line(&heat_py(np, &["n=20", "steps=40"], s.path())), reference, "{np} ranks");
    }
    let three_d = final_line(&Job::new(2, "heat").args(["--set", "n=10", "--set", "dim=3", "--set", "steps=20"]).run());
    assert_eq!(final_line(&heat_py(3, &["n=10", "dim=3", "steps=20"], s.path())), three_d);

    // 25 steps at 4 ranks leave checkpoints at 10 and 20; 2 ranks resume from 20 and finish.
    let dir = format!("checkpoint.dir={}", s.path().join("ckpt").display());
    final_line(&heat_py(4, &["n=20", "steps=25", "checkpoint.every=10", &dir], s.path()));
    assert!(s.path().join("ckpt/ckpt-0000000020.h5").exists());
    let o = heat_py(2, &["n=20", "steps=40", "checkpoint.every=10", &dir], s.path());
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 20 (4 ranks wrote it, 2 now)")), "{}", o.show());
    assert_eq!(final_line(&o), reference);

    // The same with checkpoints written in the background.
    let dir_async = format!("checkpoint.dir={}", s.path().join("ckpt-async").display());
    final_line(&heat_py(4, &["n=20", "steps=25", "checkpoint.every=10", "checkpoint.mode=async", &dir_async], s.path()));
    let o = heat_py(2, &["n=20", "steps=40", "checkpoint.every=10", "checkpoint.mode=async", &dir_async], s.path());
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 20 (4 ranks wrote it, 2 now)")), "{}", o.show());
    assert_eq!(final_line(&o), reference);

    // The Rust example restarts from the Python run's checkpoints too (step 30 now).
    let o = Job::new(3, "heat").args(["--set", "n=20", "--set", "steps=40", "--set", &dir]).run();
    assert!(o.rank_errs[0].iter().any(|l| l.contains("restarted from step 30 (2 ranks wrote it, 3 now)")), "{}", o.show());
    assert_eq!(final_line(&o), reference);
}

/// Exactly one `error:` line, on rank 0, and exit code 2.
fn one_error(o: &Outcome, text: &str) {
    assert_eq!(o.code, Some(2), "{}", o.show());
    let errors: Vec<&String> = o.rank_errs.iter().flatten().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", o.show());
    assert!(errors[0].contains(text), "{}", o.show());
    assert!(!o.stderr.contains("Traceback"), "{}", o.show());
}

#[cfg_attr(rankwise_mpich, ignore = "needs an mpi4py built for MPICH (Debian's is built for Open MPI)")]
#[test]
fn heat_py_bad_inputs_are_one_line() {
    let s = Scratch::new("heat-py-bad");
    one_error(&heat_py(2, &["n=20", "stepz=40"], s.path()), "unknown input `stepz`");
    one_error(&heat_py(2, &["n=1"], s.path()), "need at least 2 cells per side");
    one_error(&heat_py(2, &["n=abc"], s.path()), "n");
    one_error(&heat_py(2, &["checkpoint.every=5"], s.path()), "needs checkpoint.dir");
    one_error(&heat_py(2, &["checkpoint.mode=fast"], s.path()), "expected sync or async");
    std::fs::write(s.path().join("file"), "").unwrap();
    let under_a_file = format!("checkpoint.dir={}", s.path().join("file/ckpt").display());
    one_error(&heat_py(2, &["n=12", "steps=10", &under_a_file], s.path()), "cannot make the checkpoint directory");
    // Another run's checkpoint: refused in one line, and left where it is.
    let dir = format!("checkpoint.dir={}", s.path().join("ckpt").display());
    final_line(&heat_py(2, &["n=12", "steps=10", "checkpoint.every=5", &dir], s.path()));
    one_error(&heat_py(2, &["n=12", "steps=10", "alpha=2", &dir], s.path()), "written with alpha = 1.0, this run has alpha = 2.0");
    assert!(s.path().join("ckpt/ckpt-0000000005.h5").exists());
}

#[cfg_attr(rankwise_mpich, ignore = "needs an mpi4py built for MPICH (Debian's is built for Open MPI)")]
#[test]
fn heat_py_through_the_launcher() {
    let s = Scratch::new("heat-py-run");
    let reference = final_line(&Job::new(2, "heat").args(["--set", "n=16", "--set", "steps=20"]).run());
    let mut cmd = Command::new(common::rankwise_bin());
    common::mpi_env(&mut cmd);
    cmd.current_dir(s.path())
        .args(["run", "-n", "4"])
        .arg(python())
        .arg(root().join("examples/python/heat.py"))
        .args(["--set", "n=16", "--set", "steps=20"])
        .env("PYTHONPATH", site());
    let o = common::run_with_timeout(cmd, "rankwise run -n 4 python3 heat.py".into(), std::time::Duration::from_secs(300), 4);
    assert_eq!(o.code, Some(0), "{}", o.show());
    assert!(o.stdout.lines().any(|l| l == reference), "{reference}\n{}", o.show());
}

/// The README's way in: a venv that takes numpy and mpi4py from the system, and
/// `pip install ./python` as a user runs it (pip fetches maturin for the build, as on a fresh
/// machine); the installed package runs the heat example with the Rust line.
#[cfg_attr(rankwise_mpich, ignore = "needs an mpi4py built for MPICH (Debian's is built for Open MPI)")]
#[test]
fn a_venv_installs_the_package_with_pip() {
    let s = Scratch::new("venv");
    let venv = s.path().join("rankwise-py");
    let st = Command::new(python()).args(["-m", "venv", "--system-site-packages"]).arg(&venv).status().expect("cannot run python3 -m venv");
    assert!(st.success(), "python3 -m venv failed (Debian: apt install python3-venv)");
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.current_dir(root()).args(["install", "--quiet", "--disable-pip-version-check", "./python"]).env("PIP_ROOT_USER_ACTION", "ignore");
    common::clean_cargo_env(&mut pip);
    assert!(pip.status().expect("cannot run pip").success(), "pip install ./python failed in a venv");
    let reference = final_line(&Job::new(2, "heat").args(["--set", "n=16", "--set", "steps=20"]).run());
    let script = root().join("examples/python/heat.py").display().to_string();
    let o = Job::with_path(2, venv.join("bin/python")).args([script.as_str(), "--set", "n=16", "--set", "steps=20"]).dir(s.path()).timeout(300).run();
    assert_eq!(final_line(&o), reference);
}
