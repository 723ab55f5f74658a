//! `cargo xtask bench`: qftp against a durable local copy and against the
//! peers (scp, rsync), on loopback, in one run.
//!
//! The steps: build the release binaries; generate the data sets under
//! `target/bench/data` if missing; start `qftp-server` on 127.0.0.1 with a
//! fresh root under `target/bench/server` and log in through the CLI; then,
//! for each round, time one `qftp` run of every scenario, one `cp` +
//! `sync -f` and one `cp` + fsync-each-file of every data set, and one
//! invocation of the peers script for the matching scp/rsync cases. Before
//! each timed run the destination is removed and `sync` runs (not timed),
//! the source is read into the page cache and the machine is given a
//! bounded wait to go quiet; a run during which other people's processes
//! used more than [`cpu::RETRY_CORES`] is repeated (at most
//! [`ATTEMPTS`] times). After the last round each qftp destination is
//! compared with its source. The report holds the medians of the rounds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cpu;
use crate::data::{self, DataSet};
use crate::peers::{self, Peers};
use crate::process;
use crate::report::{Machine, Report, Sample, ScenarioReport, Series};
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
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Put1g => "put-1g",
            Self::Get1g => "get-1g",
            Self::Put10k => "put-10k",
            Self::Put1k1m => "put-1k-1m",
        }
    }

    fn data_set(self) -> DataSet {
        match self {
            Self::Put1g | Self::Get1g => DataSet::Big,
            Self::Put10k => DataSet::Small,
            Self::Put1k1m => DataSet::Medium,
        }
    }

    fn is_upload(self) -> bool {
        !matches!(self, Self::Get1g)
    }

    /// The peers script's scenario with the same data and direction.
    fn peer_scenario(self) -> Option<&'static str> {
        match self {
            Self::Put1g => Some("big"),
            Self::Put10k => Some("small"),
            Self::Put1k1m => Some("med"),
            Self::Get1g => None,
        }
    }

    fn description(self) -> String {
        let direction = if self.is_upload() {
            "upload"
        } else {
            "download"
        };
        format!("{direction} of {}", self.data_set().description())
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
    /// The team's peers script (peers.sh), which measures scp and rsync.
    #[arg(long, env = "QFTP_PEERS_SCRIPT", value_name = "PATH")]
    peers_script: Option<PathBuf>,
    /// Measure qftp and cp only (even when a peers script is given).
    #[arg(long)]
    no_peers: bool,
    /// Peer tools to measure: case ids of the peers script, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["scp".to_owned(), "rsync".to_owned()])]
    peer_tools: Vec<String>,
    /// Where the peers script writes its results.
    #[arg(
        long,
        env = "QFTP_PEERS_RESULTS",
        value_name = "DIR",
        default_value = "/tmp/qftp-peers/results"
    )]
    peers_results: PathBuf,
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
    /// Files in flight at once (`qftp -j`) in the tree scenarios.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
}

/// Where things live.
#[derive(Debug)]
struct Paths {
    workspace: PathBuf,
    binaries: PathBuf,
    bench: PathBuf,
    data: PathBuf,
    logs: PathBuf,
    server: PathBuf,
    downloads: PathBuf,
    copies: PathBuf,
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
            data: bench.join("data"),
            logs: bench.join("logs"),
            server: bench.join("server"),
            downloads: bench.join("downloads"),
            copies: bench.join("copies"),
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

    let mut sets: Vec<DataSet> = Vec::new();
    for scenario in &scenarios {
        if !sets.contains(&scenario.data_set()) {
            sets.push(scenario.data_set());
        }
    }
    let mut sources = BTreeMap::new();
    for set in &sets {
        sources.insert(set.name(), data::ensure(&paths.data, *set)?);
    }

    let (peers, peers_unavailable) = set_up_peers(arguments, &paths);
    let peer_versions = peers.as_ref().map(Peers::versions).unwrap_or_default();

    let password = password();
    let server = BenchServer::start(&paths.binaries, &paths.server, &password, &paths.logs)?;
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
    let client = BenchClient::new(&paths.binaries, config.path());
    client.login(&server, &password, &paths.logs)?;
    for directory in [&paths.downloads, &paths.copies] {
        data::remove(directory)?;
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
    }

    let bench = Bench {
        arguments,
        paths: &paths,
        client: &client,
        home: server.home(),
    };
    let mut reports: Vec<ScenarioReport> = scenarios
        .iter()
        .map(|scenario| bench.empty_report(*scenario, peers_unavailable.as_deref()))
        .collect();
    let mut copy_syncfs: BTreeMap<&str, Series> = BTreeMap::new();
    let mut copy_fsync_each: BTreeMap<&str, Series> = BTreeMap::new();
    for set in &sets {
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
        for set in &sets {
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
            measure_peers(
                peers,
                round,
                &scenarios,
                &mut reports,
                &arguments.peer_tools,
            )?;
        }
    }
    server.stop();

    for (scenario, report) in scenarios.iter().zip(&mut reports) {
        let name = scenario.data_set().name();
        if let Some(series) = copy_syncfs.get(name) {
            report.copy_syncfs = series.clone();
        }
        if let Some(series) = copy_fsync_each.get(name) {
            report.copy_fsync_each = series.clone();
        }
    }
    for directory in [&paths.downloads, &paths.copies, &paths.server] {
        data::remove(directory)?;
    }

    let mut settings = BTreeMap::new();
    let mut setting = |key: &str, value: serde_json::Value| {
        settings.insert(key.to_owned(), value);
    };
    setting("scenarios", serde_json::to_value(&scenarios)?);
    setting("jobs", arguments.jobs.into());
    setting("built", (!arguments.no_build).into());
    setting("attempts_at_most", ATTEMPTS.into());
    setting("quiet_below_cores", cpu::QUIET_CORES.into());
    setting("repeat_above_cores", cpu::RETRY_CORES.into());
    setting("quiet_wait_seconds", arguments.quiet_wait.into());
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

/// The peers script, ready to measure, or why there is none.
fn set_up_peers(arguments: &BenchArgs, paths: &Paths) -> (Option<Peers>, Option<String>) {
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
    let peers = Peers::new(
        script,
        &arguments.peers_results,
        &paths.logs,
        arguments.quiet_wait,
    )
    .and_then(|peers| {
        peers.prepare(arguments.peers_install)?;
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

/// One invocation of the peers script for this round's cases.
fn measure_peers(
    peers: &Peers,
    round: u32,
    scenarios: &[Scenario],
    reports: &mut [ScenarioReport],
    tools: &[String],
) -> anyhow::Result<()> {
    let cases: Vec<String> = scenarios
        .iter()
        .filter_map(|scenario| scenario.peer_scenario())
        .flat_map(|scenario| tools.iter().map(move |tool| peers::case(scenario, tool)))
        .collect();
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
            let case = peers::case(peer_scenario, &series.tool);
            let result = peers.read(&case);
            let note = match (&invocation, result.seconds) {
                (Err(error), None) => Some(format!("{}; {error:#}", result.status)),
                _ => Some(result.status.clone()),
            };
            eprintln!(
                "  {case}: {}",
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
}

impl Bench<'_> {
    fn empty_report(&self, scenario: Scenario, peers_unavailable: Option<&str>) -> ScenarioReport {
        let set = scenario.data_set();
        let peers = self
            .arguments
            .peer_tools
            .iter()
            .map(|tool| match (peers_unavailable, scenario.peer_scenario()) {
                (Some(reason), _) => Series::unavailable(tool, reason),
                (None, None) => {
                    Series::unavailable(tool, "n/a: the peers script has no download case")
                }
                (None, Some(peer_scenario)) => Series::new(
                    tool,
                    format!(
                        "peers script case {} (hyperfine, 1 run per round)",
                        peers::case(peer_scenario, tool)
                    ),
                ),
            })
            .collect();
        ScenarioReport {
            name: scenario.name().into(),
            description: scenario.description(),
            data_set: set,
            files: set.files(),
            bytes: set.bytes(),
            qftp: Series::new("qftp", self.qftp_arguments(scenario).join(" ")),
            copy_syncfs: Series::unavailable("cp + sync -f", "not measured"),
            copy_fsync_each: Series::unavailable("cp + fsync each file", "not measured"),
            peers,
            verified: "not verified".into(),
        }
    }

    /// The `qftp` arguments of a scenario.
    fn qftp_arguments(&self, scenario: Scenario) -> Vec<String> {
        let source = self.paths.data.join(scenario.data_set().name());
        let source = source.display().to_string();
        match scenario {
            Scenario::Put1g => vec!["put".into(), "--quiet".into(), source],
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
        }
    }

    /// Where a scenario's qftp output lands.
    fn destination(&self, scenario: Scenario) -> PathBuf {
        let name = scenario.data_set().name();
        if scenario.is_upload() {
            self.home.join(name)
        } else {
            self.paths.downloads.join(name)
        }
    }

    /// Times one run, repeating it (bounded) when other people's processes
    /// used the machine meanwhile. A failed run is a sample without time;
    /// only interruption ends the benchmark.
    fn measure(
        &self,
        round: u32,
        label: &str,
        prepare: &mut dyn FnMut() -> anyhow::Result<()>,
        timed: &mut dyn FnMut() -> anyhow::Result<Duration>,
    ) -> anyhow::Result<Sample> {
        let failed = |attempts: u32, note: String| {
            eprintln!("  {label}: FAILED: {note}");
            Sample {
                round,
                seconds: None,
                foreign_cores: None,
                attempts,
                note: Some(note),
            }
        };
        for attempt in 1..=ATTEMPTS {
            if let Err(error) = prepare() {
                process::check_interrupted()?;
                return Ok(failed(attempt, format!("preparing: {error:#}")));
            }
            cpu::wait_quiet(Duration::from_secs(self.arguments.quiet_wait))?;
            let before = cpu::snapshot();
            let result = timed();
            let foreign = cpu::foreign_cores(&before, &cpu::snapshot());
            process::check_interrupted()?;
            let elapsed = match result {
                Ok(elapsed) => elapsed,
                Err(error) => return Ok(failed(attempt, format!("{error:#}"))),
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
            });
        }
        unreachable!("the last attempt always returns")
    }

    /// One timed `qftp` run of `scenario`.
    fn qftp_sample(&self, round: u32, scenario: Scenario, source: &Path) -> anyhow::Result<Sample> {
        let destination = self.destination(scenario);
        let log = self
            .paths
            .logs
            .join(format!("qftp-{}-round-{round}.log", scenario.name()));
        let mut prepare = || -> anyhow::Result<()> {
            if !scenario.is_upload() {
                self.ensure_remote(scenario.data_set(), source)?;
            }
            remove_with_partial(&destination)?;
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
            Ok(outcome.elapsed)
        };
        self.measure(
            round,
            &format!("qftp {}", scenario.name()),
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

/// Removes `path` and the partial file qftp may have left next to it.
fn remove_with_partial(path: &Path) -> anyhow::Result<()> {
    data::remove(path)?;
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        let partial = format!(".{}.qftp-part", name.to_string_lossy());
        data::remove(&parent.join(partial))?;
    }
    Ok(())
}

/// Flushes every file system, so no earlier writes are flushed during a
/// timed run.
fn sync() -> anyhow::Result<()> {
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
