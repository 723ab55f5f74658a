//! The benchmark's scenarios: what each one moves, in which direction and
//! from which starting point, which of the peers script's scenarios
//! matches it, and how its row is described.
//!
//! Only the catalogue: how a scenario is run is decided elsewhere
//! ([`super::loopback`], [`super::links`], [`super::ceiling`]).

use clap::ValueEnum;
use serde::Serialize;

use crate::data::DataSet;
use crate::link;

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Scenario {
    /// `qftp put` of the 1 GiB file.
    #[value(name = "put-1g")]
    #[serde(rename = "put-1g")]
    Put1g,
    /// `qftp get` of the 1 GiB file into a local directory.
    #[value(name = "get-1g")]
    #[serde(rename = "get-1g")]
    Get1g,
    /// `qftp put -r -j 16` of 10,000 files of 4 KiB.
    #[value(name = "put-10k")]
    #[serde(rename = "put-10k")]
    Put10k,
    /// `qftp get -r -j 16` of the 10,000 files of 4 KiB into a local directory.
    #[value(name = "get-10k")]
    #[serde(rename = "get-10k")]
    Get10k,
    /// `qftp put -r -j 16` of 1,000 files of 1 MiB.
    #[value(name = "put-1k-1m")]
    #[serde(rename = "put-1k-1m")]
    Put1k1m,
    /// First `qftp sync -j 16` of the 10,000 files into an empty remote directory.
    #[value(name = "sync-10k")]
    #[serde(rename = "sync-10k")]
    Sync10k,
    /// No-change re-run of `sync-10k` (the destination is complete).
    #[value(name = "resync-10k")]
    #[serde(rename = "resync-10k")]
    Resync10k,
    /// First `qftp sync -j 16` of the 1,000 files of 1 MiB into an empty remote directory.
    #[value(name = "sync-1k-1m")]
    #[serde(rename = "sync-1k-1m")]
    Sync1k1m,
    /// No-change re-run of `sync-1k-1m`.
    #[value(name = "resync-1k-1m")]
    #[serde(rename = "resync-1k-1m")]
    Resync1k1m,
    /// First `qftp sync -j 16` of 100,000 files of 100 B in 1,000
    /// directories into an empty remote directory.
    #[value(name = "sync-100k")]
    #[serde(rename = "sync-100k")]
    Sync100k,
    /// No-change re-run of `sync-100k`.
    #[value(name = "resync-100k")]
    #[serde(rename = "resync-100k")]
    Resync100k,
    /// `qftp put` of 256 MiB between two network namespaces over a veth
    /// link (MTU 1500) without impairment, with scp and qcp beside it.
    #[value(name = "link-plain")]
    #[serde(rename = "link-plain")]
    LinkPlain,
    /// The same with 25 ms delay each way (50 ms round trip).
    #[value(name = "link-delay")]
    #[serde(rename = "link-delay")]
    LinkDelay,
    /// The same with 25 ms delay and 1 % loss each way.
    #[value(name = "link-loss")]
    #[serde(rename = "link-loss")]
    LinkLoss,
    /// `qftp put` of 256 MiB through a 100 Mbit/s tbf bottleneck, 50 ms
    /// round trip, 0 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf100-rtt50-loss0")]
    #[serde(rename = "tbf100-rtt50-loss0")]
    Tbf100Rtt50Loss0,
    /// `qftp put` of 256 MiB through a 100 Mbit/s tbf bottleneck, 50 ms
    /// round trip, 1 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf100-rtt50-loss1")]
    #[serde(rename = "tbf100-rtt50-loss1")]
    Tbf100Rtt50Loss1,
    /// `qftp put` of 256 MiB through a 100 Mbit/s tbf bottleneck, 50 ms
    /// round trip, 2 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf100-rtt50-loss2")]
    #[serde(rename = "tbf100-rtt50-loss2")]
    Tbf100Rtt50Loss2,
    /// `qftp put` of 256 MiB through a 100 Mbit/s tbf bottleneck, 50 ms
    /// round trip, 5 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf100-rtt50-loss5")]
    #[serde(rename = "tbf100-rtt50-loss5")]
    Tbf100Rtt50Loss5,
    /// `qftp put` of 256 MiB through a 100 Mbit/s tbf bottleneck, 200 ms
    /// round trip, 0 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf100-rtt200-loss0")]
    #[serde(rename = "tbf100-rtt200-loss0")]
    Tbf100Rtt200Loss0,
    /// `qftp put` of 256 MiB through a 100 Mbit/s tbf bottleneck, 200 ms
    /// round trip, 1 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf100-rtt200-loss1")]
    #[serde(rename = "tbf100-rtt200-loss1")]
    Tbf100Rtt200Loss1,
    /// `qftp put` of 256 MiB through a 100 Mbit/s tbf bottleneck, 200 ms
    /// round trip, 2 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf100-rtt200-loss2")]
    #[serde(rename = "tbf100-rtt200-loss2")]
    Tbf100Rtt200Loss2,
    /// `qftp put` of 256 MiB through a 100 Mbit/s tbf bottleneck, 200 ms
    /// round trip, 5 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf100-rtt200-loss5")]
    #[serde(rename = "tbf100-rtt200-loss5")]
    Tbf100Rtt200Loss5,
    /// `qftp put` of 256 MiB through a 400 Mbit/s tbf bottleneck, 50 ms
    /// round trip, 0 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf400-rtt50-loss0")]
    #[serde(rename = "tbf400-rtt50-loss0")]
    Tbf400Rtt50Loss0,
    /// `qftp put` of 256 MiB through a 400 Mbit/s tbf bottleneck, 50 ms
    /// round trip, 1 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf400-rtt50-loss1")]
    #[serde(rename = "tbf400-rtt50-loss1")]
    Tbf400Rtt50Loss1,
    /// `qftp put` of 256 MiB through a 400 Mbit/s tbf bottleneck, 50 ms
    /// round trip, 2 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf400-rtt50-loss2")]
    #[serde(rename = "tbf400-rtt50-loss2")]
    Tbf400Rtt50Loss2,
    /// `qftp put` of 256 MiB through a 400 Mbit/s tbf bottleneck, 50 ms
    /// round trip, 5 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf400-rtt50-loss5")]
    #[serde(rename = "tbf400-rtt50-loss5")]
    Tbf400Rtt50Loss5,
    /// `qftp put` of 256 MiB through a 400 Mbit/s tbf bottleneck, 200 ms
    /// round trip, 0 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf400-rtt200-loss0")]
    #[serde(rename = "tbf400-rtt200-loss0")]
    Tbf400Rtt200Loss0,
    /// `qftp put` of 256 MiB through a 400 Mbit/s tbf bottleneck, 200 ms
    /// round trip, 1 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf400-rtt200-loss1")]
    #[serde(rename = "tbf400-rtt200-loss1")]
    Tbf400Rtt200Loss1,
    /// `qftp put` of 256 MiB through a 400 Mbit/s tbf bottleneck, 200 ms
    /// round trip, 2 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf400-rtt200-loss2")]
    #[serde(rename = "tbf400-rtt200-loss2")]
    Tbf400Rtt200Loss2,
    /// `qftp put` of 256 MiB through a 400 Mbit/s tbf bottleneck, 200 ms
    /// round trip, 5 % random loss each way, beside scp, qcp and rsync.
    #[value(name = "tbf400-rtt200-loss5")]
    #[serde(rename = "tbf400-rtt200-loss5")]
    Tbf400Rtt200Loss5,
    /// `qftp put` and one TCP Cubic flow sharing the 100 Mbit/s, 50 ms
    /// bottleneck, started together: each one's share and Jain's index.
    #[value(name = "fair-cubic")]
    #[serde(rename = "fair-cubic")]
    FairCubic,
    /// Two `qftp put`s from two clients sharing the bottleneck.
    #[value(name = "fair-qftp2")]
    #[serde(rename = "fair-qftp2")]
    FairQftp2,
    /// A TCP Cubic flow, then `qftp put` joins it.
    #[value(name = "fair-cubic-first")]
    #[serde(rename = "fair-cubic-first")]
    FairCubicFirst,
    /// `qftp put`, then a TCP Cubic flow joins it.
    #[value(name = "fair-qftp-first")]
    #[serde(rename = "fair-qftp-first")]
    FairQftpFirst,
    /// 1 GiB from memory to nothing over one QUIC stream on loopback with
    /// qftp's transport settings: the ceiling of `put-1g`.
    #[value(name = "mem-ceiling")]
    #[serde(rename = "mem-ceiling")]
    MemCeiling,
}

/// What a scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `qftp put` into an empty destination.
    Put,
    /// `qftp get` into an empty local directory.
    Get,
    /// `qftp sync` into an empty remote directory.
    Sync,
    /// `qftp sync` again, with nothing changed.
    Resync,
    /// `qftp put` between network namespaces ([`crate::link`]).
    Link,
    /// Memory to memory over QUIC ([`crate::memceiling`]).
    Memory,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Put1g => "put-1g",
            Self::Get1g => "get-1g",
            Self::Put10k => "put-10k",
            Self::Get10k => "get-10k",
            Self::Put1k1m => "put-1k-1m",
            Self::Sync10k => "sync-10k",
            Self::Resync10k => "resync-10k",
            Self::Sync1k1m => "sync-1k-1m",
            Self::Resync1k1m => "resync-1k-1m",
            Self::Sync100k => "sync-100k",
            Self::Resync100k => "resync-100k",
            Self::LinkPlain => "link-plain",
            Self::LinkDelay => "link-delay",
            Self::LinkLoss => "link-loss",
            Self::Tbf100Rtt50Loss0 => "tbf100-rtt50-loss0",
            Self::Tbf100Rtt50Loss1 => "tbf100-rtt50-loss1",
            Self::Tbf100Rtt50Loss2 => "tbf100-rtt50-loss2",
            Self::Tbf100Rtt50Loss5 => "tbf100-rtt50-loss5",
            Self::Tbf100Rtt200Loss0 => "tbf100-rtt200-loss0",
            Self::Tbf100Rtt200Loss1 => "tbf100-rtt200-loss1",
            Self::Tbf100Rtt200Loss2 => "tbf100-rtt200-loss2",
            Self::Tbf100Rtt200Loss5 => "tbf100-rtt200-loss5",
            Self::Tbf400Rtt50Loss0 => "tbf400-rtt50-loss0",
            Self::Tbf400Rtt50Loss1 => "tbf400-rtt50-loss1",
            Self::Tbf400Rtt50Loss2 => "tbf400-rtt50-loss2",
            Self::Tbf400Rtt50Loss5 => "tbf400-rtt50-loss5",
            Self::Tbf400Rtt200Loss0 => "tbf400-rtt200-loss0",
            Self::Tbf400Rtt200Loss1 => "tbf400-rtt200-loss1",
            Self::Tbf400Rtt200Loss2 => "tbf400-rtt200-loss2",
            Self::Tbf400Rtt200Loss5 => "tbf400-rtt200-loss5",
            Self::FairCubic => "fair-cubic",
            Self::FairQftp2 => "fair-qftp2",
            Self::FairCubicFirst => "fair-cubic-first",
            Self::FairQftpFirst => "fair-qftp-first",
            Self::MemCeiling => "mem-ceiling",
        }
    }

    /// Whether it runs against the loopback server (and with `cp` references).
    pub fn on_loopback(self) -> bool {
        !matches!(self.kind(), Kind::Link | Kind::Memory)
    }

    /// The impairment of a link scenario.
    pub fn impairment(self) -> Option<link::Impairment> {
        match self {
            Self::LinkPlain => Some(link::Impairment::Plain),
            Self::LinkDelay => Some(link::Impairment::Delay),
            Self::LinkLoss => Some(link::Impairment::Loss),
            Self::Tbf100Rtt50Loss0 => Some(bottleneck(100, 50, 0)),
            Self::Tbf100Rtt50Loss1 => Some(bottleneck(100, 50, 1)),
            Self::Tbf100Rtt50Loss2 => Some(bottleneck(100, 50, 2)),
            Self::Tbf100Rtt50Loss5 => Some(bottleneck(100, 50, 5)),
            Self::Tbf100Rtt200Loss0 => Some(bottleneck(100, 200, 0)),
            Self::Tbf100Rtt200Loss1 => Some(bottleneck(100, 200, 1)),
            Self::Tbf100Rtt200Loss2 => Some(bottleneck(100, 200, 2)),
            Self::Tbf100Rtt200Loss5 => Some(bottleneck(100, 200, 5)),
            Self::Tbf400Rtt50Loss0 => Some(bottleneck(400, 50, 0)),
            Self::Tbf400Rtt50Loss1 => Some(bottleneck(400, 50, 1)),
            Self::Tbf400Rtt50Loss2 => Some(bottleneck(400, 50, 2)),
            Self::Tbf400Rtt50Loss5 => Some(bottleneck(400, 50, 5)),
            Self::Tbf400Rtt200Loss0 => Some(bottleneck(400, 200, 0)),
            Self::Tbf400Rtt200Loss1 => Some(bottleneck(400, 200, 1)),
            Self::Tbf400Rtt200Loss2 => Some(bottleneck(400, 200, 2)),
            Self::Tbf400Rtt200Loss5 => Some(bottleneck(400, 200, 5)),
            _ => None,
        }
    }

    /// The fairness contest of a `fair-…` scenario.
    pub fn contest(self) -> Option<link::Contest> {
        match self {
            Self::FairCubic => Some(link::Contest::QftpWithCubic),
            Self::FairQftp2 => Some(link::Contest::TwoQftp),
            Self::FairCubicFirst => Some(link::Contest::QftpJoinsCubic),
            Self::FairQftpFirst => Some(link::Contest::CubicJoinsQftp),
            _ => None,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Self::Put1g | Self::Put10k | Self::Put1k1m => Kind::Put,
            Self::Get1g | Self::Get10k => Kind::Get,
            Self::Sync10k | Self::Sync1k1m | Self::Sync100k => Kind::Sync,
            Self::Resync10k | Self::Resync1k1m | Self::Resync100k => Kind::Resync,
            Self::MemCeiling => Kind::Memory,
            // Every scenario with an impairment or a contest on the link.
            _ => Kind::Link,
        }
    }

    pub fn data_set(self) -> DataSet {
        match self {
            Self::Put1g | Self::Get1g | Self::MemCeiling => DataSet::Big,
            Self::Put10k | Self::Get10k | Self::Sync10k | Self::Resync10k => DataSet::Small,
            Self::Sync100k | Self::Resync100k => DataSet::Tiny,
            Self::Put1k1m | Self::Sync1k1m | Self::Resync1k1m => DataSet::Medium,
            // Every scenario on the link moves the link's file.
            _ => DataSet::Link,
        }
    }

    pub fn is_upload(self) -> bool {
        self.kind() != Kind::Get
    }

    /// The peers script's scenario with the same data, direction and
    /// starting point (an empty destination); it has no no-change re-runs,
    /// no downloads and no tree of 100,000 files (their peers run through
    /// [`crate::rerun`]).
    pub fn peer_scenario(self) -> Option<&'static str> {
        match self {
            Self::Put1g => Some("big"),
            Self::Put10k | Self::Sync10k => Some("small"),
            Self::Put1k1m | Self::Sync1k1m => Some("med"),
            // Downloads, re-runs, the 100,000-file tree, the links and
            // the memory ceiling have no match there.
            _ => None,
        }
    }

    pub fn description(self) -> String {
        let set = self.data_set().description();
        match self.kind() {
            Kind::Put => format!("upload of {set}"),
            Kind::Get => format!("download of {set}"),
            Kind::Sync => format!("first sync of {set} into an empty directory"),
            Kind::Resync => format!("no-change re-sync of {set}"),
            Kind::Link => match (self.impairment(), self.contest()) {
                (Some(impairment), _) => impairment.description(),
                (None, Some(contest)) => contest.description(),
                (None, None) => String::new(),
            },
            Kind::Memory => "1 GiB from memory to nothing over one QUIC stream on 127.0.0.1, \
                             qftp's transport settings; no disk, no hashing"
                .into(),
        }
    }
}

/// A bottleneck of `rate_mbit`, `rtt_ms` and `loss_percent`.
const fn bottleneck(rate_mbit: u32, rtt_ms: u32, loss_percent: u32) -> link::Impairment {
    link::Impairment::Bottleneck(link::Bottleneck {
        rate_mbit,
        rtt_ms,
        loss_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_map_to_peer_cases() {
        assert_eq!(Scenario::Sync10k.peer_scenario(), Some("small"));
        assert_eq!(Scenario::Resync10k.peer_scenario(), None);
        assert_eq!(Scenario::Sync1k1m.data_set(), DataSet::Medium);
        assert_eq!(Scenario::Resync1k1m.kind(), Kind::Resync);
        assert!(Scenario::Resync10k.is_upload());
        assert!(!Scenario::Get10k.is_upload());
        assert_eq!(Scenario::Sync100k.data_set(), DataSet::Tiny);
        assert_eq!(Scenario::Sync100k.peer_scenario(), None);
        assert_eq!(Scenario::Tbf100Rtt200Loss2.name(), "tbf100-rtt200-loss2");
        for scenario in Scenario::value_variants() {
            let linked = scenario.impairment().is_some() || scenario.contest().is_some();
            assert!(
                scenario.impairment().is_none() || scenario.contest().is_none(),
                "{scenario:?}"
            );
            assert_eq!(scenario.kind() == Kind::Link, linked, "{scenario:?}");
            assert_eq!(scenario.data_set() == DataSet::Link, linked, "{scenario:?}");
            assert_eq!(
                scenario
                    .to_possible_value()
                    .map(|value| value.get_name().to_owned()),
                Some(scenario.name().to_owned())
            );
        }
        assert_eq!(
            Scenario::Tbf400Rtt50Loss5
                .impairment()
                .and_then(link::Impairment::bottleneck),
            Some(link::Bottleneck {
                rate_mbit: 400,
                rtt_ms: 50,
                loss_percent: 5
            })
        );
    }
}
