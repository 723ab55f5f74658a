//! The network-link scenarios of `cargo xtask bench`: `link-plain`,
//! `link-delay` and `link-loss`.
//!
//! A 256 MiB upload between two network namespaces that the benchmark
//! creates itself, joined by a veth pair with an MTU of 1500 on both ends
//! (so loopback's jumbo datagrams do not count). `qftp-server` runs in the
//! server namespace and `qftp` in the client namespace (`ip netns exec`),
//! both the benchmark's copies of the release binaries. The peers run over
//! the same link in the same rounds: scp, and qcp tuned for the path
//! (`--rx 250M --rtt 50`, with its default Cubic and with `--congestion
//! bbr`) when the peers script installed it. Their sshd is the peers
//! script's (its config, host key and authorized key), started by the
//! benchmark inside the server namespace.
//!
//! This kernel has no netem, so delay and loss come from `cargo xtask
//! nfdelay` ([`crate::nfdelay`]): in each namespace an iptables rule hands
//! every IPv4 packet arriving on the veth to a netfilter queue, which that
//! namespace's impairer serves. Both directions get the same delay and
//! loss, and every tool gets the same impairment.
//!
//! Every process started here (server, sshd and its sessions, impairers,
//! the timed clients and their children) is stopped by PID, and the rules
//! and namespaces are removed, when the measurement ends, fails or is
//! interrupted (the guards' `Drop`).
//!
//! The bottleneck scenarios (`tbfRATE-rttRTT-lossLOSS`) add a `tbf` rate
//! limit on both veth ends ([`shaper`]), rsync over ssh beside the other
//! peers, and the link rate of one plain TCP Cubic flow ([`plain_flow`],
//! [`throughput`]) that every result is reported as a share of.
//!
//! The fairness scenarios (`fair-…`, [`contest`]) share the 100 Mbit/s,
//! 50 ms bottleneck between two flows: qftp against one TCP Cubic flow
//! (together, or one joining the other) and two qftp clients; each flow's
//! rate over the time both moved, its share of the link and Jain's index
//! ([`contest_runs`]).
//!
//! This file only names the parts: [`rounds`] (the order of it all),
//! [`namespaces`], [`impairment`], [`impairer`], [`shaper`],
//! [`plain_flow`], [`throughput`], [`contest`], [`contest_runs`], [`sshd`], [`peers`], [`tools`],
//! [`runs`], [`path`], [`commands`] and [`settings`].

mod commands;
mod contest;
mod contest_runs;
mod impairer;
mod impairment;
mod namespaces;
mod path;
mod peers;
mod plain_flow;
mod rounds;
mod runs;
mod settings;
mod shaper;
mod sshd;
mod throughput;
mod tools;

pub use contest::Contest;
pub use impairment::{Bottleneck, Impairment};
pub use peers::Peers;
pub use rounds::run;
pub use settings::Settings;
