//! Throughput over time: a flow's samples (wall-clock milliseconds, bytes
//! arrived so far), read from the lines of `cargo xtask tcpflow sink`
//! ([`crate::tcpflow`]) or taken from a growing file, and the rates drawn
//! from them.
//!
//! Only arithmetic on samples; taking them is [`super::plain_flow`]'s and
//! [`super::contest_runs`]'.

use std::collections::BTreeMap;

/// One observation of a flow: at `unix_ms`, `bytes` had arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub unix_ms: u64,
    pub bytes: u64,
}

/// The samples of each connection in a sink's output, by connection id.
pub fn parse_sink(text: &str) -> BTreeMap<u64, Vec<Point>> {
    let mut flows: BTreeMap<u64, Vec<Point>> = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("tcpflow") {
            continue;
        }
        if !matches!(words.next(), Some("sample" | "done")) {
            continue;
        }
        let numbers: Vec<u64> = words.filter_map(|word| word.parse().ok()).collect();
        if let [id, unix_ms, bytes] = numbers[..] {
            flows.entry(id).or_default().push(Point { unix_ms, bytes });
        }
    }
    flows
}

/// The rate, in bytes per second, between the first sample at or after
/// `from_ms` and the last one at or before `to_ms`.
pub fn rate_between(points: &[Point], from_ms: u64, to_ms: u64) -> Option<f64> {
    let first = points.iter().find(|point| point.unix_ms >= from_ms)?;
    let last = points.iter().rev().find(|point| point.unix_ms <= to_ms)?;
    if last.unix_ms <= first.unix_ms {
        return None;
    }
    let seconds = (last.unix_ms - first.unix_ms) as f64 / 1000.0;
    Some(last.bytes.saturating_sub(first.bytes) as f64 / seconds)
}

/// The steady rate of a whole flow: over its last three quarters of the
/// bytes' time (after the first quarter, where slow start ramps up) until
/// the last sample that still saw bytes arrive.
pub fn steady_rate(points: &[Point]) -> Option<f64> {
    let first = points.iter().find(|point| point.bytes > 0)?;
    let total = points.last()?.bytes;
    let end = points.iter().find(|point| point.bytes == total)?;
    let start = first.unix_ms + (end.unix_ms.checked_sub(first.unix_ms)?) / 4;
    rate_between(points, start, end.unix_ms)
}

/// When a flow moved its bytes: from its first sample with bytes to the
/// first one with all `total` of them, in wall-clock milliseconds.
pub fn span(points: &[Point], total: u64) -> Option<(u64, u64)> {
    let first = points.iter().find(|point| point.bytes > 0)?;
    let last = points.iter().find(|point| point.bytes >= total)?;
    (last.unix_ms > first.unix_ms).then_some((first.unix_ms, last.unix_ms))
}

/// The time all `spans` overlap, if they do.
pub fn overlap(spans: &[(u64, u64)]) -> Option<(u64, u64)> {
    let from = spans.iter().map(|span| span.0).max()?;
    let to = spans.iter().map(|span| span.1).min()?;
    (to > from).then_some((from, to))
}

/// Jain's fairness index of `rates`: (sum x)^2 / (n * sum x^2), 1 when all
/// are equal and 1/n when one flow takes everything.
pub fn jain(rates: &[f64]) -> Option<f64> {
    let sum: f64 = rates.iter().sum();
    let squares: f64 = rates.iter().map(|rate| rate * rate).sum();
    (squares > 0.0).then(|| sum * sum / (rates.len() as f64 * squares))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(unix_ms: u64, bytes: u64) -> Point {
        Point { unix_ms, bytes }
    }

    #[test]
    fn sink_lines_become_flows() {
        let text = "tcpflow ready 10.0.0.2:5201\n\
                    tcpflow sample 1 1000 0\n\
                    tcpflow sample 1 1100 500\n\
                    tcpflow sample 2 1100 7\n\
                    garbage line\n\
                    tcpflow done 1 1200 900\n";
        let flows = parse_sink(text);
        assert_eq!(
            flows[&1],
            vec![point(1000, 0), point(1100, 500), point(1200, 900)]
        );
        assert_eq!(flows[&2], vec![point(1100, 7)]);
    }

    #[test]
    fn the_steady_rate_skips_the_ramp_and_the_idle_tail() {
        // 1 s of ramp at 1 MB/s, then 3 s at 10 MB/s, then 2 s idle.
        let mut points = vec![point(0, 0)];
        for step in 1..=10u64 {
            points.push(point(step * 100, step * 100_000));
        }
        for step in 1..=30u64 {
            points.push(point(1000 + step * 100, 1_000_000 + step * 1_000_000));
        }
        for step in 1..=20u64 {
            points.push(point(4000 + step * 100, 31_000_000));
        }
        let rate = steady_rate(&points).unwrap();
        assert!((rate - 10_000_000.0).abs() < 1.0, "{rate}");
        assert_eq!(rate_between(&points, 200, 200), None);
        assert_eq!(steady_rate(&[point(0, 0), point(100, 0)]), None);
    }

    #[test]
    fn spans_overlap_and_jain_judges_the_shares() {
        let flow = [point(1000, 0), point(1100, 10), point(5000, 100)];
        assert_eq!(span(&flow, 100), Some((1100, 5000)));
        assert_eq!(
            span(&flow, 101),
            None,
            "a flow that never finished has no span"
        );
        assert_eq!(overlap(&[(1100, 5000), (3000, 9000)]), Some((3000, 5000)));
        assert_eq!(overlap(&[(1000, 2000), (2000, 3000)]), None);
        assert!((jain(&[5.0, 5.0]).unwrap() - 1.0).abs() < 1e-9);
        assert!((jain(&[10.0, 0.0]).unwrap() - 0.5).abs() < 1e-9);
        assert!((jain(&[6.0, 4.0]).unwrap() - 100.0 / 104.0).abs() < 1e-9);
        assert_eq!(jain(&[0.0, 0.0]), None);
    }
}
