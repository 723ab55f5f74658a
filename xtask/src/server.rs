//! The qftp server and client under test, driven through their command
//! lines exactly as a user would: `qftp-server init`, `user add
//! --password-stdin`, `serve --listen 127.0.0.1:0`, then `qftp login
//! --password-stdin --fingerprint` with its own `QFTP_CONFIG_DIR`.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::process::{self, Guard};

/// The user the benchmark logs in as.
pub const USER: &str = "bench";

/// Time limit of the admin commands and of `qftp login`.
const ADMIN_LIMIT: Duration = Duration::from_secs(120);

/// How long the server may take to print its `listening on` line.
const START_LIMIT: Duration = Duration::from_secs(60);

/// Where a server runs: its listening address, the network namespace it is
/// started in (`ip netns exec NS`), and the prefix of its log files.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// `--listen` of `qftp-server serve`, e.g. `127.0.0.1:0`.
    pub listen: &'a str,
    /// The network namespace, if not this process's.
    pub netns: Option<&'a str>,
    /// Prefix of its log file names, e.g. `link-`.
    pub log_prefix: &'a str,
}

impl Placement<'static> {
    /// 127.0.0.1 with a free port, in this network namespace.
    pub const LOOPBACK: Self = Self {
        listen: "127.0.0.1:0",
        netns: None,
        log_prefix: "",
    };
}

/// `program`, run inside the network namespace `netns` when there is one.
pub fn command_in(netns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A running `qftp-server` with a root of its own; stopped when dropped.
#[derive(Debug)]
pub struct BenchServer {
    root: PathBuf,
    process: Guard,
    /// The bound UDP address.
    pub address: SocketAddr,
    /// `SHA256:HEX` of its certificate.
    pub fingerprint: String,
}

impl BenchServer {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Creates a fresh root at `root` (removing an old one), adds [`USER`]
    /// with `password` and serves where `placement` says. Output of the
    /// server goes to `logs/PREFIXqftp-server.log`.
    pub fn start(
        binaries: &Path,
        root: &Path,
        password: &str,
        logs: &Path,
        placement: Placement<'_>,
    ) -> anyhow::Result<Self> {
        let prefix = placement.log_prefix;
        let binary = binaries.join("qftp-server");
        crate::data::remove(root)?;
        let admin = |arguments: &[&str], input: Option<&[u8]>, label: &str| {
            let log = logs.join(format!("{prefix}{}.log", label.replace(' ', "-")));
            let mut command = Command::new(&binary);
            let (stdout, stderr) = log_files(&log)?;
            command
                .arg("--root")
                .arg(root)
                .args(arguments)
                .stdout(stdout)
                .stderr(stderr);
            process::run_ok(&mut command, input, ADMIN_LIMIT, label)
                .with_context(|| format!("see {}", log.display()))
        };
        admin(&["init"], None, "qftp-server init")?;
        let password_line = format!("{password}\n");
        admin(
            &["user", "add", USER, "--password-stdin"],
            Some(password_line.as_bytes()),
            "qftp-server user add",
        )?;
        let log = logs.join(format!("{prefix}qftp-server.log"));
        let child = command_in(placement.netns, &binary)
            .arg("--root")
            .arg(root)
            .args(["serve", "--listen", placement.listen])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut process = Guard::new(child, "qftp-server", "TERM");
        let stdout = process
            .stdout()
            .context("the standard output of qftp-server")?;
        let (sender, receiver) = mpsc::channel();
        let mut copy = log_file(&logs.join(format!("{prefix}qftp-server-stdout.log")))?;
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = sender.send(first);
            // Keep draining, so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut copy);
        });
        let line = match receiver.recv_timeout(START_LIMIT) {
            Ok(line) => line.context("reading the first line of qftp-server")?,
            Err(_) => bail!(
                "qftp-server printed nothing within {} s; see {}",
                START_LIMIT.as_secs(),
                log.display()
            ),
        };
        let (address, fingerprint) = parse_listening_line(&line)
            .with_context(|| format!("qftp-server did not start; see {}", log.display()))?;
        Ok(Self {
            root: root.to_owned(),
            process,
            address,
            fingerprint,
        })
    }

    /// The home directory of [`USER`] on disk.
    pub fn home(&self) -> PathBuf {
        self.root.join("homes").join(USER)
    }

    /// Stops the server (SIGTERM, then SIGKILL) and reaps it.
    pub fn stop(mut self) {
        self.process.stop();
    }
}

/// Parses `listening on ADDR certificate SHA256:...`.
fn parse_listening_line(line: &str) -> anyhow::Result<(SocketAddr, String)> {
    let mut words = line.split_whitespace();
    if words.next() != Some("listening") || words.next() != Some("on") {
        bail!("unexpected first line {line:?}");
    }
    let address = words
        .next()
        .context("no address on the listening line")?
        .parse()
        .with_context(|| format!("no address in {line:?}"))?;
    let fingerprint = words
        .find(|word| word.starts_with("SHA256:"))
        .with_context(|| format!("no fingerprint in {line:?}"))?
        .to_owned();
    Ok((address, fingerprint))
}

/// Creates (truncating) a log file to hand to a child as stdout or stderr.
pub fn log_file(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// One log file (truncated) as a child's stdout and stderr.
pub fn log_files(path: &Path) -> anyhow::Result<(File, File)> {
    let file = log_file(path)?;
    let copy = file
        .try_clone()
        .with_context(|| format!("duplicating the handle of {}", path.display()))?;
    Ok((file, copy))
}

/// The `qftp` client with a config directory of its own.
#[derive(Debug)]
pub struct BenchClient {
    binary: PathBuf,
    config: PathBuf,
    /// The network namespace it runs in, if not this process's.
    netns: Option<String>,
    /// Prefix of its log file names.
    log_prefix: String,
}

impl BenchClient {
    /// A client using `binaries/qftp` with its session in `config`.
    pub fn new(binaries: &Path, config: &Path) -> Self {
        Self {
            binary: binaries.join("qftp"),
            config: config.to_owned(),
            netns: None,
            log_prefix: String::new(),
        }
    }

    /// The same client, run inside the network namespace `netns`, its logs
    /// named with `log_prefix`.
    pub fn in_netns(mut self, netns: &str, log_prefix: &str) -> Self {
        self.netns = Some(netns.to_owned());
        self.log_prefix = log_prefix.to_owned();
        self
    }

    /// A `qftp ARGUMENTS` command.
    pub fn command<I, S>(&self, arguments: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = command_in(self.netns.as_deref(), &self.binary);
        command
            .env("QFTP_CONFIG_DIR", &self.config)
            .env("NO_COLOR", "1")
            .args(arguments);
        command
    }

    /// Logs in to `server` as [`USER`], pinning its fingerprint.
    pub fn login(&self, server: &BenchServer, password: &str, logs: &Path) -> anyhow::Result<()> {
        let target = format!("{USER}@{}", server.address);
        let log = logs.join(format!("{}qftp-login.log", self.log_prefix));
        let mut command = self.command([
            "login",
            &target,
            "--password-stdin",
            "--fingerprint",
            &server.fingerprint,
        ]);
        let (stdout, stderr) = log_files(&log)?;
        command.stdout(stdout).stderr(stderr);
        let password_line = format!("{password}\n");
        process::run_ok(
            &mut command,
            Some(password_line.as_bytes()),
            ADMIN_LIMIT,
            "qftp login",
        )
        .with_context(|| format!("see {}", log.display()))?;
        Ok(())
    }
}

/// Removes `path` and the partial file qftp may have left next to it
/// (`.NAME.qftp-part`), so a run starts from an empty destination.
pub fn remove_with_partial(path: &Path) -> anyhow::Result<()> {
    crate::data::remove(path)?;
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        let partial = format!(".{}.qftp-part", name.to_string_lossy());
        crate::data::remove(&parent.join(partial))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_is_parsed() {
        let (address, fingerprint) =
            parse_listening_line("listening on 127.0.0.1:40123 certificate SHA256:abcd\n").unwrap();
        assert_eq!(address.port(), 40123);
        assert_eq!(fingerprint, "SHA256:abcd");
        assert!(parse_listening_line("error: no root\n").is_err());
    }
}
