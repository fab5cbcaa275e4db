//! Several hosts on this machine (scripts/hosts.sh): a guard that brings them up and takes them down
//! when dropped, even when the test panics, and mpirun across them with a hostfile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{mpi_env, mpirun, program, run_with_timeout, tag_output, Outcome};

/// The private subnet of scripts/hosts.sh; MPI traffic between hosts stays on it.
pub const SUBNET: &str = "10.231.0.0/24";

/// `mpi_env` for jobs that span hosts: MPI traffic over the hosts' subnet (shared memory within one).
pub fn multihost_env(cmd: &mut Command) -> &mut Command {
    mpi_env(cmd)
        .env("OMPI_MCA_btl", "self,vader,tcp")
        .env("OMPI_MCA_btl_tcp_if_include", SUBNET)
        .env("OMPI_MCA_oob_tcp_if_include", SUBNET)
}

/// One fixture per test binary at a time (the script itself allows one per machine).
static FIXTURE: Mutex<()> = Mutex::new(());

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// Run scripts/hosts.sh with `args`; its status and combined output.
pub fn hosts_sh(args: &[&str]) -> (bool, String) {
    let o = Command::new(script("hosts.sh"))
        .args(args)
        .env("RANKWISE_HOSTS_OWNER", std::process::id().to_string())
        .output()
        .expect("cannot run scripts/hosts.sh");
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// What the multi-host tests lack here (root, or a tool set-up installs), as one line saying how
/// to get it.
pub fn unavailable() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root: the hosts are network namespaces (scripts/hosts.sh); run the tests as root (`sudo make test`)".into());
    }
    missing(&[("ip", "iproute2"), ("nsenter", "util-linux"), ("unshare", "util-linux")])
}

/// The first of `tools` (command, Debian package) not on PATH, as one line saying how to install it.
fn missing(tools: &[(&str, &str)]) -> Option<String> {
    let found = |p: &str| std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|d| d.join(p).exists());
    tools.iter().find(|(t, _)| !found(t)).map(|(t, pkg)| format!("`{t}` is not on PATH: install it with scripts/setup.sh (Debian package {pkg})"))
}

/// Wait until no other test of this binary uses the fixture.
pub fn serial() -> MutexGuard<'static, ()> {
    FIXTURE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hosts rw-node1..N, up while this lives.
pub struct Hosts {
    pub names: Vec<String>,
    serial: Option<MutexGuard<'static, ()>>,
}

impl Hosts {
    /// Bring up `n` hosts. A fixture left by a crashed run (its owner gone) is removed first.
    pub fn up(n: usize) -> Hosts {
        Hosts::up_with(serial(), n)
    }

    /// [`Hosts::up`] for a caller that already holds [`serial`].
    pub fn up_with(serial: MutexGuard<'static, ()>, n: usize) -> Hosts {
        let (ok, out) = hosts_sh(&["up", &n.to_string()]);
        assert!(ok, "scripts/hosts.sh up {n} failed:\n{out}");
        Hosts { names: (1..=n).map(|k| format!("rw-node{k}")).collect(), serial: Some(serial) }
    }

    /// Take the hosts down now, and keep other tests away until the caller has checked that
    /// nothing is left.
    pub fn down(mut self) -> MutexGuard<'static, ()> {
        self.serial.take().unwrap()
    } // `self` drops here: scripts/hosts.sh down

    /// A command that runs `program` on `host`.
    pub fn exec(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(script("hosts.sh"));
        c.arg("exec").arg(host).arg(program);
        c
    }

    /// Write a hostfile giving each host `slots` slots, as the MPI of these tests writes them
    /// (Hydra rejects `slots=`; `rankwise run` reads both).
    pub fn hostfile(&self, dir: &Path, slots: usize) -> PathBuf {
        let p = dir.join("hostfile");
        let line = |h: &String| if super::hydra() { format!("{h}:{slots}\n") } else { format!("{h} slots={slots}\n") };
        let text: String = self.names.iter().map(line).collect();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `mpirun -np NP --hostfile HOSTFILE PROGRAM ARGS`, started on the first host, with ranks
    /// placed by the hostfile and the daemons on the other hosts started through rsh-agent.sh.
    pub fn mpirun(&self, np: usize, hostfile: &Path, program_name: &str, args: &[&str]) -> Outcome {
        let exe = program(program_name);
        let mut cmd = self.exec(&self.names[0], mpirun());
        multihost_env(&mut cmd)
            .env("OMPI_MCA_plm_rsh_agent", script("rsh-agent.sh"))
            .env("OMPI_MCA_plm_rsh_no_tree_spawn", "1")
            // The same agent for MPICH's Hydra.
            .env("HYDRA_LAUNCHER", "rsh")
            .env("HYDRA_LAUNCHER_EXEC", script("rsh-agent.sh"))
            .arg("-np")
            .arg(np.to_string())
            .arg("--hostfile")
            .arg(hostfile)
            .arg(tag_output())
            .arg(&exe)
            .args(args);
        let command = format!("[on {}] {} -np {np} --hostfile {} {} {}", self.names[0], mpirun(), hostfile.display(), exe.display(), args.join(" "));
        run_with_timeout(cmd, command, Duration::from_secs(120), np)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let (ok, out) = hosts_sh(&["down"]);
        if !ok && !std::thread::panicking() {
            panic!("scripts/hosts.sh down failed:\n{out}");
        }
    }
}

/// Why multi-node Slurm tests cannot run here, if they cannot.
pub fn slurm_unavailable() -> Option<String> {
    unavailable().or_else(|| missing(&[("slurmctld", "slurm-wlm"), ("slurmd", "slurm-wlm"), ("munged", "munge")]))
}

/// A multi-node Slurm (scripts/slurm-hosts.sh) on `hosts`, up while this lives: the controller on
/// rw-head, a slurmd on each node.
pub struct Slurm<'h> {
    hosts: &'h Hosts,
    dir: PathBuf,
}

impl<'h> Slurm<'h> {
    pub fn up(hosts: &'h Hosts, dir: &Path) -> Slurm<'h> {
        let s = Slurm { hosts, dir: dir.to_path_buf() };
        let o = s.script("up").output().unwrap();
        assert!(o.status.success(), "slurm-hosts.sh up failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        s
    }

    fn script(&self, cmd: &str) -> Command {
        let mut c = Command::new(script("slurm-hosts.sh"));
        c.arg(cmd).arg(&self.dir);
        c
    }

    /// The project's Slurm client for this cluster: sbatch, scontrol, squeue and scancel run on
    /// rw-head (through small wrappers), with the environment of [`Slurm::client`].
    pub fn api(&self) -> rankwise::slurm::Slurm {
        use std::os::unix::fs::PermissionsExt;
        let bin = self.dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for p in ["sbatch", "scontrol", "squeue", "scancel"] {
            let w = bin.join(p);
            std::fs::write(&w, format!("#!/bin/sh\nexec {} exec rw-head {p} \"$@\"\n", script("hosts.sh").display())).unwrap();
            std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let probe = self.client("true");
        probe.get_envs().fold(rankwise::slurm::Slurm::new().program_dir(bin), |s, (k, v)| {
            s.env(k.to_string_lossy(), v.map_or(String::new(), |v| v.to_string_lossy().into_owned()))
        })
    }

    /// A Slurm client command (sbatch, srun, squeue...) run on rw-head, with this cluster's config
    /// and the MPI settings for the hosts' subnet, which srun passes on to the tasks.
    pub fn client(&self, program: &str) -> Command {
        let mut c = self.hosts.exec("rw-head", program);
        multihost_env(&mut c).env("SLURM_CONF", self.dir.join("slurm.conf"));
        c
    }
}

impl Drop for Slurm<'_> {
    fn drop(&mut self) {
        let _ = self.script("down").output();
    }
}
