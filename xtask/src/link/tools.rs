//! The tools measured on the link (qftp, scp, qcp tuned for the path with
//! Cubic and with BBR, rsync over ssh), where each one's output lands, and
//! the command lines of the peers, run in the client namespace.
//!
//! Only what to run; timing a run is [`super::runs`]'.

use std::path::PathBuf;
use std::process::Command;

use super::namespaces::{CLIENT_NS, SERVER_IP};
use super::peers::Peers;
use super::settings::Settings;
use crate::server::command_in;

/// qcp's receive bandwidth for these paths (above every link's rate).
const QCP_RX: [&str; 2] = ["--rx", "250M"];

/// The tools measured on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Qftp,
    Scp,
    QcpTuned,
    QcpBbr,
    Rsync,
}

impl Tool {
    pub const ALL: [Self; 5] = [
        Self::Qftp,
        Self::Scp,
        Self::QcpTuned,
        Self::QcpBbr,
        Self::Rsync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Qftp => "qftp",
            Self::Scp => "scp",
            Self::QcpTuned => "qcp (tuned)",
            Self::QcpBbr => "qcp (tuned, bbr)",
            Self::Rsync => "rsync over ssh",
        }
    }

    /// The directory its output lands in, under the link's work directory.
    pub fn destination(self) -> &'static str {
        match self {
            Self::Qftp => "server/homes/bench",
            Self::Scp => "dst/scp",
            Self::QcpTuned | Self::QcpBbr => "dst/qcp",
            Self::Rsync => "dst/rsync",
        }
    }
}

/// A command line for display.
pub fn shown(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| word.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command of a peer tool, run in the client namespace; qcp is tuned
/// for a round trip of `rtt_ms`.
pub fn peer_command(settings: &Settings<'_>, peers: &Peers, tool: Tool, rtt_ms: u32) -> Command {
    let known_hosts = format!("UserKnownHostsFile={}", settings.known_hosts().display());
    let target = format!(
        "root@{SERVER_IP}:{}/",
        settings.work.join(tool.destination()).display()
    );
    match tool {
        // qftp is not a peer; its command is the client's, never this one.
        Tool::Qftp | Tool::Scp => {
            let mut command = command_in(Some(CLIENT_NS), "scp");
            command
                .arg("-q")
                .arg("-F")
                .arg(&peers.ssh_config)
                .args(["-o", &known_hosts])
                .arg(settings.source)
                .arg(target);
            command
        }
        Tool::QcpTuned | Tool::QcpBbr => {
            let qcp = peers.qcp.clone().unwrap_or_else(|_| PathBuf::from("qcp"));
            let mut command = command_in(Some(CLIENT_NS), &qcp);
            command
                .arg("-q")
                .arg("--ssh-config")
                .arg(&peers.ssh_config)
                .arg("-S")
                .arg("-F")
                .arg("-S")
                .arg(&peers.ssh_config)
                .args(["-S", "-o", "-S", &known_hosts])
                .arg("--remote-qcp-binary")
                .arg(&qcp)
                .args(QCP_RX)
                .args(["--rtt", &rtt_ms.to_string()]);
            if tool == Tool::QcpBbr {
                command.args(["--congestion", "bbr"]);
            }
            command.arg(settings.source).arg(target);
            command
        }
        Tool::Rsync => {
            let mut command = command_in(Some(CLIENT_NS), "rsync");
            command
                .arg("-a")
                .arg("-e")
                .arg(format!(
                    "ssh -F {} -o {known_hosts}",
                    peers.ssh_config.display()
                ))
                .arg(settings.source)
                .arg(target);
            command
        }
    }
}
