//! The fairness contests in the benchmark's report: each round's flows and
//! their rates over the overlap, and the table of shares and Jain's index
//! (medians of the rounds) judged against each contest's goal.
//!
//! Only the record and its Markdown; the contests are run by
//! [`crate::link`].

use std::fmt::Write as _;

use serde::Serialize;

use crate::link_rate::LinkRate;

/// One flow of one round.
#[derive(Debug, Clone, Serialize)]
pub struct ContestFlow {
    /// The flow, e.g. `qftp` or `TCP Cubic`.
    pub name: String,
    /// Its rate over the overlap, bytes per second.
    pub bytes_per_second: Option<f64>,
    /// Why it has no rate, if it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One round of a contest.
#[derive(Debug, Clone, Serialize)]
pub struct ContestRound {
    /// Both flows, the first started first.
    pub flows: Vec<ContestFlow>,
    /// How long both moved bytes at once.
    pub overlap_seconds: Option<f64>,
    /// Jain's fairness index of the two rates over the overlap.
    pub jain: Option<f64>,
}

/// A fairness scenario's report.
#[derive(Debug, Clone, Serialize)]
pub struct ContestReport {
    pub name: String,
    pub description: String,
    /// What the contest should show.
    pub goal: String,
    /// The bottleneck's rate as one plain TCP flow measured it.
    pub link_rate: Option<LinkRate>,
    pub rounds: Vec<ContestRound>,
    /// Whether the medians meet the goal, when there are medians.
    pub met: Option<bool>,
    /// Why it could not run, or what went wrong.
    pub notes: Vec<String>,
}

impl ContestReport {
    /// The median rate of flow `index` over the rounds.
    pub fn median_rate(&self, index: usize) -> Option<f64> {
        median(
            self.rounds
                .iter()
                .filter_map(|round| round.flows.get(index)?.bytes_per_second),
        )
    }

    /// The median Jain index over the rounds.
    pub fn median_jain(&self) -> Option<f64> {
        median(self.rounds.iter().filter_map(|round| round.jain))
    }

    /// The median, over the rounds, of flow `index`'s part of both flows'
    /// combined rate.
    pub fn median_part(&self, index: usize) -> Option<f64> {
        median(self.rounds.iter().filter_map(|round| {
            let rates: Option<Vec<f64>> = round
                .flows
                .iter()
                .map(|flow| flow.bytes_per_second)
                .collect();
            let rates = rates?;
            let sum: f64 = rates.iter().sum();
            (sum > 0.0).then(|| rates.get(index).copied().unwrap_or(0.0) / sum)
        }))
    }

    /// The flows' names.
    pub fn flow_names(&self) -> Vec<String> {
        self.rounds
            .iter()
            .find(|round| !round.flows.is_empty())
            .map(|round| round.flows.iter().map(|flow| flow.name.clone()).collect())
            .unwrap_or_default()
    }
}

/// The median of `values`.
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    crate::measure::median(&values.collect::<Vec<_>>())
}

/// The "Sharing the bottleneck" section, or nothing without contests.
pub fn markdown(contests: &[ContestReport]) -> String {
    let mut out = String::new();
    if contests.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n## Sharing the bottleneck\n\n\
         | scenario | link rate MB/s | first flow MB/s (share of link) | second flow MB/s (share of link) \
         | first flow's part of the two | Jain | overlap s | goal | met |\n\
         |---|---:|---|---|---:|---:|---:|---|---|"
    );
    for contest in contests {
        let link = contest
            .link_rate
            .as_ref()
            .and_then(|rate| rate.bytes_per_second);
        let names = contest.flow_names();
        let flow = |index: usize| {
            let name = names.get(index).map_or("–", String::as_str);
            match contest.median_rate(index) {
                Some(rate) => {
                    let share = link.map_or(String::new(), |link| {
                        format!(" ({:.0} %)", rate / link * 100.0)
                    });
                    format!("{name}: {:.2}{share}", rate / 1e6)
                }
                None => format!("{name}: –"),
            }
        };
        let overlap = median(
            contest
                .rounds
                .iter()
                .filter_map(|round| round.overlap_seconds),
        );
        let _ = writeln!(
            out,
            "| {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} |",
            contest.name,
            contest.description,
            link.map_or("–".into(), |link| format!("{:.2}", link / 1e6)),
            flow(0),
            flow(1),
            contest
                .median_part(0)
                .map_or("–".into(), |part| format!("{:.0} %", part * 100.0)),
            contest
                .median_jain()
                .map_or("–".into(), |jain| format!("{jain:.3}")),
            overlap.map_or("–".into(), |seconds| format!("{seconds:.1}")),
            contest.goal,
            match contest.met {
                Some(true) => "met",
                Some(false) => "not met",
                None => "–",
            }
        );
    }
    let _ = writeln!(
        out,
        "\nEach flow's rate is the bytes that arrived (the server's file for qftp, the sink \
         for TCP) over the time both flows were moving, median of the rounds; Jain's index \
         is (a + b)² / 2(a² + b²) of the two rates, 1 when equal. The link rate is one plain \
         TCP Cubic flow alone through the same bottleneck."
    );
    for contest in contests {
        for note in &contest.notes {
            let _ = writeln!(out, "\n- {}: {note}", contest.name);
        }
        for (number, round) in contest.rounds.iter().enumerate() {
            for flow in &round.flows {
                if let Some(problem) = &flow.problem {
                    let _ = writeln!(
                        out,
                        "\n- {} round {}: {}: {problem}",
                        contest.name,
                        number + 1,
                        flow.name
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(a: f64, b: f64, jain: f64) -> ContestRound {
        ContestRound {
            flows: vec![
                ContestFlow {
                    name: "qftp".into(),
                    bytes_per_second: Some(a),
                    problem: None,
                },
                ContestFlow {
                    name: "TCP Cubic".into(),
                    bytes_per_second: Some(b),
                    problem: None,
                },
            ],
            overlap_seconds: Some(10.0),
            jain: Some(jain),
        }
    }

    #[test]
    fn medians_and_parts_come_from_the_rounds() {
        let report = ContestReport {
            name: "fair-cubic".into(),
            description: "d".into(),
            goal: "g".into(),
            link_rate: Some(LinkRate {
                bytes_per_second: Some(12e6),
                how: String::new(),
            }),
            rounds: vec![
                round(6e6, 6e6, 1.0),
                round(8e6, 4e6, 0.9),
                round(9e6, 3e6, 0.8),
            ],
            met: Some(false),
            notes: Vec::new(),
        };
        assert_eq!(report.median_rate(0), Some(8e6));
        assert!((report.median_part(0).unwrap() - 8.0 / 12.0).abs() < 1e-9);
        assert_eq!(report.median_jain(), Some(0.9));
        let table = markdown(std::slice::from_ref(&report));
        assert!(table.contains("qftp: 8.00 (67 %)"), "{table}");
        assert!(table.contains("not met"));
        assert!(markdown(&[]).is_empty());
    }
}
