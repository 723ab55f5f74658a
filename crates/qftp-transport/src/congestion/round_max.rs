//! A maximum over the last few round trips.

/// Rounds over which the bandwidth and ACK-burst maxima are kept.
pub const FILTER_ROUNDS: usize = 10;

/// The largest value recorded in each of the last [`FILTER_ROUNDS`] slots;
/// [`RoundMax::advance`] opens a new slot and forgets the oldest.
#[derive(Debug, Clone)]
pub(crate) struct RoundMax {
    slots: [u64; FILTER_ROUNDS],
    current: usize,
}

impl RoundMax {
    pub(crate) fn new() -> Self {
        Self {
            slots: [0; FILTER_ROUNDS],
            current: 0,
        }
    }

    pub(crate) fn advance(&mut self) {
        self.current = (self.current + 1) % FILTER_ROUNDS;
        self.slots[self.current] = 0;
    }

    pub(crate) fn record(&mut self, value: u64) {
        let slot = &mut self.slots[self.current];
        *slot = (*slot).max(value);
    }

    pub(crate) fn max(&self) -> u64 {
        self.slots.iter().copied().max().unwrap_or(0)
    }

    pub(crate) fn reset(&mut self) {
        self.slots = [0; FILTER_ROUNDS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_round_filter_keeps_the_largest_of_its_last_slots() {
        let mut filter = RoundMax::new();
        filter.record(5);
        filter.advance();
        filter.record(3);
        assert_eq!(filter.max(), 5);
        for _ in 1..FILTER_ROUNDS {
            filter.advance();
        }
        assert_eq!(filter.max(), 3, "the 5 has aged out");
        filter.advance();
        assert_eq!(filter.max(), 0, "the 3 has aged out too");
        filter.record(9);
        filter.reset();
        assert_eq!(filter.max(), 0);
    }
}
