//! The link scenarios, round by round: the link, the server in its
//! namespace, the logged-in client and the peers' sshd are set up once;
//! each scenario then gets its impairment and a ping, and each round one
//! timed run of every tool; afterwards the impairers' counters and the
//! output checks join the rows.
//!
//! It orders the runs and fills the rows; the pieces are
//! [`super::namespaces`], [`super::impairer`], [`super::sshd`],
//! [`super::path`] and [`super::runs`].

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use anyhow::Context as _;

use super::contest::{ARENA, Contender, Contest};
use super::contest_runs::{Arena, contest_round};
use super::impairer::Impairer;
use super::impairment::{Bottleneck, Impairment};
use super::namespaces::{CLIENT_NS, Link, SERVER_IP, SERVER_NS};
use super::path::{path_report, ping};
use super::plain_flow::measure_link_rate;
use super::runs::timed_run;
use super::settings::Settings;
use super::shaper::Shaper;
use super::sshd::Sshd;
use super::tools::{Tool, peer_command, shown};
use crate::contest_report::ContestReport;
use crate::data::{self, DataSet};
use crate::link_rate::LinkRate;
use crate::process;
use crate::report::{ScenarioReport, Series};
use crate::server::{BenchClient, BenchServer, Placement};

/// Time limit of one timed run on a link without loss.
const CLEAN_LIMIT: Duration = Duration::from_secs(600);

/// Runs the link scenarios (`(name, impairment)` in order), then the
/// fairness contests, and returns their reports. A link that cannot be set
/// up makes every row say why; only an interruption is an error.
pub fn run(
    settings: &Settings<'_>,
    scenarios: &[(&'static str, Impairment)],
    contests: &[(&'static str, Contest)],
) -> anyhow::Result<(Vec<ScenarioReport>, Vec<ContestReport>)> {
    let mut reports: Vec<ScenarioReport> = scenarios
        .iter()
        .map(|(name, impairment)| empty_report(settings, name, *impairment))
        .collect();
    let mut contest_reports: Vec<ContestReport> = contests
        .iter()
        .map(|(name, contest)| ContestReport {
            name: (*name).to_owned(),
            description: contest.description(),
            goal: contest.goal().to_owned(),
            link_rate: None,
            rounds: Vec::new(),
            met: None,
            notes: Vec::new(),
        })
        .collect();
    let mut rows = Rows {
        scenarios: &mut reports,
        contests: &mut contest_reports,
    };
    if let Err(error) = measure_all(settings, scenarios, contests, &mut rows) {
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
        for report in &mut contest_reports {
            report
                .notes
                .push(format!("the link scenarios stopped: {error:#}"));
        }
    }
    Ok((reports, contest_reports))
}

/// The rows being filled.
struct Rows<'a> {
    scenarios: &'a mut [ScenarioReport],
    contests: &'a mut [ContestReport],
}

/// The report of one scenario before anything ran.
fn empty_report(settings: &Settings<'_>, name: &str, impairment: Impairment) -> ScenarioReport {
    let set = DataSet::Link;
    let peers = Tool::ALL[1..]
        .iter()
        .filter(|tool| **tool != Tool::Rsync || impairment.bottleneck().is_some())
        .map(|tool| match (&settings.peers, tool) {
            (Err(reason), _) => Series::unavailable(tool.name(), reason.clone()),
            (Ok(peers), Tool::QcpTuned | Tool::QcpBbr) if peers.qcp.is_err() => {
                Series::unavailable(
                    tool.name(),
                    peers.qcp.as_ref().err().cloned().unwrap_or_default(),
                )
            }
            (Ok(peers), _) => Series::new(
                tool.name(),
                shown(&peer_command(
                    settings,
                    peers,
                    *tool,
                    impairment.tuned_rtt_ms(),
                )),
            ),
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

/// Sets up the link, the server and the sshd, and measures every scenario.
fn measure_all(
    settings: &Settings<'_>,
    scenarios: &[(&'static str, Impairment)],
    contests: &[(&'static str, Contest)],
    rows: &mut Rows<'_>,
) -> anyhow::Result<()> {
    let reports = &mut *rows.scenarios;
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

    let mut rates = BTreeMap::new();
    for (index, ((name, impairment), report)) in
        scenarios.iter().zip(reports.iter_mut()).enumerate()
    {
        eprintln!("{name}: {}", impairment.description());
        let seed = 1000 * (index as u64 + 1);
        let shaper = match impairment.bottleneck() {
            Some(bottleneck) => Some(Shaper::start(settings, bottleneck)?),
            None => None,
        };
        let mut path = path_report(*impairment);
        if let Some(bottleneck) = impairment.bottleneck() {
            path.link_rate = Some(link_rate(settings, &mut rates, bottleneck, seed)?);
            if let Some(rate) = &path.link_rate {
                eprintln!("  link rate: {}", rate.how);
            }
        }
        let mut impairer = Impairer::start(settings, *impairment, seed)?;
        report.path = Some(path);
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
                impairment.tuned_rtt_ms(),
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
                    impairment.tuned_rtt_ms(),
                    &expected,
                )?;
                series.samples.push(sample);
            }
        }
        let counters = impairer.finish();
        drop(shaper);
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
    if !contests.is_empty() {
        // A second client with a session of its own: its own QUIC connection.
        let config = settings.work.join("client-config-2");
        fs::create_dir_all(&config).with_context(|| format!("creating {}", config.display()))?;
        let second = BenchClient::new(settings.binaries, &config).in_netns(CLIENT_NS, "link-2-");
        second.login(&server, &password, settings.logs)?;
        let clients = [client, second];
        for (index, ((name, contest), report)) in
            contests.iter().zip(rows.contests.iter_mut()).enumerate()
        {
            eprintln!("{name}: {}", contest.description());
            let seed = 100_000 + 1000 * index as u64;
            let _shaper = Shaper::start(settings, ARENA)?;
            let rate = link_rate(settings, &mut rates, ARENA, seed)?;
            eprintln!("  link rate: {}", rate.how);
            report.link_rate = Some(rate);
            let mut impairer = Impairer::start(settings, Impairment::Bottleneck(ARENA), seed)?;
            for round in 1..=settings.rounds {
                eprintln!("  {name}: round {round} of {}", settings.rounds);
                let arena = Arena {
                    settings,
                    server: &server,
                    clients: &clients,
                    name,
                    round,
                    limit: CLEAN_LIMIT,
                };
                let result = contest_round(arena, *contest, DataSet::Link.bytes())?;
                report.rounds.push(result);
            }
            report.notes.extend(impairer.finish());
            let qftp = contest
                .contenders()
                .iter()
                .position(|contender| *contender == Contender::Qftp(0));
            report.met = report
                .median_jain()
                .map(|jain| contest.met(qftp.and_then(|index| report.median_part(index)), jain));
        }
    }
    server.stop();
    drop(link);
    Ok(())
}

/// The link rate of `bottleneck`: one plain Cubic flow through the same
/// rate and round trip without random loss (a lossy path would measure
/// TCP's loss response, not the link), measured once per rate and round
/// trip. A flow that fails gives the reason instead of a rate.
fn link_rate(
    settings: &Settings<'_>,
    rates: &mut BTreeMap<Bottleneck, LinkRate>,
    bottleneck: Bottleneck,
    seed: u64,
) -> anyhow::Result<LinkRate> {
    let clean = bottleneck.without_loss();
    if let Some(rate) = rates.get(&clean) {
        return Ok(rate.clone());
    }
    let name = format!("tbf{}-rtt{}", clean.rate_mbit, clean.rtt_ms);
    let measured = {
        let _impairer = Impairer::start(settings, Impairment::Bottleneck(clean), seed + 500)?;
        measure_link_rate(settings, &name, DataSet::Link.bytes(), CLEAN_LIMIT)
    };
    process::check_interrupted()?;
    let rate = measured.unwrap_or_else(|error| LinkRate {
        bytes_per_second: None,
        how: format!("not measured: {error:#}"),
    });
    rates.insert(clean, rate.clone());
    Ok(rate)
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
