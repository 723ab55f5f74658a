//! One round of a fairness contest ([`super::contest`]): both flows through
//! the shared bottleneck, each observed as bytes arrived over time, and
//! their rates over the time both were moving.
//!
//! A qftp flow is observed on the server: the size of its partial file
//! (which grows as data arrives; the server never preallocates it), then
//! the final file once committed. A TCP flow is observed by the sink
//! ([`super::plain_flow::Sink`]). Both carry wall-clock milliseconds, so
//! their samples line up. Every process started here is stopped by PID.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use super::contest::{Contender, Contest};
use super::plain_flow::{Sink, sender};
use super::settings::Settings;
use super::throughput::{Point, jain, overlap, rate_between, span};
use crate::contest_report::{ContestFlow, ContestRound};
use crate::process::{self, Guard};
use crate::server::{BenchClient, BenchServer, log_files, remove_with_partial};

/// How often the qftp flows' files are looked at.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The shortest overlap a share is computed over.
const MIN_OVERLAP_MS: u64 = 2_000;

/// A running flow of the contest.
struct Running {
    contender: Contender,
    guard: Guard,
    /// For qftp: the partial and final file on the server, and the samples.
    files: Option<(PathBuf, PathBuf)>,
    points: Vec<Point>,
}

/// What every flow of one round runs with.
#[derive(Debug, Clone, Copy)]
pub struct Arena<'a> {
    pub settings: &'a Settings<'a>,
    pub server: &'a BenchServer,
    /// Two clients, each with a session (and so a connection) of its own.
    pub clients: &'a [BenchClient; 2],
    /// The scenario's name, for the log files.
    pub name: &'a str,
    pub round: u32,
    /// When each flow is stopped.
    pub limit: Duration,
}

/// Runs one round of `contest` in `arena` with `bytes` per flow.
pub fn contest_round(
    arena: Arena<'_>,
    contest: Contest,
    bytes: u64,
) -> anyhow::Result<ContestRound> {
    let Arena {
        settings,
        name,
        round,
        limit,
        ..
    } = arena;
    let contenders = contest.contenders();
    let sink = if contenders.contains(&Contender::Cubic) {
        Some(Sink::start(settings, &format!("{name}-round-{round}"))?)
    } else {
        None
    };
    let started = Instant::now();
    let mut running: Vec<Running> = Vec::new();
    let deadline = started + contest.stagger() + limit;
    let outcome = (|| -> anyhow::Result<()> {
        running.push(start(arena, contenders[0], 0)?);
        loop {
            process::check_interrupted()?;
            let now = Instant::now();
            if running.len() == 1 && now >= started + contest.stagger() {
                running.push(start(arena, contenders[1], 1)?);
            }
            for flow in &mut running {
                observe(flow, bytes);
            }
            let all_done = running.len() == 2 && running.iter_mut().all(|flow| flow.guard.exited());
            if all_done || now >= deadline {
                break;
            }
            process::sleep(SAMPLE_EVERY)?;
        }
        // One last look, and time for the sink to report the connection's end.
        for flow in &mut running {
            observe(flow, bytes);
        }
        process::sleep(Duration::from_millis(300))
    })();
    let sunk = sink.as_ref().map(Sink::flows).unwrap_or_default();
    for flow in &mut running {
        flow.guard.stop();
    }
    if let Some(sink) = sink {
        sink.stop();
    }
    outcome?;
    let flows: Vec<(String, Vec<Point>)> = running
        .into_iter()
        .map(|flow| {
            let points = match flow.contender {
                Contender::Cubic => sunk.get(&1).cloned().unwrap_or_default(),
                Contender::Qftp(_) => flow.points,
            };
            (flow.contender.name(), points)
        })
        .collect();
    Ok(judge(&flows, bytes))
}

/// Starts `contender` as flow `index` of the round.
fn start(arena: Arena<'_>, contender: Contender, index: usize) -> anyhow::Result<Running> {
    let Arena {
        settings,
        server,
        clients,
        name,
        round,
        limit,
    } = arena;
    let log = settings
        .logs
        .join(format!("{name}-round-{round}-flow-{index}.log"));
    let (stdout, stderr) = log_files(&log)?;
    let (mut command, files) = match contender {
        Contender::Qftp(client) => {
            let remote = format!("/contest-{index}.bin");
            let home = server.home();
            let target = home.join(&remote[1..]);
            remove_with_partial(&target)?;
            let partial = server_partial(&home, &remote);
            crate::data::remove(&partial)?;
            let mut command = clients[client].command(["put", "--quiet"]);
            command.arg(settings.source).arg(&remote);
            (command, Some((partial, target)))
        }
        Contender::Cubic => (
            sender(settings.binaries, source_bytes(settings)?, limit),
            None,
        ),
    };
    command
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", contender.name()))?;
    Ok(Running {
        contender,
        guard: Guard::new(child, contender.name(), "TERM"),
        files,
        points: Vec::new(),
    })
}

/// The size of the source file: a TCP flow sends as many bytes.
fn source_bytes(settings: &Settings<'_>) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(settings.source)
        .with_context(|| format!("reading {}", settings.source.display()))?
        .len())
}

/// Samples a qftp flow's bytes on the server: the committed file's size
/// once it exists, else the partial's.
fn observe(flow: &mut Running, total: u64) {
    let Some((partial, target)) = &flow.files else {
        return;
    };
    if flow.points.last().is_some_and(|point| point.bytes >= total) {
        return;
    }
    let size = |path: &Path| std::fs::metadata(path).map(|metadata| metadata.len()).ok();
    let bytes = size(target).or_else(|| size(partial)).unwrap_or(0);
    flow.points.push(Point {
        unix_ms: unix_ms(),
        bytes,
    });
}

/// Where the server keeps the partial of an upload to `remote` in `home`.
fn server_partial(home: &Path, remote: &str) -> PathBuf {
    let hash = blake3::hash(remote.as_bytes());
    let name: String = hash.as_bytes()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    home.join(".qftp-partials").join(name)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The flows' rates over the time both moved bytes, and Jain's index.
fn judge(flows: &[(String, Vec<Point>)], total: u64) -> ContestRound {
    let spans: Vec<Option<(u64, u64)>> = flows
        .iter()
        .map(|(_, points)| span(points, total))
        .collect();
    let shared = spans
        .iter()
        .copied()
        .collect::<Option<Vec<_>>>()
        .and_then(|spans| overlap(&spans))
        .filter(|(from, to)| to - from >= MIN_OVERLAP_MS);
    let rates: Vec<Option<f64>> = flows
        .iter()
        .map(|(_, points)| shared.and_then(|(from, to)| rate_between(points, from, to)))
        .collect();
    let problem = |index: usize| -> Option<String> {
        if spans[index].is_none() {
            Some("did not move all its bytes (failed or timed out; see its log)".into())
        } else if shared.is_none() {
            Some(format!(
                "the flows overlapped less than {} s",
                MIN_OVERLAP_MS / 1000
            ))
        } else {
            None
        }
    };
    let all: Option<Vec<f64>> = rates.iter().copied().collect();
    ContestRound {
        overlap_seconds: shared.map(|(from, to)| (to - from) as f64 / 1000.0),
        jain: all.as_deref().and_then(jain),
        flows: flows
            .iter()
            .enumerate()
            .map(|(index, (name, _))| ContestFlow {
                name: name.clone(),
                bytes_per_second: rates[index],
                problem: problem(index),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(from_ms: u64, to_ms: u64, rate_per_ms: u64) -> Vec<Point> {
        (from_ms..=to_ms)
            .step_by(100)
            .map(|unix_ms| Point {
                unix_ms,
                bytes: (unix_ms - from_ms) * rate_per_ms,
            })
            .collect()
    }

    #[test]
    fn the_rates_are_taken_over_the_overlap_only() {
        // Both move 100,000 B at 10 B/ms: flow a from 0 s, flow b from 4 s;
        // the first bytes show at the first sample, 100 ms in.
        let a = steady(0, 10_000, 10);
        let b = steady(4_000, 14_000, 10);
        let flows = [("a".to_owned(), a), ("b".to_owned(), b)];
        let judged = judge(&flows, 100_000);
        assert_eq!(judged.overlap_seconds, Some(5.9));
        assert!((judged.jain.unwrap() - 1.0).abs() < 1e-9);
        assert!((judged.flows[0].bytes_per_second.unwrap() - 10_000.0).abs() < 1.0);
    }

    #[test]
    fn an_unfinished_flow_is_named_and_gets_no_share() {
        let flows = [
            ("a".to_owned(), steady(0, 10_000, 10)),
            ("b".to_owned(), steady(0, 10_000, 1)),
        ];
        let judged = judge(&flows, 100_000);
        assert_eq!(judged.jain, None);
        assert!(
            judged.flows[1]
                .problem
                .as_deref()
                .unwrap()
                .contains("did not move")
        );
    }

    #[test]
    fn the_partial_is_where_the_server_keeps_it() {
        let partial = server_partial(Path::new("/h"), "/contest-0.bin");
        assert_eq!(partial.parent(), Some(Path::new("/h/.qftp-partials")));
        assert_eq!(partial.file_name().unwrap().len(), 32);
    }
}
