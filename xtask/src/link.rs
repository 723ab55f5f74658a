//! The network-link scenarios of `cargo xtask bench`: `link-plain`,
//! `link-delay` and `link-loss`.
//!
//! A 256 MiB upload between two network namespaces that the benchmark
//! creates itself, joined by a veth pair with an MTU of 1500 on both ends
//! (so loopback's jumbo datagrams do not count). `qftp-server` runs in the
//! server namespace and `qftp` in the client namespace (`ip netns exec`),
//! both the benchmark's copies of the release binaries. The peers run over
//! the same link in the same rounds: scp, and qcp tuned for the path
//! (`--rx 250M --rtt 50`, with its default Cubic and with `--congestion
//! bbr`) when the peers script installed it. Their sshd is the peers
//! script's (its config, host key and authorized key), started by the
//! benchmark inside the server namespace.
//!
//! This kernel has no netem, so delay and loss come from `cargo xtask
//! nfdelay` ([`crate::nfdelay`]): in each namespace an iptables rule hands
//! every IPv4 packet arriving on the veth to a netfilter queue, which that
//! namespace's impairer serves. Both directions get the same delay and
//! loss, and every tool gets the same impairment.
//!
//! Every process started here (server, sshd and its sessions, impairers,
//! the timed clients and their children) is stopped by PID, and the rules
//! and namespaces are removed, when the measurement ends, fails or is
//! interrupted (the guards' `Drop`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::bench::{self, TimedOut};
use crate::data::{self, DataSet};
use crate::process::{self, Finish, Guard};
use crate::report::{PathReport, Sample, ScenarioReport, Series};
use crate::rerun::{self, Rerun};
use crate::server::{BenchClient, BenchServer, Placement, command_in, log_files};

/// The client's network namespace.
const CLIENT_NS: &str = "qftp-bench-client";
/// The server's network namespace.
const SERVER_NS: &str = "qftp-bench-server";
/// The veth end in the client namespace.
const CLIENT_IF: &str = "qfb-client";
/// The veth end in the server namespace.
const SERVER_IF: &str = "qfb-server";
/// The client's address (on a link that exists only between the two namespaces).
const CLIENT_IP: &str = "10.231.7.1";
/// The server's address.
const SERVER_IP: &str = "10.231.7.2";
/// The MTU of both veth ends: an Ethernet path, not loopback's 65536.
const MTU: u32 = 1500;
/// The netfilter queue of each namespace's impairer.
const QUEUE: u16 = 0;
/// Delay each way, in milliseconds, of the delayed scenarios.
const DELAY_MS: f64 = 25.0;
/// Loss each way of `link-loss`.
const LOSS: f64 = 0.01;
/// Echo requests of the RTT measurement.
const PING_COUNT: u32 = 20;
/// Time limit of `ip`, `iptables` and similar commands.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// Time limit of one timed run on a link without loss.
const CLEAN_LIMIT: Duration = Duration::from_secs(600);
/// How long the sshd and the impairers may take to get ready.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// qcp's tuning for this path: receive window and round trip.
const QCP_TUNING: [&str; 4] = ["--rx", "250M", "--rtt", "50"];

/// The impairment of a link scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impairment {
    /// None: the bare veth.
    Plain,
    /// 25 ms each way.
    Delay,
    /// 25 ms and 1 % loss each way.
    Loss,
}

impl Impairment {
    fn delay_ms(self) -> f64 {
        match self {
            Self::Plain => 0.0,
            Self::Delay | Self::Loss => DELAY_MS,
        }
    }

    fn loss(self) -> f64 {
        match self {
            Self::Loss => LOSS,
            Self::Plain | Self::Delay => 0.0,
        }
    }

    /// A short description for the scenario row.
    pub fn description(self) -> String {
        let set = DataSet::Link.description();
        match self {
            Self::Plain => format!("upload of {set} over a veth link, MTU 1500, no impairment"),
            Self::Delay => format!("upload of {set} over a veth link, MTU 1500, 25 ms each way"),
            Self::Loss => {
                format!("upload of {set} over a veth link, MTU 1500, 25 ms and 1 % loss each way")
            }
        }
    }
}

/// What the link scenarios need from the benchmark.
#[derive(Debug)]
pub struct Settings<'a> {
    /// Rounds; each runs every tool once.
    pub rounds: u32,
    /// Longest wait for a quiet machine before each run.
    pub quiet_wait: Duration,
    /// Time limit of each run on the lossy link.
    pub lossy_limit: Duration,
    /// The benchmark's copies of `qftp`, `qftp-server` and `xtask`.
    pub binaries: &'a Path,
    /// The 256 MiB source file.
    pub source: &'a Path,
    /// The link scenarios' own directory (server root, peer destinations).
    pub work: &'a Path,
    /// Where the processes' output goes.
    pub logs: &'a Path,
    /// The peers over ssh, or why there are none.
    pub peers: Result<Peers, String>,
}

/// The peers' tools on the link, from the peers script.
#[derive(Debug, Clone)]
pub struct Peers {
    sshd: PathBuf,
    sshd_config: PathBuf,
    ssh_config: PathBuf,
    /// qcp, or why it is not available.
    qcp: Result<PathBuf, String>,
}

impl Peers {
    /// Reads the sshd, its config and the ssh client config from the peers
    /// script, and looks for qcp on this PATH and on the PATH the script
    /// exports (where it installs qcp).
    pub fn from_script(script: &Path, logs: &Path) -> anyhow::Result<Self> {
        let rerun = Rerun::from_script(script)?;
        rerun.check(logs)?;
        let ssh_config = rerun
            .ssh_config()
            .with_context(|| format!("no `ssh -F CONFIG` in the SSHP of {}", script.display()))?;
        if !ssh_config.is_file() {
            bail!("{} does not exist", ssh_config.display());
        }
        for tool in ["ssh", "scp"] {
            if find_program(tool, &[]).is_none() {
                bail!("{tool} is not installed");
            }
        }
        let text =
            fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
        let qcp = find_program("qcp", &rerun::exported_path(&text)).ok_or_else(|| {
            "not installed: the peers script did not install qcp (its install phase runs \
             `cargo install qcp`; see --peers-install)"
                .to_owned()
        });
        Ok(Self {
            sshd: rerun.sshd().to_owned(),
            sshd_config: rerun.sshd_config().to_owned(),
            ssh_config,
            qcp,
        })
    }
}

/// `name` in this process's PATH, /usr/sbin or `extra`.
fn find_program(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .chain(extra.iter().cloned())
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}

/// The tools measured on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Qftp,
    Scp,
    QcpTuned,
    QcpBbr,
}

impl Tool {
    const ALL: [Self; 4] = [Self::Qftp, Self::Scp, Self::QcpTuned, Self::QcpBbr];

    fn name(self) -> &'static str {
        match self {
            Self::Qftp => "qftp",
            Self::Scp => "scp",
            Self::QcpTuned => "qcp (tuned)",
            Self::QcpBbr => "qcp (tuned, bbr)",
        }
    }

    /// The directory its output lands in, under the link's work directory.
    fn destination(self) -> &'static str {
        match self {
            Self::Qftp => "server/homes/bench",
            Self::Scp => "dst/scp",
            Self::QcpTuned | Self::QcpBbr => "dst/qcp",
        }
    }
}

/// Runs the link scenarios (`(name, impairment)` in order) and returns their
/// reports. A link that cannot be set up makes every row say why; only an
/// interruption is an error.
pub fn run(
    settings: &Settings<'_>,
    scenarios: &[(&'static str, Impairment)],
) -> anyhow::Result<Vec<ScenarioReport>> {
    let mut reports: Vec<ScenarioReport> = scenarios
        .iter()
        .map(|(name, impairment)| empty_report(settings, name, *impairment))
        .collect();
    if let Err(error) = measure_all(settings, scenarios, &mut reports) {
        process::check_interrupted()?;
        eprintln!("  link scenarios: {error:#}");
        for report in &mut reports {
            report
                .notes
                .push(format!("the link scenarios stopped: {error:#}"));
            if report.qftp.samples.is_empty() {
                report.verified = format!("not run: {error:#}");
            }
        }
    }
    Ok(reports)
}

/// The report of one scenario before anything ran.
fn empty_report(settings: &Settings<'_>, name: &str, impairment: Impairment) -> ScenarioReport {
    let set = DataSet::Link;
    let peers = Tool::ALL[1..]
        .iter()
        .map(|tool| match (&settings.peers, tool) {
            (Err(reason), _) => Series::unavailable(tool.name(), reason.clone()),
            (Ok(peers), Tool::QcpTuned | Tool::QcpBbr) if peers.qcp.is_err() => {
                Series::unavailable(
                    tool.name(),
                    peers.qcp.as_ref().err().cloned().unwrap_or_default(),
                )
            }
            (Ok(peers), _) => {
                Series::new(tool.name(), shown(&peer_command(settings, peers, *tool)))
            }
        })
        .collect();
    let qftp = format!(
        "ip netns exec {CLIENT_NS} qftp put --quiet {} (qftp-server in {SERVER_NS})",
        settings.source.display()
    );
    let reason = "n/a (network link)";
    ScenarioReport {
        name: name.to_owned(),
        description: impairment.description(),
        data_set: Some(set),
        files: set.files(),
        bytes: set.bytes(),
        qftp: Series::new("qftp", qftp),
        copy_syncfs: Series::unavailable("cp + sync -f", reason),
        copy_fsync_each: Series::unavailable("cp + fsync each file", reason),
        peers,
        verified: "not verified".into(),
        path: None,
        notes: Vec::new(),
    }
}

/// A command line for display.
fn shown(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| word.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The known-hosts file of the link's ssh clients (the script's own stays untouched).
fn known_hosts(settings: &Settings<'_>) -> PathBuf {
    settings.work.join("known_hosts")
}

/// The command of a peer tool, run in the client namespace.
fn peer_command(settings: &Settings<'_>, peers: &Peers, tool: Tool) -> Command {
    let known_hosts = format!("UserKnownHostsFile={}", known_hosts(settings).display());
    let target = format!(
        "root@{SERVER_IP}:{}/",
        settings.work.join(tool.destination()).display()
    );
    match tool {
        // qftp is not a peer; its command is the client's, never this one.
        Tool::Qftp | Tool::Scp => {
            let mut command = command_in(Some(CLIENT_NS), "scp");
            command
                .arg("-q")
                .arg("-F")
                .arg(&peers.ssh_config)
                .args(["-o", &known_hosts])
                .arg(settings.source)
                .arg(target);
            command
        }
        Tool::QcpTuned | Tool::QcpBbr => {
            let qcp = peers.qcp.clone().unwrap_or_else(|_| PathBuf::from("qcp"));
            let mut command = command_in(Some(CLIENT_NS), &qcp);
            command
                .arg("-q")
                .arg("--ssh-config")
                .arg(&peers.ssh_config)
                .arg("-S")
                .arg("-F")
                .arg("-S")
                .arg(&peers.ssh_config)
                .args(["-S", "-o", "-S", &known_hosts])
                .arg("--remote-qcp-binary")
                .arg(&qcp)
                .args(QCP_TUNING);
            if tool == Tool::QcpBbr {
                command.args(["--congestion", "bbr"]);
            }
            command.arg(settings.source).arg(target);
            command
        }
    }
}

/// Sets up the link, the server and the sshd, and measures every scenario.
fn measure_all(
    settings: &Settings<'_>,
    scenarios: &[(&'static str, Impairment)],
    reports: &mut [ScenarioReport],
) -> anyhow::Result<()> {
    let expected = data::hash(settings.source)?;
    data::remove(settings.work)?;
    fs::create_dir_all(settings.work)
        .with_context(|| format!("creating {}", settings.work.display()))?;
    // Dropped last: the namespaces go once everything in them has stopped.
    let link = Link::up(settings.logs)?;

    let password = format!("link-{}", blake3::hash(expected.as_bytes()).to_hex());
    let listen = format!("{SERVER_IP}:0");
    let server = BenchServer::start(
        settings.binaries,
        &settings.work.join("server"),
        &password,
        settings.logs,
        Placement {
            listen: &listen,
            netns: Some(SERVER_NS),
            log_prefix: "link-",
        },
    )?;
    eprintln!(
        "link: qftp-server in {SERVER_NS} listening on {}",
        server.address
    );
    let config = settings.work.join("client-config");
    fs::create_dir_all(&config).with_context(|| format!("creating {}", config.display()))?;
    let client = BenchClient::new(settings.binaries, &config).in_netns(CLIENT_NS, "link-");
    client.login(&server, &password, settings.logs)?;

    let sshd = match &settings.peers {
        Ok(peers) => match Sshd::start(settings, peers) {
            Ok(sshd) => Some(sshd),
            Err(error) => {
                process::check_interrupted()?;
                eprintln!("link: the peers' sshd: {error:#}");
                for report in reports.iter_mut() {
                    for series in &mut report.peers {
                        if series.unavailable.is_none() {
                            series.unavailable =
                                Some(format!("not measured: starting sshd: {error:#}"));
                        }
                    }
                }
                None
            }
        },
        Err(_) => None,
    };

    for (index, ((name, impairment), report)) in
        scenarios.iter().zip(reports.iter_mut()).enumerate()
    {
        eprintln!("{name}: {}", impairment.description());
        let seed = 1000 * (index as u64 + 1);
        let mut impairer = Impairer::start(settings, *impairment, seed)?;
        report.path = Some(path_report(*impairment));
        if let Some(path) = &mut report.path {
            ping(settings, name, path)?;
            eprintln!("  {}: {}", path.ping_command, path.ping_summary);
        }
        let limit = if impairment.loss() > 0.0 {
            settings.lossy_limit
        } else {
            CLEAN_LIMIT
        };
        for round in 1..=settings.rounds {
            eprintln!("  {name}: round {round} of {}", settings.rounds);
            let sample = timed_run(
                settings,
                &client,
                None,
                Tool::Qftp,
                name,
                round,
                limit,
                &expected,
            )?;
            report.qftp.samples.push(sample);
            for series in &mut report.peers {
                if series.unavailable.is_some() {
                    continue;
                }
                let (Ok(peers), Some(sshd)) = (&settings.peers, &sshd) else {
                    continue;
                };
                let Some(tool) = Tool::ALL
                    .into_iter()
                    .find(|tool| tool.name() == series.tool)
                else {
                    continue;
                };
                let sample = timed_run(
                    settings,
                    &client,
                    Some((peers, sshd)),
                    tool,
                    name,
                    round,
                    limit,
                    &expected,
                )?;
                series.samples.push(sample);
            }
        }
        let counters = impairer.finish();
        if let Some(path) = &mut report.path {
            path.impairer_counters = counters;
        }
        report.verified = verified(&report.qftp);
        for series in &mut report.peers {
            if series.unavailable.is_none() {
                series.verified = Some(verified(series));
            }
        }
    }
    drop(sshd);
    server.stop();
    drop(link);
    Ok(())
}

/// What the per-run checks of a series came to.
fn verified(series: &Series) -> String {
    let total = series.samples.len();
    let good = series
        .samples
        .iter()
        .filter(|sample| sample.seconds.is_some())
        .count();
    if total == 0 {
        "not run".into()
    } else if good == total {
        format!("verified (BLAKE3) after each of {total} run(s)")
    } else {
        format!("verified (BLAKE3) after {good} of {total} run(s); the others failed or timed out")
    }
}

/// One timed run of `tool` (in the client namespace), its output checked
/// against the source's BLAKE3 afterwards.
#[allow(clippy::too_many_arguments)]
fn timed_run(
    settings: &Settings<'_>,
    client: &BenchClient,
    peers: Option<(&Peers, &Sshd)>,
    tool: Tool,
    scenario: &str,
    round: u32,
    limit: Duration,
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
            bench::remove_with_partial(&output)?;
        } else {
            data::remove(&directory)?;
            fs::create_dir_all(&directory)
                .with_context(|| format!("creating {}", directory.display()))?;
        }
        bench::sync()?;
        data::warm(settings.source)
    };
    let mut timed = || -> anyhow::Result<Duration> {
        let mut command = match (tool, peers) {
            (Tool::Qftp, _) => {
                let mut command = client.command(["put", "--quiet"]);
                command.arg(settings.source);
                command
            }
            (_, Some((peers, _))) => peer_command(settings, peers, tool),
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
    bench::measure(
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

/// The description of the path of one scenario, before the ping.
fn path_report(impairment: Impairment) -> PathReport {
    let link = format!(
        "veth pair between the network namespaces {CLIENT_NS} ({CLIENT_IP}, client) and \
         {SERVER_NS} ({SERVER_IP}, server), MTU {MTU} on both ends"
    );
    let impairment = match impairment {
        Impairment::Plain => "no impairment".to_owned(),
        _ => {
            let what = if impairment.loss() > 0.0 {
                format!(
                    "{} ms delay and {} % loss",
                    impairment.delay_ms(),
                    impairment.loss() * 100.0
                )
            } else {
                format!("{} ms delay", impairment.delay_ms())
            };
            format!(
                "{what} on each direction: in each namespace `{} -t raw -A PREROUTING -i IF -j \
                 NFQUEUE --queue-num {QUEUE}` hands every IPv4 packet arriving on the veth to \
                 `cargo xtask nfdelay --delay-ms {} --loss {}` there (userspace, since this \
                 kernel has no netem)",
                iptables(),
                impairment.delay_ms(),
                impairment.loss()
            )
        }
    };
    PathReport {
        link,
        impairment,
        ping_command: format!(
            "ip netns exec {CLIENT_NS} ping -q -U -c {PING_COUNT} -i 0.2 {SERVER_IP}"
        ),
        rtt_ms: None,
        ping_loss_percent: None,
        ping_summary: "not measured".into(),
        impairer_counters: Vec::new(),
    }
}

/// Measures the round trip through the (impaired) link with ping.
fn ping(settings: &Settings<'_>, scenario: &str, path: &mut PathReport) -> anyhow::Result<()> {
    let log = settings.logs.join(format!("{scenario}-ping.log"));
    let (stdout, stderr) = log_files(&log)?;
    let count = PING_COUNT.to_string();
    let mut command = command_in(Some(CLIENT_NS), "ping");
    command
        .args(["-q", "-U", "-c", &count, "-i", "0.2", "-W", "2", SERVER_IP])
        .stdout(stdout)
        .stderr(stderr);
    let outcome = process::run(&mut command, None, COMMAND_LIMIT, "ping");
    process::check_interrupted()?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    let (rtt, loss) = parse_ping(&text);
    path.rtt_ms = rtt;
    path.ping_loss_percent = loss;
    path.ping_summary = match (&outcome, rtt) {
        (_, Some(_)) => text
            .lines()
            .filter(|line| line.contains("packet loss") || line.starts_with("rtt"))
            .collect::<Vec<_>>()
            .join("; "),
        (Err(error), None) => format!("ping failed: {error:#}"),
        (Ok(_), None) => format!("no RTT in the output of ping; see {}", log.display()),
    };
    Ok(())
}

/// The RTT (min, avg, max, mdev in ms) and loss (%) in ping's summary.
fn parse_ping(text: &str) -> (Option<[f64; 4]>, Option<f64>) {
    let loss = text.lines().find_map(|line| {
        let before = line
            .split("% packet loss")
            .next()
            .filter(|_| line.contains("% packet loss"))?;
        before.rsplit([' ', ',']).next()?.parse().ok()
    });
    let rtt = text.lines().find_map(|line| {
        let values = line.strip_prefix("rtt min/avg/max/mdev = ")?;
        let values = values.split_whitespace().next()?;
        let numbers: Vec<f64> = values.split('/').filter_map(|v| v.parse().ok()).collect();
        <[f64; 4]>::try_from(numbers).ok()
    });
    (rtt, loss)
}

/// The iptables of the link rules: the legacy one where it exists (this
/// kernel's netfilter tables are driven by it), else `iptables`.
fn iptables() -> &'static str {
    if find_program("iptables-legacy", &[]).is_some() {
        "iptables-legacy"
    } else {
        "iptables"
    }
}

/// Runs a short helper command (`ip`, `iptables`), failing with its output.
fn helper(command: &mut Command, label: &str, logs: &Path) -> anyhow::Result<()> {
    run_helper(command, label, logs, false)
}

/// Runs a clean-up helper: also after Ctrl-C, when [`helper`] refuses.
fn cleanup(command: &mut Command, label: &str, logs: &Path) -> anyhow::Result<()> {
    run_helper(command, label, logs, true)
}

fn run_helper(
    command: &mut Command,
    label: &str,
    logs: &Path,
    cleaning: bool,
) -> anyhow::Result<()> {
    let log = logs.join("link-setup.log");
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let copy = file.try_clone().context("duplicating a file handle")?;
    command.stdout(file).stderr(copy);
    let result = if cleaning {
        process::run_cleanup(command, COMMAND_LIMIT, label)
    } else {
        process::run_ok(command, None, COMMAND_LIMIT, label).map(|_| ())
    };
    result.with_context(|| format!("see {}", log.display()))
}

/// The two namespaces and the veth pair; removed when dropped.
#[derive(Debug)]
struct Link {
    logs: PathBuf,
}

impl Link {
    /// Creates the namespaces (removing leftovers of an earlier run that
    /// was killed) and the veth pair, addresses it and brings it up.
    fn up(logs: &Path) -> anyhow::Result<Self> {
        for namespace in [CLIENT_NS, SERVER_NS] {
            if namespace_exists(namespace) {
                eprintln!("link: removing the namespace {namespace} left by an earlier run");
                let _ = cleanup(
                    Command::new("ip").args(["netns", "del", namespace]),
                    "ip netns del",
                    logs,
                );
            }
        }
        let link = Self {
            logs: logs.to_owned(),
        };
        let mtu = MTU.to_string();
        let ip = |arguments: &[&str]| -> anyhow::Result<()> {
            helper(
                Command::new("ip").args(arguments),
                &format!("ip {}", arguments.join(" ")),
                logs,
            )
        };
        ip(&["netns", "add", CLIENT_NS])?;
        ip(&["netns", "add", SERVER_NS])?;
        ip(&[
            "link", "add", CLIENT_IF, "mtu", &mtu, "netns", CLIENT_NS, "type", "veth", "peer",
            "name", SERVER_IF, "mtu", &mtu, "netns", SERVER_NS,
        ])?;
        for (namespace, interface, address) in [
            (CLIENT_NS, CLIENT_IF, CLIENT_IP),
            (SERVER_NS, SERVER_IF, SERVER_IP),
        ] {
            let address = format!("{address}/24");
            ip(&["-n", namespace, "addr", "add", &address, "dev", interface])?;
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
            ip(&["-n", namespace, "link", "set", interface, "mtu", &mtu, "up"])?;
        }
        eprintln!("link: {CLIENT_NS} ({CLIENT_IP}) <-> {SERVER_NS} ({SERVER_IP}), veth MTU {MTU}");
        Ok(link)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for namespace in [CLIENT_NS, SERVER_NS] {
            if namespace_exists(namespace) {
                if let Err(error) = cleanup(
                    Command::new("ip").args(["netns", "del", namespace]),
                    "ip netns del",
                    &self.logs,
                ) {
                    eprintln!("link: removing the namespace {namespace}: {error:#}");
                }
            }
        }
    }
}

/// Whether `ip netns list` shows `namespace`.
fn namespace_exists(namespace: &str) -> bool {
    Path::new("/run/netns").join(namespace).exists()
}

/// The impairers of one scenario and their iptables rules; removed when
/// dropped (rules first, so no packet waits for a queue nobody serves).
#[derive(Debug)]
struct Impairer {
    /// Per namespace: its interface, the impairer and its log.
    sides: Vec<(&'static str, &'static str, Guard, PathBuf)>,
    rules: Vec<(&'static str, &'static str)>,
    logs: PathBuf,
}

impl Impairer {
    /// Starts an impairer in each namespace and steers the veth's incoming
    /// packets to it; nothing for a plain link.
    fn start(settings: &Settings<'_>, impairment: Impairment, seed: u64) -> anyhow::Result<Self> {
        let mut impairer = Self {
            sides: Vec::new(),
            rules: Vec::new(),
            logs: settings.logs.to_owned(),
        };
        if impairment == Impairment::Plain {
            return Ok(impairer);
        }
        let xtask = settings.binaries.join("xtask");
        for (offset, (namespace, interface)) in [(CLIENT_NS, CLIENT_IF), (SERVER_NS, SERVER_IF)]
            .into_iter()
            .enumerate()
        {
            let log = settings
                .logs
                .join(format!("nfdelay-{namespace}-seed-{seed}.log"));
            let (stdout, stderr) = log_files(&log)?;
            let child = command_in(Some(namespace), &xtask)
                .arg("nfdelay")
                .args(["--queue", &QUEUE.to_string()])
                .args(["--delay-ms", &impairment.delay_ms().to_string()])
                .args(["--loss", &impairment.loss().to_string()])
                .args(["--seed", &(seed + offset as u64).to_string()])
                .stdin(std::process::Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .with_context(|| format!("starting {} nfdelay", xtask.display()))?;
            let mut guard = Guard::new(child, format!("nfdelay in {namespace}"), "TERM");
            let deadline = Instant::now() + READY_LIMIT;
            loop {
                let text = fs::read_to_string(&log).unwrap_or_default();
                if text.contains("nfdelay ready") {
                    break;
                }
                if guard.exited() {
                    bail!("nfdelay in {namespace} exited at once: {}", text.trim());
                }
                if Instant::now() >= deadline {
                    bail!(
                        "nfdelay in {namespace} was not ready within {} s",
                        READY_LIMIT.as_secs()
                    );
                }
                process::sleep(Duration::from_millis(50))?;
            }
            impairer.sides.push((namespace, interface, guard, log));
        }
        for (namespace, interface) in [(CLIENT_NS, CLIENT_IF), (SERVER_NS, SERVER_IF)] {
            let mut command = command_in(Some(namespace), iptables());
            command.args(rule("-A", interface));
            helper(&mut command, "iptables -A", settings.logs)?;
            impairer.rules.push((namespace, interface));
        }
        Ok(impairer)
    }

    /// Removes the rules, stops the impairers and returns the counters they
    /// printed on exit.
    fn finish(&mut self) -> Vec<String> {
        for (namespace, interface) in std::mem::take(&mut self.rules) {
            let mut command = command_in(Some(namespace), iptables());
            command.args(rule("-D", interface));
            if let Err(error) = cleanup(&mut command, "iptables -D", &self.logs) {
                eprintln!("link: removing the rule in {namespace}: {error:#}");
            }
        }
        let mut counters = Vec::new();
        for (namespace, _, mut guard, log) in std::mem::take(&mut self.sides) {
            guard.stop();
            let text = fs::read_to_string(&log).unwrap_or_default();
            let line = text
                .lines()
                .rev()
                .find(|line| line.starts_with("nfdelay exit"))
                .map_or_else(
                    || format!("no counters; see {}", log.display()),
                    str::to_owned,
                );
            counters.push(format!(
                "impairer in {namespace} (packets arriving there): {line}"
            ));
        }
        counters
    }
}

impl Drop for Impairer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The arguments of the rule that steers packets arriving on `interface`
/// to the impairer's queue (`-A` adds it, `-D` removes it).
fn rule(action: &str, interface: &str) -> Vec<String> {
    [
        "-t",
        "raw",
        action,
        "PREROUTING",
        "-i",
        interface,
        "-j",
        "NFQUEUE",
        "--queue-num",
    ]
    .iter()
    .map(|word| (*word).to_owned())
    .chain([QUEUE.to_string()])
    .collect()
}

/// The peers script's sshd, started by the benchmark in the server
/// namespace with a config derived from the script's (listening on the
/// link's address); its sessions and itself are stopped by PID when dropped.
#[derive(Debug)]
struct Sshd {
    guard: Guard,
}

impl Sshd {
    fn start(settings: &Settings<'_>, peers: &Peers) -> anyhow::Result<Self> {
        let original = fs::read_to_string(&peers.sshd_config)
            .with_context(|| format!("reading {}", peers.sshd_config.display()))?;
        let mut config = String::from(
            "# Derived by cargo xtask bench from the peers script's sshd config:\n\
             # the same keys and settings, listening on the link's server address.\n",
        );
        for line in original.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            if ["port", "listenaddress", "pidfile"].contains(&key.to_ascii_lowercase().as_str()) {
                continue;
            }
            config.push_str(line);
            config.push('\n');
        }
        config.push_str(&format!("Port 22\nListenAddress {SERVER_IP}\n"));
        let path = settings.work.join("sshd_config");
        fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        let _ = fs::remove_file(known_hosts(settings));

        let mut check = Command::new(&peers.sshd);
        check
            .arg("-t")
            .arg("-f")
            .arg(&path)
            .args(["-o", "PidFile=none"]);
        helper(&mut check, "sshd -t", settings.logs)?;

        let log = settings.logs.join("link-sshd.log");
        let (stdout, stderr) = log_files(&log)?;
        let child = command_in(Some(SERVER_NS), &peers.sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&path)
            .args(["-o", "PidFile=none"])
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", peers.sshd.display()))?;
        let mut sshd = Self {
            guard: Guard::new(child, format!("sshd in {SERVER_NS}"), "TERM"),
        };
        let known_hosts = format!("UserKnownHostsFile={}", known_hosts(settings).display());
        let deadline = Instant::now() + READY_LIMIT;
        let check_log = settings.logs.join("link-ssh-check.log");
        loop {
            if sshd.guard.exited() {
                bail!("sshd exited at once; see {}", log.display());
            }
            let (stdout, stderr) = log_files(&check_log)?;
            let mut command = command_in(Some(CLIENT_NS), "ssh");
            command
                .arg("-F")
                .arg(&peers.ssh_config)
                .args(["-o", &known_hosts, "-o", "ConnectTimeout=2"])
                .arg(format!("root@{SERVER_IP}"))
                .arg("true")
                .stdout(stdout)
                .stderr(stderr);
            if process::run_ok(&mut command, None, COMMAND_LIMIT, "ssh true").is_ok() {
                break;
            }
            process::check_interrupted()?;
            if Instant::now() >= deadline {
                bail!(
                    "ssh root@{SERVER_IP} true did not succeed within {} s; see {} and {}",
                    READY_LIMIT.as_secs(),
                    check_log.display(),
                    log.display()
                );
            }
            process::sleep(Duration::from_millis(200))?;
        }
        eprintln!("link: sshd in {SERVER_NS} on {SERVER_IP}:22 (the peers script's keys)");
        Ok(sshd)
    }

    /// Stops whatever runs under the sshd (sessions and their children).
    fn end_sessions(&self) {
        process::stop_all(&process::descendants(self.guard.id()));
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.end_sessions();
        self.guard.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_is_parsed() {
        let text = "PING 10.231.7.2 (10.231.7.2) 56(84) bytes of data.\n\n\
                    --- 10.231.7.2 ping statistics ---\n\
                    20 packets transmitted, 19 received, 5% packet loss, time 3805ms\n\
                    rtt min/avg/max/mdev = 50.412/50.873/52.004/0.377 ms\n";
        let (rtt, loss) = parse_ping(text);
        assert_eq!(rtt, Some([50.412, 50.873, 52.004, 0.377]));
        assert_eq!(loss, Some(5.0));
        assert_eq!(
            parse_ping("ping: connect: Network is unreachable\n"),
            (None, None)
        );
    }

    #[test]
    fn rules_name_the_queue() {
        assert_eq!(
            rule("-A", "veth0").join(" "),
            "-t raw -A PREROUTING -i veth0 -j NFQUEUE --queue-num 0"
        );
    }
}
