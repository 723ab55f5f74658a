//! The impairment of one scenario on the link: an impairer (`cargo xtask
//! nfdelay`, [`crate::nfdelay`]) in each namespace, and the iptables rule
//! there that hands every IPv4 packet arriving on the veth to its netfilter
//! queue; removed (rules first) and stopped by PID when dropped.
//!
//! What delay and loss a scenario gets is [`super::impairment`]'s.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::commands::{READY_LIMIT, cleanup, iptables, set_up};
use super::impairment::Impairment;
use super::namespaces::{CLIENT_IF, CLIENT_NS, SERVER_IF, SERVER_NS};
use super::settings::Settings;
use crate::process::{self, Guard};
use crate::server::{command_in, log_files};

/// The netfilter queue of each namespace's impairer.
pub const QUEUE: u16 = 0;

/// The impairers of one scenario and their iptables rules; removed when
/// dropped (rules first, so no packet waits for a queue nobody serves).
#[derive(Debug)]
pub struct Impairer {
    /// Per namespace: its interface, the impairer and its log.
    sides: Vec<(&'static str, &'static str, Guard, PathBuf)>,
    rules: Vec<(&'static str, &'static str)>,
    logs: PathBuf,
}

impl Impairer {
    /// Starts an impairer in each namespace and steers the veth's incoming
    /// packets to it; nothing for a plain link.
    pub fn start(
        settings: &Settings<'_>,
        impairment: Impairment,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let mut impairer = Self {
            sides: Vec::new(),
            rules: Vec::new(),
            logs: settings.logs.to_owned(),
        };
        if impairment == Impairment::Plain {
            return Ok(impairer);
        }
        let xtask = settings.binaries.join("xtask");
        for (offset, (namespace, interface)) in [(CLIENT_NS, CLIENT_IF), (SERVER_NS, SERVER_IF)]
            .into_iter()
            .enumerate()
        {
            let log = settings
                .logs
                .join(format!("nfdelay-{namespace}-seed-{seed}.log"));
            let (stdout, stderr) = log_files(&log)?;
            let child = command_in(Some(namespace), &xtask)
                .arg("nfdelay")
                .args(["--queue", &QUEUE.to_string()])
                .args(["--delay-ms", &impairment.delay_ms().to_string()])
                .args(["--loss", &impairment.loss().to_string()])
                .args(["--seed", &(seed + offset as u64).to_string()])
                .stdin(std::process::Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .with_context(|| format!("starting {} nfdelay", xtask.display()))?;
            let mut guard = Guard::new(child, format!("nfdelay in {namespace}"), "TERM");
            let deadline = Instant::now() + READY_LIMIT;
            loop {
                let text = fs::read_to_string(&log).unwrap_or_default();
                if text.contains("nfdelay ready") {
                    break;
                }
                if guard.exited() {
                    bail!("nfdelay in {namespace} exited at once: {}", text.trim());
                }
                if Instant::now() >= deadline {
                    bail!(
                        "nfdelay in {namespace} was not ready within {} s",
                        READY_LIMIT.as_secs()
                    );
                }
                process::sleep(Duration::from_millis(50))?;
            }
            impairer.sides.push((namespace, interface, guard, log));
        }
        for (namespace, interface) in [(CLIENT_NS, CLIENT_IF), (SERVER_NS, SERVER_IF)] {
            let mut command = command_in(Some(namespace), iptables());
            command.args(rule("-A", interface));
            set_up(&mut command, "iptables -A", settings.logs)?;
            impairer.rules.push((namespace, interface));
        }
        Ok(impairer)
    }

    /// Removes the rules, stops the impairers and returns the counters they
    /// printed on exit.
    pub fn finish(&mut self) -> Vec<String> {
        for (namespace, interface) in std::mem::take(&mut self.rules) {
            let mut command = command_in(Some(namespace), iptables());
            command.args(rule("-D", interface));
            if let Err(error) = cleanup(&mut command, "iptables -D", &self.logs) {
                eprintln!("link: removing the rule in {namespace}: {error:#}");
            }
        }
        let mut counters = Vec::new();
        for (namespace, _, mut guard, log) in std::mem::take(&mut self.sides) {
            guard.stop();
            let text = fs::read_to_string(&log).unwrap_or_default();
            let line = text
                .lines()
                .rev()
                .find(|line| line.starts_with("nfdelay exit"))
                .map_or_else(
                    || format!("no counters; see {}", log.display()),
                    str::to_owned,
                );
            counters.push(format!(
                "impairer in {namespace} (packets arriving there): {line}"
            ));
        }
        counters
    }
}

impl Drop for Impairer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The arguments of the rule that steers packets arriving on `interface`
/// to the impairer's queue (`-A` adds it, `-D` removes it).
pub fn rule(action: &str, interface: &str) -> Vec<String> {
    [
        "-t",
        "raw",
        action,
        "PREROUTING",
        "-i",
        interface,
        "-j",
        "NFQUEUE",
        "--queue-num",
    ]
    .iter()
    .map(|word| (*word).to_owned())
    .chain([QUEUE.to_string()])
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_the_queue() {
        assert_eq!(
            rule("-A", "veth0").join(" "),
            "-t raw -A PREROUTING -i veth0 -j NFQUEUE --queue-num 0"
        );
    }
}
