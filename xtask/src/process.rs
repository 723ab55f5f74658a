//! Child processes with bounded lifetimes.
//!
//! Every process the benchmark starts is either run to completion by
//! [`run`], which times it and stops it by PID when it outlives its limit or
//! when `cargo xtask` receives Ctrl-C or SIGTERM, or held by a [`Guard`],
//! which stops it by PID when dropped. Signals are sent with the `kill`
//! command, so no unsafe code is needed.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Set once Ctrl-C or SIGTERM arrived.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How often waiting loops look at their child and at [`INTERRUPTED`].
const POLL: Duration = Duration::from_millis(50);

/// How long a signalled process gets to exit before it is killed.
const GRACE: Duration = Duration::from_secs(10);

/// Time limit of short commands (`sync`, `git describe`, ...).
pub const SHORT_COMMAND_LIMIT: Duration = Duration::from_secs(600);

/// Starts a thread that sets the interrupted flag on Ctrl-C or SIGTERM, so
/// the benchmark unwinds and its guards stop the processes they hold.
pub fn watch_signals() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    let mut terminate = runtime
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        })
        .context("listening for SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            });
            eprintln!("xtask: interrupted; stopping the processes it started");
            INTERRUPTED.store(true, Ordering::SeqCst);
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails once Ctrl-C or SIGTERM arrived.
pub fn check_interrupted() -> anyhow::Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps for `duration` in short steps; fails early when interrupted.
pub fn sleep(duration: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        check_interrupted()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(POLL));
    }
}

/// Sends `signal` (a name such as `TERM`) to the process `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// How a process run by [`run`] ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Its exit status.
    pub status: ExitStatus,
    /// Wall-clock time from just before it was spawned until it was reaped.
    pub elapsed: Duration,
}

/// Why the watchdog of [`run`] stopped a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Finished,
    TimedOut,
    Interrupted,
}

/// Runs `command` to completion and times it with [`Instant`]; `input`, if
/// any, is written to its standard input (else it reads nothing). A watchdog
/// thread stops it by PID (SIGTERM, then SIGKILL) after `limit` or on
/// interruption. Fails if it cannot start or was stopped; its exit status
/// is the caller's to judge.
pub fn run(
    command: &mut Command,
    input: Option<&[u8]>,
    limit: Duration,
    label: &str,
) -> anyhow::Result<Outcome> {
    match supervise(command, input, limit, label, false)? {
        Finish::Exited(outcome) => Ok(outcome),
        Finish::TimedOut(_) => bail!("{label} did not finish within {} s", limit.as_secs()),
    }
}

/// Starts `command` (with `input` on its standard input, if any) under a
/// watchdog that stops it (with `tree`: and its descendants) after `limit`
/// or on interruption, and waits for it.
fn supervise(
    command: &mut Command,
    input: Option<&[u8]>,
    limit: Duration,
    label: &str,
    tree: bool,
) -> anyhow::Result<Finish> {
    check_interrupted()?;
    command.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {label}"))?;
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = spawn_watchdog(child.id(), limit, Arc::clone(&done), tree);
    if let Some(input) = input {
        use std::io::Write as _;
        let written = child
            .stdin
            .take()
            .context("standard input of the child")
            .and_then(|mut stdin| {
                stdin
                    .write_all(input)
                    .with_context(|| format!("writing to the standard input of {label}"))
            });
        if let Err(error) = written {
            done.store(true, Ordering::SeqCst);
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
    }
    let status = child.wait();
    let elapsed = start.elapsed();
    done.store(true, Ordering::SeqCst);
    let stop = watchdog.join().unwrap_or(Stop::Finished);
    let status = status.with_context(|| format!("waiting for {label}"))?;
    match stop {
        Stop::Finished => Ok(Finish::Exited(Outcome { status, elapsed })),
        Stop::TimedOut => Ok(Finish::TimedOut(elapsed)),
        Stop::Interrupted => bail!("interrupted"),
    }
}

/// Like [`run`], and fails unless the process exits successfully.
pub fn run_ok(
    command: &mut Command,
    input: Option<&[u8]>,
    limit: Duration,
    label: &str,
) -> anyhow::Result<Outcome> {
    let outcome = run(command, input, limit, label)?;
    if !outcome.status.success() {
        bail!("{label} failed ({})", outcome.status);
    }
    Ok(outcome)
}

/// Watches the process `pid` until `done` is set; stops it (with `tree`:
/// and its descendants) after `limit` or on interruption. Its loop ends once
/// the process was reaped or killed.
fn spawn_watchdog(
    pid: u32,
    limit: Duration,
    done: Arc<AtomicBool>,
    tree: bool,
) -> JoinHandle<Stop> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        loop {
            if done.load(Ordering::SeqCst) {
                return Stop::Finished;
            }
            let stop = if interrupted() {
                Stop::Interrupted
            } else if Instant::now() >= deadline {
                Stop::TimedOut
            } else {
                std::thread::sleep(POLL);
                continue;
            };
            if tree {
                // Children first: they must not be orphaned before they are found.
                let family = descendants(pid);
                for child in &family {
                    send_signal(*child, "TERM");
                }
                send_signal(pid, "TERM");
                let grace = Instant::now() + GRACE;
                while Instant::now() < grace
                    && (!done.load(Ordering::SeqCst) || family.iter().any(|child| alive(*child)))
                {
                    std::thread::sleep(POLL);
                }
                for child in family.iter().filter(|child| alive(**child)) {
                    send_signal(*child, "KILL");
                }
                if !done.load(Ordering::SeqCst) {
                    send_signal(pid, "KILL");
                }
                return stop;
            }
            send_signal(pid, "TERM");
            let grace = Instant::now() + GRACE;
            while !done.load(Ordering::SeqCst) && Instant::now() < grace {
                std::thread::sleep(POLL);
            }
            if !done.load(Ordering::SeqCst) {
                send_signal(pid, "KILL");
            }
            return stop;
        }
    })
}

/// How a process run by [`run_bounded`] ended.
#[derive(Debug, Clone, Copy)]
pub enum Finish {
    /// It exited by itself.
    Exited(Outcome),
    /// It was stopped, with its descendants, when its time limit ran out.
    TimedOut(Duration),
}

/// Like [`run`] (without input), but a time-out is a result, not an error,
/// and on time-out or interruption the process's descendants are stopped
/// too (by PID), e.g. the ssh that scp or qcp started.
pub fn run_bounded(command: &mut Command, limit: Duration, label: &str) -> anyhow::Result<Finish> {
    supervise(command, None, limit, label, true)
}

/// Runs a clean-up command (removing a rule, a namespace) to completion,
/// for at most `limit`, also after Ctrl-C or SIGTERM, when [`run`] refuses:
/// the clean-up is what an interruption needs. Fails unless it succeeds.
pub fn run_cleanup(command: &mut Command, limit: Duration, label: &str) -> anyhow::Result<()> {
    command.stdin(Stdio::null());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {label}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {label}"))?
        {
            if !status.success() {
                bail!("{label} failed ({status})");
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{label} did not finish within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The descendants of `pid` (children, their children, ...), from `/proc`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(parent) = stat_field(child, 1).and_then(|field| field.parse().ok()) {
                parents.push((child, parent));
            }
        }
    }
    let mut found = vec![pid];
    // Each pass adds a generation; the process count bounds the passes.
    for _ in 0..=parents.len() {
        let before = found.len();
        for (child, parent) in &parents {
            if found.contains(parent) && !found.contains(child) {
                found.push(*child);
            }
        }
        if found.len() == before {
            break;
        }
    }
    found.remove(0);
    found
}

/// Field `index` of `/proc/PID/stat` after the command name (0: state, 1: parent).
fn stat_field(pid: u32, index: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .nth(index)
        .map(str::to_owned)
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    stat_field(pid, 0).is_some_and(|state| state != "Z")
}

/// Stops the processes `pids` (SIGTERM, then SIGKILL after a grace period).
pub fn stop_all(pids: &[u32]) {
    for pid in pids {
        send_signal(*pid, "TERM");
    }
    let grace = Instant::now() + GRACE;
    while Instant::now() < grace && pids.iter().any(|pid| alive(*pid)) {
        std::thread::sleep(POLL);
    }
    for pid in pids.iter().filter(|pid| alive(**pid)) {
        send_signal(*pid, "KILL");
    }
}

/// A long-running child process, stopped by PID when the guard is dropped.
#[derive(Debug)]
pub struct Guard {
    child: Child,
    label: String,
    /// The signal that asks it to stop, e.g. `TERM` or `INT`.
    stop_signal: &'static str,
}

impl Guard {
    /// Guards `child`; `stop_signal` asks it to stop before SIGKILL.
    pub fn new(child: Child, label: impl Into<String>, stop_signal: &'static str) -> Self {
        Self {
            child,
            label: label.into(),
            stop_signal,
        }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (it is reaped then).
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Takes the child's standard output, if it was piped.
    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Waits for the process to exit by itself, for at most `limit`; stops
    /// it on time-out or interruption.
    pub fn wait(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .with_context(|| format!("waiting for {}", self.label))?
            {
                return Ok(status);
            }
            if interrupted() {
                self.stop();
                bail!("interrupted");
            }
            if Instant::now() >= deadline {
                self.stop();
                bail!(
                    "{} did not finish within {} s; stopped it",
                    self.label,
                    limit.as_secs()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Asks the process to stop, kills it after a grace period, reaps it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        send_signal(self.child.id(), self.stop_signal);
        let grace = Instant::now() + GRACE;
        while Instant::now() < grace {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(POLL);
        }
        eprintln!(
            "xtask: {} (pid {}) ignored SIG{}; killing it",
            self.label,
            self.child.id(),
            self.stop_signal
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}
