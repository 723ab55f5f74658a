//! The `mem-ceiling` scenario as the benchmark runs it: `cargo xtask
//! mem-ceiling` once per round, timed by its own report of the stream's
//! duration, and the note on how close `put-1g` came to that ceiling.
//!
//! The QUIC sender and receiver are [`crate::memceiling`]'s.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::args::BenchArgs;
use super::paths::Paths;
use super::scenario::Scenario;
use crate::measure;
use crate::memceiling;
use crate::process;
use crate::report::{ScenarioReport, Series};
use crate::server;

/// The `mem-ceiling` scenario: `cargo xtask mem-ceiling` once per round.
pub fn mem_ceiling(arguments: &BenchArgs, paths: &Paths) -> anyhow::Result<ScenarioReport> {
    const BYTES: u64 = 1 << 30;
    let xtask = paths.snapshot.join("xtask");
    let reason = "n/a (memory to memory)";
    let mut report = ScenarioReport {
        name: Scenario::MemCeiling.name().into(),
        description: Scenario::MemCeiling.description(),
        data_set: None,
        files: 1,
        bytes: BYTES,
        qftp: Series::new(
            "qftp",
            format!(
                "cargo xtask mem-ceiling --bytes {BYTES} (time from opening the stream to the \
                 receiver seeing its end; the handshake and process start are not counted)"
            ),
        ),
        copy_syncfs: Series::unavailable("cp + sync -f", reason),
        copy_fsync_each: Series::unavailable("cp + fsync each file", reason),
        peers: Vec::new(),
        verified: "n/a: bytes are counted, not checked (no disk, no hashing)".into(),
        path: None,
        notes: Vec::new(),
    };
    for round in 1..=arguments.rounds {
        let log = paths.logs.join(format!("mem-ceiling-round-{round}.log"));
        let mut prepare = || Ok(());
        let mut timed = || -> anyhow::Result<Duration> {
            let (stdout, stderr) = server::log_files(&log)?;
            let mut command = Command::new(&xtask);
            command
                .args(["mem-ceiling", "--bytes", &BYTES.to_string()])
                .stdout(stdout)
                .stderr(stderr);
            process::run_ok(
                &mut command,
                None,
                process::SHORT_COMMAND_LIMIT,
                "xtask mem-ceiling",
            )
            .with_context(|| format!("see {}", log.display()))?;
            let text = std::fs::read_to_string(&log)
                .with_context(|| format!("reading {}", log.display()))?;
            let (seconds, bytes) = memceiling::parse(&text)
                .with_context(|| format!("no `seconds=` line in {}", log.display()))?;
            if bytes != BYTES || !seconds.is_finite() || seconds <= 0.0 {
                bail!(
                    "unexpected result {seconds} s for {bytes} bytes; see {}",
                    log.display()
                );
            }
            Ok(Duration::from_secs_f64(seconds))
        };
        let sample = measure::measure(
            Duration::from_secs(arguments.quiet_wait),
            round,
            "mem-ceiling",
            &mut prepare,
            &mut timed,
        )?;
        report.qftp.samples.push(sample);
    }
    if let Some(median) = report.qftp.median() {
        report.notes.push(format!(
            "{:.2} GB/s memory to memory over one QUIC stream (median {median:.2} s for 1 GiB)",
            BYTES as f64 / median / 1e9
        ));
    }
    Ok(report)
}

/// Adds to the `mem-ceiling` row how close `put-1g` came to it, when both ran.
pub fn compare_with_ceiling(reports: &mut [ScenarioReport]) {
    let median = |name: &str| {
        reports
            .iter()
            .find(|report| report.name == name)
            .and_then(|report| report.qftp.median())
    };
    let (Some(ceiling), Some(put)) = (
        median(Scenario::MemCeiling.name()),
        median(Scenario::Put1g.name()),
    ) else {
        return;
    };
    if let Some(report) = reports
        .iter_mut()
        .find(|report| report.name == Scenario::MemCeiling.name())
    {
        report.notes.push(format!(
            "put-1g moved the same 1 GiB from disk to disk in {put:.2} s ({:.2} GB/s, including \
             process start, login, hashing and fsync): {:.0} % of this ceiling",
            (1u64 << 30) as f64 / put / 1e9,
            ceiling / put * 100.0
        ));
    }
}
