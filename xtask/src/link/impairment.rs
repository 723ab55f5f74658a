//! The impairments of the link scenarios: none (`link-plain`), 25 ms each
//! way (`link-delay`), 25 ms with 1 % loss each way (`link-loss`), and a
//! bottleneck (`tbfRATE-rttRTT-lossLOSS`): a `tbf` rate limit with a queue
//! of one bandwidth-delay product, half the round trip of delay each way
//! and random loss each way.
//!
//! Only the figures and the rows' descriptions; applying them is
//! [`super::impairer`]'s and [`super::shaper`]'s.

use crate::data::DataSet;

/// Delay each way, in milliseconds, of the delayed scenarios.
const DELAY_MS: f64 = 25.0;
/// Loss each way of `link-loss`.
const LOSS: f64 = 0.01;

/// A rate-limited path: the bottleneck scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bottleneck {
    /// The `tbf` rate of each direction, in Mbit/s.
    pub rate_mbit: u32,
    /// The round trip the impairers add (half of it each way), in ms.
    pub rtt_ms: u32,
    /// Random loss of each direction, in percent.
    pub loss_percent: u32,
}

impl Bottleneck {
    /// The rate in bytes per second.
    pub fn rate_bytes(self) -> u64 {
        u64::from(self.rate_mbit) * 1_000_000 / 8
    }

    /// One bandwidth-delay product in bytes: the queue of the `tbf`.
    pub fn queue_bytes(self) -> u64 {
        self.rate_bytes() * u64::from(self.rtt_ms) / 1000
    }

    /// The same path without random loss (where the link rate is measured).
    pub fn without_loss(self) -> Self {
        Self {
            loss_percent: 0,
            ..self
        }
    }
}

/// The impairment of a link scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impairment {
    /// None: the bare veth.
    Plain,
    /// 25 ms each way.
    Delay,
    /// 25 ms and 1 % loss each way.
    Loss,
    /// A rate limit, delay and loss.
    Bottleneck(Bottleneck),
}

impl Impairment {
    pub fn delay_ms(self) -> f64 {
        match self {
            Self::Plain => 0.0,
            Self::Delay | Self::Loss => DELAY_MS,
            Self::Bottleneck(bottleneck) => f64::from(bottleneck.rtt_ms) / 2.0,
        }
    }

    pub fn loss(self) -> f64 {
        match self {
            Self::Loss => LOSS,
            Self::Plain | Self::Delay => 0.0,
            Self::Bottleneck(bottleneck) => f64::from(bottleneck.loss_percent) / 100.0,
        }
    }

    /// The rate limit, when there is one.
    pub fn bottleneck(self) -> Option<Bottleneck> {
        match self {
            Self::Bottleneck(bottleneck) => Some(bottleneck),
            Self::Plain | Self::Delay | Self::Loss => None,
        }
    }

    /// The round trip qcp is tuned for, in ms.
    pub fn tuned_rtt_ms(self) -> u32 {
        match self {
            Self::Bottleneck(bottleneck) => bottleneck.rtt_ms.max(1),
            Self::Plain | Self::Delay | Self::Loss => 50,
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
            Self::Bottleneck(bottleneck) => format!(
                "upload of {set} through a {} Mbit/s tbf bottleneck (queue {} KB, one \
                 bandwidth-delay product), {} ms round trip, {} % random loss each way",
                bottleneck.rate_mbit,
                bottleneck.queue_bytes() / 1000,
                bottleneck.rtt_ms,
                bottleneck.loss_percent
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bottleneck_queues_one_bandwidth_delay_product() {
        let bottleneck = Bottleneck {
            rate_mbit: 100,
            rtt_ms: 200,
            loss_percent: 2,
        };
        assert_eq!(bottleneck.rate_bytes(), 12_500_000);
        assert_eq!(bottleneck.queue_bytes(), 2_500_000);
        let impairment = Impairment::Bottleneck(bottleneck);
        assert_eq!(impairment.delay_ms(), 100.0);
        assert_eq!(impairment.loss(), 0.02);
        assert_eq!(bottleneck.without_loss().loss_percent, 0);
    }
}
