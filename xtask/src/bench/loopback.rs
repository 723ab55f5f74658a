//! The loopback scenarios, round by round: the data sets, the peers, the
//! `qftp-server` on 127.0.0.1 and the logged-in client are set up once;
//! each round then times one `qftp` run of every scenario, the `cp`
//! references of every data set copied in full, the peers script's
//! first-run cases and the peers' no-change re-runs; after the last round
//! every output is compared with its source.
//!
//! It orders the runs and fills the rows; each kind of run is its own file
//! ([`super::qftp_runs`], [`super::copy_runs`], [`super::peer_runs`],
//! [`super::rerun_runs`]).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use super::args::BenchArgs;
use super::paths::Paths;
use super::peer_runs::{measure_peers, set_up_peers};
use super::rerun_runs::set_up_rerun;
use super::rig::Rig;
use super::scenario::{Kind, Scenario};
use crate::data::{self, DataSet};
use crate::measure::memory;
use crate::peers::{self, Peers};
use crate::report::{ScenarioReport, Series};
use crate::rerun;
use crate::server::{self, BenchClient, BenchServer};

/// The loopback scenarios (everything but the link and memory ones): their
/// reports and the peers' versions.
pub fn run_loopback(
    arguments: &BenchArgs,
    paths: &Paths,
    scenarios: &[Scenario],
) -> anyhow::Result<(Vec<ScenarioReport>, BTreeMap<String, String>)> {
    let scenarios = scenarios.to_vec();
    let mut sets: Vec<DataSet> = Vec::new();
    // The data sets copied in full by some scenario: the `cp` references.
    let mut copied_sets: Vec<DataSet> = Vec::new();
    for scenario in &scenarios {
        if !sets.contains(&scenario.data_set()) {
            sets.push(scenario.data_set());
        }
        if scenario.kind() != Kind::Resync && !copied_sets.contains(&scenario.data_set()) {
            copied_sets.push(scenario.data_set());
        }
    }
    let mut sources = BTreeMap::new();
    for set in &sets {
        sources.insert(set.name(), data::ensure(&paths.data, *set)?);
    }

    let (peers, peers_unavailable) = set_up_peers(arguments, paths, &scenarios);
    let (rerun, rerun_unavailable) = set_up_rerun(arguments, paths, &scenarios, peers.as_ref());
    let peer_versions = peers.as_ref().map(Peers::versions).unwrap_or_default();

    let password = fresh_password();
    let server = BenchServer::start(
        &paths.snapshot,
        &paths.server,
        &password,
        &paths.logs,
        server::Placement::LOOPBACK,
    )?;
    eprintln!(
        "qftp-server listening on {} ({})",
        server.address, server.fingerprint
    );
    let config = tempfile::Builder::new()
        .prefix("client-config-")
        .tempdir_in(&paths.bench)
        .with_context(|| {
            format!(
                "creating a client config directory in {}",
                paths.bench.display()
            )
        })?;
    let client = BenchClient::new(&paths.snapshot, config.path());
    client.login(&server, &password, &paths.logs)?;
    for directory in [&paths.downloads, &paths.copies, &paths.peer_copies] {
        data::remove(directory)?;
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
    }

    let rig = Rig {
        arguments,
        paths,
        client: &client,
        home: server.home(),
        rerun: rerun.as_ref(),
        server_pid: server.pid(),
        memory: RefCell::new(BTreeMap::new()),
    };
    let mut reports: Vec<ScenarioReport> = scenarios
        .iter()
        .map(|scenario| {
            rig.empty_report(
                *scenario,
                peers_unavailable.as_deref(),
                rerun_unavailable.as_deref(),
            )
        })
        .collect();
    let mut copy_syncfs: BTreeMap<&str, Series> = BTreeMap::new();
    let mut copy_fsync_each: BTreeMap<&str, Series> = BTreeMap::new();
    for set in &copied_sets {
        let source = &sources[set.name()];
        let copy = paths.copies.join(set.name());
        let command = format!("cp -r {} {}", source.display(), copy.display());
        copy_syncfs.insert(
            set.name(),
            Series::new(
                "cp + sync -f",
                format!("{command} && sync -f {}", copy.display()),
            ),
        );
        copy_fsync_each.insert(
            set.name(),
            Series::new(
                "cp + fsync each file",
                format!("{command}, then open and fsync each file and directory in turn"),
            ),
        );
    }

    for round in 1..=arguments.rounds {
        eprintln!("round {round} of {}", arguments.rounds);
        for (scenario, report) in scenarios.iter().zip(&mut reports) {
            let source = &sources[scenario.data_set().name()];
            let sample = rig.qftp_sample(round, *scenario, source)?;
            let succeeded = sample.seconds.is_some();
            report.qftp.samples.push(sample);
            if round == arguments.rounds {
                report.verified = if succeeded {
                    rig.verify(*scenario, source)
                } else {
                    "not verified: the last run failed".into()
                };
                eprintln!("  {}: {}", scenario.name(), report.verified);
            }
        }
        for set in &copied_sets {
            let source = &sources[set.name()];
            let sample = rig.copy_sample(round, *set, source, false)?;
            if let Some(series) = copy_syncfs.get_mut(set.name()) {
                series.samples.push(sample);
            }
            let sample = rig.copy_sample(round, *set, source, true)?;
            if let Some(series) = copy_fsync_each.get_mut(set.name()) {
                series.samples.push(sample);
            }
        }
        if let Some(peers) = &peers {
            measure_peers(peers, round, &scenarios, &mut reports)?;
        }
        if let Some(rerun) = &rerun {
            rig.measure_reruns(rerun, round, &scenarios, &mut reports, &sources)?;
        }
    }
    server.stop();
    rig.verify_reruns(&scenarios, &mut reports, &sources);
    add_memory_notes(&scenarios, &mut reports, &rig.memory.borrow());

    for (scenario, report) in scenarios.iter().zip(&mut reports) {
        if scenario.kind() == Kind::Resync {
            continue;
        }
        let name = scenario.data_set().name();
        if let Some(series) = copy_syncfs.get(name) {
            report.copy_syncfs = series.clone();
        }
        if let Some(series) = copy_fsync_each.get(name) {
            report.copy_fsync_each = series.clone();
        }
    }
    for directory in [
        &paths.downloads,
        &paths.copies,
        &paths.peer_copies,
        &paths.server,
    ] {
        data::remove(directory)?;
    }
    Ok((reports, peer_versions))
}

impl Rig<'_> {
    /// The row of a scenario before anything ran.
    fn empty_report(
        &self,
        scenario: Scenario,
        peers_unavailable: Option<&str>,
        rerun_unavailable: Option<&str>,
    ) -> ScenarioReport {
        let set = scenario.data_set();
        let peers = self
            .arguments
            .peer_tools_for(scenario)
            .iter()
            .map(|tool| self.peer_series(scenario, tool, peers_unavailable, rerun_unavailable))
            .collect();
        let mut qftp = self.qftp_arguments(scenario).join(" ");
        if scenario.kind() == Kind::Resync {
            qftp.push_str(" (after an untimed run of the same command fills the destination)");
        }
        let (copy_syncfs, copy_fsync_each) = if scenario.kind() == Kind::Resync {
            let reason = "n/a (no-change re-run)";
            (
                Series::unavailable("cp + sync -f", reason),
                Series::unavailable("cp + fsync each file", reason),
            )
        } else {
            (
                Series::unavailable("cp + sync -f", "not measured"),
                Series::unavailable("cp + fsync each file", "not measured"),
            )
        };
        ScenarioReport {
            name: scenario.name().into(),
            description: scenario.description(),
            data_set: Some(set),
            files: set.files(),
            bytes: set.bytes(),
            qftp: Series::new("qftp", qftp),
            copy_syncfs,
            copy_fsync_each,
            peers,
            verified: "not verified".into(),
            path: None,
            notes: Vec::new(),
        }
    }

    /// The (empty) series of one peer tool in one scenario, or why it is not
    /// measured.
    fn peer_series(
        &self,
        scenario: Scenario,
        tool: &str,
        peers_unavailable: Option<&str>,
        rerun_unavailable: Option<&str>,
    ) -> Series {
        if let Some(reason) = peers_unavailable {
            return Series::unavailable(tool, reason);
        }
        if let Some(peer_scenario) = scenario.peer_scenario() {
            return Series::new(
                tool,
                format!(
                    "peers script case {} (hyperfine, 1 run per round)",
                    peers::case(peer_scenario, tool)
                ),
            );
        }
        let first_run = match scenario.kind() {
            Kind::Resync => false,
            Kind::Sync => true,
            _ => return Series::unavailable(tool, "n/a: the peers script has no download case"),
        };
        let Some(rerun_tool) = rerun::Tool::from_case_id(tool) else {
            return Series::unavailable(
                tool,
                "not measured: the peers script has no case for it and xtask knows \
                 the command of rsync and lftp only",
            );
        };
        if let Some(reason) = rerun_unavailable {
            return Series::unavailable(tool, reason);
        }
        let Some(rerun) = self.rerun else {
            return Series::unavailable(tool, "not measured");
        };
        let source = self.paths.data.join(scenario.data_set().name());
        let copy = self.peer_copy(tool, scenario.data_set());
        match rerun.command(rerun_tool, &source, &copy, false) {
            Ok((_, shown)) if first_run => Series::new(
                tool,
                format!(
                    "{shown} (first run into an emptied destination; the peers script's \
                     sshd config, started by xtask)"
                ),
            ),
            Ok((_, shown)) => Series::new(
                tool,
                format!(
                    "{shown} (no-change re-run, after an untimed run of the same command \
                     and a dry run that lists nothing to do; the peers script's sshd \
                     config, started by xtask)"
                ),
            ),
            Err(error) => Series::unavailable(tool, format!("not measured: {error:#}")),
        }
    }
}

/// Notes the median peak memory of each end of each tool, in the scenarios
/// that watched it (labels are `TOOL SCENARIO`).
fn add_memory_notes(
    scenarios: &[Scenario],
    reports: &mut [ScenarioReport],
    memory: &BTreeMap<(String, String), Vec<u64>>,
) {
    for (scenario, report) in scenarios.iter().zip(reports) {
        let suffix = format!(" {}", scenario.name());
        let mut parts = Vec::new();
        for ((label, end), peaks) in memory {
            let Some(tool) = label.strip_suffix(&suffix) else {
                continue;
            };
            let mut peaks = peaks.clone();
            peaks.sort_unstable();
            let median = peaks[peaks.len() / 2];
            parts.push(format!("{tool} {end} {}", memory::format_kib(median)));
        }
        if !parts.is_empty() {
            report.notes.push(format!(
                "peak memory (resident, median of rounds): {}",
                parts.join(", ")
            ));
        }
    }
}

/// A password for the benchmark user, different on every run.
fn fresh_password() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let seed = format!("{nanos} {}", std::process::id());
    let hash = blake3::hash(seed.as_bytes()).to_hex();
    format!("bench-{}", &hash.as_str()[..24])
}
