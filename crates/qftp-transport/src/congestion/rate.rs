//! Conversions between bytes, durations and rates, in integers.

use std::time::Duration;

/// Bytes per second for `bytes` over `elapsed`.
pub(crate) fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let nanos = elapsed.as_nanos().max(1);
    u64::try_from(u128::from(bytes) * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
}

/// Bytes a rate of `per_second` delivers in `elapsed`.
pub(crate) fn expected_bytes(per_second: u64, elapsed: Duration) -> u64 {
    u64::try_from(u128::from(per_second) * elapsed.as_nanos() / 1_000_000_000).unwrap_or(u64::MAX)
}

/// `value` scaled by `percent` / 100.
pub(crate) fn percent_of(value: u64, percent: u64) -> u64 {
    u64::try_from(u128::from(value) * u128::from(percent) / 100).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_byte_counts_invert_each_other() {
        let second = Duration::from_secs(1);
        assert_eq!(rate(12_500_000, second), 12_500_000);
        assert_eq!(
            expected_bytes(12_500_000, Duration::from_millis(50)),
            625_000
        );
        assert_eq!(rate(1, Duration::ZERO), 1_000_000_000);
        assert_eq!(percent_of(1000, 85), 850);
        assert_eq!(percent_of(u64::MAX, 200), u64::MAX);
    }
}
