//! One timed run on the link: a tool's upload from the client namespace,
//! stopped at its time limit (a time-out, with how much had arrived), its
//! output checked against the source's BLAKE3, timed through
//! [`crate::measure`].
//!
//! Which tool, and its command line, is [`super::tools`]'; the rounds are
//! [`super::rounds`]'.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::peers::Peers;
use super::settings::Settings;
use super::sshd::Sshd;
use super::tools::{Tool, peer_command};
use crate::data::{self, DataSet};
use crate::measure::{self, Sample, TimedOut};
use crate::process::{self, Finish};
use crate::server::{BenchClient, log_files, remove_with_partial};

/// One timed run of `tool` (in the client namespace), its output checked
/// against the source's BLAKE3 afterwards.
#[allow(clippy::too_many_arguments)]
pub fn timed_run(
    settings: &Settings<'_>,
    client: &BenchClient,
    peers: Option<(&Peers, &Sshd)>,
    tool: Tool,
    scenario: &str,
    round: u32,
    limit: Duration,
    rtt_ms: u32,
    expected: &blake3::Hash,
) -> anyhow::Result<Sample> {
    let name = DataSet::Link.name();
    let directory = settings.work.join(tool.destination());
    let output = directory.join(name);
    let slug = tool.name().replace([' ', '(', ')', ','], "");
    let log = settings
        .logs
        .join(format!("{scenario}-{slug}-round-{round}.log"));
    let mut prepare = || -> anyhow::Result<()> {
        if tool == Tool::Qftp {
            remove_with_partial(&output)?;
        } else {
            data::remove(&directory)?;
            fs::create_dir_all(&directory)
                .with_context(|| format!("creating {}", directory.display()))?;
        }
        measure::flush_file_systems()?;
        data::warm(settings.source)
    };
    let mut timed = || -> anyhow::Result<Duration> {
        let mut command = match (tool, peers) {
            (Tool::Qftp, _) => {
                let mut command = client.command(["put", "--quiet"]);
                command.arg(settings.source);
                command
            }
            (_, Some((peers, _))) => peer_command(settings, peers, tool, rtt_ms),
            (_, None) => bail!("{} needs the peers' sshd", tool.name()),
        };
        let (stdout, stderr) = log_files(&log)?;
        command.stdout(stdout).stderr(stderr);
        let finish = process::run_bounded(&mut command, limit, tool.name());
        if let Some((_, sshd)) = peers {
            // A stopped client can leave its server side running (e.g. qcp's).
            sshd.end_sessions();
        }
        match finish? {
            Finish::Exited(outcome) if outcome.status.success() => {
                let found = data::hash(&output)
                    .with_context(|| format!("checking the output {}", output.display()))?;
                if found != *expected {
                    bail!("{} differs from the source (BLAKE3)", output.display());
                }
                Ok(outcome.elapsed)
            }
            Finish::Exited(outcome) => {
                bail!(
                    "{} failed ({}); see {}",
                    tool.name(),
                    outcome.status,
                    log.display()
                )
            }
            Finish::TimedOut(elapsed) => {
                let arrived = bytes_under(&directory);
                eprintln!(
                    "  {}: stopped after {:.1} s",
                    tool.name(),
                    elapsed.as_secs_f64()
                );
                Err(TimedOut(format!(
                    "stopped at the {} s limit with {:.1} of {:.1} MB arrived",
                    limit.as_secs(),
                    arrived as f64 / 1e6,
                    DataSet::Link.bytes() as f64 / 1e6
                ))
                .into())
            }
        }
    };
    measure::measure(
        settings.quiet_wait,
        round,
        &format!("{} {scenario}", tool.name()),
        &mut prepare,
        &mut timed,
    )
}

/// Bytes in the regular files under `directory` (a partial output included).
fn bytes_under(directory: &Path) -> u64 {
    data::files(directory)
        .unwrap_or_default()
        .iter()
        .filter_map(|relative| fs::metadata(directory.join(relative)).ok())
        .map(|metadata| metadata.len())
        .sum()
}
