//! The peers script's first-run cases in the loopback scenarios (scp,
//! rsync, lftp into an empty destination): getting the script ready, and
//! one invocation of it per round whose results join the scenarios' rows.
//!
//! The script itself is [`crate::peers`]'s; the peers' no-change re-runs,
//! which the script has no cases for, are [`super::rerun_runs`]'.

use super::args::BenchArgs;
use super::paths::Paths;
use super::scenario::Scenario;
use crate::measure::Sample;
use crate::peers::{self, Peers};
use crate::process;
use crate::report::ScenarioReport;

/// The peers script, ready to measure, or why there is none.
pub fn set_up_peers(
    arguments: &BenchArgs,
    paths: &Paths,
    scenarios: &[Scenario],
) -> (Option<Peers>, Option<String>) {
    if arguments.no_peers {
        return (None, Some("not run (--no-peers)".into()));
    }
    let Some(script) = &arguments.peers_script else {
        eprintln!(
            "xtask: warning: no peers script; pass --peers-script PATH or set QFTP_PEERS_SCRIPT"
        );
        return (
            None,
            Some("not run: no peers script (--peers-script or QFTP_PEERS_SCRIPT)".into()),
        );
    };
    // Peer tools that are commands of their own beyond ssh, scp and rsync.
    let mut extra: Vec<&str> = Vec::new();
    for scenario in scenarios {
        for tool in arguments.peer_tools_for(*scenario) {
            if tool == "lftp" && !extra.contains(&"lftp") {
                extra.push("lftp");
            }
        }
    }
    let peers = Peers::new(
        script,
        arguments.peers_results.as_deref(),
        &paths.logs,
        arguments.quiet_wait,
    )
    .and_then(|peers| {
        peers.prepare(arguments.peers_install, &extra)?;
        Ok(peers)
    });
    match peers {
        Ok(peers) => (Some(peers), None),
        Err(error) => {
            eprintln!("xtask: warning: peers unavailable: {error:#}");
            (None, Some(format!("not measured: {error:#}")))
        }
    }
}

/// One invocation of the peers script for this round's first-run cases.
/// A case two scenarios share (e.g. `small.rsync` for `put-10k` and
/// `sync-10k`) runs once and counts for both.
pub fn measure_peers(
    peers: &Peers,
    round: u32,
    scenarios: &[Scenario],
    reports: &mut [ScenarioReport],
) -> anyhow::Result<()> {
    let mut cases: Vec<String> = Vec::new();
    for (scenario, report) in scenarios.iter().zip(reports.iter()) {
        let Some(peer_scenario) = scenario.peer_scenario() else {
            continue;
        };
        for series in &report.peers {
            let case = peers::case(peer_scenario, &series.tool);
            if series.unavailable.is_none() && !cases.contains(&case) {
                cases.push(case);
            }
        }
    }
    if cases.is_empty() {
        return Ok(());
    }
    let invocation = peers.measure(round, &cases);
    process::check_interrupted()?;
    if let Err(error) = &invocation {
        eprintln!("  peers: {error:#}");
    }
    for (scenario, report) in scenarios.iter().zip(reports) {
        let Some(peer_scenario) = scenario.peer_scenario() else {
            continue;
        };
        for series in &mut report.peers {
            if series.unavailable.is_some() {
                continue;
            }
            let case = peers::case(peer_scenario, &series.tool);
            let result = peers.read(&case);
            let note = match (&invocation, result.seconds) {
                (Err(error), None) => Some(format!("{}; {error:#}", result.status)),
                _ => Some(result.status.clone()),
            };
            eprintln!(
                "  {case} ({}): {}",
                scenario.name(),
                result.seconds.map_or_else(
                    || format!("failed: {}", result.status),
                    |seconds| format!("{seconds:.2} s")
                )
            );
            series.samples.push(Sample {
                round,
                seconds: result.seconds,
                foreign_cores: result.foreign_cores,
                attempts: 1,
                note,
                timed_out: false,
            });
        }
    }
    Ok(())
}
