//! Several hosts on one machine (scripts/hosts.sh): the fixture itself (distinct hostnames and
//! addresses, one instance at a time, nothing left behind) and MPI jobs that span hosts, under
//! mpirun with a hostfile and under a multi-node Slurm.

mod common;
use common::hosts::{hosts_sh, script, serial, slurm_unavailable, unavailable, Hosts, Slurm};
use common::{run_with_timeout, Scratch};
use std::process::Command;
use std::time::Duration;

/// Return from the test, saying why, when `probe` finds what it needs missing.
macro_rules! skip_if_unavailable {
    () => {
        skip_if_unavailable!(unavailable())
    };
    ($probe:expr) => {
        if let Some(why) = $probe {
            eprintln!("{why}");
            return;
        }
    };
}

fn stdout(mut c: Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{c:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// What the fixture may leave behind on this machine, in one string (empty when clean).
fn leftovers() -> String {
    let mut left = String::new();
    for e in std::fs::read_dir("/run/netns").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("rwh-") {
            left += &format!("namespace {name}\n");
        }
    }
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    left += &hosts.lines().filter(|l| l.contains("rankwise-hosts") || l.contains("rw-node")).map(|l| format!("/etc/hosts: {l}\n")).collect::<String>();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    left += &mounts.lines().filter(|l| l.contains("rankwise-hosts")).map(|l| format!("mount: {l}\n")).collect::<String>();
    let routes = stdout({ let mut c = Command::new("ip"); c.args(["route", "show", "10.231.0.0/24"]); c });
    if !routes.is_empty() {
        left += &format!("route: {routes}\n");
    }
    for e in std::fs::read_dir("/dev/shm").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".rw-node") || name.contains(".rw-head.") {
            left += &format!("/dev/shm/{name}\n");
        }
    }
    if std::path::Path::new("/run/rankwise-hosts").exists() {
        left += "state folder /run/rankwise-hosts\n";
    }
    left
}

#[test]
fn hosts_have_their_own_names_and_addresses_and_leave_nothing_behind() {
    skip_if_unavailable!();
    let hosts = Hosts::up(3);
    for (k, h) in hosts.names.iter().enumerate() {
        assert_eq!(stdout(hosts.exec(h, "hostname")), *h);
        let addr = stdout({ let mut c = hosts.exec(h, "ip"); c.args(["-4", "-br", "addr", "show", "eth0"]); c });
        assert!(addr.contains(&format!("10.231.0.{}/24", k + 1)), "{h}: {addr}");
    }
    // Names resolve from /etc/hosts, never from DNS.
    assert_eq!(stdout({ let mut c = hosts.exec("rw-node1", "getent"); c.args(["hosts", "rw-node3"]); c }), "10.231.0.3      rw-node3");

    // One instance at a time, with a clear error.
    let (ok, out) = hosts_sh(&["up", "2"]);
    assert!(!ok && out.contains("hosts are already up") && out.contains("scripts/hosts.sh down"), "{out}");

    // The ssh stand-in skips ssh options and runs a shell command line on the host.
    let o = Command::new(script("rsh-agent.sh")).args(["-x", "-o", "BatchMode=yes", "rw-node2", "echo", "$(hostname)"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "rw-node2", "{o:?}");

    // A process still running on a host when the fixture goes down.
    let mut c = hosts.exec("rw-node2", "sleep");
    let mut sleeper = c.arg("600").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let _serial = hosts.down();
    assert!(!sleeper.wait().unwrap().success(), "the sleeper should have been killed by down");
    assert_eq!(leftovers(), "", "the fixture left things behind");
}

#[test]
fn a_fixture_left_by_a_crashed_run_is_replaced() {
    skip_if_unavailable!();
    let serial = serial();
    // Hosts brought up by a process that then exited without `down`: a crashed test.
    let crashed = Command::new("sh").arg("-c").arg(format!("{} up 2", script("hosts.sh").display())).output().unwrap();
    assert!(crashed.status.success(), "{crashed:?}");

    let hosts = Hosts::up_with(serial, 3);
    assert_eq!(stdout(hosts.exec("rw-node3", "hostname")), "rw-node3");
    let _serial = hosts.down();
    assert_eq!(leftovers(), "");
}

#[test]
fn hello_on_4_ranks_over_2_hosts() {
    skip_if_unavailable!();
    let scratch = Scratch::new("multihost-hello");
    let hosts = Hosts::up(2);
    let o = hosts.mpirun(4, &hosts.hostfile(scratch.path(), 2), "hello", &[]);
    o.assert_success();
    assert_hello_over_2_hosts(&o.ranks[0].join("\n"));
}

/// The ranks' lines of the hello example (rank 0 prints them in rank order), checked for 4 ranks,
/// 2 on each of rw-node1 and rw-node2.
fn assert_hello_over_2_hosts(out: &str) {
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("rank ")).collect();
    assert_eq!(lines.len(), 4, "{out}");
    for (r, l) in lines.iter().enumerate() {
        let expect = format!("rank {r} of 4 on rw-node{} (node-local rank {} of 2),", r / 2 + 1, r % 2);
        assert!(l.starts_with(&expect), "expected {expect:?}, got {l:?}\n{out}");
    }
    assert!(out.lines().any(|l| l == "allreduce: sum of rank+1 over 4 ranks = 10 (expected 10)"), "{out}");
}

#[test]
fn hello_on_4_ranks_over_2_slurm_nodes() {
    skip_if_unavailable!(slurm_unavailable());
    let scratch = Scratch::new("multihost-slurm");
    let hosts = Hosts::up(2);
    let slurm = Slurm::up(&hosts, &scratch.path().join("cluster"));
    let hello = common::program("hello");

    // An interactive step. Known flake, open: about 1 run in 7 of this test (never in 50 tries from a
    // shell) one rank segfaults in MPI_Init on the first step (vader: open(2) ENOENT on a local peer's
    // segment, and a TCP address with port 1024 for it): its peers' modex data look missing.
    // Until that is understood, a segfault of the first step only is retried once, and said so.
    let step = || run_with_timeout(
        { let mut c = slurm.client("srun"); c.args(["-N2", "-n4", "--mpi=pmix"]).arg(&hello); c },
        "srun -N2 -n4 --mpi=pmix hello".into(),
        Duration::from_secs(60),
        4,
    );
    let mut o = step();
    if o.code == Some(139) {
        eprintln!("known flake: the first srun step segfaulted in MPI_Init; retrying once\n{}", o.show());
        o = step();
    }
    o.assert_success();
    assert_hello_over_2_hosts(&o.stdout);

    // A batch job.
    let out = scratch.path().join("job.out");
    let o = run_with_timeout(
        {
            let mut c = slurm.client("sbatch");
            c.args(["--wait", "-N2", "-n4", "-o"]).arg(&out).arg("--wrap").arg(format!("srun --mpi=pmix {}", hello.display()));
            c
        },
        "sbatch --wait -N2 -n4 --wrap 'srun --mpi=pmix hello'".into(),
        Duration::from_secs(60),
        4,
    );
    o.assert_success();
    assert_hello_over_2_hosts(&std::fs::read_to_string(&out).unwrap());

    drop(slurm);
    let _serial = hosts.down();
    assert_eq!(leftovers(), "");
    let dir = scratch.path().to_string_lossy().into_owned();
    let daemons: Vec<_> = std::fs::read_dir("/proc").unwrap().flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&dir))
        .collect();
    assert!(daemons.is_empty(), "left running: {daemons:?}");
}

#[test]
fn a_crashed_host_loses_its_processes_and_its_link() {
    skip_if_unavailable!();
    let hosts = Hosts::up(2);
    let mut sleepers: Vec<_> = ["rw-node1", "rw-node2"].iter().map(|h| { let mut c = hosts.exec(h, "sleep"); c.arg("600").spawn().unwrap() }).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (ok, out) = hosts_sh(&["crash", "rw-node2"]);
    assert!(ok, "{out}");
    assert!(sleepers[1].try_wait().unwrap().is_some_and(|s| !s.success()), "rw-node2's process survived the crash");
    assert!(sleepers[0].try_wait().unwrap().is_none(), "rw-node1's process died with rw-node2");
    let link = stdout({ let mut c = hosts.exec("rw-node2", "ip"); c.args(["-br", "link", "show", "eth0"]); c });
    assert!(link.contains("DOWN"), "{link}");
    drop(hosts);
    assert!(!sleepers[0].wait().unwrap().success());
}
