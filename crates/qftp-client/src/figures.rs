//! The transport's figures for one connection, as a person asking "why is
//! my transfer slow" reads them: round-trip time, loss, congestion window,
//! bytes on the wire, and how often the path changed.
//!
//! The figures come from quinn's own counters ([`quinn::ConnectionStats`]);
//! this module only names them and turns them into a line of text. It
//! measures nothing itself.

use std::fmt;
use std::time::Duration;

/// One connection's transport figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportFigures {
    /// The smoothed round-trip time of the current path.
    pub rtt: Duration,
    /// The congestion window of the current path, in bytes.
    pub congestion_window: u64,
    /// The largest datagram the current path carries, in bytes.
    pub mtu: u16,
    /// QUIC packets sent on the current path.
    pub sent_packets: u64,
    /// Of those, the packets declared lost.
    pub lost_packets: u64,
    /// Congestion events (a window reduction) on the current path.
    pub congestion_events: u64,
    /// UDP payload bytes sent over the whole connection.
    pub sent_bytes: u64,
    /// UDP payload bytes received over the whole connection.
    pub received_bytes: u64,
    /// How many times the connection moved to a new local socket.
    pub rebinds: u64,
}

impl TransportFigures {
    /// Reads the figures out of quinn's statistics.
    pub fn from_stats(stats: &quinn::ConnectionStats, rebinds: u64) -> Self {
        Self {
            rtt: stats.path.rtt,
            congestion_window: stats.path.cwnd,
            mtu: stats.path.current_mtu,
            sent_packets: stats.path.sent_packets,
            lost_packets: stats.path.lost_packets,
            congestion_events: stats.path.congestion_events,
            sent_bytes: stats.udp_tx.bytes,
            received_bytes: stats.udp_rx.bytes,
            rebinds,
        }
    }

    /// The fraction of sent packets that were lost, 0.0 to 1.0.
    pub fn loss_rate(&self) -> f64 {
        if self.sent_packets == 0 {
            0.0
        } else {
            self.lost_packets as f64 / self.sent_packets as f64
        }
    }

    /// The rate one window per round trip allows, in bytes per second: the
    /// ceiling the congestion controller sets right now.
    pub fn window_rate(&self) -> Option<f64> {
        let rtt = self.rtt.as_secs_f64();
        (rtt > 0.0).then(|| self.congestion_window as f64 / rtt)
    }
}

impl fmt::Display for TransportFigures {
    /// `rtt 12.3 ms, loss 0.40 % (12 of 3000 packets), window 1.2 MiB
    /// (at most 97.6 MiB/s at this rtt), sent 100.0 MiB, received 1.1 MiB`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "rtt {:.1} ms, loss {:.2} % ({} of {} packets, {} congestion events), window {}",
            self.rtt.as_secs_f64() * 1000.0,
            self.loss_rate() * 100.0,
            self.lost_packets,
            self.sent_packets,
            self.congestion_events,
            binary_size(self.congestion_window as f64),
        )?;
        if let Some(rate) = self.window_rate() {
            write!(formatter, " (at most {}/s at this rtt)", binary_size(rate))?;
        }
        write!(
            formatter,
            ", mtu {} B, sent {}, received {}",
            self.mtu,
            binary_size(self.sent_bytes as f64),
            binary_size(self.received_bytes as f64),
        )?;
        if self.rebinds > 0 {
            write!(
                formatter,
                ", moved to a new local address {} times",
                self.rebinds
            )?;
        }
        Ok(())
    }
}

/// `1.2 MiB`: a byte count with a binary unit and one decimal.
fn binary_size(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> TransportFigures {
        TransportFigures {
            rtt: Duration::from_millis(50),
            congestion_window: 5 * 1024 * 1024,
            mtu: 1452,
            sent_packets: 4000,
            lost_packets: 80,
            congestion_events: 3,
            sent_bytes: 100 * 1024 * 1024,
            received_bytes: 1536 * 1024,
            rebinds: 0,
        }
    }

    #[test]
    fn the_line_names_rtt_loss_window_and_the_rate_the_window_allows() {
        let line = figures().to_string();
        assert_eq!(
            line,
            "rtt 50.0 ms, loss 2.00 % (80 of 4000 packets, 3 congestion events), \
             window 5.0 MiB (at most 100.0 MiB/s at this rtt), mtu 1452 B, \
             sent 100.0 MiB, received 1.5 MiB"
        );
        let moved = TransportFigures {
            rebinds: 2,
            ..figures()
        };
        assert!(
            moved
                .to_string()
                .ends_with(", moved to a new local address 2 times")
        );
    }

    #[test]
    fn nothing_sent_is_no_loss_and_no_round_trip_is_no_rate() {
        let idle = TransportFigures {
            rtt: Duration::ZERO,
            sent_packets: 0,
            lost_packets: 0,
            ..figures()
        };
        assert_eq!(idle.loss_rate(), 0.0);
        assert_eq!(idle.window_rate(), None);
        assert!(!idle.to_string().contains("at most"));
    }
}
