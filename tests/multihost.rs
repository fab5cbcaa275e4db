//! Several hosts on one machine (scripts/hosts.sh): the fixture itself (distinct hostnames and
//! addresses, one instance at a time, nothing left behind) and MPI jobs that span hosts, under
//! mpirun with a hostfile (also through `rankwise run --hostfile`) and under a multi-node Slurm:
//! the heat example has the bits of a 1-host run, also after losing nodes mid-run (the batch
//! script's too) and recovering inside the allocation, on a spare or on fewer ranks.

mod common;
use common::hosts::{hosts_sh, multihost_env, script, serial, slurm_unavailable, unavailable, Hosts, Slurm};
use common::{program, rankwise_bin, run_with_timeout, srun_mpi, Job, Outcome, Scratch};
use rankwise::runtime::status::Status;
use rankwise::slurm::JobSpec;
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

/// When a crash lands, from what the test sees.
#[derive(Clone, Copy, PartialEq)]
enum When {
    /// After a complete checkpoint newer than any before this crash.
    AfterCheckpoint,
    /// While a checkpoint is being written (its `.partial` file exists).
    DuringWrite,
}

/// What one crash cost, from the test's clock: until the supervisor logged the recovery
/// (detection: Slurm declares the node down and ends the step), until the program said which
/// checkpoint it restored (relaunch + restore), and until it stepped again.
struct Cost {
    host: String,
    detect: Duration,
    restored: Duration,
    computing: Duration,
    step_at_crash: u64,
    restored_step: u64,
    /// The checkpoint being written at the crash, for [`When::DuringWrite`].
    partial: Option<u64>,
}

/// The heat example under `rankwise run --restarts 3` in a `rankwise sbatch` job (`--no-kill`)
/// on 3 Slurm hosts, 2 ranks on each of `nodes` nodes plus `spares`, crashed as `crashes` say.
/// Checks what every recovery must give: each crash is one recovery line, the job is never
/// requeued, at most one checkpoint interval is redone, and the final line has the bits of an
/// uninterrupted 1-host run. Returns the job's output and what each crash cost.
fn recovery_job(name: &str, nodes: u32, spares: u32, crashes: &[(&str, When)], n: usize, steps: u64, sets: &[&str]) -> (String, Vec<Cost>) {
    let every = 200;
    let run_args = heat_args(&[&format!("n={n}"), &format!("steps={steps}")]);
    let reference = heat_on_1_host(&run_args);
    let scratch = Scratch::new(name);
    let ckpt = scratch.path().join("ckpt");
    let (out, status) = (scratch.path().join("job.out"), scratch.path().join("status"));
    let hosts = Hosts::up(3);
    let slurm = Slurm::up(&hosts, &scratch.path().join("cluster"));
    first_step(&slurm).assert_success();
    let api = slurm.api();
    let mut args = run_args.clone();
    args.extend(heat_args(&[&format!("checkpoint.every={every}"), &format!("checkpoint.dir={}", ckpt.display())]));
    args.extend(heat_args(sets));
    let spec = JobSpec {
        nodes: Some(nodes),
        ntasks_per_node: Some(2),
        spare_nodes: spares,
        output: Some(out.to_string_lossy().into_owned()),
        chdir: Some(scratch.path().to_string_lossy().into_owned()),
        env: [(rankwise::runtime::status::STATUS_FILE_ENV.to_string(), status.to_string_lossy().into_owned())].into(),
        rankwise: rankwise_bin().to_string_lossy().into_owned(),
        program: program("heat").to_string_lossy().into_owned(),
        args,
        ..JobSpec::default()
    };
    let script = scratch.path().join("job.sh");
    std::fs::write(&script, spec.script().unwrap()).unwrap();
    assert!(spec.script().unwrap().contains("#SBATCH --no-kill\n"));
    let id = api.submit(&script, &[]).unwrap().to_string();
    let show = || api.show_job(&id).unwrap().remove(0);
    let log = || std::fs::read_to_string(&out).unwrap_or_default();
    let count = |text: &str, what: &str| text.lines().filter(|l| l.contains(what)).count();
    let step_of = |n: &str| n.strip_prefix("ckpt-")?.split('.').next()?.parse::<u64>().ok();
    let names = || -> Vec<String> { std::fs::read_dir(&ckpt).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect() };
    let progress = || Status::read(&status).map(|s| s.step).unwrap_or(0);

    let mut costs = Vec::new();
    let mut newest_before = 0;
    for (k, (host, when)) in crashes.iter().enumerate() {
        // Heat runs fast: poll often, and give up only when the job is over.
        let (start, mut asked) = (Instant::now(), Instant::now());
        loop {
            let n = names();
            let ready = match when {
                When::AfterCheckpoint => n.iter().filter(|f| f.ends_with(".h5")).filter_map(|f| step_of(f)).any(|s| s > newest_before),
                When::DuringWrite => n.iter().filter(|f| f.ends_with(".h5.partial")).filter_map(|f| step_of(f)).any(|s| s > newest_before.max(every)),
            };
            if ready {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "crash {k}: its moment never came\n{:?}\n{}", show(), log());
            // From the job's output each time, from scontrol once a second: a query of a busy
            // controller can take a second, and the crash would land that much later.
            assert!(!log().contains("final step="), "the job ended before crash {k}\n{:?}\n{}", show(), log());
            if asked.elapsed() >= Duration::from_secs(1) {
                assert!(matches!(show().state(), "RUNNING" | "PENDING" | "CONFIGURING"), "the job ended before crash {k}\n{}", log());
                asked = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(if *when == When::DuringWrite { 1 } else { 20 }));
        }
        if *when == When::AfterCheckpoint {
            std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 300));
        }
        let before = log();
        let (ok, text) = hosts_sh(&["crash", host]);
        let crashed = Instant::now();
        assert!(ok, "{text}");
        let status_at_crash = progress();
        let at_crash = names();
        let complete_at_crash = at_crash.iter().filter(|f| f.ends_with(".h5")).filter_map(|f| step_of(f)).max().unwrap_or(0);
        let partial = at_crash.iter().filter(|f| f.ends_with(".h5.partial")).filter_map(|f| step_of(f)).max();
        // The status file is written once a second: the program got at least this far.
        let step_at_crash = status_at_crash.max(complete_at_crash).max(partial.unwrap_or(0));
        if *when == When::DuringWrite {
            assert!(partial.is_some(), "crash {k}: the write ended before the crash landed: {at_crash:?}");
        }
        let (mut detect, mut restored) = (None, None);
        let computing = loop {
            let text = log();
            let t = crashed.elapsed();
            if detect.is_none() && count(&text, "rankwise: recovery ") > count(&before, "rankwise: recovery ") {
                detect = Some(t);
            }
            if detect.is_some() && restored.is_none() && count(&text, "restarted from step ") > count(&before, "restarted from step ") {
                restored = Some(t);
            }
            // The new run's first report (the old run's rank 0 reports no more).
            if restored.is_some() && progress() != status_at_crash {
                break t;
            }
            assert!(t < Duration::from_secs(90), "crash {k} of {host}: no recovery\n{:?}\n{text}", show());
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = log();
        let line = text.lines().filter(|l| l.contains("restarted from step ")).last().unwrap();
        let restored_step: u64 = line.split("restarted from step ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        // Work lost: at most one interval, from the newest checkpoint complete at the crash.
        assert!(restored_step >= complete_at_crash, "crash {k}: resumed from {restored_step}, but {complete_at_crash} was complete\n{text}");
        assert!(step_at_crash <= restored_step + every, "crash {k}: at step {step_at_crash}, resumed from {restored_step}: more than one interval lost\n{text}");
        // A checkpoint cut by the crash is skipped, never restored from.
        if let Some(p) = partial.filter(|p| names().contains(&format!("ckpt-{p:010}.h5.partial"))) {
            assert!(restored_step < p, "crash {k}: restored from {restored_step}, the checkpoint cut at {p}\n{text}");
        }
        newest_before = names().iter().filter_map(|f| step_of(f)).max().unwrap_or(0).max(restored_step);
        costs.push(Cost { host: host.to_string(), detect: detect.unwrap(), restored: restored.unwrap(), computing, step_at_crash, restored_step, partial });
    }
    // The job ends by itself.
    let start = Instant::now();
    while matches!(show().state(), "RUNNING" | "COMPLETING" | "CONFIGURING") {
        assert!(start.elapsed() < Duration::from_secs(180), "job {id} did not finish\n{:?}\n{}", show(), log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = log();
    let job = show();
    assert_eq!(job.restarts(), 0, "the job was requeued, not recovered inside its allocation\n{text}");
    assert_eq!(count(&text, "rankwise: recovery "), crashes.len(), "one recovery line per crash\n{text}");
    assert_eq!(count(&text, "final "), 1, "the program finished more than once\n{text}");
    assert_eq!(final_line(&text), reference, "{text}");
    // `rankwise status` shows the recoveries and the nodes the job holds now.
    let st = stdout({ let mut c = slurm.client(&rankwise_bin().to_string_lossy()); c.args(["status", &id]); c });
    assert!(st.contains(&format!("recoveries={}", crashes.len())), "{st}");
    let last = crashes.last().unwrap().0;
    assert!(st.contains(&format!("last_recovery=lost:{last}@")), "{st}");
    let held = st.split(" nodes=").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("no nodes in {st}"));
    let held = rankwise::slurm::expand_hostlist(held).unwrap();
    assert!(crashes.iter().all(|(h, _)| !held.contains(&h.to_string())), "a lost node still in the job: {st}");
    for c in &costs {
        println!(
            "{name}: crash of {} at step {}{} (machine loaded: 2 cores shared with other builds): relaunch logged {:.1} s (detection), restored step {} {:.1} s, computing again {:.1} s after the crash; at least {} steps redone (checkpoint every {every})",
            c.host, c.step_at_crash, c.partial.map(|p| format!(" while checkpoint {p} was written")).unwrap_or_default(), c.detect.as_secs_f64(), c.restored_step, c.restored.as_secs_f64(), c.computing.as_secs_f64(), c.step_at_crash.saturating_sub(c.restored_step)
        );
    }
    (text, costs)
}

/// The limit: with `--min-nodes 2` and no spare, losing one of 2 nodes ends the job with one
/// clear line, instead of going on with fewer ranks; Slurm does not requeue it.
#[test]
fn too_few_nodes_left_end_the_job_with_one_clear_line() {
    require!(slurm_unavailable());
    let scratch = Scratch::new("recover-too-few");
    let (ckpt, out) = (scratch.path().join("ckpt"), scratch.path().join("job.out"));
    let hosts = Hosts::up(2);
    let slurm = Slurm::up(&hosts, &scratch.path().join("cluster"));
    first_step(&slurm).assert_success();
    let api = slurm.api();
    let spec = JobSpec {
        nodes: Some(2),
        ntasks_per_node: Some(2),
        min_nodes: Some(2),
        output: Some(out.to_string_lossy().into_owned()),
        chdir: Some(scratch.path().to_string_lossy().into_owned()),
        rankwise: rankwise_bin().to_string_lossy().into_owned(),
        program: program("heat").to_string_lossy().into_owned(),
        args: heat_args(&["n=256", "steps=100000", "checkpoint.every=200", &format!("checkpoint.dir={}", ckpt.display())]),
        ..JobSpec::default()
    };
    let script = scratch.path().join("job.sh");
    std::fs::write(&script, spec.script().unwrap()).unwrap();
    let id = api.submit(&script, &[]).unwrap().to_string();
    let show = || api.show_job(&id).unwrap().remove(0);
    let log = || std::fs::read_to_string(&out).unwrap_or_default();
    let start = Instant::now();
    while !std::fs::read_dir(&ckpt).into_iter().flatten().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".h5")) {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint\n{:?}\n{}", show(), log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ok, text) = hosts_sh(&["crash", "rw-node2"]);
    assert!(ok, "{text}");
    while matches!(show().state(), "RUNNING" | "COMPLETING" | "CONFIGURING") {
        assert!(start.elapsed() < Duration::from_secs(120), "job {id} did not end\n{:?}\n{}", show(), log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (job, text) = (show(), log());
    let why = format!("rankwise: giving up: lost rw-node2; 1 usable nodes left in job {id}, fewer than the minimum 2 (--min-nodes)");
    assert_eq!(text.lines().filter(|l| l.starts_with("rankwise: giving up")).collect::<Vec<_>>(), [why.as_str()], "{text}");
    assert!(!text.contains("rankwise: recovery "), "{text}");
    assert_eq!((job.state(), job.restarts()), ("FAILED", 0), "{job:?}\n{text}");
}

/// A host that does not run the batch script crashes mid-run; the job had one spare node: the
/// same 4 ranks go on inside the same allocation on the survivor and the spare.
#[test]
fn a_lost_node_is_replaced_by_the_spare_inside_the_allocation() {
    require!(slurm_unavailable());
    let (text, _) = recovery_job("recover-spare", 2, 1, &[("rw-node2", When::AfterCheckpoint)], 256, 12000, &[]);
    assert!(text.contains("lost rw-node2 at ") && text.contains("now 4 ranks on rw-node1,rw-node3"), "{text}");
    assert!(text.contains("(4 ranks wrote it, 4 now)"), "{text}");
}

/// Without a spare, a crash during a checkpoint write (written in the background, `async`, while
/// the steps go on): the job goes on with fewer ranks from the newest checkpoint that is
/// complete (the one being written is skipped).
#[test]
fn a_crash_during_a_checkpoint_write_goes_on_with_fewer_ranks() {
    require!(slurm_unavailable());
    // A field of 8 MiB: its write lasts longer than a crash takes to land (at 512 KiB the write
    // was over first, once in three full runs of the suite).
    let (text, costs) = recovery_job("recover-fewer", 2, 0, &[("rw-node2", When::DuringWrite)], 1024, 1600, &["checkpoint.mode=async"]);
    assert!(text.contains("now 2 ranks on rw-node1"), "{text}");
    assert!(text.contains(&format!("restarted from step {} (4 ranks wrote it, 2 now)", costs[0].restored_step)), "{text}");
}

/// Two crashes in one job: the first takes the spare (4 ranks), the second leaves one node (2).
#[test]
fn two_crashes_in_one_job_take_the_spare_then_fewer_ranks() {
    require!(slurm_unavailable());
    let crashes = [("rw-node2", When::AfterCheckpoint), ("rw-node3", When::AfterCheckpoint)];
    let (text, _) = recovery_job("recover-twice", 2, 1, &crashes, 256, 9000, &[]);
    assert!(text.contains("recovery 1 (relaunch 1 of 3): lost rw-node2") && text.contains("now 4 ranks on rw-node1,rw-node3"), "{text}");
    assert!(text.contains("recovery 2 (relaunch 2 of 3): lost rw-node3") && text.contains("now 2 ranks on rw-node1"), "{text}");
}

/// The host that runs the batch script (and the supervisor) crashes: the standby supervisor on
/// another node takes over with no manual step, in the same allocation, and only it: the
/// program restarts once and finishes once.
#[test]
fn a_lost_batch_host_is_recovered_by_the_standby_with_no_manual_step() {
    require!(slurm_unavailable());
    let (text, _) = recovery_job("recover-batch-host", 2, 1, &[("rw-node1", When::AfterCheckpoint)], 256, 12000, &[]);
    assert!(text.contains("lost rw-node1 at ") && text.contains("the batch script died with it, the standby on rw-node3 supervises from now"), "{text}");
    // It cannot start twice: one takeover, one restore, and the new standby it started never
    // took over (its batch host, rw-node3, lived).
    assert_eq!(text.matches("supervises from now").count(), 1, "{text}");
    assert_eq!(text.matches("restarted from step ").count(), 1, "{text}");
    assert!(text.contains("now 4 ranks on rw-node2,rw-node3"), "{text}");
    assert!(text.contains("done after 1 recoveries (exit code 0); ending its allocation"), "{text}");
}

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
