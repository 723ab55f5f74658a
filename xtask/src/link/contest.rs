//! The fairness scenarios of the link bench: two flows sharing one
//! bottleneck without random loss, qftp against one TCP Cubic flow (started
//! together, or one after the other) and qftp against qftp, and the goals
//! their shares are judged by.
//!
//! Only what each contest is; running one is [`super::contest_runs`]'.

use std::time::Duration;

use super::impairment::Bottleneck;

/// The bottleneck every contest shares: 100 Mbit/s, 50 ms round trip, a
/// queue of one bandwidth-delay product, no random loss.
pub const ARENA: Bottleneck = Bottleneck {
    rate_mbit: 100,
    rtt_ms: 50,
    loss_percent: 0,
};

/// How long the second flow of a staggered contest waits after the first:
/// long enough for the first to fill the link.
pub const STAGGER: Duration = Duration::from_secs(8);

/// A flow of a contest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// `qftp put` of the link's source file, by client 0 or 1 (each logged
    /// in with a config directory of its own, so each has its own QUIC
    /// connection).
    Qftp(usize),
    /// One TCP Cubic flow of the same size ([`crate::tcpflow`]).
    Cubic,
}

impl Contender {
    /// The flow's name in the table.
    pub fn name(self) -> String {
        match self {
            Self::Qftp(0) => "qftp".into(),
            Self::Qftp(client) => format!("qftp #{}", client + 1),
            Self::Cubic => "TCP Cubic".into(),
        }
    }
}

/// A fairness scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contest {
    /// qftp and one TCP Cubic flow, started together.
    QftpWithCubic,
    /// Two qftp transfers from two clients, started together.
    TwoQftp,
    /// A TCP Cubic flow, then qftp joins it.
    QftpJoinsCubic,
    /// qftp, then a TCP Cubic flow joins it.
    CubicJoinsQftp,
}

impl Contest {
    /// The two flows, the first started first.
    pub fn contenders(self) -> [Contender; 2] {
        match self {
            Self::QftpWithCubic | Self::CubicJoinsQftp => [Contender::Qftp(0), Contender::Cubic],
            Self::TwoQftp => [Contender::Qftp(0), Contender::Qftp(1)],
            Self::QftpJoinsCubic => [Contender::Cubic, Contender::Qftp(0)],
        }
    }

    /// How long after the first flow the second starts.
    pub fn stagger(self) -> Duration {
        match self {
            Self::QftpWithCubic | Self::TwoQftp => Duration::ZERO,
            Self::QftpJoinsCubic | Self::CubicJoinsQftp => STAGGER,
        }
    }

    /// Whether both flows are qftp's (judged by Jain's index alone).
    pub fn qftp_only(self) -> bool {
        self == Self::TwoQftp
    }

    /// The row's description.
    pub fn description(self) -> String {
        let path = format!(
            "{} Mbit/s tbf bottleneck, {} ms round trip, no random loss",
            ARENA.rate_mbit, ARENA.rtt_ms
        );
        let stagger = self.stagger().as_secs();
        match self {
            Self::QftpWithCubic => {
                format!("qftp put and one TCP Cubic flow started together; {path}")
            }
            Self::TwoQftp => format!("two qftp puts from two clients started together; {path}"),
            Self::QftpJoinsCubic => {
                format!("a TCP Cubic flow, then qftp put {stagger} s later; {path}")
            }
            Self::CubicJoinsQftp => {
                format!("qftp put, then a TCP Cubic flow {stagger} s later; {path}")
            }
        }
    }

    /// The goal of the contest, as the table states it.
    pub fn goal(self) -> &'static str {
        if self.qftp_only() {
            "Jain ≥ 0.95"
        } else {
            "qftp 35–65 % of the shared rate, Jain ≥ 0.9"
        }
    }

    /// Whether `qftp_part` (qftp's part of the two flows' combined rate,
    /// 0 to 1) and `jain` meet [`Self::goal`].
    pub fn met(self, qftp_part: Option<f64>, jain: f64) -> bool {
        if self.qftp_only() {
            jain >= 0.95
        } else {
            qftp_part.is_some_and(|part| (0.35..=0.65).contains(&part)) && jain >= 0.9
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contests_name_their_flows_and_judge_their_goals() {
        assert_eq!(
            Contest::QftpJoinsCubic.contenders(),
            [Contender::Cubic, Contender::Qftp(0)]
        );
        assert_eq!(Contest::TwoQftp.contenders()[1].name(), "qftp #2");
        assert_eq!(Contest::QftpWithCubic.stagger(), Duration::ZERO);
        assert!(Contest::QftpWithCubic.met(Some(0.5), 0.99));
        assert!(!Contest::QftpWithCubic.met(Some(0.8), 0.99), "starving TCP");
        assert!(!Contest::QftpWithCubic.met(None, 1.0));
        assert!(Contest::TwoQftp.met(None, 0.96));
        assert!(!Contest::TwoQftp.met(None, 0.9));
    }
}
