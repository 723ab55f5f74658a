//! The smallest round trip of a recent window of time.

use std::time::{Duration, Instant};

/// How long a minimum round trip stays valid without being measured again.
pub const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);

/// The smallest round trip sampled since it was last refreshed. A sample
/// at or below it refreshes it; when none has for [`MIN_RTT_WINDOW`] it is
/// [`expired`](MinRtt::expired), and the owner measures afresh and
/// [`restart`](MinRtt::restart)s it, larger if the path got longer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MinRtt {
    value: Option<Duration>,
    refreshed: Instant,
}

impl MinRtt {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            value: None,
            refreshed: now,
        }
    }

    /// The minimum, `None` before the first sample.
    pub(crate) fn get(&self) -> Option<Duration> {
        self.value
    }

    pub(crate) fn update(&mut self, sample: Duration, now: Instant) {
        if self.value.is_none_or(|value| sample <= value) {
            self.value = Some(sample);
            self.refreshed = now;
        }
    }

    /// Whether no sample has matched the minimum for [`MIN_RTT_WINDOW`].
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.value.is_some() && now.saturating_duration_since(self.refreshed) > MIN_RTT_WINDOW
    }

    /// Replaces the minimum by a fresh measurement, even a larger one.
    pub(crate) fn restart(&mut self, sample: Duration, now: Instant) {
        self.value = Some(sample);
        self.refreshed = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_holds_for_its_window_then_a_longer_path_replaces_it() {
        let start = Instant::now();
        let mut filter = MinRtt::new(start);
        assert_eq!(filter.get(), None);
        assert!(!filter.expired(start + MIN_RTT_WINDOW * 2));
        filter.update(Duration::from_millis(20), start);
        filter.update(Duration::from_millis(30), start + Duration::from_secs(1));
        assert_eq!(filter.get(), Some(Duration::from_millis(20)));
        assert!(!filter.expired(start + MIN_RTT_WINDOW));
        let later = start + MIN_RTT_WINDOW + Duration::from_millis(1);
        assert!(filter.expired(later));
        filter.restart(Duration::from_millis(100), later);
        assert_eq!(filter.get(), Some(Duration::from_millis(100)));
        assert!(!filter.expired(later + Duration::from_secs(1)));
        filter.update(Duration::from_millis(100), later + MIN_RTT_WINDOW);
        assert!(!filter.expired(later + MIN_RTT_WINDOW + Duration::from_secs(1)));
    }
}
