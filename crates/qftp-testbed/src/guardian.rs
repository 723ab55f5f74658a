//! A server process that stops when its owner goes away.
//!
//! Each server runs under a small `sh` guardian whose standard input is a
//! pipe from the test process. The guardian starts the server, reports its
//! PID, and waits; once the pipe closes (the handle was dropped, or the
//! test process exited in any way, even killed), it signals the server by
//! that PID, waits for it, and removes the server's directory. So a server
//! kept in a `static`, which Rust never drops, still stops with its test
//! binary, and nothing is ever stopped by name.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};

use crate::error::TestbedError;
use crate::wait::{Poll, wait_until};

/// The guardian: `$1` is the work directory (its `server.log` takes the
/// server's output; the directory is removed at the end), `$2` the signal
/// that stops the server, the rest the server's command. The watcher reads
/// the lifeline through descriptor 3 because a background list's own
/// standard input is `/dev/null`.
const GUARDIAN: &str = r#"
set -u
workdir=$1; stop=$2; shift 2
exec 3<&0
"$@" >>"$workdir/server.log" 2>&1 </dev/null 3<&- &
server=$!
echo "$server"
( while read -r _ <&3; do :; done; kill "-$stop" "$server" 2>/dev/null ) >/dev/null &
watcher=$!
exec 3<&-
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
echo "exited with status $status"
tail -n 30 "$workdir/server.log"
rm -rf "$workdir"
"#;

/// How long a stopped server may take to exit before it is killed.
const STOP_BOUND: Duration = Duration::from_secs(30);

/// How a guarded server is started.
#[derive(Debug)]
pub struct Launch<'a> {
    /// The server's name, for messages.
    pub server: &'a str,
    /// The work directory the guardian removes at the end (it must be
    /// writable by `user`).
    pub workdir: &'a Path,
    /// The signal that asks the server to stop (e.g. `INT`).
    pub stop_signal: &'a str,
    /// The server's program and arguments.
    pub command: Vec<String>,
    /// Run as this uid and gid instead of the test's.
    pub user: Option<(u32, u32)>,
}

/// A running server under its guardian.
#[derive(Debug)]
pub struct Guarded {
    server: String,
    pid: i32,
    guardian: Child,
    lifeline: Option<ChildStdin>,
    report: BufReader<ChildStdout>,
    workdir: PathBuf,
}

impl Guarded {
    /// Starts `launch.command` under a guardian.
    pub fn start(launch: Launch<'_>) -> Result<Guarded, TestbedError> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(GUARDIAN)
            .arg("guardian")
            .arg(launch.workdir)
            .arg(launch.stop_signal)
            .args(&launch.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = launch.user {
            use std::os::unix::process::CommandExt as _;
            command.uid(uid).gid(gid);
        }
        let mut guardian = command.spawn().map_err(|error| TestbedError::Command {
            command: format!("sh (guarding {})", launch.server),
            output: error.to_string(),
        })?;
        let lifeline = guardian.stdin.take();
        let mut report = BufReader::new(guardian.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = report
            .read_line(&mut line)
            .map_err(TestbedError::io("guardian"))?;
        let pid = line
            .trim()
            .parse::<i32>()
            .map_err(|_| TestbedError::Exited {
                server: launch.server.to_owned(),
                log: if read == 0 {
                    "the guardian ended at once".to_owned()
                } else {
                    line.clone()
                },
            })?;
        Ok(Guarded {
            server: launch.server.to_owned(),
            pid,
            guardian,
            lifeline,
            report,
            workdir: launch.workdir.to_owned(),
        })
    }

    /// The server's PID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The server's name, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `Some(log)` if the server has exited, with the end of its log.
    pub fn exited(&mut self) -> Option<String> {
        match self.guardian.try_wait() {
            Ok(Some(_)) | Err(_) => {
                let mut rest = String::new();
                let _ = self.report.read_to_string(&mut rest);
                Some(rest)
            }
            Ok(None) => None,
        }
    }

    /// Waits up to `bound` for `check` to say the server is ready; an
    /// early exit is [`TestbedError::Exited`] with its log.
    pub fn wait_ready(
        &mut self,
        bound: Duration,
        mut check: impl FnMut() -> bool,
    ) -> Result<(), TestbedError> {
        let ready = wait_until(bound, || {
            if let Some(log) = self.exited() {
                return Err(TestbedError::Exited {
                    server: self.server.clone(),
                    log,
                });
            }
            Ok(if check() {
                Poll::Ready(())
            } else {
                Poll::Pending
            })
        })?;
        ready.ok_or_else(|| TestbedError::NotReady {
            server: self.server.clone(),
            bound,
        })
    }

    /// The work directory.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // Closing the lifeline makes the guardian stop the server.
        drop(self.lifeline.take());
        let stopped = wait_until(STOP_BOUND, || {
            Ok::<_, std::convert::Infallible>(match self.guardian.try_wait() {
                Ok(Some(_)) | Err(_) => Poll::Ready(()),
                Ok(None) => Poll::Pending,
            })
        });
        if !matches!(stopped, Ok(Some(()))) {
            if let Some(pid) = Pid::from_raw(self.pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
            let _ = self.guardian.kill();
            let _ = self.guardian.wait();
        }
    }
}
