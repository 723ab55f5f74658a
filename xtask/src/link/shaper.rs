//! The bottleneck of a scenario: a `tbf` qdisc at the rate asked for, with
//! a queue of one bandwidth-delay product, on the egress of both veth ends
//! (this kernel has tbf, but no netem and no fq_codel), and TCP buffers in
//! both namespaces large enough for that product; the qdiscs are removed
//! when dropped.
//!
//! The delay and loss on the same path are [`super::impairer`]'s; packets
//! queue at the tbf, then wait in the other namespace's impairer.

use std::path::PathBuf;

use super::commands::{cleanup, set_up};
use super::impairment::Bottleneck;
use super::namespaces::{CLIENT_IF, CLIENT_NS, SERVER_IF, SERVER_NS};
use super::settings::Settings;
use crate::server::command_in;

/// Smallest queue of the tbf, in bytes (a few dozen packets).
const MIN_QUEUE: u64 = 64 * 1500;
/// The TCP buffers (min, default, max bytes) set in both namespaces, so a
/// plain TCP flow can keep a bandwidth-delay product in flight.
const TCP_BUFFERS: &str = "4096 131072 67108864";

/// The tbf of both veth ends; removed when dropped.
#[derive(Debug)]
pub struct Shaper {
    shaped: Vec<(&'static str, &'static str)>,
    logs: PathBuf,
}

impl Shaper {
    /// Rate-limits both directions of the link to `bottleneck`.
    pub fn start(settings: &Settings<'_>, bottleneck: Bottleneck) -> anyhow::Result<Self> {
        let mut shaper = Self {
            shaped: Vec::new(),
            logs: settings.logs.to_owned(),
        };
        let arguments = tbf_arguments(bottleneck);
        for (namespace, interface) in [(CLIENT_NS, CLIENT_IF), (SERVER_NS, SERVER_IF)] {
            for key in ["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"] {
                let mut command = command_in(Some(namespace), "sysctl");
                command.args(["-q", "-w", &format!("{key}={TCP_BUFFERS}")]);
                set_up(&mut command, "sysctl tcp buffers", settings.logs)?;
            }
            let mut command = command_in(Some(namespace), "tc");
            command
                .args(["qdisc", "replace", "dev", interface, "root"])
                .args(&arguments);
            set_up(&mut command, "tc qdisc replace tbf", settings.logs)?;
            shaper.shaped.push((namespace, interface));
        }
        Ok(shaper)
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        for (namespace, interface) in std::mem::take(&mut self.shaped) {
            let mut command = command_in(Some(namespace), "tc");
            command.args(["qdisc", "del", "dev", interface, "root"]);
            if let Err(error) = cleanup(&mut command, "tc qdisc del", &self.logs) {
                eprintln!("link: removing the tbf in {namespace}: {error:#}");
            }
        }
    }
}

/// The `tbf …` words of a bottleneck: its rate, a burst of 1 ms of it (at
/// least a few packets) and a queue of one bandwidth-delay product.
pub fn tbf_arguments(bottleneck: Bottleneck) -> Vec<String> {
    let burst = (bottleneck.rate_bytes() / 1000).max(10 * 1500);
    let queue = bottleneck.queue_bytes().max(MIN_QUEUE);
    vec![
        "tbf".into(),
        "rate".into(),
        format!("{}mbit", bottleneck.rate_mbit),
        "burst".into(),
        burst.to_string(),
        "limit".into(),
        queue.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tbf_queues_one_bandwidth_delay_product() {
        let bottleneck = Bottleneck {
            rate_mbit: 400,
            rtt_ms: 50,
            loss_percent: 0,
        };
        assert_eq!(
            tbf_arguments(bottleneck).join(" "),
            "tbf rate 400mbit burst 50000 limit 2500000"
        );
    }
}
