//! Several hosts on one machine (scripts/hosts.sh): the fixture itself (distinct hostnames and
//! addresses, one instance at a time, nothing left behind) and MPI jobs that span hosts, under
//! mpirun with a hostfile (also through `rankwise run --hostfile`) and under a multi-node Slurm:
//! the heat example has the bits of a 1-host run, also after losing a node mid-run and finishing
//! on fewer ranks.

mod common;
use common::hosts::{hosts_sh, multihost_env, script, serial, slurm_unavailable, unavailable, Hosts, Slurm};
use common::{program, rankwise_bin, run_with_timeout, srun_mpi, Job, Outcome, Scratch};
use rankwise::runtime::status::Status;
use rankwise::slurm::{JobSpec, Launcher};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Fail the test in one line, saying how to install it, when `probe` finds what it needs missing:
/// set-up installs all of it, so a missing piece is an error, never a silent `ok`.
macro_rules! require {
    () => {
        require!(unavailable())
    };
    ($probe:expr) => {
        if let Some(why) = $probe {
            panic!("{why}");
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
    require!();
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
    require!();
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
    require!();
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
    require!(slurm_unavailable());
    let scratch = Scratch::new("multihost-slurm");
    let hosts = Hosts::up(2);
    let slurm = Slurm::up(&hosts, &scratch.path().join("cluster"));
    let hello = program("hello");

    // An interactive step.
    let o = first_step(&slurm);
    o.assert_success();
    assert_hello_over_2_hosts(&o.stdout);

    // A batch job.
    let out = scratch.path().join("job.out");
    let o = run_with_timeout(
        {
            let mut c = slurm.client("sbatch");
            c.args(["--wait", "-N2", "-n4", "-o"]).arg(&out).arg("--wrap").arg(format!("srun --mpi={} {}", srun_mpi(), hello.display()));
            c
        },
        format!("sbatch --wait -N2 -n4 --wrap 'srun --mpi={} hello'", srun_mpi()),
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

/// `srun -N2 -n4 --mpi=pmix hello`, the first step on a fresh cluster. Known flake, open: about 1
/// run in 7 (never in 50 tries from a shell) one rank segfaults in MPI_Init on the first step
/// (vader: open(2) ENOENT on a local peer's segment, and a TCP address with port 1024 for it): its
/// peers' modex data look missing. Until that is understood, a segfault of the first step only is
/// retried once, and said so; tests that need a first step to succeed take this one first.
fn first_step(slurm: &Slurm) -> Outcome {
    let step = || run_with_timeout(
        { let mut c = slurm.client("srun"); c.args(["-N2", "-n4", &format!("--mpi={}", srun_mpi())]).arg(program("hello")); c },
        format!("srun -N2 -n4 --mpi={} hello", srun_mpi()),
        Duration::from_secs(60),
        4,
    );
    let o = step();
    if o.code != Some(139) {
        return o;
    }
    eprintln!("known flake: the first srun step segfaulted in MPI_Init; retrying once\n{}", o.show());
    step()
}

/// `--set KEY=VALUE` arguments for the heat example.
fn heat_args(sets: &[&str]) -> Vec<String> {
    sets.iter().flat_map(|kv| ["--set".to_string(), kv.to_string()]).collect()
}

/// The final line of the heat example on 1 rank on this host (step, error, checksum of the field's
/// bits): what every multi-host run must print too.
fn heat_on_1_host(args: &[String]) -> String {
    let o = Job::new(1, "heat").args(args).run();
    o.assert_success();
    o.line(0, "final ").to_string()
}

fn final_line(out: &str) -> &str {
    out.lines().find(|l| l.starts_with("final ")).unwrap_or_else(|| panic!("no final line in\n{out}"))
}

#[test]
fn heat_on_4_ranks_over_2_hosts_through_rankwise_run_has_the_bits_of_1_host() {
    require!();
    let args = heat_args(&["n=32", "steps=200"]);
    let reference = heat_on_1_host(&args);
    let scratch = Scratch::new("multihost-rankwise");
    let hosts = Hosts::up(2);
    let hostfile = hosts.hostfile(scratch.path(), 2);
    // `rankwise run --hostfile` on rw-node1, with only what a user on a cluster sets (the
    // launcher adds the root and oversubscription settings this host needs).
    let run = |name: &str, args: &[String]| {
        program(name);
        let mut c = hosts.exec("rw-node1", rankwise_bin());
        multihost_env(&mut c)
            .env("OMPI_MCA_plm_rsh_agent", script("rsh-agent.sh"))
            .env("OMPI_MCA_plm_rsh_no_tree_spawn", "1");
        for k in ["OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "OMPI_MCA_rmaps_base_oversubscribe"] {
            c.env_remove(k);
        }
        c.args(["run", "-n", "4", "--hostfile"]).arg(&hostfile).arg(name).args(args);
        let line = format!("[on rw-node1] rankwise run -n 4 --hostfile {} {name} {}", hostfile.display(), args.join(" "));
        run_with_timeout(c, line, Duration::from_secs(120), 0)
    };
    // The hostfile's slots put 2 ranks on each host.
    let o = run("hello", &[]);
    o.assert_success();
    assert_hello_over_2_hosts(&o.stdout);
    let o = run("heat", &args);
    o.assert_success();
    assert_eq!(final_line(&o.stdout), reference, "{}", o.show());
}

#[test]
fn heat_on_4_ranks_over_2_slurm_nodes_has_the_bits_of_1_host() {
    require!(slurm_unavailable());
    let args = heat_args(&["n=32", "steps=200"]);
    let reference = heat_on_1_host(&args);
    let scratch = Scratch::new("multihost-slurm-heat");
    let hosts = Hosts::up(2);
    let slurm = Slurm::up(&hosts, &scratch.path().join("cluster"));
    first_step(&slurm).assert_success();
    let out = scratch.path().join("job.out");
    let o = run_with_timeout(
        {
            let mut c = slurm.client("sbatch");
            c.args(["--wait", "-N2", "-n4", "-o"]).arg(&out).arg("--wrap");
            c.arg(format!("srun --mpi={} {} {}", srun_mpi(), program("heat").display(), args.join(" ")));
            c
        },
        format!("sbatch --wait -N2 -n4 --wrap 'srun --mpi={} heat ...'", srun_mpi()),
        Duration::from_secs(120),
        4,
    );
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    o.assert_success();
    assert_eq!(final_line(&text), reference, "{text}");
}

/// Node loss, recovered by Slurm's requeue rather than by the launcher's supervision: the batch
/// script, and any supervisor in it, run on the job's first node and die with it, and Slurm ends
/// a job that loses a node (NODE_FAIL) in any case. A requeueable job comes back by itself, and
/// heat resumes from its newest checkpoint on whatever rank count it gets. One thing Slurm does not
/// do: the requeued job keeps its first run's counts (NumNodes=2 NumTasks=4) and would wait for
/// a second node. Fitting it to the nodes left is the site's policy (an operator or a watcher,
/// through `Slurm::update`); here the test plays that part, and the job goes elastic, 4 -> 2 ranks.
#[test]
fn a_slurm_job_that_loses_a_node_finishes_from_its_newest_checkpoint_on_the_survivor() {
    require!(slurm_unavailable());
    // About two seconds on 4 ranks on a quiet machine: the crash lands mid-run.
    let run_args = heat_args(&["n=256", "steps=1500"]);
    let reference = heat_on_1_host(&run_args);
    let scratch = Scratch::new("multihost-node-loss");
    let ckpt = scratch.path().join("ckpt");
    let (out, status) = (scratch.path().join("job.out"), scratch.path().join("status"));
    let hosts = Hosts::up(2);
    let slurm = Slurm::up(&hosts, &scratch.path().join("cluster"));
    first_step(&slurm).assert_success();
    let api = slurm.api();

    // Two tasks on each node it gets, 1 or 2 nodes: 4 ranks on a full cluster.
    let mut args = run_args.clone();
    args.extend(heat_args(&["checkpoint.every=100", &format!("checkpoint.dir={}", ckpt.display())]));
    let spec = JobSpec {
        ntasks_per_node: Some(2),
        sbatch: vec!["--nodes=1-2".into()],
        output: Some(out.to_string_lossy().into_owned()),
        env: [(rankwise::runtime::status::STATUS_FILE_ENV.to_string(), status.to_string_lossy().into_owned())].into(),
        launcher: Launcher::Srun,
        mpi: srun_mpi().into(),
        program: program("heat").to_string_lossy().into_owned(),
        args,
        ..JobSpec::default()
    };
    let script = scratch.path().join("job.sh");
    std::fs::write(&script, spec.script().unwrap()).unwrap();
    let id = api.submit(&script, &[]).unwrap().to_string();
    let show = || api.show_job(&id).unwrap().remove(0);
    let log = || std::fs::read_to_string(&out).unwrap_or_default();

    // Crash the first node (the batch script's, and rank 0's) at a random moment after the second
    // checkpoint.
    let start = Instant::now();
    let step_of = |c: &Path| c.file_name()?.to_str()?.strip_prefix("ckpt-")?.strip_suffix(".h5")?.parse::<u64>().ok();
    while !Status::read(&status).is_ok_and(|s| s.checkpoint.is_some_and(|c| step_of(&c).is_some_and(|k| k >= 200))) {
        assert!(start.elapsed() < Duration::from_secs(90), "no second checkpoint\n{:?}\n{}", show(), log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 300));
    let (ok, text) = hosts_sh(&["crash", "rw-node1"]);
    let crashed = Instant::now();
    assert!(ok, "{text}");
    let at_crash = Status::read(&status).unwrap().step;
    let newest = newest_checkpoint(&ckpt);

    let (mut requeued, mut running) = (None, None);
    let done = loop {
        let job = show();
        let t = crashed.elapsed();
        match (job.state(), job.restarts()) {
            ("PENDING", 1) if requeued.is_none() => {
                requeued = Some(t);
                api.update(&id, &["NumTasks=2"]).unwrap();
                api.update(&id, &["NumNodes=1-2"]).unwrap();
            }
            ("RUNNING", 1) if running.is_none() => running = Some(t),
            ("COMPLETED", _) => break t,
            ("PENDING" | "RUNNING" | "COMPLETING" | "CONFIGURING", _) => {}
            (state, _) => panic!("job {id} ended {state}:\n{job:?}\n{}", log()),
        }
        assert!(t < Duration::from_secs(180), "job {id} did not finish after the crash:\n{job:?}\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = log();
    assert_eq!(show().restarts(), 1, "{text}");
    let resumed = format!("restarted from step {newest} (4 ranks wrote it, 2 now)");
    assert!(text.contains(&resumed), "expected {resumed:?}\n{text}");
    assert_eq!(final_line(&text), reference, "{text}");
    let secs = |d: Option<Duration>| d.map_or("?".into(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!(
        "node loss (under load, 2 shared cores): crash -> requeued {}, -> running again on 1 node {}, -> finished {}; \
         crashed at step {at_crash}, resumed from the checkpoint of step {newest}: {} steps redone (checkpoint every 100)",
        secs(requeued),
        secs(running),
        secs(Some(done)),
        at_crash - newest
    );
}

/// The step of the newest checkpoint in `dir` (a checkpoint has its final name once complete).
/// The node-local level across hosts: heat on 4 ranks over rw-node1 and rw-node2 checkpoints to
/// each host's own folder (with a partner copy on the other host) and to the shared file every
/// tenth time. rw-node2 crashes after a node-local checkpoint newer than the last shared one, and
/// its folder is gone with it; the relaunch on the same 4 ranks over rw-node1 and the spare
/// rw-node3 restores from the survivor's own files and partner copies, not from the older shared
/// file, and ends with the bits of an uninterrupted 1-host run.
#[test]
fn a_lost_host_is_survived_from_the_partner_copies_of_the_node_local_level() {
    require!();
    let sets = |s: &Path| {
        let (shared, local) = (format!("checkpoint.dir={}", s.join("shared").display()), format!("checkpoint.local={}", s.join("local-%h").display()));
        heat_args(&["n=64", "steps=4000", "checkpoint.every=100", "checkpoint.flush_every=10", &shared, &local])
    };
    let reference = heat_on_1_host(&heat_args(&["n=64", "steps=4000"]));
    let scratch = Scratch::new("multihost-local");
    let s = scratch.path().to_path_buf();
    let hosts = Hosts::up(3);
    let hostfile = |names: [&str; 2]| {
        let p = s.join(format!("hosts-{}", names[1]));
        let line = |h: &str| if common::hydra() { format!("{h}:2\n") } else { format!("{h} slots=2\n") };
        std::fs::write(&p, names.iter().map(|h| line(h)).collect::<String>()).unwrap();
        p
    };
    let args = sets(&s);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (lost, kept) = (s.join("local-rw-node2"), s.join("local-rw-node1"));
    let crash = {
        let kept = kept.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            // rw-node1 holds the partner copies of rw-node2's ranks (2 and 3) of a node-local
            // checkpoint past the first shared one (step 1000) and not shared itself.
            while start.elapsed() < Duration::from_secs(100) {
                let names: Vec<String> = std::fs::read_dir(&kept).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                let newer = names.iter().any(|n| {
                    let step: u64 = n.strip_prefix("ckpt-").and_then(|r| r.split('.').next()).and_then(|x| x.parse().ok()).unwrap_or(0);
                    let copies = [2, 3].iter().all(|r| names.contains(&format!("ckpt-{step:010}.copy-{r}-of-4.bin")));
                    step > 1000 && step % 1000 != 0 && copies
                });
                if newer {
                    let (ok, out) = hosts_sh(&["crash", "rw-node2"]);
                    assert!(ok, "{out}");
                    // The survivors would wait on TCP for the lost host (Slurm ends such a step;
                    // here we do): every process of the job left, found by its arguments.
                    for e in std::fs::read_dir("/proc").unwrap().flatten() {
                        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                        let ours = String::from_utf8_lossy(&cmdline).contains(kept.parent().unwrap().to_str().unwrap());
                        if let (true, Ok(pid)) = (ours, e.file_name().to_string_lossy().parse::<i32>()) {
                            // SAFETY: kill(2) of a process of the job this test started.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                    }
                    return true;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            false
        })
    };
    let o = hosts.mpirun(4, &hostfile(["rw-node1", "rw-node2"]), "heat", &args);
    assert!(crash.join().unwrap(), "rw-node2 was never crashed\n{}", o.show());
    assert!(o.code != Some(0), "the job survived its host's crash\n{}", o.show());
    std::fs::remove_dir_all(&lost).unwrap();
    let o = hosts.mpirun(4, &hostfile(["rw-node1", "rw-node3"]), "heat", &args);
    o.assert_success();
    let resumed = o.rank_errs[0].iter().find(|l| l.contains("restarted from step ")).unwrap_or_else(|| panic!("no restart\n{}", o.show()));
    assert!(resumed.contains("local-rw-node1/ckpt-") && resumed.contains(".rank-0-of-4.bin"), "not from the node-local level: {resumed}\n{}", o.show());
    let step: u64 = resumed.split("restarted from step ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(step > 1000 && step % 1000 != 0, "{resumed}");
    assert_eq!(o.line(0, "final "), reference, "{}", o.show());
}

fn newest_checkpoint(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("ckpt-")?.strip_suffix(".h5")?.parse().ok())
        .max()
        .expect("no checkpoint")
}

#[test]
fn a_crashed_host_loses_its_processes_and_its_link() {
    require!();
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
