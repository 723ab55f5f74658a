//! `cargo xtask bench`: qftp against a durable local copy and against the
//! peers (scp, rsync, lftp), on loopback, in one run.
//!
//! The steps: build the release binaries and copy them to `target/bench/bin`
//! (the target directory is shared, and another build may replace its
//! binaries mid-run; only the copies are run); generate the data sets under
//! `target/bench/data` if missing; start `qftp-server` on 127.0.0.1 with a
//! fresh root under `target/bench/server` and log in through the CLI; then,
//! for each round, time one `qftp` run of every scenario, one `cp` +
//! `sync -f` and one `cp` + fsync-each-file of every data set copied in
//! full, one invocation of the peers script for the matching first-run
//! cases (scp, rsync, lftp), and, for the `resync-*` scenarios, one
//! no-change re-run of rsync and lftp against the script's sshd, which the
//! benchmark starts for that and stops by PID ([`crate::rerun`]). Before
//! each timed run the destination is removed (for a no-change re-run: made
//! complete by an untimed run instead) and `sync` runs (not timed), the
//! source is read into the page cache and the machine is given a bounded
//! wait to go quiet; a run during which other people's processes used more
//! than [`crate::measure::cpu::RETRY_CORES`] is repeated (at most
//! [`crate::measure::ATTEMPTS`] times).
//! After the last round each qftp destination, and each re-run peer's, is
//! compared with its source. The report holds the medians of the rounds.
//!
//! Two kinds of scenario run apart from that loopback loop, when selected:
//! the network-link ones (`link-*`, [`crate::link`]: qftp, scp and qcp
//! between two network namespaces with delay and loss) and `mem-ceiling`
//! ([`crate::memceiling`]); their rows join the same report.
//!
//! This file is the task's outline; each step is a file of its own:
//! [`args`], [`paths`], [`binaries`], [`scenario`], [`loopback`] (with
//! [`rig`], [`qftp_runs`], [`copy_runs`], [`peer_runs`], [`rerun_runs`] and
//! [`sync_summary`]), [`links`], [`ceiling`] and [`settings`]. Timing a run
//! is [`crate::measure`]'s, the report's layout [`crate::report`]'s.

mod args;
mod binaries;
mod ceiling;
mod copy_runs;
mod links;
mod loopback;
mod paths;
mod peer_runs;
mod qftp_runs;
mod rerun_runs;
mod rig;
mod scenario;
mod settings;
mod sync_summary;

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};

pub use self::args::BenchArgs;
use self::paths::Paths;
use self::scenario::Scenario;
use crate::data;
use crate::link;
use crate::report::{Machine, Report};

/// Runs the benchmark.
pub fn run(arguments: &BenchArgs) -> anyhow::Result<()> {
    let mut scenarios = Vec::new();
    for scenario in &arguments.scenarios {
        if !scenarios.contains(scenario) {
            scenarios.push(*scenario);
        }
    }
    if scenarios.is_empty() {
        bail!("no scenarios selected");
    }
    let paths = Paths::find()?;
    data::remove(&paths.logs)?;
    for directory in [&paths.bench, &paths.data, &paths.logs] {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
    }
    if arguments.no_build {
        binaries::check_binaries(&paths)?;
    } else {
        binaries::build(&paths)?;
    }
    let machine = Machine::describe(binaries::commit(&paths.workspace));
    let hashes = binaries::snapshot_binaries(&paths)?;

    let loopback: Vec<Scenario> = scenarios
        .iter()
        .copied()
        .filter(|scenario| scenario.on_loopback())
        .collect();
    let mut reports = Vec::new();
    let mut peer_versions = BTreeMap::new();
    if !loopback.is_empty() {
        let (found, versions) = loopback::run_loopback(arguments, &paths, &loopback)?;
        reports.extend(found);
        peer_versions = versions;
    }
    let links: Vec<(&'static str, link::Impairment)> = scenarios
        .iter()
        .filter_map(|scenario| Some((scenario.name(), scenario.impairment()?)))
        .collect();
    let contests: Vec<(&'static str, link::Contest)> = scenarios
        .iter()
        .filter_map(|scenario| Some((scenario.name(), scenario.contest()?)))
        .collect();
    let mut contest_reports = Vec::new();
    if !links.is_empty() || !contests.is_empty() {
        let measured = links::run_links(arguments, &paths, &links, &contests)?;
        reports.extend(measured.scenarios);
        contest_reports = measured.contests;
        peer_versions.extend(measured.versions);
    }
    if scenarios.contains(&Scenario::MemCeiling) {
        reports.push(ceiling::mem_ceiling(arguments, &paths)?);
    }
    // In the order asked for, so e.g. mem-ceiling can stand beside put-1g.
    reports.sort_by_key(|report| {
        scenarios
            .iter()
            .position(|scenario| scenario.name() == report.name)
    });
    ceiling::compare_with_ceiling(&mut reports);

    let settings = settings::settings(arguments, &scenarios, &hashes)?;
    let report = Report {
        machine,
        rounds: arguments.rounds,
        settings,
        peer_versions,
        scenarios: reports,
        contests: contest_reports,
    };
    let markdown = report.write(&paths.bench)?;
    println!("{markdown}");
    eprintln!(
        "wrote {} and {}",
        paths.bench.join("results.md").display(),
        paths.bench.join("results.json").display()
    );
    Ok(())
}
