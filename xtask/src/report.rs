//! The benchmark's results: each tool's series of samples, each scenario's
//! medians and ratios, and the reports: a Markdown table (printed and
//! written to `target/bench/results.md`) and JSON with every raw sample and
//! the machine's description (`target/bench/results.json`).
//!
//! It records and renders what was measured; it runs nothing (the samples
//! come from [`crate::measure`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::data::DataSet;
use crate::link_rate::LinkRate;
use crate::measure::{Sample, median};

/// The samples of one tool in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// The tool, e.g. `qftp`, `cp + syncfs`, `scp`.
    pub tool: String,
    /// What was run.
    pub command: String,
    /// Why there are no samples, when the tool was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// One per round.
    pub samples: Vec<Sample>,
    /// The benchmark's own check of this tool's output, when it made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
}

impl Series {
    /// A series to be filled round by round.
    pub fn new(tool: impl Into<String>, command: impl Into<String>) -> Self {
        Self {
            tool: tool.into(),
            command: command.into(),
            unavailable: None,
            samples: Vec::new(),
            verified: None,
        }
    }

    /// A series of a tool that is not measured, and why.
    pub fn unavailable(tool: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            tool: tool.into(),
            command: String::new(),
            unavailable: Some(reason.into()),
            samples: Vec::new(),
            verified: None,
        }
    }

    fn seconds(&self) -> Vec<f64> {
        self.samples
            .iter()
            .filter_map(|sample| sample.seconds)
            .collect()
    }

    /// The median of the successful samples.
    pub fn median(&self) -> Option<f64> {
        median(&self.seconds())
    }

    /// The table cell: the median, or why there is none.
    fn cell(&self) -> String {
        if let Some(reason) = &self.unavailable {
            return reason.clone();
        }
        let failed = self.samples.len() - self.seconds().len();
        let timed_out = self
            .samples
            .iter()
            .filter(|sample| sample.timed_out)
            .count();
        match self.median() {
            Some(median) if failed == 0 => format!("{median:.2}"),
            Some(median) if timed_out == failed => format!(
                "{median:.2} ({timed_out} of {} timed out)",
                self.samples.len()
            ),
            Some(median) => format!("{median:.2} ({failed} of {} failed)", self.samples.len()),
            None if timed_out > 0 && timed_out == failed => {
                let reason = self
                    .samples
                    .iter()
                    .rev()
                    .find_map(|sample| sample.note.clone())
                    .unwrap_or_default();
                format!("timeout: {reason}")
            }
            None => {
                let reason = self
                    .samples
                    .iter()
                    .rev()
                    .find_map(|sample| sample.note.clone())
                    .unwrap_or_else(|| "no samples".into());
                format!("failed: {reason}")
            }
        }
    }
}

/// `numerator / denominator` when both are known.
fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    match (numerator, denominator) {
        (Some(numerator), Some(denominator)) if denominator > 0.0 => Some(numerator / denominator),
        _ => None,
    }
}

/// Everything measured for one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// The scenario's name, e.g. `put-1g`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The data set it moves (none when it moves bytes from memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_set: Option<DataSet>,
    /// Files in the data set.
    pub files: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// qftp.
    pub qftp: Series,
    /// `cp` followed by `sync -f`: the durable local copy, the limit.
    pub copy_syncfs: Series,
    /// `cp` followed by an fsync of each file and directory in turn.
    pub copy_fsync_each: Series,
    /// The peers, one series per tool.
    pub peers: Vec<Series>,
    /// The check of qftp's output after the last round.
    pub verified: String,
    /// The network path, for scenarios over a link between namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathReport>,
    /// Remarks printed under the table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The link a scenario ran over and what was seen on it.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    /// What was set up, e.g. `veth, MTU 1500, 25 ms each way, 1 % loss each way`.
    pub link: String,
    /// How the delay and loss were made.
    pub impairment: String,
    /// The ping that measured the round trip, as run.
    pub ping_command: String,
    /// Round-trip times in milliseconds: min, avg, max, mdev.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<[f64; 4]>,
    /// Echo requests lost, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_loss_percent: Option<f64>,
    /// The ping's summary lines, or why there is none.
    pub ping_summary: String,
    /// The impairers' counters as they printed them on exit, one per namespace.
    pub impairer_counters: Vec<String>,
    /// The rate of the path as one plain TCP flow measured it, for a
    /// rate-limited path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_rate: Option<LinkRate>,
}

/// Medians and ratios of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Median seconds of qftp.
    pub qftp: Option<f64>,
    /// Median seconds of `cp` + `sync -f`.
    pub copy_syncfs: Option<f64>,
    /// Median seconds of `cp` + fsync of each file.
    pub copy_fsync_each: Option<f64>,
    /// qftp time / (`cp` + `sync -f`) time.
    pub qftp_over_copy_syncfs: Option<f64>,
    /// qftp time / (`cp` + fsync of each file) time.
    pub qftp_over_copy_fsync_each: Option<f64>,
    /// Per peer: its median seconds and its time / qftp time.
    pub peers: BTreeMap<String, PeerSummary>,
}

/// A peer's median and its ratio to qftp.
#[derive(Debug, Clone, Serialize)]
pub struct PeerSummary {
    /// Median seconds.
    pub seconds: Option<f64>,
    /// Peer time / qftp time (above 1: qftp is faster).
    pub over_qftp: Option<f64>,
    /// Why it was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl ScenarioReport {
    /// Its medians and ratios.
    pub fn summary(&self) -> Summary {
        let qftp = self.qftp.median();
        let copy_syncfs = self.copy_syncfs.median();
        let copy_fsync_each = self.copy_fsync_each.median();
        Summary {
            qftp,
            copy_syncfs,
            copy_fsync_each,
            qftp_over_copy_syncfs: ratio(qftp, copy_syncfs),
            qftp_over_copy_fsync_each: ratio(qftp, copy_fsync_each),
            peers: self
                .peers
                .iter()
                .map(|peer| {
                    let seconds = peer.median();
                    let summary = PeerSummary {
                        seconds,
                        over_qftp: ratio(seconds, qftp),
                        unavailable: peer.unavailable.clone(),
                    };
                    (peer.tool.clone(), summary)
                })
                .collect(),
        }
    }
}

/// The machine the benchmark ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// `uname -r`.
    pub kernel: String,
    /// CPU model.
    pub cpu: String,
    /// Total memory in GiB.
    pub memory_gib: f64,
    /// UTC start of the run, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// `git describe --always --dirty` of the workspace.
    pub commit: String,
}

impl Machine {
    /// Describes this machine; `commit` comes from the caller.
    pub fn describe(commit: String) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0.0);
        Self {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu,
            memory_gib: (memory_kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            date: utc_now(),
            commit,
        }
    }
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    format!("{} UTC", qftp_proto::Timestamp::now().to_utc_minutes())
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Rounds run.
    pub rounds: u32,
    /// Settings and tool versions.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// Versions of the peers' tools, as the peers script found them.
    pub peer_versions: BTreeMap<String, String>,
    /// The scenarios.
    pub scenarios: Vec<ScenarioReport>,
    /// The fairness contests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contests: Vec<crate::contest_report::ContestReport>,
}

impl Report {
    /// Writes `results.md` and `results.json` into `directory` and returns
    /// the Markdown.
    pub fn write(&self, directory: &Path) -> anyhow::Result<String> {
        let markdown = self.markdown();
        let markdown_path = directory.join("results.md");
        std::fs::write(&markdown_path, &markdown)
            .with_context(|| format!("writing {}", markdown_path.display()))?;
        let mut json = serde_json::to_value(self).context("serialising the report")?;
        let summaries: Vec<_> = self
            .scenarios
            .iter()
            .map(|scenario| (scenario.name.clone(), scenario.summary()))
            .collect();
        json["summary"] =
            serde_json::to_value(summaries.into_iter().collect::<BTreeMap<String, Summary>>())
                .context("serialising the summary")?;
        let json_path = directory.join("results.json");
        let text = serde_json::to_string_pretty(&json).context("serialising the report")?;
        std::fs::write(&json_path, text + "\n")
            .with_context(|| format!("writing {}", json_path.display()))?;
        Ok(markdown)
    }

    /// The Markdown report: the medians table, then every sample.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let machine = &self.machine;
        let _ = writeln!(out, "# qftp benchmark\n");
        let _ = writeln!(
            out,
            "Measured {} on Linux {} ({} logical CPUs, {}, {} GiB RAM), workspace at {}; \
             {} round(s), median per tool. Times in seconds (wall clock, lower is better).\n",
            machine.date,
            machine.kernel,
            machine.nproc,
            machine.cpu,
            machine.memory_gib,
            machine.commit,
            self.rounds
        );
        let peer_tools: Vec<String> = self
            .scenarios
            .iter()
            .flat_map(|scenario| scenario.peers.iter().map(|peer| peer.tool.clone()))
            .fold(Vec::new(), |mut tools, tool| {
                if !tools.contains(&tool) {
                    tools.push(tool);
                }
                tools
            });
        let mut header = String::from(
            "| scenario | qftp | cp + sync -f | qftp ÷ cp+sync -f | cp + fsync each file | qftp ÷ cp+fsync each |",
        );
        let mut rule = String::from("|---|---:|---:|---:|---:|---:|");
        for tool in &peer_tools {
            let _ = write!(header, " {tool} | {tool} ÷ qftp |");
            rule.push_str("---:|---:|");
        }
        header.push_str(" qftp output |");
        rule.push_str("---|");
        let _ = writeln!(out, "{header}\n{rule}");
        for scenario in &self.scenarios {
            let summary = scenario.summary();
            let mut row = format!(
                "| {} ({}) | {} | {} | {} | {} | {} |",
                scenario.name,
                scenario.description,
                cell(&scenario.qftp.cell()),
                cell(&scenario.copy_syncfs.cell()),
                times(summary.qftp_over_copy_syncfs),
                cell(&scenario.copy_fsync_each.cell()),
                times(summary.qftp_over_copy_fsync_each),
            );
            for tool in &peer_tools {
                match scenario.peers.iter().find(|peer| &peer.tool == tool) {
                    Some(peer) => {
                        let over = summary.peers.get(tool).and_then(|peer| peer.over_qftp);
                        let _ = write!(row, " {} | {} |", cell(&peer.cell()), times(over));
                    }
                    None => row.push_str(" – | – |"),
                }
            }
            let _ = write!(row, " {} |", cell(&scenario.verified));
            let _ = writeln!(out, "{row}");
        }
        let _ = writeln!(
            out,
            "\nRatios: *X ÷ qftp* above 1 means qftp is faster than X; *qftp ÷ cp+…* is how \
             far qftp is from a durable local copy of the same data on the same disk. \
             `cp + sync -f` copies, then flushes the file system once (`cp -r SRC DST && sync -f DST`); \
             `cp + fsync each file` copies, then opens and fsyncs every file and directory one after \
             the other, the durability work qftp does per file. qftp fsyncs each file before \
             renaming it into place; the peers write to the page cache without fsync."
        );
        if !self.peer_versions.is_empty() {
            let versions: Vec<String> = self
                .peer_versions
                .iter()
                .map(|(tool, version)| format!("{tool} {version}"))
                .collect();
            let _ = writeln!(out, "\nPeer versions: {}.", versions.join(", "));
        }
        let checked: Vec<String> = self
            .scenarios
            .iter()
            .flat_map(|scenario| {
                scenario.peers.iter().filter_map(move |peer| {
                    let verified = peer.verified.as_ref()?;
                    Some(format!("{} / {}: {verified}", scenario.name, peer.tool))
                })
            })
            .collect();
        if !checked.is_empty() {
            let _ = writeln!(
                out,
                "\nPeer outputs checked by the benchmark: {}.",
                checked.join("; ")
            );
        }
        let paths: Vec<String> = self
            .scenarios
            .iter()
            .filter_map(|scenario| {
                let path = scenario.path.as_ref()?;
                let rtt = match path.rtt_ms {
                    Some([min, avg, max, mdev]) => format!(
                        "RTT min/avg/max/mdev {min:.2}/{avg:.2}/{max:.2}/{mdev:.2} ms, {:.0} % of echo requests lost",
                        path.ping_loss_percent.unwrap_or(f64::NAN)
                    ),
                    None => format!("no RTT: {}", path.ping_summary),
                };
                let mut text = format!(
                    "- **{}**: {}; {}. `{}`: {rtt}.",
                    scenario.name, path.link, path.impairment, path.ping_command
                );
                for counters in &path.impairer_counters {
                    let _ = write!(text, "\n  - {counters}");
                }
                Some(text)
            })
            .collect();
        if !paths.is_empty() {
            let _ = writeln!(out, "\n## Network paths\n\n{}", paths.join("\n"));
        }
        out.push_str(&self.bottleneck_table(&peer_tools));
        out.push_str(&crate::contest_report::markdown(&self.contests));
        let notes: Vec<String> = self
            .scenarios
            .iter()
            .flat_map(|scenario| {
                scenario
                    .notes
                    .iter()
                    .map(move |note| format!("- **{}**: {note}", scenario.name))
            })
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\n## Notes\n\n{}", notes.join("\n"));
        }
        let _ = writeln!(out, "\n## Samples\n");
        let mut header = String::from("| scenario | tool |");
        let mut rule = String::from("|---|---|");
        for round in 1..=self.rounds {
            let _ = write!(header, " round {round} |");
            rule.push_str("---:|");
        }
        header.push_str(" median | most foreign cores |");
        rule.push_str("---:|---:|");
        let _ = writeln!(out, "{header}\n{rule}");
        for scenario in &self.scenarios {
            let all = [
                &scenario.qftp,
                &scenario.copy_syncfs,
                &scenario.copy_fsync_each,
            ]
            .into_iter()
            .chain(&scenario.peers);
            for series in all {
                if series.unavailable.is_some() {
                    continue;
                }
                let mut row = format!("| {} | {} |", scenario.name, cell(&series.tool));
                for round in 1..=self.rounds {
                    let sample = series.samples.iter().find(|sample| sample.round == round);
                    let text = match sample {
                        Some(Sample {
                            seconds: Some(seconds),
                            attempts,
                            ..
                        }) if *attempts > 1 => format!("{seconds:.2} ({attempts} attempts)"),
                        Some(Sample {
                            seconds: Some(seconds),
                            ..
                        }) => format!("{seconds:.2}"),
                        Some(Sample {
                            timed_out: true, ..
                        }) => "timeout".into(),
                        Some(_) => "failed".into(),
                        None => "–".into(),
                    };
                    let _ = write!(row, " {text} |");
                }
                let most_foreign = series
                    .samples
                    .iter()
                    .filter_map(|sample| sample.foreign_cores)
                    .reduce(f64::max);
                let _ = write!(
                    row,
                    " {} | {} |",
                    series
                        .median()
                        .map_or("–".into(), |median| format!("{median:.2}")),
                    most_foreign.map_or("–".into(), |cores| format!("{cores:.2}"))
                );
                let _ = writeln!(out, "{row}");
            }
        }
        let failures: Vec<String> = self
            .scenarios
            .iter()
            .flat_map(|scenario| {
                [
                    &scenario.qftp,
                    &scenario.copy_syncfs,
                    &scenario.copy_fsync_each,
                ]
                .into_iter()
                .chain(&scenario.peers)
                .flat_map(move |series| {
                    series.samples.iter().filter_map(move |sample| {
                        let note = sample.note.as_ref()?;
                        sample.seconds.is_none().then(|| {
                            format!(
                                "- {} / {} / round {}: {note}",
                                scenario.name, series.tool, sample.round
                            )
                        })
                    })
                })
            })
            .collect();
        if !failures.is_empty() {
            let _ = writeln!(out, "\n## Failures\n\n{}", failures.join("\n"));
        }
        out
    }
}

impl Report {
    /// The bottleneck scenarios' table: each tool's median rate (payload
    /// MB/s) and its share of the rate a plain TCP flow measured on the
    /// same link; empty without such scenarios.
    fn bottleneck_table(&self, peer_tools: &[String]) -> String {
        let rated: Vec<(&ScenarioReport, &LinkRate)> = self
            .scenarios
            .iter()
            .filter_map(|scenario| Some((scenario, scenario.path.as_ref()?.link_rate.as_ref()?)))
            .collect();
        if rated.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "\n## Share of the bottleneck\n\n| scenario | link rate MB/s | qftp MB/s | qftp share |",
        );
        let mut rule = String::from("|---|---:|---:|---:|");
        for tool in peer_tools {
            let _ = write!(out, " {tool} MB/s | {tool} share |");
            rule.push_str("---:|---:|");
        }
        let _ = writeln!(out, "\n{rule}");
        for (scenario, rate) in rated {
            let link = rate.bytes_per_second.map(|rate| rate / 1e6);
            let columns = |series: &Series| {
                let speed = series
                    .median()
                    .filter(|seconds| *seconds > 0.0)
                    .map(|seconds| scenario.bytes as f64 / seconds / 1e6);
                let share = ratio(speed, link)
                    .map_or("–".into(), |share| format!("{:.0} %", share * 100.0));
                let speed =
                    speed.map_or_else(|| cell(&series.cell()), |speed| format!("{speed:.2}"));
                format!(" {speed} | {share} |")
            };
            let _ = write!(
                out,
                "| {} | {} |{}",
                scenario.name,
                link.map_or_else(|| cell(&rate.how), |link| format!("{link:.2}")),
                columns(&scenario.qftp)
            );
            for tool in peer_tools {
                match scenario.peers.iter().find(|peer| &peer.tool == tool) {
                    Some(peer) => out.push_str(&columns(peer)),
                    None => out.push_str(" – | – |"),
                }
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "\nMB/s: payload bytes over the median time of the rounds (a run that timed out \
             counts as failed). Share: that rate over the link rate, the steady rate of one \
             plain TCP Cubic flow through the same bottleneck and round trip without random loss."
        );
        for (scenario, rate) in self
            .scenarios
            .iter()
            .filter_map(|scenario| Some((scenario, scenario.path.as_ref()?.link_rate.as_ref()?)))
        {
            let _ = writeln!(out, "- **{}** link rate: {}", scenario.name, rate.how);
        }
        out
    }
}

/// A ratio cell.
fn times(value: Option<f64>) -> String {
    value.map_or("–".into(), |value| format!("{value:.2}×"))
}

/// Escapes a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(6.0), Some(3.0)), Some(2.0));
        assert_eq!(ratio(None, Some(3.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }
}
