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
            _ => None,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Self::Put1g | Self::Put10k | Self::Put1k1m => Kind::Put,
            Self::Get1g | Self::Get10k => Kind::Get,
            Self::Sync10k | Self::Sync1k1m | Self::Sync100k => Kind::Sync,
            Self::Resync10k | Self::Resync1k1m | Self::Resync100k => Kind::Resync,
            Self::LinkPlain | Self::LinkDelay | Self::LinkLoss => Kind::Link,
            Self::MemCeiling => Kind::Memory,
        }
    }

    pub fn data_set(self) -> DataSet {
        match self {
            Self::Put1g | Self::Get1g | Self::MemCeiling => DataSet::Big,
            Self::LinkPlain | Self::LinkDelay | Self::LinkLoss => DataSet::Link,
            Self::Put10k | Self::Get10k | Self::Sync10k | Self::Resync10k => DataSet::Small,
            Self::Sync100k | Self::Resync100k => DataSet::Tiny,
            Self::Put1k1m | Self::Sync1k1m | Self::Resync1k1m => DataSet::Medium,
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
            Self::Get1g
            | Self::Get10k
            | Self::Sync100k
            | Self::Resync100k
            | Self::Resync10k
            | Self::Resync1k1m
            | Self::LinkPlain
            | Self::LinkDelay
            | Self::LinkLoss
            | Self::MemCeiling => None,
        }
    }

    pub fn description(self) -> String {
        let set = self.data_set().description();
        match self.kind() {
            Kind::Put => format!("upload of {set}"),
            Kind::Get => format!("download of {set}"),
            Kind::Sync => format!("first sync of {set} into an empty directory"),
            Kind::Resync => format!("no-change re-sync of {set}"),
            Kind::Link => self
                .impairment()
                .map_or_else(String::new, link::Impairment::description),
            Kind::Memory => "1 GiB from memory to nothing over one QUIC stream on 127.0.0.1, \
                             qftp's transport settings; no disk, no hashing"
                .into(),
        }
    }
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
    }
}
