//! The peers' sshd on the link: the peers script's sshd with a config
//! derived from the script's (its keys, listening on the link's server
//! address), started in the server namespace, checked with `ssh true`
//! from the client namespace, and stopped by PID, with its sessions, when
//! dropped.
//!
//! Finding the sshd and its config is [`super::peers`]'s.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::commands::{COMMAND_LIMIT, READY_LIMIT, set_up};
use super::namespaces::{CLIENT_NS, SERVER_IP, SERVER_NS};
use super::peers::Peers;
use super::settings::Settings;
use crate::process::{self, Guard};
use crate::server::{command_in, log_files};

/// The peers script's sshd, started by the benchmark in the server
/// namespace with a config derived from the script's (listening on the
/// link's address); its sessions and itself are stopped by PID when dropped.
#[derive(Debug)]
pub struct Sshd {
    guard: Guard,
}

impl Sshd {
    pub fn start(settings: &Settings<'_>, peers: &Peers) -> anyhow::Result<Self> {
        let original = fs::read_to_string(&peers.sshd_config)
            .with_context(|| format!("reading {}", peers.sshd_config.display()))?;
        let mut config = String::from(
            "# Derived by cargo xtask bench from the peers script's sshd config:\n\
             # the same keys and settings, listening on the link's server address.\n",
        );
        for line in original.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            if ["port", "listenaddress", "pidfile"].contains(&key.to_ascii_lowercase().as_str()) {
                continue;
            }
            config.push_str(line);
            config.push('\n');
        }
        config.push_str(&format!("Port 22\nListenAddress {SERVER_IP}\n"));
        let path = settings.work.join("sshd_config");
        fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        let _ = fs::remove_file(settings.known_hosts());

        let mut check = Command::new(&peers.sshd);
        check
            .arg("-t")
            .arg("-f")
            .arg(&path)
            .args(["-o", "PidFile=none"]);
        set_up(&mut check, "sshd -t", settings.logs)?;

        let log = settings.logs.join("link-sshd.log");
        let (stdout, stderr) = log_files(&log)?;
        let child = command_in(Some(SERVER_NS), &peers.sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&path)
            .args(["-o", "PidFile=none"])
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", peers.sshd.display()))?;
        let mut sshd = Self {
            guard: Guard::new(child, format!("sshd in {SERVER_NS}"), "TERM"),
        };
        let known_hosts = format!("UserKnownHostsFile={}", settings.known_hosts().display());
        let deadline = Instant::now() + READY_LIMIT;
        let check_log = settings.logs.join("link-ssh-check.log");
        loop {
            if sshd.guard.exited() {
                bail!("sshd exited at once; see {}", log.display());
            }
            let (stdout, stderr) = log_files(&check_log)?;
            let mut command = command_in(Some(CLIENT_NS), "ssh");
            command
                .arg("-F")
                .arg(&peers.ssh_config)
                .args(["-o", &known_hosts, "-o", "ConnectTimeout=2"])
                .arg(format!("root@{SERVER_IP}"))
                .arg("true")
                .stdout(stdout)
                .stderr(stderr);
            if process::run_ok(&mut command, None, COMMAND_LIMIT, "ssh true").is_ok() {
                break;
            }
            process::check_interrupted()?;
            if Instant::now() >= deadline {
                bail!(
                    "ssh root@{SERVER_IP} true did not succeed within {} s; see {} and {}",
                    READY_LIMIT.as_secs(),
                    check_log.display(),
                    log.display()
                );
            }
            process::sleep(Duration::from_millis(200))?;
        }
        eprintln!("link: sshd in {SERVER_NS} on {SERVER_IP}:22 (the peers script's keys)");
        Ok(sshd)
    }

    /// Stops whatever runs under the sshd (sessions and their children).
    pub fn end_sessions(&self) {
        process::stop_all(&process::descendants(self.guard.id()));
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.end_sessions();
        self.guard.stop();
    }
}
