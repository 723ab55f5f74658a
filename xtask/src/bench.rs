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
//! than [`cpu::RETRY_CORES`] is repeated (at most [`ATTEMPTS`] times).
//! After the last round each qftp destination, and each re-run peer's, is
//! compared with its source. The report holds the medians of the rounds.
//!
//! Two kinds of scenario run apart from that loopback loop, when selected:
//! the network-link ones (`link-*`, [`crate::link`]: qftp, scp and qcp
//! between two network namespaces with delay and loss) and `mem-ceiling`
//! ([`crate::memceiling`]); their rows join the same report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cpu;
use crate::data::{self, DataSet};
use crate::link;
use crate::peers::{self, Peers};
use crate::process;
use crate::report::{Machine, Report, Sample, ScenarioReport, Series};
use crate::rerun::{self, Rerun};
use crate::server::{self, BenchClient, BenchServer};

/// Most runs made for one sample (runs under foreign load are repeated).
const ATTEMPTS: u32 = 3;

/// Time limit of one timed `qftp` or `cp` run.
const RUN_LIMIT: Duration = Duration::from_secs(1800);

/// Time limit of `sync` and other helpers.
const HELPER_LIMIT: Duration = Duration::from_secs(600);

/// Time limit of building the release binaries.
const BUILD_LIMIT: Duration = Duration::from_secs(3600);

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Scenario {
    /// `qftp put` of the 1 GiB file.
    #[value(name = "put-1g")]
    #[serde(rename = "put-1g")]
    Put1g,
    /// `qftp get` of the 1 GiB file into a local directory.
    #[value(name = "get-1g")]
    #[serde(rename = "get-1g")]
    Get1g,
    /// `qftp put -r -j 16` of 10,000 files of 4 KiB.
    #[value(name = "put-10k")]
    #[serde(rename = "put-10k")]
    Put10k,
    /// `qftp put -r -j 16` of 1,000 files of 1 MiB.
    #[value(name = "put-1k-1m")]
    #[serde(rename = "put-1k-1m")]
    Put1k1m,
    /// First `qftp sync -j 16` of the 10,000 files into an empty remote directory.
    #[value(name = "sync-10k")]
    #[serde(rename = "sync-10k")]
    Sync10k,
    /// No-change re-run of `sync-10k` (the destination is complete).
    #[value(name = "resync-10k")]
    #[serde(rename = "resync-10k")]
    Resync10k,
    /// First `qftp sync -j 16` of the 1,000 files of 1 MiB into an empty remote directory.
    #[value(name = "sync-1k-1m")]
    #[serde(rename = "sync-1k-1m")]
    Sync1k1m,
    /// No-change re-run of `sync-1k-1m`.
    #[value(name = "resync-1k-1m")]
    #[serde(rename = "resync-1k-1m")]
    Resync1k1m,
    /// `qftp put` of 256 MiB between two network namespaces over a veth
    /// link (MTU 1500) without impairment, with scp and qcp beside it.
    #[value(name = "link-plain")]
    #[serde(rename = "link-plain")]
    LinkPlain,
    /// The same with 25 ms delay each way (50 ms round trip).
    #[value(name = "link-delay")]
    #[serde(rename = "link-delay")]
    LinkDelay,
    /// The same with 25 ms delay and 1 % loss each way.
    #[value(name = "link-loss")]
    #[serde(rename = "link-loss")]
    LinkLoss,
    /// 1 GiB from memory to nothing over one QUIC stream on loopback with
    /// qftp's transport settings: the ceiling of `put-1g`.
    #[value(name = "mem-ceiling")]
    #[serde(rename = "mem-ceiling")]
    MemCeiling,
}

/// What a scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `qftp put` into an empty destination.
    Put,
    /// `qftp get` into an empty local directory.
    Get,
    /// `qftp sync` into an empty remote directory.
    Sync,
    /// `qftp sync` again, with nothing changed.
    Resync,
    /// `qftp put` between network namespaces ([`crate::link`]).
    Link,
    /// Memory to memory over QUIC ([`crate::memceiling`]).
    Memory,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Put1g => "put-1g",
            Self::Get1g => "get-1g",
            Self::Put10k => "put-10k",
            Self::Put1k1m => "put-1k-1m",
            Self::Sync10k => "sync-10k",
            Self::Resync10k => "resync-10k",
            Self::Sync1k1m => "sync-1k-1m",
            Self::Resync1k1m => "resync-1k-1m",
            Self::LinkPlain => "link-plain",
            Self::LinkDelay => "link-delay",
            Self::LinkLoss => "link-loss",
            Self::MemCeiling => "mem-ceiling",
        }
    }

    /// Whether it runs against the loopback server (and with `cp` references).
    fn on_loopback(self) -> bool {
        !matches!(self.kind(), Kind::Link | Kind::Memory)
    }

    /// The impairment of a link scenario.
    fn impairment(self) -> Option<link::Impairment> {
        match self {
            Self::LinkPlain => Some(link::Impairment::Plain),
            Self::LinkDelay => Some(link::Impairment::Delay),
            Self::LinkLoss => Some(link::Impairment::Loss),
            _ => None,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::Put1g | Self::Put10k | Self::Put1k1m => Kind::Put,
            Self::Get1g => Kind::Get,
            Self::Sync10k | Self::Sync1k1m => Kind::Sync,
            Self::Resync10k | Self::Resync1k1m => Kind::Resync,
            Self::LinkPlain | Self::LinkDelay | Self::LinkLoss => Kind::Link,
            Self::MemCeiling => Kind::Memory,
        }
    }

    fn data_set(self) -> DataSet {
        match self {
            Self::Put1g | Self::Get1g | Self::MemCeiling => DataSet::Big,
            Self::LinkPlain | Self::LinkDelay | Self::LinkLoss => DataSet::Link,
            Self::Put10k | Self::Sync10k | Self::Resync10k => DataSet::Small,
            Self::Put1k1m | Self::Sync1k1m | Self::Resync1k1m => DataSet::Medium,
        }
    }

    fn is_upload(self) -> bool {
        self.kind() != Kind::Get
    }

    /// The peers script's scenario with the same data, direction and
    /// starting point (an empty destination); it has no no-change re-runs.
    fn peer_scenario(self) -> Option<&'static str> {
        match self {
            Self::Put1g => Some("big"),
            Self::Put10k | Self::Sync10k => Some("small"),
            Self::Put1k1m | Self::Sync1k1m => Some("med"),
            Self::Get1g
            | Self::Resync10k
            | Self::Resync1k1m
            | Self::LinkPlain
            | Self::LinkDelay
            | Self::LinkLoss
            | Self::MemCeiling => None,
        }
    }

    fn description(self) -> String {
        let set = self.data_set().description();
        match self.kind() {
            Kind::Put => format!("upload of {set}"),
            Kind::Get => format!("download of {set}"),
            Kind::Sync => format!("first sync of {set} into an empty directory"),
            Kind::Resync => format!("no-change re-sync of {set}"),
            Kind::Link => self
                .impairment()
                .map_or_else(String::new, link::Impairment::description),
            Kind::Memory => "1 GiB from memory to nothing over one QUIC stream on 127.0.0.1, \
                             qftp's transport settings; no disk, no hashing"
                .into(),
        }
    }
}

/// What a `qftp sync` summary line says (`sync: N sent, M unchanged, D
/// deleted, F failed; ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SyncSummary {
    sent: u64,
    unchanged: u64,
    failed: u64,
}

impl SyncSummary {
    /// Parses the last summary line in `text`.
    fn find(text: &str) -> Option<(Self, &str)> {
        let line = text.lines().rev().find(|line| line.starts_with("sync: "))?;
        let counts = line.strip_prefix("sync: ")?.split(';').next()?;
        let mut found = BTreeMap::new();
        for part in counts.split(',') {
            let mut words = part.split_whitespace();
            let number: u64 = words.next()?.parse().ok()?;
            found.insert(words.next()?, number);
        }
        let summary = Self {
            sent: *found.get("sent")?,
            unchanged: *found.get("unchanged")?,
            failed: *found.get("failed")?,
        };
        Some((summary, line))
    }
}

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Rounds; each runs every scenario once with qftp, cp and the peers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_values = ["put-1g", "get-1g", "put-10k"]
    )]
    scenarios: Vec<Scenario>,
    /// The peers script (peers.sh), which measures scp and rsync.
    #[arg(long, env = "QFTP_PEERS_SCRIPT", value_name = "PATH")]
    peers_script: Option<PathBuf>,
    /// Measure qftp and cp only (even when a peers script is given).
    #[arg(long)]
    no_peers: bool,
    /// Peer tools for the put scenarios: case ids of the peers script,
    /// comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["scp".to_owned(), "rsync".to_owned()])]
    peer_tools: Vec<String>,
    /// Peer tools for the sync scenarios: case ids of the peers script for
    /// the first runs; the no-change re-runs know `rsync` and `lftp`.
    #[arg(long, value_delimiter = ',', default_values_t = ["rsync".to_owned(), "lftp".to_owned()])]
    sync_peer_tools: Vec<String>,
    /// Where the peers script writes its results [default: its `R=`].
    #[arg(long, env = "QFTP_PEERS_RESULTS", value_name = "DIR")]
    peers_results: Option<PathBuf>,
    /// Run the peers script's install phase even when its tools are present.
    #[arg(long)]
    peers_install: bool,
    /// Longest wait, in seconds, for other people's processes to go idle
    /// before each timed run (also the peers script's GATE_MAX).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    quiet_wait: u64,
    /// Use the release binaries already in the target directory instead of
    /// building them (e.g. while the working tree does not compile).
    #[arg(long)]
    no_build: bool,
    /// Time limit, in seconds, of each run on the lossy link (`link-loss`);
    /// a run stopped there is reported as a time-out.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    link_time_limit: u64,
    /// Files in flight at once (`qftp -j`) in the tree scenarios.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
}

/// Where things live.
#[derive(Debug)]
struct Paths {
    workspace: PathBuf,
    /// Where cargo puts the release binaries (shared with other builds).
    binaries: PathBuf,
    /// The benchmark's private copies of them, run for the whole benchmark.
    snapshot: PathBuf,
    bench: PathBuf,
    data: PathBuf,
    logs: PathBuf,
    server: PathBuf,
    downloads: PathBuf,
    copies: PathBuf,
    /// Destinations of the peers' no-change re-runs.
    peer_copies: PathBuf,
}

impl Paths {
    fn find() -> anyhow::Result<Self> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("the workspace directory")?
            .to_owned();
        // This program runs as TARGET/release/xtask.
        let executable = std::env::current_exe().context("the path of this program")?;
        let target = executable
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| workspace.join("target"), Path::to_owned);
        let bench = target.join("bench");
        Ok(Self {
            binaries: target.join("release"),
            snapshot: bench.join("bin"),
            data: bench.join("data"),
            logs: bench.join("logs"),
            server: bench.join("server"),
            downloads: bench.join("downloads"),
            copies: bench.join("copies"),
            peer_copies: bench.join("peer-copies"),
            workspace,
            bench,
        })
    }
}

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
        check_binaries(&paths)?;
    } else {
        build(&paths)?;
    }
    let machine = Machine::describe(commit(&paths.workspace));
    let binaries = snapshot_binaries(&paths)?;

    let loopback: Vec<Scenario> = scenarios
        .iter()
        .copied()
        .filter(|scenario| scenario.on_loopback())
        .collect();
    let mut reports = Vec::new();
    let mut peer_versions = BTreeMap::new();
    if !loopback.is_empty() {
        let (found, versions) = run_loopback(arguments, &paths, &loopback)?;
        reports.extend(found);
        peer_versions = versions;
    }
    let links: Vec<(&'static str, link::Impairment)> = scenarios
        .iter()
        .filter_map(|scenario| Some((scenario.name(), scenario.impairment()?)))
        .collect();
    if !links.is_empty() {
        let (found, versions) = run_links(arguments, &paths, &links)?;
        reports.extend(found);
        peer_versions.extend(versions);
    }
    if scenarios.contains(&Scenario::MemCeiling) {
        reports.push(mem_ceiling(arguments, &paths)?);
    }
    // In the order asked for, so e.g. mem-ceiling can stand beside put-1g.
    reports.sort_by_key(|report| {
        scenarios
            .iter()
            .position(|scenario| scenario.name() == report.name)
    });
    compare_with_ceiling(&mut reports);

    let mut settings = BTreeMap::new();
    let mut setting = |key: &str, value: serde_json::Value| {
        settings.insert(key.to_owned(), value);
    };
    setting("scenarios", serde_json::to_value(&scenarios)?);
    setting("jobs", arguments.jobs.into());
    setting("built", (!arguments.no_build).into());
    setting("binaries", serde_json::to_value(&binaries)?);
    setting("attempts_at_most", ATTEMPTS.into());
    setting("quiet_below_cores", cpu::QUIET_CORES.into());
    setting("repeat_above_cores", cpu::RETRY_CORES.into());
    setting("quiet_wait_seconds", arguments.quiet_wait.into());
    setting("link_time_limit_seconds", arguments.link_time_limit.into());
    setting(
        "peers_script",
        arguments
            .peers_script
            .as_ref()
            .map(|path| path.display().to_string())
            .into(),
    );
    setting("peers_runs_per_round", 1.into());
    setting("peers_tools", serde_json::to_value(&arguments.peer_tools)?);
    setting(
        "sync_peers_tools",
        serde_json::to_value(&arguments.sync_peer_tools)?,
    );
    setting("finished", crate::report::utc_now().into());
    let report = Report {
        machine,
        rounds: arguments.rounds,
        settings,
        peer_versions,
        scenarios: reports,
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

/// The loopback scenarios (everything but the link and memory ones): their
/// reports and the peers' versions.
fn run_loopback(
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

    let password = password();
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

    let bench = Bench {
        arguments,
        paths,
        client: &client,
        home: server.home(),
        rerun: rerun.as_ref(),
    };
    let mut reports: Vec<ScenarioReport> = scenarios
        .iter()
        .map(|scenario| {
            bench.empty_report(
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
            let sample = bench.qftp_sample(round, *scenario, source)?;
            let succeeded = sample.seconds.is_some();
            report.qftp.samples.push(sample);
            if round == arguments.rounds {
                report.verified = if succeeded {
                    bench.verify(*scenario, source)
                } else {
                    "not verified: the last run failed".into()
                };
                eprintln!("  {}: {}", scenario.name(), report.verified);
            }
        }
        for set in &copied_sets {
            let source = &sources[set.name()];
            let sample = bench.copy_sample(round, *set, source, false)?;
            if let Some(series) = copy_syncfs.get_mut(set.name()) {
                series.samples.push(sample);
            }
            let sample = bench.copy_sample(round, *set, source, true)?;
            if let Some(series) = copy_fsync_each.get_mut(set.name()) {
                series.samples.push(sample);
            }
        }
        if let Some(peers) = &peers {
            measure_peers(peers, round, &scenarios, &mut reports)?;
        }
        if let Some(rerun) = &rerun {
            bench.measure_reruns(rerun, round, &scenarios, &mut reports, &sources)?;
        }
    }
    server.stop();
    for (scenario, report) in scenarios.iter().zip(&mut reports) {
        if scenario.kind() != Kind::Resync {
            continue;
        }
        let source = &sources[scenario.data_set().name()];
        for series in &mut report.peers {
            if series.unavailable.is_some() || series.samples.is_empty() {
                continue;
            }
            let copy = bench.peer_copy(&series.tool, scenario.data_set());
            let verified = match data::verify(source, &copy) {
                Ok(files) => format!("verified ({files} files, BLAKE3)"),
                Err(error) => format!("NOT verified: {error:#}"),
            };
            eprintln!("  {} {}: {verified}", series.tool, scenario.name());
            series.verified = Some(verified);
        }
    }

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

/// The link scenarios ([`crate::link`]): their reports and the peers' versions.
fn run_links(
    arguments: &BenchArgs,
    paths: &Paths,
    links: &[(&'static str, link::Impairment)],
) -> anyhow::Result<(Vec<ScenarioReport>, BTreeMap<String, String>)> {
    let source = data::ensure(&paths.data, DataSet::Link)?;
    let (peers, versions) = link_peers(arguments, paths);
    let work = paths.bench.join("link");
    let settings = link::Settings {
        rounds: arguments.rounds,
        quiet_wait: Duration::from_secs(arguments.quiet_wait),
        lossy_limit: Duration::from_secs(arguments.link_time_limit),
        binaries: &paths.snapshot,
        source: &source,
        work: &work,
        logs: &paths.logs,
        peers,
    };
    let reports = link::run(&settings, links)?;
    data::remove(&work)?;
    Ok((reports, versions))
}

/// The peers of the link scenarios (scp, qcp) and their versions, or why
/// there are none. The peers script's install phase runs if ssh, scp or
/// sshd is missing (or with --peers-install); its setup phase if its sshd
/// config is missing or invalid.
fn link_peers(
    arguments: &BenchArgs,
    paths: &Paths,
) -> (Result<link::Peers, String>, BTreeMap<String, String>) {
    if arguments.no_peers {
        return (Err("not run (--no-peers)".into()), BTreeMap::new());
    }
    let Some(script) = &arguments.peers_script else {
        return (
            Err("not run: no peers script (--peers-script or QFTP_PEERS_SCRIPT)".into()),
            BTreeMap::new(),
        );
    };
    let peers = match Peers::new(
        script,
        arguments.peers_results.as_deref(),
        &paths.logs,
        arguments.quiet_wait,
    ) {
        Ok(peers) => peers,
        Err(error) => return (Err(format!("not measured: {error:#}")), BTreeMap::new()),
    };
    let result = peers
        .install(arguments.peers_install, &["ssh", "scp", "sshd"])
        .and_then(|()| {
            link::Peers::from_script(script, &paths.logs).or_else(|error| {
                eprintln!("peers: not ready for the link ({error:#}); running the setup phase");
                peers.setup()?;
                link::Peers::from_script(script, &paths.logs)
            })
        });
    let versions = peers.versions();
    match result {
        Ok(found) => (Ok(found), versions),
        Err(error) => {
            eprintln!("xtask: warning: no peers on the link: {error:#}");
            (Err(format!("not measured: {error:#}")), versions)
        }
    }
}

/// The `mem-ceiling` scenario: `cargo xtask mem-ceiling` once per round.
fn mem_ceiling(arguments: &BenchArgs, paths: &Paths) -> anyhow::Result<ScenarioReport> {
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
            process::run_ok(&mut command, None, HELPER_LIMIT, "xtask mem-ceiling")
                .with_context(|| format!("see {}", log.display()))?;
            let text = std::fs::read_to_string(&log)
                .with_context(|| format!("reading {}", log.display()))?;
            let (seconds, bytes) = crate::memceiling::parse(&text)
                .with_context(|| format!("no `seconds=` line in {}", log.display()))?;
            if bytes != BYTES || !seconds.is_finite() || seconds <= 0.0 {
                bail!(
                    "unexpected result {seconds} s for {bytes} bytes; see {}",
                    log.display()
                );
            }
            Ok(Duration::from_secs_f64(seconds))
        };
        let sample = measure(
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
fn compare_with_ceiling(reports: &mut [ScenarioReport]) {
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

/// The peer tools of a scenario.
fn peer_tools(arguments: &BenchArgs, scenario: Scenario) -> &[String] {
    match scenario.kind() {
        Kind::Put | Kind::Get => &arguments.peer_tools,
        Kind::Sync | Kind::Resync => &arguments.sync_peer_tools,
        // Their peers are their own (crate::link) or none.
        Kind::Link | Kind::Memory => &[],
    }
}

/// The peers script, ready to measure, or why there is none.
fn set_up_peers(
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
        for tool in peer_tools(arguments, *scenario) {
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

/// The peers' no-change re-runs, ready to measure, or why they cannot be:
/// the commands and sshd config come from the peers script; if its sshd
/// config is missing or does not pass `sshd -t`, its `setup` phase runs once.
fn set_up_rerun(
    arguments: &BenchArgs,
    paths: &Paths,
    scenarios: &[Scenario],
    peers: Option<&Peers>,
) -> (Option<Rerun>, Option<String>) {
    let wanted = scenarios.iter().any(|scenario| {
        scenario.kind() == Kind::Resync
            && peer_tools(arguments, *scenario)
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

/// One invocation of the peers script for this round's first-run cases.
/// A case two scenarios share (e.g. `small.rsync` for `put-10k` and
/// `sync-10k`) runs once and counts for both.
fn measure_peers(
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

/// What the rounds share.
#[derive(Debug)]
struct Bench<'a> {
    arguments: &'a BenchArgs,
    paths: &'a Paths,
    client: &'a BenchClient,
    /// The benchmark user's home on the server's disk.
    home: PathBuf,
    /// The peers' no-change re-runs, when measured.
    rerun: Option<&'a Rerun>,
}

impl Bench<'_> {
    fn empty_report(
        &self,
        scenario: Scenario,
        peers_unavailable: Option<&str>,
        rerun_unavailable: Option<&str>,
    ) -> ScenarioReport {
        let set = scenario.data_set();
        let peers = peer_tools(self.arguments, scenario)
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
        if scenario.kind() != Kind::Resync {
            return Series::unavailable(tool, "n/a: the peers script has no download case");
        }
        let Some(rerun_tool) = rerun::Tool::from_case_id(tool) else {
            return Series::unavailable(
                tool,
                "not measured: the peers script has no no-change re-run case and xtask knows \
                 the re-run command of rsync and lftp only",
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

    /// Where a peer's no-change re-run of `set` writes.
    fn peer_copy(&self, tool: &str, set: DataSet) -> PathBuf {
        self.paths
            .peer_copies
            .join(format!("{tool}-{}", set.name()))
    }

    /// The `qftp` arguments of a scenario.
    fn qftp_arguments(&self, scenario: Scenario) -> Vec<String> {
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
            Scenario::Get1g => vec![
                "get".into(),
                "--quiet".into(),
                format!("/{}", DataSet::Big.name()),
                self.paths.downloads.display().to_string(),
            ],
            // Not --quiet: the summary line tells what was sent.
            Scenario::Sync10k | Scenario::Resync10k | Scenario::Sync1k1m | Scenario::Resync1k1m => {
                vec![
                    "sync".into(),
                    "-j".into(),
                    self.arguments.jobs.to_string(),
                    source,
                    format!("/{}", sync_name(scenario.data_set())),
                ]
            }
        }
    }

    /// Where a scenario's qftp output lands.
    fn destination(&self, scenario: Scenario) -> PathBuf {
        let set = scenario.data_set();
        match scenario.kind() {
            Kind::Put | Kind::Link | Kind::Memory => self.home.join(set.name()),
            Kind::Get => self.paths.downloads.join(set.name()),
            Kind::Sync | Kind::Resync => self.home.join(sync_name(set)),
        }
    }

    /// Times one run; see [`measure`].
    fn measure(
        &self,
        round: u32,
        label: &str,
        prepare: &mut dyn FnMut() -> anyhow::Result<()>,
        timed: &mut dyn FnMut() -> anyhow::Result<Duration>,
    ) -> anyhow::Result<Sample> {
        measure(
            Duration::from_secs(self.arguments.quiet_wait),
            round,
            label,
            prepare,
            timed,
        )
    }

    /// One timed `qftp` run of `scenario`.
    fn qftp_sample(&self, round: u32, scenario: Scenario, source: &Path) -> anyhow::Result<Sample> {
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
                    remove_with_partial(&destination)?;
                }
                Kind::Put | Kind::Sync | Kind::Link | Kind::Memory => {
                    remove_with_partial(&destination)?;
                }
                Kind::Resync => self.fill(round, scenario)?,
            }
            sync()?;
            // Downloads read the server's copy, uploads the local one.
            if scenario.is_upload() {
                data::warm(source)
            } else {
                data::warm(&self.home.join(scenario.data_set().name()))
            }
        };
        let mut timed = || -> anyhow::Result<Duration> {
            let (stdout, stderr) = server::log_files(&log)?;
            let mut command = self.client.command(self.qftp_arguments(scenario));
            command
                .current_dir(&self.paths.workspace)
                .stdout(stdout)
                .stderr(stderr);
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
        self.measure(
            round,
            &format!("qftp {}", scenario.name()),
            &mut prepare,
            &mut timed,
        )
    }

    /// Runs a sync scenario's `qftp sync` once, untimed, so its destination
    /// is complete and unchanged (nothing is sent if it already was).
    fn fill(&self, round: u32, scenario: Scenario) -> anyhow::Result<()> {
        let log = self
            .paths
            .logs
            .join(format!("qftp-{}-fill-round-{round}.log", scenario.name()));
        let (stdout, stderr) = server::log_files(&log)?;
        let mut command = self.client.command(self.qftp_arguments(scenario));
        command
            .current_dir(&self.paths.workspace)
            .stdout(stdout)
            .stderr(stderr);
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

    /// The no-change re-runs of the peers (rsync, lftp) of this round: the
    /// script's sshd runs, as a child of this process, only meanwhile.
    fn measure_reruns(
        &self,
        rerun: &Rerun,
        round: u32,
        scenarios: &[Scenario],
        reports: &mut [ScenarioReport],
        sources: &BTreeMap<&str, PathBuf>,
    ) -> anyhow::Result<()> {
        let mut wanted = Vec::new();
        for (index, (scenario, report)) in scenarios.iter().zip(reports.iter()).enumerate() {
            if scenario.kind() != Kind::Resync {
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
                    reports[index].peers[peer].samples.push(Sample {
                        round,
                        seconds: None,
                        foreign_cores: None,
                        attempts: 1,
                        note: Some(format!("starting the peers' sshd: {error:#}")),
                        timed_out: false,
                    });
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
    /// nothing to do.
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
        let mut prepare = || -> anyhow::Result<()> {
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
            sync()?;
            data::warm(source)
        };
        let mut timed = || run(false, &timed_log, name);
        self.measure(
            round,
            &format!("{name} {}", scenario.name()),
            &mut prepare,
            &mut timed,
        )
    }

    /// Makes sure the server holds the data set `set` for a download,
    /// uploading it with `qftp` (not timed) if it is missing.
    fn ensure_remote(&self, set: DataSet, source: &Path) -> anyhow::Result<()> {
        let remote = self.home.join(set.name());
        let size = std::fs::metadata(&remote).map_or(None, |metadata| Some(metadata.len()));
        if size == Some(set.bytes()) {
            return Ok(());
        }
        remove_with_partial(&remote)?;
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

    /// One timed `cp` + `sync -f` (or + fsync of each file) of a data set.
    fn copy_sample(
        &self,
        round: u32,
        set: DataSet,
        source: &Path,
        fsync_each: bool,
    ) -> anyhow::Result<Sample> {
        let copy = self.paths.copies.join(set.name());
        let variant = if fsync_each { "fsync-each" } else { "syncfs" };
        let log = self
            .paths
            .logs
            .join(format!("cp-{variant}-{}-round-{round}.log", set.name()));
        let mut prepare = || -> anyhow::Result<()> {
            data::remove(&copy)?;
            sync()?;
            data::warm(source)
        };
        let mut timed = || -> anyhow::Result<Duration> {
            let (stdout, stderr) = server::log_files(&log)?;
            let mut command = Command::new("cp");
            command
                .arg("-r")
                .arg(source)
                .arg(&copy)
                .stdout(stdout)
                .stderr(stderr);
            let copied = process::run_ok(&mut command, None, RUN_LIMIT, "cp")
                .with_context(|| format!("see {}", log.display()))?;
            let synced = if fsync_each {
                let start = Instant::now();
                data::fsync_each(&copy)?;
                start.elapsed()
            } else {
                let sync_log = self
                    .paths
                    .logs
                    .join(format!("sync-{}-round-{round}.log", set.name()));
                let (stdout, stderr) = server::log_files(&sync_log)?;
                let mut command = Command::new("sync");
                command.arg("-f").arg(&copy).stdout(stdout).stderr(stderr);
                process::run_ok(&mut command, None, RUN_LIMIT, "sync -f")?.elapsed
            };
            Ok(copied.elapsed + synced)
        };
        let label = format!("cp + {variant} {}", set.name());
        self.measure(round, &label, &mut prepare, &mut timed)
    }

    /// Compares a scenario's qftp output with its source.
    fn verify(&self, scenario: Scenario, source: &Path) -> String {
        match data::verify(source, &self.destination(scenario)) {
            Ok(1) => "verified (BLAKE3)".into(),
            Ok(files) => format!("verified ({files} files, BLAKE3)"),
            Err(error) => format!("NOT verified: {error:#}"),
        }
    }
}

/// The error of a timed run stopped at its time limit; [`measure`] records
/// it as a time-out rather than a failure.
#[derive(Debug)]
pub struct TimedOut(pub String);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for TimedOut {}

/// Times one run, repeating it (bounded) when other people's processes
/// used the machine meanwhile (waiting at most `quiet_wait` for quiet before
/// each attempt). A failed run is a sample without time (a [`TimedOut`]
/// error makes it a time-out); only interruption ends the benchmark.
pub fn measure(
    quiet_wait: Duration,
    round: u32,
    label: &str,
    prepare: &mut dyn FnMut() -> anyhow::Result<()>,
    timed: &mut dyn FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Sample> {
    let failed = |attempts: u32, note: String, timed_out: bool| {
        eprintln!(
            "  {label}: {}: {note}",
            if timed_out { "TIMED OUT" } else { "FAILED" }
        );
        Sample {
            round,
            seconds: None,
            foreign_cores: None,
            attempts,
            note: Some(note),
            timed_out,
        }
    };
    for attempt in 1..=ATTEMPTS {
        if let Err(error) = prepare() {
            process::check_interrupted()?;
            return Ok(failed(attempt, format!("preparing: {error:#}"), false));
        }
        cpu::wait_quiet(quiet_wait)?;
        let before = cpu::snapshot();
        let result = timed();
        let foreign = cpu::foreign_cores(&before, &cpu::snapshot());
        process::check_interrupted()?;
        let elapsed = match result {
            Ok(elapsed) => elapsed,
            Err(error) => {
                let timed_out = error.downcast_ref::<TimedOut>().is_some();
                return Ok(failed(attempt, format!("{error:#}"), timed_out));
            }
        };
        if foreign > cpu::RETRY_CORES && attempt < ATTEMPTS {
            eprintln!(
                "  {label}: {:.2} s under {foreign:.2} foreign cores; repeating",
                elapsed.as_secs_f64()
            );
            continue;
        }
        eprintln!(
            "  {label}: {:.2} s (foreign {foreign:.2} cores)",
            elapsed.as_secs_f64()
        );
        return Ok(Sample {
            round,
            seconds: Some(elapsed.as_secs_f64()),
            foreign_cores: Some(foreign),
            attempts: attempt,
            note: None,
            timed_out: false,
        });
    }
    unreachable!("the last attempt always returns")
}

/// The remote directory of the sync scenarios of `set`.
fn sync_name(set: DataSet) -> String {
    format!("sync-{}", set.name())
}

/// Fails unless the `qftp sync` summary in `log` has the expected counts.
fn check_summary(log: &Path, expected: SyncSummary) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    match SyncSummary::find(&text) {
        Some((summary, _)) if summary == expected => Ok(()),
        Some((_, line)) => bail!(
            "expected {} sent, {} unchanged, {} failed; got {line:?}",
            expected.sent,
            expected.unchanged,
            expected.failed
        ),
        None => bail!("no sync summary in {}", log.display()),
    }
}

/// Removes `path` and the partial file qftp may have left next to it.
pub fn remove_with_partial(path: &Path) -> anyhow::Result<()> {
    data::remove(path)?;
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        let partial = format!(".{}.qftp-part", name.to_string_lossy());
        data::remove(&parent.join(partial))?;
    }
    Ok(())
}

/// Flushes every file system, so no earlier writes are flushed during a
/// timed run.
pub fn sync() -> anyhow::Result<()> {
    process::run_ok(&mut Command::new("sync"), None, HELPER_LIMIT, "sync")?;
    Ok(())
}

/// Builds the release binaries of the server and the client.
fn build(paths: &Paths) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the release binaries");
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "-p",
            "qftp-server",
            "-p",
            "qftp-client",
        ])
        .current_dir(&paths.workspace);
    process::run_ok(&mut command, None, BUILD_LIMIT, "cargo build --release")?;
    check_binaries(paths)
}

/// Copies the release binaries to the benchmark's own directory, so a build
/// by someone else in the shared target directory cannot swap them during
/// the run; returns the BLAKE3 of each copy (first 16 hex digits).
fn snapshot_binaries(paths: &Paths) -> anyhow::Result<BTreeMap<String, String>> {
    data::remove(&paths.snapshot)?;
    std::fs::create_dir_all(&paths.snapshot)
        .with_context(|| format!("creating {}", paths.snapshot.display()))?;
    let mut hashes = BTreeMap::new();
    // This program too: the link scenarios run its `nfdelay` task and the
    // memory ceiling its `mem-ceiling` task.
    let this = std::env::current_exe().context("the path of this program")?;
    let sources = [
        ("qftp-server", paths.binaries.join("qftp-server")),
        ("qftp", paths.binaries.join("qftp")),
        ("xtask", this),
    ];
    for (binary, from) in sources {
        let to = paths.snapshot.join(binary);
        std::fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        let hash = data::hash(&to)?.to_hex();
        eprintln!(
            "{binary}: {} (blake3 {})",
            to.display(),
            &hash.as_str()[..16]
        );
        hashes.insert(binary.to_owned(), hash.as_str()[..16].to_owned());
    }
    Ok(hashes)
}

/// Fails unless both release binaries exist.
fn check_binaries(paths: &Paths) -> anyhow::Result<()> {
    for binary in ["qftp-server", "qftp"] {
        let path = paths.binaries.join(binary);
        if !path.is_file() {
            bail!(
                "{} is missing; build it with `cargo build --release`",
                path.display()
            );
        }
    }
    Ok(())
}

/// `git describe --always --dirty` of the workspace, or `unknown`.
fn commit(workspace: &Path) -> String {
    let describe = || -> anyhow::Result<String> {
        let mut output = tempfile::tempfile().context("creating a temporary file")?;
        let mut command = Command::new("git");
        command
            .args(["describe", "--always", "--dirty"])
            .current_dir(workspace)
            .stdout(output.try_clone().context("duplicating a file handle")?)
            .stderr(std::process::Stdio::null());
        process::run_ok(&mut command, None, HELPER_LIMIT, "git describe")?;
        let mut text = String::new();
        use std::io::{Read as _, Seek as _};
        output.rewind().context("rewinding git's output")?;
        output
            .read_to_string(&mut text)
            .context("reading git's output")?;
        Ok(text.trim().to_owned())
    };
    describe().unwrap_or_else(|_| "unknown".into())
}

/// A password for the benchmark user, different on every run.
fn password() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let seed = format!("{nanos} {}", std::process::id());
    let hash = blake3::hash(seed.as_bytes()).to_hex();
    format!("bench-{}", &hash.as_str()[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_summary_is_parsed() {
        let text = "qftp: skipped x: symlink\n\
                    sync: 0 sent, 10000 unchanged, 0 deleted, 0 failed; 0 B in 0.91 s (0 B/s), 0 B resumed\n";
        let (summary, line) = SyncSummary::find(text).unwrap();
        assert_eq!(
            summary,
            SyncSummary {
                sent: 0,
                unchanged: 10_000,
                failed: 0
            }
        );
        assert!(line.starts_with("sync: 0 sent"));
        assert!(SyncSummary::find("sync: nothing\n").is_none());
        assert!(SyncSummary::find("").is_none());
    }

    #[test]
    fn scenarios_map_to_peer_cases() {
        assert_eq!(Scenario::Sync10k.peer_scenario(), Some("small"));
        assert_eq!(Scenario::Resync10k.peer_scenario(), None);
        assert_eq!(Scenario::Sync1k1m.data_set(), DataSet::Medium);
        assert_eq!(Scenario::Resync1k1m.kind(), Kind::Resync);
        assert!(Scenario::Resync10k.is_upload());
    }
}
