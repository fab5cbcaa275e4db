//! `rankwise`: one command to run, supervise and inspect Rankwise programs, on a workstation
//! (mpirun) and on a cluster (srun inside a Slurm allocation).

mod ckpt;
mod info;
mod jobs;
mod launch;
mod recover;
mod supervise;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use launch::{Choice, Host, Request};
use rankwise_runtime::status::STATUS_FILE_ENV;

#[derive(Parser)]
#[command(name = "rankwise", version, about = "Run, supervise and inspect Rankwise programs", after_help = "\
Examples:
  rankwise info                                  what MPI, HDF5, BLAS, GPUs and Slurm a run here uses
  rankwise run -n 4 hello                        an example, on 4 ranks
  rankwise run -n 8 --restarts 3 heat -i heat.toml --set n=512
  rankwise sbatch -n 8 -t 2:00:00 heat -i heat.toml   a Slurm job that checkpoints and requeues
  rankwise ckpt list ckpt/                       the checkpoints of a run, and whether they verify
  rankwise completions bash > /etc/bash_completion.d/rankwise")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Launch a program on N ranks: srun inside a Slurm allocation, mpirun elsewhere.
    #[command(after_help = "\
PROGRAM is a path, an example built next to rankwise (target/<profile>/examples/NAME), or a
command on PATH. --inputs and --set are checked here, then passed to the program.

Exit code: the program's (0 done, 1 a rank failed, 2 bad input, 75 checkpointed and stopped:
requeue). INT, TERM, USR1 and USR2 sent to rankwise reach the ranks.

Examples:
  rankwise run -n 4 hello
  rankwise run -n 4 --dry-run hello                      print the exact command only
  rankwise run -n 16 --ranks-per-node 4 --threads 8 heat -i heat.toml --set steps=1000
  rankwise run -n 4 --restarts 3 heat -i heat.toml       relaunch from the newest checkpoint
  rankwise run -n 8 --hostfile hosts heat -i heat.toml   over the hosts named in a hostfile
  rankwise run -n 2 ./my-solver -- --extra program args")]
    Run(RunArgs),
    /// Show what a run here would use: MPI, launcher, HDF5, BLAS, CUDA and GPUs, Slurm, threads.
    #[command(after_help = "Example:\n  rankwise info")]
    Info,
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  rankwise completions bash > ~/.local/share/bash-completion/completions/rankwise")]
    Completions { shell: clap_complete::Shell },
    /// Submit PROGRAM as a Slurm batch job that checkpoints before its time limit and on
    /// preemption, then requeues itself; print the job id.
    #[command(after_help = "\
The script launches PROGRAM with `rankwise run --restarts 3` on the job's tasks, passes the
checkpoint signal (USR2, 120 s before the limit by default) and TERM on to it, and requeues the job
when the program stops with a checkpoint (exit 75). With `--no-kill` (the default) a lost node
leaves the job running: rankwise relaunches on the nodes left, on a spare (--spare-nodes) with the
same ranks, else on fewer. Every string is quoted: names and arguments never run as shell.

Examples:
  rankwise sbatch --dry-run -n 4 -t 30 heat -i heat.toml        print the script only
  rankwise sbatch -N 2 --ntasks-per-node 64 -t 12:00:00 -p batch --setup 'module load openmpi' \\
      heat -i heat.toml --set n=4096
  rankwise sbatch --spec job.toml -t 1:00:00                    a [job] section, flags over it
  rankwise sbatch -N 4 --ntasks-per-node 32 --spare-nodes 1 -t 4:00:00 heat -i heat.toml")]
    Sbatch(jobs::JobArgs),
    /// Submit one job array over a parameter sweep: task i runs set i (as --set KEY=VALUE
    /// arguments) in its own folder, DIR/i, which also gets its output.
    #[command(after_help = "\
sweep.toml:
  [sweep]
  grid = { n = [64, 128], alpha = [0.5, 1.0] }    # every combination; or sets = [{ n = 64 }, ..]
  max_parallel = 2                                # optional
  dir = \"sweep\"                                 # optional: task i runs in sweep/i

Task i's output goes to sweep/i/slurm-JOB_i.out, beside its results (unless -o names a file).

Examples:
  rankwise sweep --params sweep.toml --dry-run -n 4 -t 30 heat -i heat.toml
  rankwise sweep --params sweep.toml --max-parallel 4 -n 16 -t 2:00:00 heat")]
    Sweep(jobs::SweepArgs),
    /// State, reason, restarts, run time, time left, nodes now, recoveries and exit code of a job
    /// (one line per array task), from scontrol, or sacct for jobs the controller has forgotten.
    #[command(after_help = "Example:\n  rankwise status 1234\n  job=1234 state=RUNNING reason=None restarts=1 run_time=00:10:02 time_left=0-01:49:58 nodes=cn[01-02] exit_code=0:0")]
    Status {
        /// A job id, or ARRAYID_TASK.
        job: String,
    },
    /// Cancel a job, or only send it a signal.
    #[command(after_help = "\
Examples:
  rankwise cancel 1234                           end it
  rankwise cancel 1234 --signal USR2             checkpoint now, stop and requeue (a preemption)
  rankwise cancel 1234 --signal USR2 --batch     the same, through the batch script")]
    Cancel {
        job: String,
        /// Send this signal to the job's steps instead of ending it.
        #[arg(long, value_name = "SIG")]
        signal: Option<String>,
        /// Send the signal to the batch script (which passes it on) instead.
        #[arg(long)]
        batch: bool,
    },
    /// Checkpoint tools: list a directory, verify checksums, inspect one file (no MPI needed).
    #[command(subcommand, after_help = "\
Examples:
  rankwise ckpt list ckpt/                          step, time, size, ranks, valid or why not
  rankwise ckpt verify ckpt/                        every checkpoint; exit 1 if any is damaged
  rankwise ckpt inspect ckpt/ckpt-0000000100.h5     parameters and fields of one")]
    Ckpt(CkptCmd),
}

#[derive(Subcommand)]
enum CkptCmd {
    /// One line per checkpoint in DIR, oldest first: step, time, size, ranks that wrote it, and
    /// whether every field matches its checksum (or why not).
    #[command(after_help = "Examples:\n  rankwise ckpt list ckpt/\n  rankwise ckpt list ckpt/ --local /tmp/run-42")]
    List {
        dir: PathBuf,
        /// Also the node-local level in this folder (`checkpoint.local`), as far as this host sees it.
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
    },
    /// Read every field of FILE (or of every checkpoint in DIR) and check its checksum. Exit code:
    /// 0 all valid, 1 one is damaged (named), 2 not a checkpoint.
    #[command(after_help = "Examples:\n  rankwise ckpt verify ckpt/\n  rankwise ckpt verify ckpt/ckpt-0000000100.h5")]
    Verify { path: PathBuf },
    /// The metadata of one checkpoint: step, time, ranks, versions, parameters and fields.
    #[command(after_help = "Example:\n  rankwise ckpt inspect ckpt/ckpt-0000000100.h5")]
    Inspect { file: PathBuf },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Number of ranks.
    #[arg(short = 'n', long = "np", value_name = "N", value_parser = at_least_one)]
    np: usize,
    /// Ranks on each node.
    #[arg(long, value_name = "M", value_parser = at_least_one)]
    ranks_per_node: Option<usize>,
    /// Threads per rank: sets RAYON_NUM_THREADS and OMP_NUM_THREADS (and srun --cpus-per-task).
    #[arg(short = 't', long, value_name = "T", value_parser = at_least_one)]
    threads: Option<usize>,
    /// GPUs per rank, asked of Slurm (srun --gpus-per-task); the runtime binds them.
    #[arg(long, value_name = "G", value_parser = at_least_one)]
    gpus_per_rank: Option<usize>,
    /// Inputs file (TOML), passed to the program as --inputs FILE.
    #[arg(short = 'i', long, value_name = "FILE")]
    inputs: Option<PathBuf>,
    /// Override one input, passed to the program as --set KEY=VALUE.
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Hosts for mpirun, one per line with its slots (`node1 slots=4`). Daemons on the other hosts
    /// start through ssh, or the agent named by OMPI_MCA_plm_rsh_agent (for MPICH too).
    #[arg(long, value_name = "FILE")]
    hostfile: Option<PathBuf>,
    /// Which launcher starts the ranks.
    #[arg(long, value_enum, default_value_t = Choice::Auto)]
    launcher: Choice,
    /// Print the command that would run, and exit.
    #[arg(long)]
    dry_run: bool,
    /// After a failure, relaunch up to K times from the newest checkpoint; under srun in a Slurm
    /// job, after a node loss, at once on the nodes the job has left (spares first).
    #[arg(long, value_name = "K", default_value_t = 0)]
    restarts: u32,
    /// Under Slurm, after nodes are lost, go on with no fewer than M nodes (default 1).
    #[arg(long, value_name = "M", value_parser = at_least_one)]
    min_nodes: Option<usize>,
    /// Wait before the first relaunch; doubled for each next one.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    backoff: f64,
    /// Where rank 0 reports progress (default: a temporary file; in Slurm, in the working
    /// directory, which every node sees).
    #[arg(long, value_name = "FILE")]
    status_file: Option<PathBuf>,
    /// The program: a path, an example name, or a command on PATH.
    program: String,
    /// Its first arguments, before --inputs and --set (`python3 heat.py`: the script).
    args: Vec<String>,
    /// Further arguments for the program, after `--`, passed after --inputs and --set as they are.
    #[arg(last = true)]
    rest: Vec<String>,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number of at least 1".into()),
    }
}

fn main() {
    // A reader that goes away (`rankwise info | head -3`) ends us quietly, as it ends cat or ls,
    // instead of a panic at the next print; `run` ignores it again, to end its job first.
    // SAFETY: setting a signal's disposition before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line: clap's message without the usage that follows it.
            let text = e.render().to_string();
            let first: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            eprintln!("{}", first.join(" "));
            std::process::exit(2);
        }
    };
    let code = match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code)
}

fn dispatch(cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Run(a) => run(a),
        Cmd::Sbatch(a) => jobs::sbatch(&a),
        Cmd::Sweep(a) => jobs::sweep(&a),
        Cmd::Status { job } => jobs::status(&job),
        Cmd::Cancel { job, signal, batch } => jobs::cancel(&job, signal.as_deref(), batch),
        Cmd::Info => {
            info::print();
            Ok(0)
        }
        Cmd::Ckpt(CkptCmd::List { dir, local }) => ckpt::list(&dir, local.as_deref()),
        Cmd::Ckpt(CkptCmd::Verify { path }) => ckpt::verify_cmd(&path),
        Cmd::Ckpt(CkptCmd::Inspect { file }) => ckpt::inspect_cmd(&file),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rankwise", &mut std::io::stdout());
            Ok(0)
        }
    }
}

fn run(a: RunArgs) -> Result<i32> {
    // First: in a Slurm job the checkpoint signal may come any time, and would kill us unhandled.
    supervise::forward_signals()?;
    let program = launch::resolve_program(&a.program)?;
    // Bad inputs fail here, in one line, before any rank starts.
    rankwise_runtime::Config::load(a.inputs.as_deref(), &a.sets)?;
    let via = launch::choose(a.launcher, launch::linked_mpi(&program).as_ref())?;
    if a.gpus_per_rank.is_some() && !matches!(via, launch::Via::Srun { .. }) {
        anyhow::bail!("--gpus-per-rank needs srun; under mpirun the runtime gives each rank a GPU round robin");
    }
    if a.hostfile.is_some() && matches!(via, launch::Via::Srun { .. }) {
        anyhow::bail!("--hostfile is for mpirun: srun runs on the nodes of the Slurm job (add --launcher mpirun to use it)");
    }
    let hostfile = a.hostfile.as_deref().map(launch::Hostfile::read).transpose()?;
    if !(0.0..=3600.0).contains(&a.backoff) {
        anyhow::bail!("--backoff must be between 0 and 3600 seconds, got {}", a.backoff);
    }
    let status_file = a.status_file.or_else(|| std::env::var_os(STATUS_FILE_ENV).map(PathBuf::from)).unwrap_or_else(|| {
        let name = format!(".rankwise-status-{}", std::process::id());
        match std::env::var_os("SLURM_JOB_ID") {
            Some(_) => PathBuf::from(name), // the working directory, which every node sees
            None => std::env::temp_dir().join(name),
        }
    });
    let mut args = a.args;
    if let Some(f) = &a.inputs {
        args.extend(["--inputs".to_string(), f.to_string_lossy().into_owned()]);
    }
    for s in &a.sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    args.extend(a.rest);
    let req = Request {
        np: a.np,
        ranks_per_node: a.ranks_per_node,
        threads: a.threads,
        gpus_per_rank: a.gpus_per_rank,
        hostfile,
        rsh_agent: std::env::var("OMPI_MCA_plm_rsh_agent").ok().filter(|a| !a.is_empty()),
        program,
        args,
        env: vec![(STATUS_FILE_ENV.into(), status_file.to_string_lossy().into_owned())],
        nodelist: None,
        overlap: false,
        unset: Vec::new(),
    };
    let host = Host::here();
    if a.dry_run {
        println!("{}", launch::plan(&req, &via, host));
        return Ok(0);
    }
    // From here a closed stdout is an error on write, which the supervisor turns into the end of
    // the job.
    // SAFETY: as in main; only this thread runs yet (the signal forwarder does not print).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let policy = supervise::Policy { restarts: a.restarts, backoff: Duration::from_secs_f64(a.backoff), status_file };
    // Recovery inside the allocation: under srun, with relaunches allowed.
    let mut alloc = match via {
        launch::Via::Srun { .. } if a.restarts > 0 => match recover::InAllocation::from_env(a.np, a.ranks_per_node, a.min_nodes) {
            Ok(alloc) => alloc,
            // A bad --min-nodes is the user's; anything else (the environment, the controller)
            // only costs the recovery.
            Err(e) if a.min_nodes.is_some() => return Err(e),
            Err(e) => {
                eprintln!("rankwise: warning: no recovery inside the allocation: {e:#}");
                None
            }
        },
        _ => None,
    };
    let mut restart = 0;
    let mut req = req;
    if let Some(alloc) = alloc.as_mut() {
        let standby_for = std::env::var(recover::STANDBY_ENV).ok().filter(|h| !h.is_empty());
        if let Some(batch_host) = &standby_for {
            req.unset = recover::step_vars();
            if !recover::stand_by(alloc, batch_host, supervise::stand_down)? {
                return Ok(0);
            }
            alloc.take_over_output()?;
            alloc.cancel_orphan_steps();
            req.overlap = true;
            if !alloc.first(&mut req)? {
                anyhow::bail!("the standby cannot take over: Slurm does not say which nodes are left");
            }
            let r = alloc.record(vec![batch_host.clone()], req.np);
            restart = 1;
            eprintln!("rankwise: recovery {} (relaunch {restart} of {}): {r}; the batch script died with it, the standby on {} supervises from now", alloc.recoveries, policy.restarts, recover::this_node());
            req.env.push((rankwise_runtime::status::RESTART_COUNT_ENV.into(), restart.to_string()));
            // With a standby of its own: a later loss of this host is survived too.
            let code = supervise::run(req, &via, host, &policy, Some(&mut *alloc), restart);
            alloc.finish(*code.as_ref().unwrap_or(&1));
            return code;
        }
        if !alloc.first(&mut req)? {
            return supervise::run(req, &via, host, &policy, None, restart);
        }
    }
    supervise::run(req, &via, host, &policy, alloc.as_mut(), restart)
}
