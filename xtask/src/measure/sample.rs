//! One timed run as the reports record it, and the median of several.
//!
//! Only the figures: how a run is timed is [`super::timed_run`]'s, how the
//! samples are shown is [`crate::report`]'s.

use serde::Serialize;

/// One timed run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// The round, from 1.
    pub round: u32,
    /// Wall-clock seconds; none when the run failed.
    pub seconds: Option<f64>,
    /// Cores other people's processes used during the run.
    pub foreign_cores: Option<f64>,
    /// Runs made for this sample (a run under foreign load is repeated).
    pub attempts: u32,
    /// Why it failed, or the peers script's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Whether it was stopped at its time limit (a failure of its own kind).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

impl Sample {
    /// A run of `round` that failed after `attempts` attempt(s), and why.
    pub fn failed(round: u32, attempts: u32, note: String) -> Self {
        Self {
            round,
            seconds: None,
            foreign_cores: None,
            attempts,
            note: Some(note),
            timed_out: false,
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        length if length % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
