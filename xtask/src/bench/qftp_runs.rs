//! The timed `qftp` runs of the loopback scenarios: each scenario's
//! command line and destination, the untimed runs that prepare one (seeding
//! the server for a download, filling the destination for a re-sync), the
//! timed run with its sync summary checked, and the final comparison of the
//! output with its source.
//!
//! Only qftp: the `cp` references are [`super::copy_runs`]'s, the peers
//! [`super::peer_runs`]' and [`super::rerun_runs`]'.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::rig::{RUN_LIMIT, Rig, reports_memory};
use super::scenario::{Kind, Scenario};
use super::sync_summary::{SyncSummary, check_summary};
use crate::data::{self, DataSet};
use crate::measure::memory::{Matcher, ProcessInfo};
use crate::measure::{self, Sample};
use crate::process;
use crate::server;

impl Rig<'_> {
    /// The `qftp` arguments of a scenario.
    pub fn qftp_arguments(&self, scenario: Scenario) -> Vec<String> {
        let source = self.paths.data.join(scenario.data_set().name());
        let source = source.display().to_string();
        match scenario {
            // The link and memory scenarios do not run here (see `run`).
            Scenario::Put1g
            | Scenario::LinkPlain
            | Scenario::LinkDelay
            | Scenario::LinkLoss
            | Scenario::MemCeiling => vec!["put".into(), "--quiet".into(), source],
            Scenario::Put10k | Scenario::Put1k1m => vec![
                "put".into(),
                "-r".into(),
                "-j".into(),
                self.arguments.jobs.to_string(),
                "--quiet".into(),
                source,
            ],
            Scenario::Get10k => vec![
                "get".into(),
                "-r".into(),
                "-j".into(),
                self.arguments.jobs.to_string(),
                "--quiet".into(),
                format!("/{}", DataSet::Small.name()),
                self.paths.downloads.display().to_string(),
            ],
            Scenario::Get1g => vec![
                "get".into(),
                "--quiet".into(),
                format!("/{}", DataSet::Big.name()),
                self.paths.downloads.display().to_string(),
            ],
            // Not --quiet: the summary line tells what was sent.
            Scenario::Sync10k
            | Scenario::Resync10k
            | Scenario::Sync1k1m
            | Scenario::Resync1k1m
            | Scenario::Sync100k
            | Scenario::Resync100k => {
                vec![
                    "sync".into(),
                    "-j".into(),
                    self.arguments.jobs.to_string(),
                    source,
                    format!("/{}", sync_name(scenario.data_set())),
                ]
            }
            // The bottleneck scenarios: one upload, like the other link ones.
            _ => vec!["put".into(), "--quiet".into(), source],
        }
    }

    /// The `qftp` command of a scenario, run in the workspace, its output
    /// going to `log`.
    fn qftp_command(&self, scenario: Scenario, log: &Path) -> anyhow::Result<Command> {
        let (stdout, stderr) = server::log_files(log)?;
        let mut command = self.client.command(self.qftp_arguments(scenario));
        command
            .current_dir(&self.paths.workspace)
            .stdout(stdout)
            .stderr(stderr);
        Ok(command)
    }

    /// Where a scenario's qftp output lands.
    pub fn destination(&self, scenario: Scenario) -> PathBuf {
        let set = scenario.data_set();
        match scenario.kind() {
            Kind::Put | Kind::Link | Kind::Memory => self.home.join(set.name()),
            Kind::Get => self.paths.downloads.join(set.name()),
            Kind::Sync | Kind::Resync => self.home.join(sync_name(set)),
        }
    }

    /// One timed `qftp` run of `scenario`.
    pub fn qftp_sample(
        &self,
        round: u32,
        scenario: Scenario,
        source: &Path,
    ) -> anyhow::Result<Sample> {
        let destination = self.destination(scenario);
        let log = self
            .paths
            .logs
            .join(format!("qftp-{}-round-{round}.log", scenario.name()));
        let files = scenario.data_set().files();
        let mut prepare = || -> anyhow::Result<()> {
            match scenario.kind() {
                Kind::Get => {
                    self.ensure_remote(scenario.data_set(), source)?;
                    server::remove_with_partial(&destination)?;
                }
                Kind::Put | Kind::Sync | Kind::Link | Kind::Memory => {
                    server::remove_with_partial(&destination)?;
                }
                Kind::Resync => self.fill(round, scenario)?,
            }
            measure::flush_file_systems()?;
            // Downloads read the server's copy, uploads the local one.
            if scenario.is_upload() {
                data::warm(source)
            } else {
                data::warm(&self.home.join(scenario.data_set().name()))
            }
        };
        let mut timed = || -> anyhow::Result<Duration> {
            let mut command = self.qftp_command(scenario, &log)?;
            let outcome = process::run_ok(&mut command, None, RUN_LIMIT, "qftp")
                .with_context(|| format!("see {}", log.display()))?;
            // The summary must say that everything (first run) or nothing
            // (re-run) was sent.
            let expected = match scenario.kind() {
                Kind::Put | Kind::Get | Kind::Link | Kind::Memory => None,
                Kind::Sync => Some(SyncSummary {
                    sent: files,
                    unchanged: 0,
                    failed: 0,
                }),
                Kind::Resync => Some(SyncSummary {
                    sent: 0,
                    unchanged: files,
                    failed: 0,
                }),
            };
            if let Some(expected) = expected {
                check_summary(&log, expected)?;
            }
            Ok(outcome.elapsed)
        };
        // The client is this process's `qftp` child; the server is read by
        // its pid.
        let watch = reports_memory(scenario.data_set()).then(|| {
            let me = std::process::id();
            let client: Matcher =
                Arc::new(move |info: &ProcessInfo| info.parent == me && info.name == "qftp");
            (client, None)
        });
        self.measure_with_memory(
            round,
            &format!("qftp {}", scenario.name()),
            &mut prepare,
            &mut timed,
            watch,
        )
    }

    /// Runs a sync scenario's `qftp sync` once, untimed, so its destination
    /// is complete and unchanged (nothing is sent if it already was).
    pub fn fill(&self, round: u32, scenario: Scenario) -> anyhow::Result<()> {
        let log = self
            .paths
            .logs
            .join(format!("qftp-{}-fill-round-{round}.log", scenario.name()));
        let mut command = self.qftp_command(scenario, &log)?;
        process::run_ok(&mut command, None, RUN_LIMIT, "qftp sync (untimed fill)")
            .with_context(|| format!("see {}", log.display()))?;
        let text =
            std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
        match SyncSummary::find(&text) {
            Some((summary, _)) if summary.failed == 0 => Ok(()),
            Some((_, line)) => bail!("the untimed fill run failed: {line}"),
            None => bail!("no sync summary in {}", log.display()),
        }
    }

    /// Makes sure the server holds the data set `set` for a download,
    /// uploading it with `qftp` (not timed) if it is missing.
    pub fn ensure_remote(&self, set: DataSet, source: &Path) -> anyhow::Result<()> {
        let remote = self.home.join(set.name());
        let complete = if set.is_tree() {
            data::verify(source, &remote).is_ok()
        } else {
            std::fs::metadata(&remote).is_ok_and(|metadata| metadata.len() == set.bytes())
        };
        if complete {
            return Ok(());
        }
        server::remove_with_partial(&remote)?;
        let log = self
            .paths
            .logs
            .join(format!("qftp-seed-{}.log", set.name()));
        let (stdout, stderr) = server::log_files(&log)?;
        let mut command = self.client.command(["put", "-r", "--quiet"]);
        command.arg(source).stdout(stdout).stderr(stderr);
        process::run_ok(
            &mut command,
            None,
            RUN_LIMIT,
            "qftp put (seeding the server)",
        )
        .with_context(|| format!("see {}", log.display()))?;
        Ok(())
    }

    /// Compares a scenario's qftp output with its source.
    pub fn verify(&self, scenario: Scenario, source: &Path) -> String {
        match data::verify(source, &self.destination(scenario)) {
            Ok(1) => "verified (BLAKE3)".into(),
            Ok(files) => format!("verified ({files} files, BLAKE3)"),
            Err(error) => format!("NOT verified: {error:#}"),
        }
    }
}

/// The remote directory of the sync scenarios of `set`.
fn sync_name(set: DataSet) -> String {
    format!("sync-{}", set.name())
}
