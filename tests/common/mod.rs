//! The multi-rank test harness: launch a program built by `cargo test` (an example, or a test
//! program under tests/programs) under `mpirun -np K`, capture each rank's output and the job's
//! exit code, never hang (a timeout kills the job), and show everything when an assertion fails.
#![allow(dead_code)]

pub mod hosts;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One mpirun at a time: the machines have 2 cores, and oversubscribed jobs side by side crawl.
static MPIRUN: Mutex<()> = Mutex::new(());

/// Path of an example or test program built alongside this test binary.
pub fn program(name: &str) -> PathBuf {
    // Programs built beforehand: scripts/gpu-check.sh carries them to a machine with no cargo.
    if let Some(dir) = std::env::var_os("RANKWISE_TEST_PROGRAMS") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap(); // target/<profile>/deps -> target/<profile>
    let p = dir.join("examples").join(name);
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == name) {
        // `cargo test` builds every example but `cargo test --test X` does not: make sure it is
        // there and fresh (a no-op when it is).
        let mut cargo = cargo();
        // `--workspace`: features resolved as `cargo test --workspace` resolved them, so this
        // finds its build fresh; for the root package alone cargo built a second variant of a
        // score of crates (75 s of every CI run).
        cargo.args(["build", "--workspace", "--example", name]).args(build_profile());
        let st = cargo.status().expect("cannot run cargo");
        assert!(st.success() && p.exists(), "cannot build {}", p.display());
        built.push(name.to_string());
    }
    p
}

/// The `rankwise` binary of this profile, built if needed.
pub fn rankwise_bin() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let mut cargo = cargo();
        cargo.args(["build", "--workspace", "--bin", "rankwise"]).args(build_profile());
        assert!(cargo.status().unwrap().success(), "cannot build rankwise");
        *built = true;
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("rankwise")
}

/// `cargo`, in the workspace root, without what `cargo test` set for this test process: build
/// scripts (ring's) watch CARGO_MANIFEST_DIR and CARGO_PKG_*, and would rebuild half the tree on
/// every run.
pub fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(env!("CARGO_MANIFEST_DIR"));
    clean_cargo_env(&mut cargo);
    cargo
}

/// Drop this test process's cargo variables from `cmd` (see [`cargo`]).
pub fn clean_cargo_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_", "CARGO_TARGET_TMPDIR", "OUT_DIR"].iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(&*k);
        }
    }
    cmd
}

/// The cargo profile flags that build into this test binary's folder with the profile `cargo test`
/// used: the plain dev profile would rebuild the dependency chain back and forth with it
/// (openblas-build's build dependencies resolve differently).
pub fn build_profile() -> [&'static str; 2] {
    let exe = std::env::current_exe().unwrap();
    match exe.parent().unwrap().parent().unwrap().file_name().is_some_and(|d| d == "release") {
        true => ["--profile", "release"],
        false => ["--profile", "test"],
    }
}

/// The mpirun the tests launch with: `$RANKWISE_MPIRUN` (scripts/env.sh sets `mpirun.mpich` for
/// MPICH), else `mpirun`. The launcher reads the same variable.
pub fn mpirun() -> String {
    std::env::var("RANKWISE_MPIRUN").unwrap_or_else(|_| "mpirun".into())
}

/// Whether [`mpirun`] is MPICH's Hydra (also Intel MPI's) rather than Open MPI's; asked once.
pub fn hydra() -> bool {
    static HYDRA: OnceLock<bool> = OnceLock::new();
    *HYDRA.get_or_init(|| {
        let o = Command::new(mpirun()).arg("--version").output().unwrap_or_else(|e| panic!("cannot run {} --version: {e}", mpirun()));
        let text = String::from_utf8_lossy(&o.stdout);
        text.contains("HYDRA") || text.contains("Intel(R) MPI")
    })
}

/// The mpirun flag that tags every output line with its rank (see [`split_tagged`]).
pub fn tag_output() -> &'static str {
    if hydra() { "-prepend-rank" } else { "--tag-output" }
}

/// srun's `--mpi` plugin for the MPI of these tests: Debian's Open MPI has only PMIx; MPICH
/// under PMIx would see every task as a rank 0.
pub fn srun_mpi() -> &'static str {
    if hydra() { "pmi2" } else { "pmix" }
}

/// The environment every single-host test run needs here (root, 2 cores, no network beyond lo).
pub fn mpi_env(cmd: &mut Command) -> &mut Command {
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl", "self,vader")
        .env("OMPI_MCA_oob_tcp_if_include", "lo")
        // Oversubscribed ranks must give the core away while they wait.
        .env("OMPI_MCA_mpi_yield_when_idle", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env("RUST_BACKTRACE", "0")
}

/// What one job did.
#[derive(Debug)]
pub struct Outcome {
    pub command: String,
    /// Exit code of mpirun (None if it was killed by a signal or the timeout).
    pub code: Option<i32>,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
    /// Lines each rank wrote to stdout, from mpirun's rank tags ([`tag_output`]).
    pub ranks: Vec<Vec<String>>,
    /// Lines each rank wrote to stderr.
    pub rank_errs: Vec<Vec<String>>,
}

impl Outcome {
    /// Everything, for assertion messages.
    pub fn show(&self) -> String {
        format!(
            "$ {}\nexit: {:?}{} after {:.1?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command,
            self.code,
            if self.timed_out { " (TIMED OUT)" } else { "" },
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }

    pub fn assert_success(&self) -> &Self {
        assert!(!self.timed_out && self.code == Some(0), "job failed\n{}", self.show());
        self
    }

    /// The single stdout line of `rank` that starts with `prefix`.
    pub fn line(&self, rank: usize, prefix: &str) -> &str {
        self.ranks[rank]
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("rank {rank} printed no line starting with {prefix:?}\n{}", self.show()))
    }
}

/// A job to launch.
pub struct Job {
    np: usize,
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    timeout: Duration,
    dir: Option<PathBuf>,
}

impl Job {
    pub fn new(np: usize, program_name: &str) -> Job {
        Job::with_path(np, program(program_name))
    }
    pub fn with_path(np: usize, program: PathBuf) -> Job {
        Job { np, program, args: vec![], envs: vec![], timeout: Duration::from_secs(120), dir: None }
    }
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Job {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Job {
        self.envs.push((k.into(), v.into()));
        self
    }
    pub fn timeout(mut self, secs: u64) -> Job {
        self.timeout = Duration::from_secs(secs);
        self
    }
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Job {
        self.dir = Some(dir.into());
        self
    }

    pub fn run(self) -> Outcome {
        let _one_at_a_time = MPIRUN.lock().unwrap_or_else(|p| p.into_inner());
        let mut cmd = Command::new(mpirun());
        mpi_env(&mut cmd);
        cmd.arg("-np").arg(self.np.to_string()).arg(tag_output()).arg(&self.program).args(&self.args);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        let command = format!("{} -np {} {} {}", mpirun(), self.np, self.program.display(), self.args.join(" "));
        run_with_timeout(cmd, command, self.timeout, self.np)
    }
}

/// Run a command to completion or until `timeout`, then kill it (and its process group).
pub fn run_with_timeout(mut cmd: Command, command: String, timeout: Duration, np: usize) -> Outcome {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || { let mut s = String::new(); out.read_to_string(&mut s).ok(); s });
    let t_err = std::thread::spawn(move || { let mut s = String::new(); err.read_to_string(&mut s).ok(); s });
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            // The whole process group: mpirun and every rank it started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
    let (ranks, rank_errs) = split_tagged(&stdout, &stderr, np);
    Outcome { command, code: status.code(), timed_out, elapsed: start.elapsed(), stdout, stderr, ranks, rank_errs }
}

/// Split tagged lines by rank R: `[1,R]<stdout>:text` (Open MPI), or `[R] text` on the stream the
/// rank wrote to (Hydra). mpirun's own lines (`[host:pid] ...`) carry no rank and are skipped.
fn split_tagged(stdout: &str, stderr: &str, np: usize) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut outs = vec![Vec::new(); np];
    let mut errs = vec![Vec::new(); np];
    let lines = stdout.lines().map(|l| (l, false)).chain(stderr.lines().map(|l| (l, true)));
    for (line, on_stderr) in lines {
        let Some((tag, text)) = line.strip_prefix('[').and_then(|rest| rest.split_once(']')) else { continue };
        let (rank, text, on_stderr) = match tag.split_once(',') {
            Some((_, rank)) => match (text.strip_prefix("<stdout>:"), text.strip_prefix("<stderr>:")) {
                (Some(t), _) => (rank, t, false),
                (_, Some(t)) => (rank, t, true),
                _ => continue,
            },
            None => (tag, text.strip_prefix(' ').unwrap_or(text), on_stderr),
        };
        let Some(rank) = rank.parse::<usize>().ok().filter(|&r| r < np) else { continue };
        let lines = if on_stderr { &mut errs } else { &mut outs };
        lines[rank].push(text.to_string());
    }
    (outs, errs)
}

/// The names in `dir`, sorted (none where it does not exist).
pub fn names(dir: &std::path::Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir).map_or(vec![], |d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect());
    n.sort();
    n
}

/// A fresh scratch directory under target/, removed when dropped unless the test panicked; its
/// own on every call (tests of one binary run side by side and may ask for the same name).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let exe = std::env::current_exe().unwrap();
        Scratch::under(&exe.parent().unwrap().parent().unwrap().join("scratch"), name)
    }
    /// A scratch folder in `root` (e.g. /dev/shm, for a filesystem in memory).
    pub fn under(root: &std::path::Path, name: &str) -> Scratch {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root.join(format!("rankwise-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The MPI that this build does not use (Open MPI and MPICH are installed side by side): its
/// mpirun, and the `hello` example built against it (in its own target folder, as
/// scripts/env.sh selects it), for tests that start a program with the wrong MPI's launcher.
pub struct OtherMpi {
    pub mpirun: &'static str,
    pub hello: PathBuf,
}

pub fn other_mpi() -> OtherMpi {
    let (name, mpirun, target) = if hydra() { ("openmpi", "mpirun.openmpi", "target") } else { ("mpich", "mpirun.mpich", "target/mpich") };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    clean_cargo_env(&mut cmd);
    // Only what scripts/env.sh derives from RANKWISE_MPI, for the other MPI.
    for k in ["CARGO_TARGET_DIR", "MPICC", "MPI_PKG_CONFIG", "RANKWISE_MPIRUN", "PKG_CONFIG_PATH"] {
        cmd.env_remove(k);
    }
    let build = format!(". scripts/env.sh && cargo build --example hello {}", build_profile().join(" "));
    let st = cmd.current_dir(&root).env("RANKWISE_MPI", name).arg("-c").arg(&build).status().expect("cannot run bash");
    assert!(st.success(), "cannot build hello against {name}: RANKWISE_MPI={name} {build}");
    let profile = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().file_name().unwrap().to_owned();
    OtherMpi { mpirun, hello: root.join(target).join(profile).join("examples/hello") }
}

/// A small filesystem of its own (tmpfs), unmounted when dropped.
pub struct SmallDisk(pub std::path::PathBuf);

impl SmallDisk {
    /// `size` for mount's `-o size=`. Mounting needs root, as the multi-host tests do.
    pub fn mount(at: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&at).unwrap();
        let o = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&at).output().expect("cannot run mount");
        assert!(o.status.success(), "a tmpfs of the test's own needs root: run the tests as root (`sudo make test`): {}", String::from_utf8_lossy(&o.stderr));
        SmallDisk(at)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
