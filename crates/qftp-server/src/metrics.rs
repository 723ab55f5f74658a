//! The server's metrics: every series it exports, and the one named
//! function per event that records into them.
//!
//! The rest of the server calls these functions ([`Metrics::login`],
//! [`Metrics::transfer_started`], [`Metrics::operation_finished`], …) and
//! never names a series or a label itself. The series live in a
//! [`prometheus_client`] registry of this server alone (no process-wide
//! recorder), so two servers in one process count apart;
//! [`Metrics::encode`] writes them as OpenMetrics text, which Prometheus
//! scrapes.
//!
//! What is recorded never holds a password, a token, a path or a user
//! name: every label takes one of a few fixed values (the login's method
//! and result, a transfer's direction and result, an operation's name).
//! The QUIC figures of each connection (round-trip time, congestion
//! window, packets sent and lost) are sampled every
//! [`PATH_SAMPLE_INTERVAL`] and when it closes ([`watch_path`]), and summed
//! or binned over all connections.
//!
//! This module serves nothing over HTTP: that is
//! [`crate::metrics_listener`]'s.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// How often the QUIC figures of a live connection are sampled.
pub const PATH_SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// A label set: fixed names, each with one of a few fixed values.
type Labels = [(&'static str, &'static str); 2];

/// Every series of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    logins: Family<Labels, Counter>,
    transfers_active: Gauge,
    received_bytes: Counter,
    sent_bytes: Counter,
    transfer_duration: Family<Labels, Histogram, fn() -> Histogram>,
    operations: Family<Labels, Counter>,
    quota_refusals: Counter,
    path_rtt: Histogram,
    path_congestion_window: Histogram,
    path_sent_packets: Counter,
    path_lost_packets: Counter,
}

/// How a login was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// A user name and password.
    Password,
    /// A saved session token.
    Token,
}

/// How a login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// Logged in.
    Ok,
    /// A wrong name or password, or a token naming no valid session.
    Failed,
    /// Refused unchecked by the login throttle.
    Blocked,
}

/// Keeps a connection in the `qftp_connections` gauge until dropped.
#[derive(Debug)]
pub struct CountedConnection {
    metrics: Arc<Metrics>,
}

/// Keeps a transfer in the `qftp_transfers_active` gauge until dropped.
#[derive(Debug)]
pub struct ActiveTransfer {
    metrics: Arc<Metrics>,
}

/// What was last sampled of one connection, so that its counts are added
/// to the totals once.
#[derive(Debug, Default)]
pub struct PathSampler {
    sent_packets: u64,
    lost_packets: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let connections = Gauge::default();
        registry.register(
            "qftp_connections",
            "QUIC connections live now, logged in or not",
            connections.clone(),
        );
        let logins = Family::<Labels, Counter>::default();
        registry.register(
            "qftp_logins",
            "Login attempts by method (password, token) and result (ok, failed, blocked)",
            logins.clone(),
        );
        let transfers_active = Gauge::default();
        registry.register(
            "qftp_transfers_active",
            "Uploads and downloads in flight now",
            transfers_active.clone(),
        );
        let received_bytes = Counter::default();
        registry.register_with_unit(
            "qftp_received",
            "File bytes received by the uploads that were stored",
            Unit::Bytes,
            received_bytes.clone(),
        );
        let sent_bytes = Counter::default();
        registry.register_with_unit(
            "qftp_sent",
            "File bytes sent by downloads, finished or not",
            Unit::Bytes,
            sent_bytes.clone(),
        );
        let transfer_duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram,
            );
        registry.register_with_unit(
            "qftp_transfer_duration",
            "How long each upload and download took, by direction and result",
            Unit::Seconds,
            transfer_duration.clone(),
        );
        let operations = Family::<Labels, Counter>::default();
        registry.register(
            "qftp_operations",
            "Finished operations that change or move data (put, get, mkdir, rm, mv) by result",
            operations.clone(),
        );
        let quota_refusals = Counter::default();
        registry.register(
            "qftp_quota_refusals",
            "Requests refused because they did not fit a quota or the server's free space",
            quota_refusals.clone(),
        );
        let path_rtt = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register_with_unit(
            "qftp_path_rtt",
            "Smoothed round-trip time of the connections, sampled every 10 s and at close",
            Unit::Seconds,
            path_rtt.clone(),
        );
        let path_congestion_window = Histogram::new(exponential_buckets(16_384.0, 2.0, 14));
        registry.register_with_unit(
            "qftp_path_congestion_window",
            "Congestion window of the connections, sampled every 10 s and at close",
            Unit::Bytes,
            path_congestion_window.clone(),
        );
        let path_sent_packets = Counter::default();
        registry.register(
            "qftp_path_sent_packets",
            "QUIC packets sent, over all connections",
            path_sent_packets.clone(),
        );
        let path_lost_packets = Counter::default();
        registry.register(
            "qftp_path_lost_packets",
            "QUIC packets declared lost, over all connections",
            path_lost_packets.clone(),
        );
        Self {
            registry,
            connections,
            logins,
            transfers_active,
            received_bytes,
            sent_bytes,
            transfer_duration,
            operations,
            quota_refusals,
            path_rtt,
            path_congestion_window,
            path_sent_packets,
            path_lost_packets,
        }
    }

    /// Every series as OpenMetrics text, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts a connection until the answer is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> CountedConnection {
        self.connections.inc();
        CountedConnection {
            metrics: Arc::clone(self),
        }
    }

    /// Counts one login attempt.
    pub fn login(&self, method: LoginMethod, result: LoginResult) {
        let method = match method {
            LoginMethod::Password => "password",
            LoginMethod::Token => "token",
        };
        let result = match result {
            LoginResult::Ok => "ok",
            LoginResult::Failed => "failed",
            LoginResult::Blocked => "blocked",
        };
        self.logins
            .get_or_create(&[("method", method), ("result", result)])
            .inc();
    }

    /// Counts a transfer in flight until the answer is dropped.
    pub fn transfer_started(self: &Arc<Self>) -> ActiveTransfer {
        self.transfers_active.inc();
        ActiveTransfer {
            metrics: Arc::clone(self),
        }
    }

    /// Records the end of an audited operation (`put`, `get`, `mkdir`,
    /// `rm`, `mv`): `bytes` it moved, `elapsed`, and whether it succeeded.
    /// An upload's bytes count only when it was stored; a download's count
    /// as far as they went.
    pub fn operation_finished(
        &self,
        operation: &'static str,
        bytes: u64,
        elapsed: Duration,
        succeeded: bool,
    ) {
        let result = if succeeded { "ok" } else { "failed" };
        self.operations
            .get_or_create(&[("operation", operation), ("result", result)])
            .inc();
        let direction = match operation {
            "put" => {
                if succeeded {
                    self.received_bytes.inc_by(bytes);
                }
                "upload"
            }
            "get" => {
                self.sent_bytes.inc_by(bytes);
                "download"
            }
            _ => return,
        };
        self.transfer_duration
            .get_or_create(&[("direction", direction), ("result", result)])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request refused for want of quota or free space.
    pub fn quota_refused(&self) {
        self.quota_refusals.inc();
    }

    /// Records one sample of a connection's QUIC path figures.
    pub fn sample_path(&self, sampler: &mut PathSampler, stats: &quinn::ConnectionStats) {
        let path = &stats.path;
        self.path_rtt.observe(path.rtt.as_secs_f64());
        self.path_congestion_window.observe(path.cwnd as f64);
        self.path_sent_packets
            .inc_by(path.sent_packets.saturating_sub(sampler.sent_packets));
        self.path_lost_packets
            .inc_by(path.lost_packets.saturating_sub(sampler.lost_packets));
        sampler.sent_packets = sampler.sent_packets.max(path.sent_packets);
        sampler.lost_packets = sampler.lost_packets.max(path.lost_packets);
    }
}

/// Transfer durations from 10 ms to about 23 hours.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 12))
}

impl Drop for CountedConnection {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

impl Drop for ActiveTransfer {
    fn drop(&mut self) {
        self.metrics.transfers_active.dec();
    }
}

/// Samples `connection`'s path figures every [`PATH_SAMPLE_INTERVAL`] and
/// once more when it closes; returns then.
pub async fn watch_path(metrics: Arc<Metrics>, connection: quinn::Connection) {
    let mut sampler = PathSampler::default();
    let mut ticks = tokio::time::interval(PATH_SAMPLE_INTERVAL);
    // The first tick is at once: a connection is sampled from its start.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => metrics.sample_path(&mut sampler, &connection.stats()),
            _ = connection.closed() => break,
        }
    }
    metrics.sample_path(&mut sampler, &connection.stats());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn every_series_is_exported_from_zero() {
        let text = Metrics::new().encode();
        for name in [
            "qftp_connections",
            "qftp_transfers_active",
            "qftp_received_bytes_total",
            "qftp_sent_bytes_total",
            "qftp_quota_refusals_total",
            "qftp_path_sent_packets_total",
            "qftp_path_lost_packets_total",
            "qftp_path_rtt_seconds_count",
            "qftp_path_congestion_window_bytes_count",
        ] {
            assert_eq!(sample(&text, name), 0.0, "{name}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn gauges_follow_their_guards() {
        let metrics = Arc::new(Metrics::new());
        let connection = metrics.connection_opened();
        let transfers = [metrics.transfer_started(), metrics.transfer_started()];
        let text = metrics.encode();
        assert_eq!(sample(&text, "qftp_connections"), 1.0);
        assert_eq!(sample(&text, "qftp_transfers_active"), 2.0);
        drop(transfers);
        drop(connection);
        let text = metrics.encode();
        assert_eq!(sample(&text, "qftp_connections"), 0.0);
        assert_eq!(sample(&text, "qftp_transfers_active"), 0.0);
    }

    #[test]
    fn operations_count_bytes_by_direction() {
        let metrics = Metrics::new();
        let second = Duration::from_secs(1);
        metrics.operation_finished("put", 1000, second, true);
        metrics.operation_finished("put", 500, second, false);
        metrics.operation_finished("get", 300, second, false);
        metrics.operation_finished("mkdir", 0, second, true);
        metrics.login(LoginMethod::Password, LoginResult::Blocked);
        metrics.quota_refused();
        let text = metrics.encode();
        assert_eq!(sample(&text, "qftp_received_bytes_total"), 1000.0);
        assert_eq!(sample(&text, "qftp_sent_bytes_total"), 300.0);
        assert_eq!(sample(&text, "qftp_quota_refusals_total"), 1.0);
        assert_eq!(
            sample(
                &text,
                "qftp_logins_total{method=\"password\",result=\"blocked\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "qftp_transfer_duration_seconds_count{direction=\"upload\",result=\"ok\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "qftp_operations_total{operation=\"mkdir\",result=\"ok\"}"
            ),
            1.0
        );
    }
}
