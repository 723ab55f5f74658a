//! The impairments of the link scenarios: none (`link-plain`), 25 ms each
//! way (`link-delay`), and 25 ms with 1 % loss each way (`link-loss`).
//!
//! Only the figures and the rows' descriptions; applying them is
//! [`super::impairer`]'s.

use crate::data::DataSet;

/// Delay each way, in milliseconds, of the delayed scenarios.
const DELAY_MS: f64 = 25.0;
/// Loss each way of `link-loss`.
const LOSS: f64 = 0.01;

/// The impairment of a link scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impairment {
    /// None: the bare veth.
    Plain,
    /// 25 ms each way.
    Delay,
    /// 25 ms and 1 % loss each way.
    Loss,
}

impl Impairment {
    pub fn delay_ms(self) -> f64 {
        match self {
            Self::Plain => 0.0,
            Self::Delay | Self::Loss => DELAY_MS,
        }
    }

    pub fn loss(self) -> f64 {
        match self {
            Self::Loss => LOSS,
            Self::Plain | Self::Delay => 0.0,
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
        }
    }
}
