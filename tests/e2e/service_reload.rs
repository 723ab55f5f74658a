//! Reloading a running `qftp-server` on SIGHUP: live settings apply while
//! connections stay open, restart-only settings are named, a broken file
//! changes nothing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::support::{TestClient, TestServer, text, wait_until};

const PASSWORD: &str = "alice-pw-1";

/// Generous bounds: the machine running the tests may be loaded.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `qftp shell` kept open on one connection, fed one command at a time.
struct OpenShell {
    child: Child,
    input: ChildStdin,
    lines: Receiver<String>,
    marks: usize,
}

impl OpenShell {
    fn open(mut command: Command) -> Self {
        let mut child = command
            .arg("shell")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting qftp shell");
        let input = child.stdin.take().expect("shell stdin");
        let output = child.stdout.take().expect("shell stdout");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            input,
            lines,
            marks: 0,
        }
    }

    /// Makes a directory through the shell and waits for `ls` to list it:
    /// a round trip to the server on the shell's one connection.
    fn still_works(&mut self) {
        self.marks += 1;
        let name = format!("mark-{}", self.marks);
        writeln!(self.input, "mkdir {name}\nls").expect("writing to the shell");
        self.input.flush().expect("flushing the shell's input");
        let listed = format!("{name}/");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim_end() == listed => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("the shell never listed {name}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the shell ended before {name}"),
            }
        }
    }
}

impl Drop for OpenShell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A logged server with `config` prepended to its `config.toml`, and
/// alice logged in.
fn alice_on(config: &str) -> (TestServer, TestClient) {
    let server = TestServer::start_logged(config);
    server.add_user("alice", PASSWORD, None);
    let client = TestClient::new();
    client.login(&server, "alice", PASSWORD);
    (server, client)
}

/// Replaces the top-level `settings` of the server's `config.toml` (the
/// template's commented lines stay).
fn rewrite_config(server: &TestServer, settings: &str) {
    let path = server.root.join("config.toml");
    let template: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|line| line.trim_start().starts_with('#') || line.trim().is_empty())
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&path, format!("{settings}\n{template}")).unwrap();
}

/// Waits until the server's log holds `needle`.
fn wait_for_log(server: &TestServer, needle: &str) {
    assert!(
        wait_until(PATIENCE, || server.log().contains(needle)),
        "no {needle:?} in the log:\n{}",
        server.log()
    );
}

#[test]
fn sighup_raises_max_connections_while_a_shell_stays_open() {
    let (mut server, client) = alice_on("max_connections = 1");
    let mut shell = OpenShell::open(client.command(&[]));
    shell.still_works();
    let refused = client.fails(&["ls"]);
    assert!(!refused.is_empty(), "a second connection was not refused");

    rewrite_config(&server, "max_connections = 4\nidle_timeout_secs = 45");
    server.signal(Signal::HUP);
    assert!(
        wait_until(PATIENCE, || client.run(&["ls"]).status.success()),
        "max_connections = 4 never applied:\n{}",
        server.log()
    );
    shell.still_works();
    wait_for_log(&server, "idle_timeout_secs changed");
    assert!(
        !server.log().contains("max_connections changed"),
        "a live setting was named as needing a restart"
    );

    // A file that does not parse is refused, and what is in force stays:
    // the shell and another connection are still served side by side.
    std::fs::write(server.root.join("config.toml"), "max_connections = [\n").unwrap();
    server.signal(Signal::HUP);
    wait_for_log(&server, "reload refused");
    shell.still_works();
    let listing = client.ok(&["ls"]);
    assert!(listing.contains("mark-1/"), "{listing}");

    // The reload path leaves the drain alone: SIGTERM still stops it.
    drop(shell);
    server.signal(Signal::TERM);
    let status = server
        .wait_exit(PATIENCE)
        .expect("the server never stopped");
    assert!(status.success(), "{status:?}: {}", server.log());
}

#[test]
fn sighup_applies_new_login_bounds() {
    let (server, client) =
        alice_on("[login]\nmax_failures = 100\nbase_delay_ms = 1\nmax_delay_ms = 1");
    let stranger = TestClient::new();
    let wrong = stranger.try_login(&server, "alice", "not-her-password");
    assert!(!wrong.status.success());
    assert!(!text(&wrong.stderr).contains("too many failed logins"));

    rewrite_config(
        &server,
        "[login]\nmax_failures = 2\nbase_delay_ms = 1\nmax_delay_ms = 1",
    );
    server.signal(Signal::HUP);
    wait_for_log(&server, "configuration reloaded");
    let mut refused = false;
    for _ in 0..4 {
        let attempt = stranger.try_login(&server, "alice", "not-her-password");
        refused |= text(&attempt.stderr).contains("too many failed logins");
    }
    assert!(refused, "the new login.max_failures never applied");
    // Alice's own session is untouched.
    client.ok(&["ls"]);
}
