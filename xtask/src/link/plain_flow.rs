//! Plain TCP flows on the link ([`crate::tcpflow`]): a sink in the server
//! namespace, a sender in the client namespace, and the link rate that
//! one Cubic flow measures, against which every result of a bottleneck
//! scenario is reported as a share.
//!
//! The sink is stopped by PID when dropped. Reading its samples is
//! [`super::throughput`]'s.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::commands::READY_LIMIT;
use super::namespaces::{CLIENT_NS, SERVER_IP, SERVER_NS};
use super::settings::Settings;
use super::throughput::{Point, parse_sink, steady_rate};
use crate::link_rate::LinkRate;
use crate::process::{self, Guard};
use crate::server::{command_in, log_files};

/// The sink's port on the server's address.
pub const SINK_PORT: u16 = 5201;

/// A running sink; its output is the samples of every connection.
#[derive(Debug)]
pub struct Sink {
    guard: Guard,
    log: PathBuf,
}

impl Sink {
    /// Starts a sink in the server namespace and waits until it listens.
    pub fn start(settings: &Settings<'_>, name: &str) -> anyhow::Result<Self> {
        let log = settings.logs.join(format!("{name}-tcpflow-sink.log"));
        let (stdout, stderr) = log_files(&log)?;
        let child = command_in(Some(SERVER_NS), settings.binaries.join("xtask"))
            .args(["tcpflow", "sink", "--listen"])
            .arg(format!("{SERVER_IP}:{SINK_PORT}"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .context("starting the tcpflow sink")?;
        let mut guard = Guard::new(child, format!("tcpflow sink in {SERVER_NS}"), "TERM");
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains("tcpflow ready") {
                break;
            }
            if guard.exited() {
                bail!("the tcpflow sink exited at once: {}", text.trim());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the tcpflow sink was not ready within {} s",
                    READY_LIMIT.as_secs()
                );
            }
            process::sleep(Duration::from_millis(50))?;
        }
        Ok(Self { guard, log })
    }

    /// The samples of each connection so far, by connection id (1 is the first).
    pub fn flows(&self) -> std::collections::BTreeMap<u64, Vec<Point>> {
        parse_sink(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Stops the sink.
    pub fn stop(mut self) {
        self.guard.stop();
    }
}

/// The sender of `bytes` through the link with Cubic, in the client
/// namespace (not started).
pub fn sender(binaries: &Path, bytes: u64, limit: Duration) -> Command {
    let mut command = command_in(Some(CLIENT_NS), binaries.join("xtask"));
    command
        .args(["tcpflow", "send", "--to"])
        .arg(format!("{SERVER_IP}:{SINK_PORT}"))
        .args(["--bytes", &bytes.to_string()])
        .args(["--congestion", "cubic"])
        .args(["--max-secs", &limit.as_secs().to_string()]);
    command
}

/// Sends `bytes` through the link with one Cubic flow and returns its
/// steady rate (see [`steady_rate`]).
pub fn measure_link_rate(
    settings: &Settings<'_>,
    name: &str,
    bytes: u64,
    limit: Duration,
) -> anyhow::Result<LinkRate> {
    let sink = Sink::start(settings, &format!("{name}-rate"))?;
    let log = settings.logs.join(format!("{name}-rate-tcpflow-send.log"));
    let (stdout, stderr) = log_files(&log)?;
    let mut command = sender(settings.binaries, bytes, limit);
    command.stdout(stdout).stderr(stderr);
    let outcome = process::run(&mut command, None, limit + READY_LIMIT, "tcpflow send");
    // Let the sink report the connection's end.
    process::sleep(Duration::from_millis(300))?;
    let flows = sink.flows();
    sink.stop();
    let outcome = outcome?;
    if !outcome.status.success() {
        bail!(
            "tcpflow send failed ({}); see {}",
            outcome.status,
            log.display()
        );
    }
    let points = flows.get(&1).context("the sink saw no connection")?;
    let rate = steady_rate(points).context("too few samples for a rate")?;
    Ok(LinkRate {
        bytes_per_second: Some(rate),
        how: format!(
            "one TCP Cubic flow of {:.0} MiB (`xtask tcpflow`), bytes arrived at the sink \
             over the last three quarters of its time: {:.2} MB/s ({:.0} Mbit/s); whole \
             flow {:.2} s",
            bytes as f64 / f64::from(1u32 << 20),
            rate / 1e6,
            rate * 8.0 / 1e6,
            outcome.elapsed.as_secs_f64()
        ),
    })
}
