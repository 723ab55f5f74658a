//! QUIC transport settings shared by both ends.

use std::sync::Arc;
use std::time::Duration;

use quinn::{TransportConfig, VarInt};

/// Knobs that differ between deployments; everything else is fixed here.
#[derive(Debug, Clone)]
pub struct TransportLimits {
    /// How long a silent connection lives.
    pub idle_timeout: Duration,
    /// How many unidirectional (data) streams the peer may have open at once.
    pub max_uni_streams: u32,
    /// How many bidirectional streams the peer may open (the control stream).
    pub max_bi_streams: u32,
    /// Bytes the peer may have in flight on one stream.
    pub stream_window: u32,
    /// Bytes the peer may have in flight on the whole connection.
    pub connection_window: u32,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            max_uni_streams: 64,
            max_bi_streams: 1,
            stream_window: 8 * 1024 * 1024,
            connection_window: 32 * 1024 * 1024,
        }
    }
}

/// Builds quinn's transport configuration from `limits`.
pub fn transport_config(limits: &TransportLimits) -> Arc<TransportConfig> {
    let mut config = TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(limits.idle_timeout)
        .unwrap_or_else(|_| VarInt::from_u32(60_000).into());
    config
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(limits.idle_timeout / 3))
        .max_concurrent_uni_streams(VarInt::from_u32(limits.max_uni_streams))
        .max_concurrent_bidi_streams(VarInt::from_u32(limits.max_bi_streams))
        .stream_receive_window(VarInt::from_u32(limits.stream_window))
        .receive_window(VarInt::from_u32(limits.connection_window))
        .send_window(u64::from(limits.connection_window));
    Arc::new(config)
}
