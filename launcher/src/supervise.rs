//! Run the ranks, forward signals to them, and with `--restarts K` relaunch after a failure; the
//! relaunched program restores its newest checkpoint that verifies and says which (see
//! `rankwise_runtime::status`): the launcher never claims a choice it does not make.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rankwise_runtime::status::{Status, RESTART_COUNT_ENV};
use rankwise_runtime::{EXIT_BAD_INPUT, EXIT_REQUEUE};
use signal_hook::consts::{SIGINT, SIGPIPE, SIGTERM, SIGUSR1, SIGUSR2};

use crate::launch::{plan, Flavour, Host, Plan, Request, Via};
use crate::recover::{InAllocation, Verdict};

/// The running mpirun or srun, for the signal forwarder (0 when none).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The signal (INT or TERM) by which the user asked the job to end (0 if none): never restart it.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// Whether USR1 or USR2 came: to a standby supervisor (which has no child), "stand down".
static WARNED: AtomicBool = AtomicBool::new(false);
/// Set when the reader of our stdout went away (`rankwise run ... | head`): the job is ended,
/// quietly, as a closed pipe ends `cat`.
static READER_GONE: AtomicBool = AtomicBool::new(false);

/// When the running child was started.
static STARTED: Mutex<Option<Instant>> = Mutex::new(None);
/// A warning signal (USR1, USR2) waits until the launch is this old: before the ranks have
/// installed their handlers it would kill them. Slurm sends it minutes ahead of the limit, so
/// it can wait; but it comes right at the start of a job shorter than that.
const WARNING_HOLD: Duration = Duration::from_secs(3);

/// Forward INT, TERM, USR1 and USR2 to the running launcher child from now on.
pub fn forward_signals() -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGUSR2])?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGINT || sig == SIGTERM {
                INTERRUPTED.store(sig, Ordering::SeqCst);
                pass_on(sig);
                continue;
            }
            WARNED.store(true, Ordering::SeqCst);
            std::thread::spawn(move || {
                let ready = || STARTED.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| t.elapsed() >= WARNING_HOLD);
                while !ready() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                pass_on(sig);
            });
        }
    });
    Ok(())
}

fn pass_on(sig: i32) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

/// How to supervise.
pub struct Policy {
    pub restarts: u32,
    pub backoff: Duration,
    pub status_file: PathBuf,
}

/// Whether a standby supervisor is to stop: INT or TERM, or USR1 from its supervisor.
pub fn stand_down() -> bool {
    INTERRUPTED.load(Ordering::SeqCst) != 0 || WARNED.load(Ordering::SeqCst)
}

/// Launch `req` through `via` and supervise it; the exit code to leave with.
/// `req.env` already names `policy.status_file` for the program. With `alloc` (under srun in a
/// Slurm job), a step that failed because nodes were lost is relaunched at once on the nodes
/// left, and a standby supervisor waits on another node in case this one's is lost; `restart`
/// is how many relaunches came before (a standby that takes over continues the count).
pub fn run(mut req: Request, via: &Via, host: Host, policy: &Policy, mut alloc: Option<&mut InAllocation>, mut restart: u32) -> Result<i32> {
    let _cleanup = RemoveOnDrop(policy.status_file.clone());
    let mut failed_at: Option<u64> = None;
    let mut standby = Standby(None);
    if let Some(a) = &alloc {
        standby.0 = a.start_standby();
    }
    // Hydra reports a failed rank on stdout.
    let hydra = matches!(via, Via::Mpirun { flavour: Flavour::Mpich, .. });
    loop {
        let code = launch(&plan(&req, via, host), hydra)?;
        if READER_GONE.load(Ordering::SeqCst) {
            return Ok(128 + SIGPIPE);
        }
        let interrupted = INTERRUPTED.load(Ordering::SeqCst);
        if interrupted != 0 {
            // Hydra exits 0 after ending the ranks for a forwarded INT or TERM: the job did not finish.
            return Ok(if code.value == 0 { 128 + interrupted } else { code.value });
        }
        if matches!(code.value, 0 | EXIT_BAD_INPUT | EXIT_REQUEUE) {
            return Ok(code.value);
        }
        let status = Status::read(&policy.status_file).ok();
        let step = status.as_ref().map_or(0, |s| s.step);
        let cause = code.cause.map(|c| format!(": {c}")).unwrap_or_default();
        eprintln!("rankwise: the job failed at step {step} with exit code {}{cause}", code.value);
        if let Some(a) = alloc.as_mut() {
            match a.after_failure(&mut req)? {
                Verdict::NoLoss => {}
                Verdict::GiveUp(why) => {
                    eprintln!("{why}");
                    return Ok(code.value);
                }
                Verdict::Relaunch(r) => {
                    if restart == policy.restarts {
                        eprintln!("rankwise: giving up: {r}, but all {restart} relaunches (--restarts) are spent");
                        return Ok(code.value);
                    }
                    restart += 1;
                    // One line per recovery; no back-off: Slurm has already told what is left.
                    eprintln!("rankwise: recovery {} (relaunch {restart} of {}): {r}", a.recoveries, policy.restarts);
                    set_restart(&mut req, restart);
                    if standby.0.as_mut().is_none_or(|c| c.try_wait().is_ok_and(|s| s.is_some())) {
                        standby.0 = a.start_standby();
                    }
                    continue;
                }
            }
        }
        if restart == policy.restarts {
            if policy.restarts > 0 {
                eprintln!("rankwise: giving up after {restart} restarts");
            }
            return Ok(code.value);
        }
        if failed_at == Some(step) {
            eprintln!("rankwise: giving up: step {step} failed twice, the restart made no progress");
            return Ok(code.value);
        }
        failed_at = Some(step);
        restart += 1;
        let wait = policy.backoff * (1 << (restart - 1).min(6));
        set_restart(&mut req, restart);
        eprintln!("rankwise: restart {restart} of {} in {wait:.1?}: relaunching; the program resumes from its newest valid checkpoint, if any", policy.restarts);
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            if INTERRUPTED.load(Ordering::SeqCst) != 0 {
                return Ok(code.value);
            }
            std::thread::sleep(Duration::from_millis(20).min(wait));
        }
        // The ranks may have failed on a broken connection before Slurm called their node
        // dead: ask again, so as not to relaunch onto it.
        if let Some(a) = alloc.as_mut() {
            match a.after_failure(&mut req)? {
                Verdict::NoLoss => {}
                Verdict::GiveUp(why) => {
                    eprintln!("{why}");
                    return Ok(code.value);
                }
                Verdict::Relaunch(r) => eprintln!("rankwise: recovery {} (relaunch {restart} of {}): {r}", a.recoveries, policy.restarts),
            }
        }
    }
}

fn set_restart(req: &mut Request, restart: u32) {
    req.env.retain(|(k, _)| k != RESTART_COUNT_ENV);
    req.env.push((RESTART_COUNT_ENV.into(), restart.to_string()));
}

/// The standby supervisor's srun, ended with this supervisor.
struct Standby(Option<std::process::Child>);

impl Drop for Standby {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            // USR1, which srun passes to the standby: it leaves quietly, and its step ends
            // (TERM would cancel the step, which Slurm reports in the job's output). TERM only
            // if it does not.
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGUSR1) };
            let t = Instant::now();
            while c.try_wait().is_ok_and(|s| s.is_none()) {
                if t.elapsed() > Duration::from_secs(5) {
                    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.wait();
        }
    }
}

/// How one launch ended.
struct Ended {
    /// The exit code, or 128 + signal when the launcher itself was killed.
    value: i32,
    /// Which rank failed and how, when mpirun or srun say.
    cause: Option<String>,
}

/// Run `plan`, passing its stdout and stderr through, listening for which rank failed (Hydra
/// reports it on stdout, with `watch_stdout`).
fn launch(plan: &Plan, watch_stdout: bool) -> Result<Ended> {
    let mut cmd = plan.command();
    // Its own process group: a Ctrl-C reaches only us, and we forward it once. Nothing reads
    // stdin (inputs come from files), so it stays out of the terminal's way. Stdout comes
    // through us too: Open MPI's mpirun crashes when its own stdout's reader goes away.
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    // SAFETY: prctl is async-signal-safe. If we die, take the job down with us.
    unsafe { cmd.pre_exec(|| { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM); Ok(()) }) };
    let mut child = cmd.spawn().with_context(|| format!("cannot start {}", plan.program.display()))?;
    *STARTED.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    let cause = Arc::new(Mutex::new(Cause::default()));
    let held = Arc::new(Mutex::new(Vec::new()));
    let stderr = Sink::Stderr { boxes: Boxes::default(), held: held.clone() };
    let tees = [
        tee(child.stderr.take().expect("piped"), stderr, Some(cause.clone())),
        tee(child.stdout.take().expect("piped"), Sink::Stdout, watch_stdout.then(|| cause.clone())),
    ];
    let status = child.wait()?;
    CHILD.store(0, Ordering::SeqCst);
    tees.into_iter().for_each(|t| t.join().unwrap_or_default());
    let cause = std::mem::take(&mut *cause.lock().unwrap_or_else(|p| p.into_inner()));
    let mut value = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    // Hydra exits with the signal number that killed a rank; say it as a shell and srun do.
    if cause.signal.is_some_and(|s| s == value) {
        value += 128;
    }
    // Exit 2 and 75 are the program's own verdict, said in its own line: the launcher's report
    // that a rank exited non-zero would only bury it.
    let held = std::mem::take(&mut *held.lock().unwrap_or_else(|p| p.into_inner()));
    if !matches!(value, EXIT_BAD_INPUT | EXIT_REQUEUE) && !READER_GONE.load(Ordering::SeqCst) {
        std::io::stderr().write_all(&held).ok();
    }
    Ok(Ended { value, cause: cause.describe() })
}

/// Where a tee writes.
enum Sink {
    /// Our stdout; when its reader goes away, the job is ended and the rest is drained.
    Stdout,
    /// Our stderr, less the launcher's reports that a rank exited non-zero: those wait in `held`
    /// for the job's exit code.
    Stderr { boxes: Boxes, held: Arc<Mutex<Vec<u8>>> },
}

impl Sink {
    fn write(&mut self, line: &[u8]) {
        match self {
            Sink::Stdout => {
                if READER_GONE.load(Ordering::SeqCst) {
                    return;
                }
                let mut out = std::io::stdout().lock();
                if let Err(e) = out.write_all(line).and_then(|()| out.flush()) {
                    if e.kind() == std::io::ErrorKind::BrokenPipe && !READER_GONE.swap(true, Ordering::SeqCst) {
                        pass_on(SIGTERM);
                    }
                }
            }
            Sink::Stderr { boxes, held } => {
                for (text, hold) in boxes.feed(line) {
                    if hold {
                        held.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&text);
                    } else {
                        std::io::stderr().write_all(&text).ok();
                    }
                }
            }
        }
    }
}

/// Open MPI's messages come in boxes (text between two lines of dashes), srun's in lines that
/// start with `srun: error:`. The reports that a rank exited non-zero are held; so is every box
/// once our reader has gone. Anything else passes at once: a dashed line of the program's own
/// waits for its next line only.
#[derive(Default)]
enum Boxes {
    #[default]
    Out,
    /// A line of dashes: a box may begin.
    Dashes(Vec<u8>),
    /// Inside a box to hold.
    Held(Vec<u8>),
}

impl Boxes {
    /// The pieces of text to pass on now, each with whether to hold it until the job's exit
    /// code is known.
    fn feed(&mut self, line: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let dashes = {
            let t = line.trim_ascii();
            t.len() >= 20 && t.iter().all(|&b| b == b'-')
        };
        match std::mem::take(self) {
            Boxes::Out if dashes => {
                *self = Boxes::Dashes(line.to_vec());
                vec![]
            }
            Boxes::Out => {
                let text = String::from_utf8_lossy(line);
                let srun = text.starts_with("srun: error: ") && text.contains("Exited with exit code");
                // Open MPI's trace of a box it failed to print (seen under load).
                let failed_box = text.contains("ORTE_ERROR_LOG") && text.contains("show_help.c");
                vec![(line.to_vec(), srun || failed_box)]
            }
            Boxes::Dashes(mut d) => {
                let text = String::from_utf8_lossy(line);
                // Open MPI: "Primary job  terminated normally, but 1 process returned / a non-zero
                // exit code", "mpirun detected that one or more processes exited with non-zero status".
                let nonzero_exit = text.contains("terminated normally, but") || text.contains("exited with non-zero status");
                if nonzero_exit || READER_GONE.load(Ordering::SeqCst) {
                    d.extend_from_slice(line);
                    *self = Boxes::Held(d);
                    vec![]
                } else if dashes {
                    *self = Boxes::Dashes(line.to_vec());
                    vec![(d, false)]
                } else {
                    vec![(d, false), (line.to_vec(), false)]
                }
            }
            Boxes::Held(mut b) => {
                b.extend_from_slice(line);
                if !dashes {
                    *self = Boxes::Held(b);
                    return vec![];
                }
                // Once the reader has gone, boxes are dropped: the job is ending at our request.
                if READER_GONE.load(Ordering::SeqCst) { vec![] } else { vec![(b, true)] }
            }
        }
    }

    /// What is still open when the stream ends: a box never closed is still text to show.
    fn rest(self) -> Vec<u8> {
        match self {
            Boxes::Out => vec![],
            Boxes::Dashes(b) | Boxes::Held(b) => b,
        }
    }
}

/// Copy `input` to `sink` line by line as it comes, feeding each line to `cause`.
fn tee(input: impl Read + Send + 'static, mut sink: Sink, cause: Option<Arc<Mutex<Cause>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut input, mut line) = (BufReader::new(input), Vec::new());
        // Bytes, not str: a rank's non-UTF-8 output must neither stop nor block the pipe.
        while input.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            if let Some(c) = &cause {
                c.lock().unwrap_or_else(|p| p.into_inner()).feed(&String::from_utf8_lossy(&line));
            }
            sink.write(&line);
            line.clear();
        }
        if let Sink::Stderr { boxes, .. } = sink {
            std::io::stderr().write_all(&boxes.rest()).ok();
        }
    })
}

/// The first failure that mpirun (OpenMPI or MPICH) or srun reports.
#[derive(Default, Debug, PartialEq)]
struct Cause {
    rank: Option<String>,
    what: Option<String>,
    /// The signal that killed the rank, where Hydra says so.
    signal: Option<i32>,
}

impl Cause {
    fn feed(&mut self, line: &str) {
        if self.what.is_some() {
            return;
        }
        let l = line.trim().trim_start_matches('=').trim();
        let after = |key: &str| l.split_once(key).map(|(_, rest)| rest.trim().trim_end_matches('.').to_string());
        let word = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
        let rank = |s: String| word(&s).trim_end_matches(':').to_string();
        if let Some(rest) = after("noticed that process rank") {
            // OpenMPI: "... process rank 1 with PID 0 on node x exited on signal 9 (Killed)."
            self.rank = Some(word(&rest));
            self.what = after("exited on ").or_else(|| after("exited with ")).map(|w| w.replace("status", "exit code"));
        } else if let Some(rest) = after("MPI_ABORT was invoked on rank") {
            self.rank = Some(word(&rest));
            self.what = Some(format!("MPI_Abort{}", after("errorcode").map(|c| format!(" with error code {c}")).unwrap_or_default()));
        } else if let Some(rest) = after("Process name:") {
            // OpenMPI: "Process name: [[4242,1],2]" then "Exit code: 3".
            self.rank = rest.trim_end_matches(']').rsplit(',').next().map(str::to_string);
        } else if let Some(c) = after("Exit code:").filter(|_| self.rank.is_some()) {
            self.what = Some(format!("exit code {c}"));
        } else if let Some(rest) = after(": task ") {
            // srun: "srun: error: node1: task 1: Killed" or "...: task 2: Exited with exit code 3".
            self.rank = Some(rank(rest.clone()));
            self.what = rest.split_once(": ").map(|(_, w)| w.to_lowercase());
        } else if let Some(rest) = after("RANK ").filter(|_| l.contains("RUNNING AT")) {
            // MPICH: "=   RANK 1 PID 4242 RUNNING AT host" then "=   KILLED BY SIGNAL: 9 (Killed)".
            self.rank = Some(word(&rest));
        } else if let Some(s) = after("KILLED BY SIGNAL:") {
            self.what = Some(format!("signal {s}"));
            self.signal = word(&s).parse().ok();
        } else if let Some(s) = after("TERMINATED WITH THE EXIT STRING:").and_then(|s| s.strip_suffix(')').map(str::to_string)) {
            // MPICH 4.0: "... EXIT STRING: Killed (signal 9)", after a box that names no rank.
            let (name, number) = s.rsplit_once(" (signal ").unwrap_or((&s, ""));
            self.signal = number.parse().ok();
            self.what = self.signal.map(|n| format!("signal {n} ({name})"));
        } else if let Some(c) = after("EXIT CODE:").filter(|_| self.rank.is_some()) {
            self.what = Some(format!("exit code {c}"));
        }
    }

    fn describe(&self) -> Option<String> {
        let what = self.what.as_ref()?;
        Some(match &self.rank {
            Some(r) => format!("rank {r}: {what}"),
            None => what.clone(),
        })
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_file(Path::new(&format!("{}.tmp", self.0.display())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(text: &str) -> Option<String> {
        let mut c = Cause::default();
        text.lines().for_each(|l| c.feed(l));
        c.describe()
    }

    /// What passes at once and what is held, line by line.
    fn boxes(text: &str) -> (String, String) {
        let (mut now, mut held) = (String::new(), String::new());
        let mut b = Boxes::default();
        for line in text.split_inclusive('\n') {
            for (t, hold) in b.feed(line.as_bytes()) {
                (if hold { &mut held } else { &mut now }).push_str(&String::from_utf8_lossy(&t));
            }
        }
        now.push_str(&String::from_utf8_lossy(&b.rest()));
        (now, held)
    }

    #[test]
    fn reports_of_a_non_zero_exit_are_held_and_the_rest_passes() {
        let dash = "-".repeat(74);
        let primary = format!("{dash}\nPrimary job  terminated normally, but 1 process returned\na non-zero exit code. Per user-direction, the job has been aborted.\n{dash}\n");
        let detected = format!("{dash}\nmpirun detected that one or more processes exited with non-zero status, thus causing\nthe job to be terminated. The first process to do so was:\n\n  Process name: [[4446,1],1]\n  Exit code:    2\n{dash}\n");
        let text = format!("error: --set nn: unknown input `nn`\n{primary}{detected}");
        assert_eq!(boxes(&text), ("error: --set nn: unknown input `nn`\n".into(), format!("{primary}{detected}")));
        let signal = format!("{dash}\nmpirun noticed that process rank 1 with PID 0 on node h exited on signal 9 (Killed).\n{dash}\n");
        assert_eq!(boxes(&signal), (signal.clone(), String::new()));
        // A program's own dashed lines pass, each at most one line late.
        let own = format!("{dash}\ntable\n{dash}\n{dash}\nend\n----\n");
        assert_eq!(boxes(&own), (own.clone(), String::new()));
        let srun = "srun: error: node1: tasks 0-1: Exited with exit code 2\n";
        assert_eq!(boxes(&format!("x\n{srun}")), ("x\n".into(), srun.into()));
        assert_eq!(boxes("srun: error: node1: task 1: Killed\n"), ("srun: error: node1: task 1: Killed\n".into(), String::new()));
        let orte = "[vm:04349] [[31747,0],0] ORTE_ERROR_LOG: Out of resource in file ../../../orte/util/show_help.c at line 507\n";
        assert_eq!(boxes(orte), (String::new(), orte.into()));
    }

    #[test]
    fn causes_told_by_each_launcher() {
        assert_eq!(
            cause("mpirun noticed that process rank 1 with PID 0 on node h exited on signal 9 (Killed)."),
            Some("rank 1: signal 9 (Killed)".into())
        );
        assert_eq!(
            cause("MPI_ABORT was invoked on rank 2 in communicator MPI_COMM_WORLD\nwith errorcode 1."),
            Some("rank 2: MPI_Abort".into())
        );
        assert_eq!(
            cause("The first process to do so was:\n\n  Process name:    [[4242,1],3]\n  Exit code:    7\n"),
            Some("rank 3: exit code 7".into())
        );
        assert_eq!(cause("srun: error: node1: task 1: Killed"), Some("rank 1: killed".into()));
        assert_eq!(
            cause("srun: error: node1: task 2: Exited with exit code 3"),
            Some("rank 2: exited with exit code 3".into())
        );
        assert_eq!(
            cause("=   RANK 1 PID 4242 RUNNING AT host\n=   KILLED BY SIGNAL: 9 (Killed)"),
            Some("rank 1: signal 9 (Killed)".into())
        );
        let mpich4 = "=   PID 4242 RUNNING AT host\n=   EXIT CODE: 9\n==\nYOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed (signal 9)";
        assert_eq!(cause(mpich4), Some("signal 9 (Killed)".into()));
        assert_eq!(cause("an unrelated line\nExit code: 3"), None);
    }
}
