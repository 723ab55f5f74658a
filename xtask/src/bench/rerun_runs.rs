//! The peers' no-change re-runs in the `resync-*` scenarios (rsync, lftp
//! against the peers script's sshd, which is started for them and stopped
//! by PID): getting them ready, each round's timed re-runs after an
//! untimed fill and a dry run that lists nothing to do, and the check of
//! their destinations after the last round. The first runs of a sync
//! scenario the script has no case for (`sync-100k`) are made the same way,
//! into an emptied destination.
//!
//! The commands and the sshd come from [`crate::rerun`]; the script's
//! first-run cases are [`super::peer_runs`]'.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::args::BenchArgs;
use super::paths::Paths;
use super::rig::{RUN_LIMIT, Rig, reports_memory};
use super::scenario::{Kind, Scenario};
use crate::data::{self, DataSet};
use crate::measure::memory::{Matcher, ProcessInfo};
use crate::measure::{self, Sample};
use crate::peers::Peers;
use crate::process;
use crate::report::ScenarioReport;
use crate::rerun::{self, Rerun};
use crate::server;

/// The peers' no-change re-runs, ready to measure, or why they cannot be:
/// the commands and sshd config come from the peers script; if its sshd
/// config is missing or does not pass `sshd -t`, its `setup` phase runs once.
pub fn set_up_rerun(
    arguments: &BenchArgs,
    paths: &Paths,
    scenarios: &[Scenario],
    peers: Option<&Peers>,
) -> (Option<Rerun>, Option<String>) {
    let wanted = scenarios.iter().any(|scenario| {
        runs_here(*scenario)
            && arguments
                .peer_tools_for(*scenario)
                .iter()
                .any(|tool| rerun::Tool::from_case_id(tool).is_some())
    });
    let Some(peers) = peers.filter(|_| wanted) else {
        return (None, None);
    };
    let result = Rerun::from_script(peers.script()).and_then(|rerun| {
        if let Err(error) = rerun.check(&paths.logs) {
            eprintln!("peers: the script's sshd is not ready ({error:#}); running its setup phase");
            peers.setup()?;
            rerun.check(&paths.logs)?;
        }
        Ok(rerun)
    });
    match result {
        Ok(rerun) => (Some(rerun), None),
        Err(error) => {
            eprintln!("xtask: warning: the peers' no-change re-runs cannot be measured: {error:#}");
            (None, Some(format!("not measured: {error:#}")))
        }
    }
}

/// Whether this module times the peers of `scenario`: the no-change
/// re-runs, and the first syncs that the peers script has no case for.
fn runs_here(scenario: Scenario) -> bool {
    match scenario.kind() {
        Kind::Resync => true,
        Kind::Sync => scenario.peer_scenario().is_none(),
        _ => false,
    }
}

impl Rig<'_> {
    /// Where a peer's no-change re-run of `set` writes.
    pub fn peer_copy(&self, tool: &str, set: DataSet) -> PathBuf {
        self.paths
            .peer_copies
            .join(format!("{tool}-{}", set.name()))
    }

    /// The no-change re-runs of the peers (rsync, lftp) of this round: the
    /// script's sshd runs, as a child of this process, only meanwhile.
    pub fn measure_reruns(
        &self,
        rerun: &Rerun,
        round: u32,
        scenarios: &[Scenario],
        reports: &mut [ScenarioReport],
        sources: &BTreeMap<&str, PathBuf>,
    ) -> anyhow::Result<()> {
        let mut wanted = Vec::new();
        for (index, (scenario, report)) in scenarios.iter().zip(reports.iter()).enumerate() {
            if !runs_here(*scenario) {
                continue;
            }
            for (peer, series) in report.peers.iter().enumerate() {
                if let (None, Some(tool)) =
                    (&series.unavailable, rerun::Tool::from_case_id(&series.tool))
                {
                    wanted.push((index, peer, tool));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        eprintln!("  peers' no-change re-runs: starting sshd with the peers script's config");
        let mut sshd = match rerun.start_sshd(&self.paths.logs) {
            Ok(sshd) => sshd,
            Err(error) => {
                process::check_interrupted()?;
                eprintln!("  peers' no-change re-runs: {error:#}");
                for (index, peer, _) in wanted {
                    reports[index].peers[peer].samples.push(Sample::failed(
                        round,
                        1,
                        format!("starting the peers' sshd: {error:#}"),
                    ));
                }
                return Ok(());
            }
        };
        for (index, peer, tool) in wanted {
            let scenario = scenarios[index];
            let source = &sources[scenario.data_set().name()];
            let name = reports[index].peers[peer].tool.clone();
            let sample = self.rerun_sample(rerun, round, scenario, tool, &name, source)?;
            reports[index].peers[peer].samples.push(sample);
        }
        sshd.stop();
        Ok(())
    }

    /// One timed no-change re-run of a peer: before it (untimed) one run of
    /// the same command fills the destination, and a dry run must list
    /// nothing to do. For a first sync, the destination is emptied instead.
    fn rerun_sample(
        &self,
        rerun: &Rerun,
        round: u32,
        scenario: Scenario,
        tool: rerun::Tool,
        name: &str,
        source: &Path,
    ) -> anyhow::Result<Sample> {
        let copy = self.peer_copy(name, scenario.data_set());
        let log = |step: &str| {
            self.paths.logs.join(format!(
                "{name}-{}{step}-round-{round}.log",
                scenario.name()
            ))
        };
        let (fill_log, dry_log, timed_log) = (log("-fill"), log("-dry-run"), log(""));
        let run = |dry_run: bool, log: &Path, label: &str| -> anyhow::Result<Duration> {
            let (mut command, _) = rerun.command(tool, source, &copy, dry_run)?;
            let (stdout, stderr) = server::log_files(log)?;
            command.stdout(stdout).stderr(stderr);
            let outcome = process::run_ok(&mut command, None, RUN_LIMIT, label)
                .with_context(|| format!("see {}", log.display()))?;
            Ok(outcome.elapsed)
        };
        let first_run = scenario.kind() == Kind::Sync;
        let mut prepare = || -> anyhow::Result<()> {
            if first_run {
                data::remove(&copy)?;
                measure::flush_file_systems()?;
                return data::warm(source);
            }
            run(false, &fill_log, &format!("{name} (untimed fill)"))?;
            run(true, &dry_log, &format!("{name} (dry run)"))?;
            let output = std::fs::read_to_string(&dry_log)
                .with_context(|| format!("reading {}", dry_log.display()))?;
            let pending = Rerun::pending(tool, &output, &copy);
            if let Some(first) = pending.first() {
                bail!(
                    "after the fill run a dry run still lists {} action(s), e.g. {first:?}; see {}",
                    pending.len(),
                    dry_log.display()
                );
            }
            measure::flush_file_systems()?;
            data::warm(source)
        };
        let mut timed = || run(false, &timed_log, name);
        // The local side is this process's child of the tool's name; the
        // remote side, started by sshd, is told by its `--server` argument.
        let watch = reports_memory(scenario.data_set()).then(|| {
            let me = std::process::id();
            let program = name.to_owned();
            let remote_program = name.to_owned();
            let local: Matcher =
                Arc::new(move |info: &ProcessInfo| info.parent == me && info.name == program);
            let remote: Matcher = Arc::new(move |info: &ProcessInfo| {
                info.name == remote_program && info.arguments.iter().any(|part| part == "--server")
            });
            (local, Some(remote))
        });
        self.measure_with_memory(
            round,
            &format!("{name} {}", scenario.name()),
            &mut prepare,
            &mut timed,
            watch,
        )
    }

    /// Compares each re-run peer's destination with its source, after the
    /// last round.
    pub fn verify_reruns(
        &self,
        scenarios: &[Scenario],
        reports: &mut [ScenarioReport],
        sources: &BTreeMap<&str, PathBuf>,
    ) {
        for (scenario, report) in scenarios.iter().zip(reports) {
            if !runs_here(*scenario) {
                continue;
            }
            let source = &sources[scenario.data_set().name()];
            for series in &mut report.peers {
                if series.unavailable.is_some() || series.samples.is_empty() {
                    continue;
                }
                let copy = self.peer_copy(&series.tool, scenario.data_set());
                let verified = match data::verify(source, &copy) {
                    Ok(files) => format!("verified ({files} files, BLAKE3)"),
                    Err(error) => format!("NOT verified: {error:#}"),
                };
                eprintln!("  {} {}: {verified}", series.tool, scenario.name());
                series.verified = Some(verified);
            }
        }
    }
}
