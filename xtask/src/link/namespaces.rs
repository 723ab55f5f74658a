//! The two network namespaces of the link scenarios and the veth pair
//! between them (MTU 1500 on both ends, addresses on a subnet of their
//! own), created for the measurement and removed when dropped.
//!
//! Only the topology; the delay and loss on it are [`super::impairer`]'s.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::commands::{cleanup, set_up};

/// The client's network namespace.
pub const CLIENT_NS: &str = "qftp-bench-client";
/// The server's network namespace.
pub const SERVER_NS: &str = "qftp-bench-server";
/// The veth end in the client namespace.
pub const CLIENT_IF: &str = "qfb-client";
/// The veth end in the server namespace.
pub const SERVER_IF: &str = "qfb-server";
/// The client's address (on a link that exists only between the two namespaces).
pub const CLIENT_IP: &str = "10.231.7.1";
/// The server's address.
pub const SERVER_IP: &str = "10.231.7.2";
/// The MTU of both veth ends: an Ethernet path, not loopback's 65536.
pub const MTU: u32 = 1500;

/// The two namespaces and the veth pair; removed when dropped.
#[derive(Debug)]
pub struct Link {
    logs: PathBuf,
}

impl Link {
    /// Creates the namespaces (removing leftovers of an earlier run that
    /// was killed) and the veth pair, addresses it and brings it up.
    pub fn up(logs: &Path) -> anyhow::Result<Self> {
        for namespace in [CLIENT_NS, SERVER_NS] {
            if namespace_exists(namespace) {
                eprintln!("link: removing the namespace {namespace} left by an earlier run");
                let _ = cleanup(
                    Command::new("ip").args(["netns", "del", namespace]),
                    "ip netns del",
                    logs,
                );
            }
        }
        let link = Self {
            logs: logs.to_owned(),
        };
        let mtu = MTU.to_string();
        let ip = |arguments: &[&str]| -> anyhow::Result<()> {
            set_up(
                Command::new("ip").args(arguments),
                &format!("ip {}", arguments.join(" ")),
                logs,
            )
        };
        ip(&["netns", "add", CLIENT_NS])?;
        ip(&["netns", "add", SERVER_NS])?;
        ip(&[
            "link", "add", CLIENT_IF, "mtu", &mtu, "netns", CLIENT_NS, "type", "veth", "peer",
            "name", SERVER_IF, "mtu", &mtu, "netns", SERVER_NS,
        ])?;
        for (namespace, interface, address) in [
            (CLIENT_NS, CLIENT_IF, CLIENT_IP),
            (SERVER_NS, SERVER_IF, SERVER_IP),
        ] {
            let address = format!("{address}/24");
            ip(&["-n", namespace, "addr", "add", &address, "dev", interface])?;
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
            ip(&["-n", namespace, "link", "set", interface, "mtu", &mtu, "up"])?;
        }
        eprintln!("link: {CLIENT_NS} ({CLIENT_IP}) <-> {SERVER_NS} ({SERVER_IP}), veth MTU {MTU}");
        Ok(link)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for namespace in [CLIENT_NS, SERVER_NS] {
            if namespace_exists(namespace) {
                if let Err(error) = cleanup(
                    Command::new("ip").args(["netns", "del", namespace]),
                    "ip netns del",
                    &self.logs,
                ) {
                    eprintln!("link: removing the namespace {namespace}: {error:#}");
                }
            }
        }
    }
}

/// Whether `ip netns list` shows `namespace`.
fn namespace_exists(namespace: &str) -> bool {
    Path::new("/run/netns").join(namespace).exists()
}
