//! From `rankwise run` options to the exact command that starts the ranks: which launcher
//! (srun inside a Slurm allocation, mpirun elsewhere), which MPI, and only the flags this host needs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The MPI that an mpirun belongs to; it decides flags here and the PMI plugin under srun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    OpenMpi,
    /// MPICH and its Hydra process manager (also Intel MPI).
    Mpich,
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::OpenMpi => "Open MPI",
            Flavour::Mpich => "MPICH",
        })
    }
}

/// Which program starts the ranks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    Mpirun { path: PathBuf, flavour: Flavour },
    Srun { flavour: Flavour },
}

/// What to launch, as the user asked for it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub np: usize,
    pub ranks_per_node: Option<usize>,
    pub threads: Option<usize>,
    pub gpus_per_rank: Option<usize>,
    /// The hosts for mpirun, one per line with their slots (`node1 slots=2`); srun takes the
    /// job's nodes instead.
    pub hostfile: Option<Hostfile>,
    /// An ssh stand-in that starts mpirun's daemons on the other hosts (`AGENT HOST CMD...`).
    /// Open MPI reads it from `OMPI_MCA_plm_rsh_agent` itself; MPICH's Hydra is told on its
    /// command line.
    pub rsh_agent: Option<String>,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Variables the ranks need (the status contract); exported to every host.
    pub env: Vec<(String, String)>,
    /// Under srun: exactly these nodes of the allocation (a relaunch after a node loss).
    pub nodelist: Option<Vec<String>>,
    /// Under srun: `--overlap`, to start while the steps of a lost supervisor are still ending.
    pub overlap: bool,
    /// Variables to take out of the launcher's environment (a standby supervisor runs inside a
    /// step of its own, whose `SLURM_STEP_*` and task counts must not shape the next step).
    pub unset: Vec<String>,
}

/// This host, as far as the launch flags care.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub cores: usize,
    pub root: bool,
    /// Inside a Slurm job: the allocation, not this host's cores, says what a rank may use.
    pub allocated: bool,
}

impl Host {
    pub fn here() -> Host {
        // SAFETY: geteuid cannot fail.
        Host { cores: physical_cores(), root: unsafe { libc::geteuid() } == 0, allocated: std::env::var_os("SLURM_JOB_ID").is_some() }
    }
}

/// A command ready to run: `env` is set on top of the launcher's own environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub unset: Vec<String>,
}

impl Plan {
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        self.unset.iter().for_each(|k| {
            c.env_remove(k);
        });
        c.args(&self.args).envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
}

/// As a shell line, for `--dry-run` and logs.
impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = self.env.iter().map(|(k, v)| format!("{k}={}", quote(v)));
        let words = words.chain([quote(&self.program.to_string_lossy())]).chain(self.args.iter().map(|a| quote(a)));
        write!(f, "{}", words.collect::<Vec<_>>().join(" "))
    }
}

fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command that starts `req` through `via` on `host`.
pub fn plan(req: &Request, via: &Via, host: Host) -> Plan {
    let mut env = req.env.clone();
    if let Some(t) = req.threads {
        env.extend(["RAYON_NUM_THREADS", "OMP_NUM_THREADS"].map(|k| (k.to_string(), t.to_string())));
    }
    let mut args: Vec<String> = Vec::new();
    let mut arg = |a: &str| args.push(a.to_string());
    let program = match via {
        Via::Srun { flavour } => {
            arg(match flavour {
                // Debian's OpenMPI has no PMI-2; MPICH under pmix thinks every rank is rank 0.
                Flavour::OpenMpi => "--mpi=pmix",
                Flavour::Mpich => "--mpi=pmi2",
            });
            arg(&format!("--ntasks={}", req.np));
            if let Some(nodes) = &req.nodelist {
                arg(&format!("--nodes={}", nodes.len()));
                arg(&format!("--nodelist={}", nodes.join(",")));
            }
            if req.overlap {
                arg("--overlap");
            }
            if let Some(m) = req.ranks_per_node {
                arg(&format!("--ntasks-per-node={m}"));
            }
            if let Some(t) = req.threads {
                arg(&format!("--cpus-per-task={t}"));
            }
            if let Some(g) = req.gpus_per_rank {
                arg(&format!("--gpus-per-task={g}"));
            }
            PathBuf::from("srun")
        }
        Via::Mpirun { path, flavour: Flavour::OpenMpi } => {
            if host.root {
                for k in ["OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] {
                    env.push((k.into(), "1".into()));
                }
            }
            arg("-np");
            arg(&req.np.to_string());
            if let Some(m) = req.ranks_per_node {
                arg("--npernode");
                arg(&m.to_string());
            }
            if let Some(f) = &req.hostfile {
                // The hostfile's slots say how many ranks each host takes.
                arg("--hostfile");
                arg(&f.path.to_string_lossy());
            } else if req.ranks_per_node.unwrap_or(req.np) > host.cores {
                arg("--oversubscribe");
            } else if req.threads.is_none() && !host.allocated {
                // Open MPI binds each of 1 or 2 ranks to one core, leaving the others idle: give
                // each rank its share of the cores instead (its pools take them, see
                // rankwise_runtime::threads).
                let share = host.cores / req.ranks_per_node.unwrap_or(req.np);
                if share > 1 {
                    arg("--map-by");
                    arg(&format!("slot:PE={share}"));
                }
            }
            if req.threads.is_some_and(|t| t > 1) {
                // OpenMPI binds each rank to one core by default: its threads would share it.
                arg("--bind-to");
                arg("none");
            }
            // mpirun passes its environment to local ranks only; -x exports to every host.
            for (k, _) in env.iter().filter(|(k, _)| !k.starts_with("OMPI_")) {
                arg("-x");
                arg(k);
            }
            path.clone()
        }
        Via::Mpirun { path, flavour: Flavour::Mpich } => {
            // Hydra passes the whole environment to every rank and allows oversubscription.
            arg("-n");
            arg(&req.np.to_string());
            if let Some(m) = req.ranks_per_node {
                arg("-ppn");
                arg(&m.to_string());
            }
            if let Some(f) = &req.hostfile {
                // Hydra's own hostfiles say `node1:2`, and reject `slots=`: name the hosts instead.
                arg("-hosts");
                arg(&f.hosts.iter().map(|(h, slots)| slots.map_or(h.clone(), |n| format!("{h}:{n}"))).collect::<Vec<_>>().join(","));
                if let Some(a) = &req.rsh_agent {
                    for a in ["-launcher", "rsh", "-launcher-exec", a] {
                        arg(a);
                    }
                }
            }
            path.clone()
        }
    };
    args.push(req.program.to_string_lossy().into_owned());
    args.extend(req.args.iter().cloned());
    Plan { program, args, env, unset: req.unset.clone() }
}

/// A hostfile as Open MPI writes it (`node1 slots=2`; Hydra's `node1:2` is read too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostfile {
    pub path: PathBuf,
    /// Each host with its slots, where the line gives them.
    pub hosts: Vec<(String, Option<usize>)>,
}

impl Hostfile {
    /// Read `path`: it must name at least one host, and slots must be whole numbers.
    pub fn read(path: &Path) -> Result<Hostfile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read hostfile {}", path.display()))?;
        let mut hosts = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let mut words = line.split('#').next().unwrap_or("").split_whitespace();
            let Some(first) = words.next() else { continue };
            let (host, hydra_slots) = first.split_once(':').map_or((first, None), |(h, s)| (h, Some(s)));
            // Other words (Open MPI's max_slots=) mean nothing to Hydra; Open MPI reads the file itself.
            let slots = words.find_map(|w| w.strip_prefix("slots=")).or(hydra_slots);
            let slots = slots
                .map(|s| s.parse::<usize>().ok().filter(|&s| s > 0))
                .map(|s| s.with_context(|| format!("hostfile {} line {}: slots must be a whole number of at least 1", path.display(), n + 1)))
                .transpose()?;
            hosts.push((host.to_string(), slots));
        }
        if hosts.is_empty() {
            bail!("hostfile {} names no hosts (one per line: HOST slots=N)", path.display());
        }
        Ok(Hostfile { path: path.to_path_buf(), hosts })
    }
}

/// Which launcher to use, as asked on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    /// srun inside a Slurm allocation (SLURM_JOB_ID set), mpirun elsewhere.
    Auto,
    Mpirun,
    Srun,
}

/// The MPI library a program is linked with: its flavour and the library's file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linked {
    pub flavour: Flavour,
    pub library: String,
}

impl fmt::Display for Linked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.flavour, self.library)
    }
}

/// The MPI that `program` links, from its dynamic dependencies (`ldd`); None for a program that
/// links none dynamically (a script, a static build).
pub fn linked_mpi(program: &Path) -> Option<Linked> {
    let out = Command::new("ldd").arg(program).output().ok()?;
    parse_linked_mpi(&String::from_utf8_lossy(&out.stdout))
}

/// From `ldd` output: `libmpich.so.12` and `libmpi.so.12` (the MPICH ABI, also Intel MPI) are
/// MPICH, any other `libmpi.so` (`.40`) is Open MPI.
pub fn parse_linked_mpi(ldd: &str) -> Option<Linked> {
    ldd.lines().find_map(|line| {
        let name = line.split_whitespace().next()?;
        let flavour = if name.starts_with("libmpich.so") || name.starts_with("libmpi.so.12") {
            Flavour::Mpich
        } else if name.starts_with("libmpi.so") {
            Flavour::OpenMpi
        } else {
            return None;
        };
        Some(Linked { flavour, library: name.to_string() })
    })
}

/// The mpirun names each MPI is installed under, the plain one first (what `module load` puts
/// on PATH); Debian installs both MPIs side by side under the suffixed names.
fn mpirun_names(flavour: Flavour) -> &'static [&'static str] {
    match flavour {
        Flavour::OpenMpi => &["mpirun", "mpirun.openmpi", "mpiexec.openmpi", "mpiexec"],
        Flavour::Mpich => &["mpirun", "mpiexec.hydra", "mpirun.mpich", "mpiexec.mpich", "mpiexec"],
    }
}

/// Find the launcher for a program that links `linked` (None: unknown, take `mpirun`): srun in
/// a Slurm allocation, with the PMI plugin of that MPI; else `$RANKWISE_MPIRUN`, which must be
/// that MPI's, or the first mpirun on PATH that is.
///
/// # Errors
/// No launcher, or none of the program's MPI: starting a program with another MPI's mpirun
/// runs every rank as a job of its own.
pub fn choose(choice: Choice, linked: Option<&Linked>) -> Result<Via> {
    let in_slurm = std::env::var_os("SLURM_JOB_ID").is_some();
    let explicit = std::env::var("RANKWISE_MPIRUN").ok();
    let srun = matches!(choice, Choice::Srun) || (choice == Choice::Auto && in_slurm);
    if srun {
        if find_executable("srun").is_none() {
            bail!("no srun found on PATH{}", if in_slurm { " (inside Slurm job, SLURM_JOB_ID is set)" } else { "" });
        }
        // The MPI the program was built with decides the PMI plugin; else its mpirun tells which.
        let flavour = match (linked, find_executable(explicit.as_deref().unwrap_or("mpirun"))) {
            (Some(l), _) => l.flavour,
            (None, Some(p)) => flavour_of(&p)?,
            (None, None) => Flavour::OpenMpi,
        };
        return Ok(Via::Srun { flavour });
    }
    if let Some(name) = &explicit {
        let path = find_executable(name).with_context(|| format!("no mpirun found: RANKWISE_MPIRUN={name} is not an executable"))?;
        let flavour = flavour_of(&path)?;
        if let Some(l) = linked.filter(|l| l.flavour != flavour) {
            bail!("RANKWISE_MPIRUN={name} is {flavour}'s mpirun, but the program links {l}: point RANKWISE_MPIRUN at {}'s", l.flavour);
        }
        return Ok(Via::Mpirun { path, flavour });
    }
    let Some(l) = linked else {
        let path = find_executable("mpirun").context("no mpirun found on PATH (install MPI, `module load` it, or set RANKWISE_MPIRUN)")?;
        let flavour = flavour_of(&path)?;
        return Ok(Via::Mpirun { path, flavour });
    };
    let mut seen = Vec::new();
    for name in mpirun_names(l.flavour) {
        let Some(path) = find_executable(name) else { continue };
        match flavour_of(&path) {
            Ok(f) if f == l.flavour => return Ok(Via::Mpirun { path, flavour: f }),
            Ok(f) => seen.push(format!("{} is {f}'s", path.display())),
            Err(_) => seen.push(format!("{} is neither's", path.display())),
        }
    }
    let seen = if seen.is_empty() { String::new() } else { format!(" ({})", seen.join(", ")) };
    bail!(
        "the program links {l}, but no {} mpirun is on PATH{seen}: install it, `module load` it, or set RANKWISE_MPIRUN",
        l.flavour
    )
}

/// Ask an mpirun which MPI it belongs to.
pub fn flavour_of(mpirun: &Path) -> Result<Flavour> {
    let out = Command::new(mpirun)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {} --version", mpirun.display()))?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    parse_flavour(&text).with_context(|| format!("cannot tell which MPI {} belongs to from its --version", mpirun.display()))
}

pub fn parse_flavour(version: &str) -> Option<Flavour> {
    if version.contains("Open MPI") || version.contains("OpenRTE") {
        Some(Flavour::OpenMpi)
    } else if version.contains("HYDRA") || version.contains("Intel(R) MPI") {
        Some(Flavour::Mpich)
    } else {
        None
    }
}

/// The program to run: a path as given; a bare name is an example built next to this binary
/// (`target/<profile>/examples/NAME`), else a command on PATH.
pub fn resolve_program(name: &str) -> Result<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        if !is_executable(&p) {
            bail!("program {name} does not exist or is not executable");
        }
        return Ok(p);
    }
    let examples = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.join("examples")));
    if let Some(p) = examples.as_ref().map(|d| d.join(name)).filter(|p| is_executable(p)) {
        return Ok(p);
    }
    find_executable(name).with_context(|| match &examples {
        Some(d) => format!("unknown program {name:?}: not an example in {} nor a command on PATH", d.display()),
        None => format!("unknown program {name:?}: not a command on PATH"),
    })
}

/// `name` if it is a path, else the first match on PATH.
pub fn find_executable(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name)).filter(|p| is_executable(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Physical cores, which OpenMPI counts as its slots (not hardware threads).
fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu") else { return logical };
    let read = |p: PathBuf| std::fs::read_to_string(p).map(|s| s.trim().to_string()).ok();
    let mut cores: Vec<(String, String)> = dir
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().strip_prefix("cpu").is_some_and(|n| n.parse::<u32>().is_ok()))
        .filter_map(|e| {
            let t = e.path().join("topology");
            Some((read(t.join("physical_package_id"))?, read(t.join("core_id"))?))
        })
        .collect();
    cores.sort();
    cores.dedup();
    if cores.is_empty() { logical } else { cores.len().min(logical) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(np: usize) -> Request {
        Request { np, program: "/x/heat".into(), args: vec!["--set".into(), "n=8".into()], ..Default::default() }
    }
    const HERE: Host = Host { cores: 2, root: true, allocated: false };
    const USER: Host = Host { cores: 8, root: false, allocated: false };

    fn openmpi() -> Via {
        Via::Mpirun { path: "/usr/bin/mpirun".into(), flavour: Flavour::OpenMpi }
    }

    #[test]
    fn openmpi_adds_root_and_oversubscribe_only_when_needed() {
        let p = plan(&req(4), &openmpi(), HERE);
        assert_eq!(
            p.to_string(),
            "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 /usr/bin/mpirun -np 4 --oversubscribe /x/heat --set n=8"
        );
        // Fewer ranks than cores: each rank gets its share of them.
        assert_eq!(plan(&req(2), &openmpi(), USER).to_string(), "/usr/bin/mpirun -np 2 --map-by slot:PE=4 /x/heat --set n=8");
        assert_eq!(plan(&req(1), &openmpi(), HERE).to_string(), "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 /usr/bin/mpirun -np 1 --map-by slot:PE=2 /x/heat --set n=8");
        // As many ranks as cores: Open MPI's own binding, one core each.
        assert!(!plan(&req(2), &openmpi(), HERE).args.contains(&"--map-by".to_string()));
        // Not when told the threads, nor inside a Slurm allocation (which may hold fewer cores).
        assert_eq!(plan(&req(1), &openmpi(), Host { allocated: true, ..USER }).to_string(), "/usr/bin/mpirun -np 1 /x/heat --set n=8");
        // 16 ranks over nodes of 4: no oversubscription on any of them.
        let r = Request { ranks_per_node: Some(4), threads: Some(2), ..req(16) };
        assert_eq!(
            plan(&r, &openmpi(), USER).to_string(),
            "RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 /usr/bin/mpirun -np 16 --npernode 4 --bind-to none \
             -x RAYON_NUM_THREADS -x OMP_NUM_THREADS /x/heat --set n=8"
        );
    }

    #[test]
    fn mpich_and_srun() {
        let mpich = Via::Mpirun { path: "mpirun.mpich".into(), flavour: Flavour::Mpich };
        let r = Request { ranks_per_node: Some(2), env: vec![("RANKWISE_STATUS_FILE".into(), "/tmp/s t".into())], ..req(4) };
        assert_eq!(
            plan(&r, &mpich, HERE).to_string(),
            "RANKWISE_STATUS_FILE='/tmp/s t' mpirun.mpich -n 4 -ppn 2 /x/heat --set n=8"
        );
        let r = Request { threads: Some(4), gpus_per_rank: Some(1), ..req(8) };
        assert_eq!(
            plan(&r, &Via::Srun { flavour: Flavour::OpenMpi }, HERE).to_string(),
            "RAYON_NUM_THREADS=4 OMP_NUM_THREADS=4 srun --mpi=pmix --ntasks=8 --cpus-per-task=4 --gpus-per-task=1 /x/heat --set n=8"
        );
        assert!(plan(&req(2), &Via::Srun { flavour: Flavour::Mpich }, HERE).args.contains(&"--mpi=pmi2".into()));
    }

    #[test]
    fn hostfile_and_rsh_agent() {
        let hostfile = Hostfile { path: "/h/hosts".into(), hosts: vec![("node1".into(), Some(2)), ("node2".into(), None)] };
        let r = Request { hostfile: Some(hostfile), rsh_agent: Some("/s/agent.sh".into()), ..req(4) };
        // Open MPI: the slots in the hostfile, not this host's cores, decide oversubscription; it
        // reads the agent from its environment.
        assert_eq!(
            plan(&r, &openmpi(), HERE).to_string(),
            "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 /usr/bin/mpirun -np 4 --hostfile /h/hosts /x/heat --set n=8"
        );
        let mpich = Via::Mpirun { path: "mpirun.mpich".into(), flavour: Flavour::Mpich };
        assert_eq!(
            plan(&r, &mpich, HERE).to_string(),
            "mpirun.mpich -n 4 -hosts node1:2,node2 -launcher rsh -launcher-exec /s/agent.sh /x/heat --set n=8"
        );
    }

    #[test]
    fn hostfiles_are_checked() {
        let dir = std::env::temp_dir().join(format!("rankwise-hostfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("hosts");
        std::fs::write(&f, "# three hosts\nnode1 slots=2 max_slots=4\n\nnode2 # the second\nnode3:3\n").unwrap();
        let hosts = vec![("node1".into(), Some(2)), ("node2".into(), None), ("node3".into(), Some(3))];
        assert_eq!(Hostfile::read(&f).unwrap(), Hostfile { path: f.clone(), hosts });
        std::fs::write(&f, "node1\nnode2 slots=two\n").unwrap();
        assert_eq!(Hostfile::read(&f).unwrap_err().to_string(), format!("hostfile {} line 2: slots must be a whole number of at least 1", f.display()));
        std::fs::write(&f, "# none yet\n\n").unwrap();
        assert_eq!(Hostfile::read(&f).unwrap_err().to_string(), format!("hostfile {} names no hosts (one per line: HOST slots=N)", f.display()));
        std::fs::remove_dir_all(&dir).unwrap();
        let e = Hostfile::read(&dir.join("hosts")).unwrap_err();
        assert_eq!(format!("{e:#}"), format!("cannot read hostfile {}: No such file or directory (os error 2)", f.display()));
    }

    #[test]
    fn flavour_from_version_text() {
        assert_eq!(parse_flavour("mpirun (Open MPI) 4.1.4\n\nReport bugs to"), Some(Flavour::OpenMpi));
        assert_eq!(parse_flavour("HYDRA build details:\n    Version: 4.0.2"), Some(Flavour::Mpich));
        assert_eq!(parse_flavour("something else"), None);
    }

    #[test]
    fn linked_mpi_from_ldd() {
        let openmpi = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibhdf5_openmpi.so.103 => /usr/lib/x86_64-linux-gnu/libhdf5_openmpi.so.103 (0x1)\n\tlibmpi.so.40 => /usr/lib/x86_64-linux-gnu/libmpi.so.40 (0x2)\n";
        assert_eq!(parse_linked_mpi(openmpi), Some(Linked { flavour: Flavour::OpenMpi, library: "libmpi.so.40".into() }));
        let mpich = "\tlibhdf5_mpich.so.103 => /usr/lib/x86_64-linux-gnu/libhdf5_mpich.so.103 (0x1)\n\tlibmpich.so.12 => /usr/lib/x86_64-linux-gnu/libmpich.so.12 (0x2)\n";
        assert_eq!(parse_linked_mpi(mpich).map(|l| l.to_string()), Some("MPICH (libmpich.so.12)".into()));
        assert_eq!(parse_linked_mpi("\tlibmpi.so.12 => /opt/intel/lib/libmpi.so.12 (0x1)\n").unwrap().flavour, Flavour::Mpich);
        assert_eq!(parse_linked_mpi("\tnot a dynamic executable\n"), None);
        assert_eq!(parse_linked_mpi("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n"), None);
    }

    #[test]
    fn quoting_for_the_shell() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("k=v"), "k=v");
    }
}
