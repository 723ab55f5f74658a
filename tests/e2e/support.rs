//! Helpers for the end-to-end tests: real `qftp-server` processes on
//! 127.0.0.1 with certificates made by `qftp-server init`, and `qftp`
//! processes with their own config directories.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of a program of this package; cargo builds both for its
/// integration tests.
pub fn binary(name: &str) -> PathBuf {
    match name {
        "qftp" => PathBuf::from(env!("CARGO_BIN_EXE_qftp")),
        "qftp-server" => PathBuf::from(env!("CARGO_BIN_EXE_qftp-server")),
        other => panic!("no program called {other} in this package"),
    }
}

/// Runs a command to completion with `input` on stdin.
pub fn run_with_input(command: &mut Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning a command");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing stdin");
    child.wait_with_output().expect("waiting for a command")
}

/// Text of an output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `qftp-server` with its own root directory.
pub struct TestServer {
    pub temp: tempfile::TempDir,
    pub root: PathBuf,
    child: Option<Child>,
    /// Added to the environment of every `serve`.
    environment: Vec<(String, String)>,
    /// Added to the command line of every `serve`.
    serve_arguments: Vec<String>,
    /// Where the server's standard error goes (inherited when `None`).
    stderr_file: Option<PathBuf>,
    pub address: SocketAddr,
    pub fingerprint: String,
    /// The address of the metrics listener, when `metrics_listen` is set.
    pub metrics: Option<SocketAddr>,
    /// The program and arguments every `serve` runs through (e.g. `ip
    /// netns exec NS`); empty to run the server directly.
    launcher: Vec<String>,
}

impl TestServer {
    /// Initialises a root and starts serving on 127.0.0.1 with a free port.
    pub fn start() -> Self {
        Self::start_with_config("")
    }

    /// Like [`TestServer::start`], with top-level settings added to config.toml.
    pub fn start_with_config(extra_config: &str) -> Self {
        Self::start_with(extra_config, &[])
    }

    /// Like [`TestServer::start_with_config`], serving with `environment`
    /// added to the server process's environment.
    pub fn start_with(extra_config: &str, environment: &[(&str, &str)]) -> Self {
        Self::start_serving(extra_config, environment, &[], None)
    }

    /// Like [`TestServer::start_with`], with `serve_arguments` added to
    /// `serve` and its standard error written to `stderr_file`.
    pub fn start_serving(
        extra_config: &str,
        environment: &[(&str, &str)],
        serve_arguments: &[&str],
        stderr_file: Option<&Path>,
    ) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let root = temp.path().join("root");
        let output = Self::admin_at(&root, &["init"])
            .output()
            .expect("running init");
        assert!(
            output.status.success(),
            "init failed: {}",
            text(&output.stderr)
        );
        if !extra_config.is_empty() {
            let config = root.join("config.toml");
            let existing = std::fs::read_to_string(&config).expect("reading config.toml");
            std::fs::write(&config, merge_config(&existing, extra_config))
                .expect("writing config.toml");
        }
        let mut server = Self {
            temp,
            root,
            child: None,
            environment: environment
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            serve_arguments: serve_arguments
                .iter()
                .map(|argument| (*argument).to_owned())
                .collect(),
            stderr_file: stderr_file.map(Path::to_owned),
            address: "127.0.0.1:0".parse().expect("address"),
            fingerprint: String::new(),
            metrics: None,
            launcher: Vec::new(),
        };
        server.serve("127.0.0.1:0");
        server
    }

    /// Like [`TestServer::start_with_config`], with the server's log at
    /// INFO written to a file that [`TestServer::log`] reads.
    pub fn start_logged(extra_config: &str) -> Self {
        let mut server = Self::start_with(extra_config, &[]);
        server.kill();
        server.stderr_file = Some(server.temp.path().join("server.log"));
        server.environment.push(("RUST_LOG".into(), "info".into()));
        server.restart();
        server
    }

    /// Like [`TestServer::start_logged`], serving through `launcher`, a
    /// command that runs the server as its last argument (e.g. `ip netns
    /// exec NS`, for a network namespace the test made); the process it
    /// starts must become the server (exec), so that stopping it by its
    /// PID stops the server.
    pub fn start_logged_through(launcher: &[&str]) -> Self {
        let mut server = Self::start_logged("");
        server.kill();
        server.launcher = launcher.iter().map(|word| (*word).to_owned()).collect();
        server.serve("127.0.0.1:0");
        server
    }

    /// What the server has written to its standard error so far, when it
    /// goes to a file (see [`TestServer::start_logged`]).
    pub fn log(&self) -> String {
        let path = self
            .stderr_file
            .as_ref()
            .expect("a server logging to a file");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn admin_at(root: &Path, arguments: &[&str]) -> Command {
        let mut command = Command::new(binary("qftp-server"));
        command.arg("--root").arg(root).args(arguments);
        command
    }

    /// A `qftp-server` admin command on this root.
    pub fn admin(&self, arguments: &[&str]) -> Command {
        Self::admin_at(&self.root, arguments)
    }

    fn serve(&mut self, listen: &str) {
        let stderr = match &self.stderr_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("opening the server's stderr file"),
            ),
            None => Stdio::inherit(),
        };
        let mut child = launched(&self.launcher, "qftp-server")
            .arg("--root")
            .arg(&self.root)
            .args(["serve", "--listen", listen])
            .args(&self.serve_arguments)
            .env("RUST_LOG", "warn")
            .envs(self.environment.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting qftp-server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the listening line");
        let mut words = line.split_whitespace();
        assert_eq!(
            words.next(),
            Some("listening"),
            "unexpected first line {line:?}"
        );
        assert_eq!(words.next(), Some("on"));
        self.address = words
            .next()
            .expect("address")
            .parse()
            .expect("bound address");
        self.fingerprint = words
            .find(|word| word.starts_with("SHA256:"))
            .expect("fingerprint on the listening line")
            .to_owned();
        self.metrics = match words.next() {
            Some("metrics") => Some(
                words
                    .next()
                    .and_then(|word| word.parse().ok())
                    .expect("the metrics address on the listening line"),
            ),
            _ => None,
        };
        self.child = Some(child);
    }

    /// The process id of the running server (to read its memory use).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    /// Adds a user with `password` and optional quota.
    pub fn add_user(&self, name: &str, password: &str, quota: Option<&str>) {
        let mut arguments = vec!["user", "add", name, "--password-stdin"];
        if let Some(quota) = quota {
            arguments.extend(["--quota", quota]);
        }
        let output = run_with_input(&mut self.admin(&arguments), &format!("{password}\n"));
        assert!(
            output.status.success(),
            "user add failed: {}",
            text(&output.stderr)
        );
    }

    /// The home directory of `user` on disk.
    pub fn home(&self, user: &str) -> PathBuf {
        self.root.join("homes").join(user)
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a process id");
        rustix::process::kill_process(pid, signal).expect("signalling the server");
    }

    /// Waits at most `limit` for the server to exit by itself; past it,
    /// kills it and answers `None`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("the server is running");
        wait_bounded(&mut child, limit)
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let listen = self.address.to_string();
        // The port was just freed; binding it again can race with the
        // kernel for a moment, so retry a bounded number of times.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve(&listen)));
            if attempt.is_ok() || Instant::now() > deadline {
                attempt.expect("restarting the server");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `extra` merged into the config file `existing`: its top-level settings
/// go before the file's tables, and the settings under a `[table]` header
/// go under that table's header in the file (appended as a new table when
/// the file has none), since TOML allows each table only once.
fn merge_config(existing: &str, extra: &str) -> String {
    let mut top = Vec::new();
    let mut tables: Vec<(String, Vec<&str>)> = Vec::new();
    for line in extra.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            tables.push((trimmed.to_owned(), Vec::new()));
        } else if let Some((_, lines)) = tables.last_mut() {
            lines.push(line);
        } else {
            top.push(line);
        }
    }
    let mut merged = top.join("\n");
    merged.push('\n');
    for line in existing.lines() {
        merged.push_str(line);
        merged.push('\n');
        if let Some(index) = tables.iter().position(|(header, _)| header == line.trim()) {
            let (_, lines) = tables.remove(index);
            for setting in lines {
                merged.push_str(setting);
                merged.push('\n');
            }
        }
    }
    for (header, lines) in tables {
        merged.push_str(&header);
        merged.push('\n');
        for setting in lines {
            merged.push_str(setting);
            merged.push('\n');
        }
    }
    merged
}

/// Where the server keeps the partial upload of `remote` (a path as the
/// user sees it, starting with `/`) in the home `home`: its staging
/// directory, under a name derived from the path.
pub fn server_partial(home: &Path, remote: &str) -> PathBuf {
    let hash = blake3::hash(remote.as_bytes());
    home.join(".qftp-partials")
        .join(hex_prefix(&hash.as_bytes()[..16]))
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A `qftp` user with its own config directory.
pub struct TestClient {
    pub config: tempfile::TempDir,
    environment: Vec<(String, String)>,
    /// What every command runs through, as [`TestServer::start_logged_through`].
    launcher: Vec<String>,
}

/// A command for the program `name`, run through `launcher` when it is
/// not empty.
fn launched(launcher: &[String], name: &str) -> Command {
    match launcher.split_first() {
        Some((program, arguments)) => {
            let mut command = Command::new(program);
            command.args(arguments).arg(binary(name));
            command
        }
        None => Command::new(binary(name)),
    }
}

impl TestClient {
    pub fn new() -> Self {
        Self::with_environment(&[])
    }

    /// A client whose every command runs with `environment` added.
    pub fn with_environment(environment: &[(&str, &str)]) -> Self {
        Self {
            config: tempfile::tempdir().expect("temp dir"),
            environment: environment
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            launcher: Vec::new(),
        }
    }

    /// A client whose every command runs through `launcher` (see
    /// [`TestServer::start_logged_through`]).
    pub fn through(launcher: &[&str]) -> Self {
        Self {
            launcher: launcher.iter().map(|word| (*word).to_owned()).collect(),
            ..Self::new()
        }
    }

    /// A `qftp` command with this client's config directory.
    pub fn command(&self, arguments: &[&str]) -> Command {
        let mut command = launched(&self.launcher, "qftp");
        command
            .env("QFTP_CONFIG_DIR", self.config.path())
            .env("NO_COLOR", "1")
            .envs(self.environment.iter().map(|(name, value)| (name, value)))
            .args(arguments);
        command
    }

    /// Starts `qftp ARGUMENTS` in the background with its output discarded;
    /// the caller stops it by its handle.
    pub fn spawn(&self, arguments: &[&str]) -> Child {
        self.command(arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting qftp")
    }

    /// Runs `qftp ARGUMENTS` with empty stdin.
    pub fn run(&self, arguments: &[&str]) -> Output {
        run_with_input(&mut self.command(arguments), "")
    }

    /// Runs `qftp ARGUMENTS`, asserts success, returns stdout.
    pub fn ok(&self, arguments: &[&str]) -> String {
        let output = self.run(arguments);
        assert!(
            output.status.success(),
            "qftp {arguments:?} failed: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs `qftp ARGUMENTS`, asserts failure, returns stderr.
    pub fn fails(&self, arguments: &[&str]) -> String {
        let output = self.run(arguments);
        assert!(
            !output.status.success(),
            "qftp {arguments:?} should have failed: {}",
            text(&output.stdout)
        );
        text(&output.stderr)
    }

    /// Logs in, pinning the server's fingerprint.
    pub fn login(&self, server: &TestServer, user: &str, password: &str) {
        let output = self.try_login(server, user, password);
        assert!(
            output.status.success(),
            "login failed: {}",
            text(&output.stderr)
        );
    }

    /// Attempts a login with `--fingerprint`.
    pub fn try_login(&self, server: &TestServer, user: &str, password: &str) -> Output {
        self.try_login_at(&server.host(), &server.fingerprint, user, password)
    }

    /// Attempts a login to `host` (the server itself, or something in front
    /// of it) pinning `fingerprint`.
    pub fn try_login_at(
        &self,
        host: &str,
        fingerprint: &str,
        user: &str,
        password: &str,
    ) -> Output {
        let target = format!("{user}@{host}");
        run_with_input(
            &mut self.command(&[
                "login",
                &target,
                "--password-stdin",
                "--fingerprint",
                fingerprint,
            ]),
            &format!("{password}\n"),
        )
    }

    /// The saved session file.
    pub fn session_file(&self) -> PathBuf {
        self.config.path().join("session.toml")
    }
}

/// Writes `size` bytes of deterministic pseudo-random data to `path`.
pub fn write_random(path: &Path, size: usize, seed: u64) {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(size);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("creating parent");
    }
    std::fs::write(path, data).expect("writing test data");
}

/// BLAKE3 of a file's content.
pub fn file_hash(path: &Path) -> blake3::Hash {
    blake3::hash(
        &std::fs::read(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display())),
    )
}

/// Relative path → content (`None` for directories) of everything under `root`.
pub fn snapshot(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("reading a directory") {
            let path = entry.expect("a directory entry").path();
            let relative = path
                .strip_prefix(root)
                .expect("beneath the root")
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                found.insert(relative, None);
                pending.push(path);
            } else {
                found.insert(
                    relative,
                    Some(std::fs::read(&path).expect("reading a file")),
                );
            }
        }
    }
    found
}

/// Waits for `child` at most `limit`; past it, kills it (by its PID) and
/// answers `None`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Waits until `condition` holds, for at most `limit`.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}
