//! QUIC transport settings shared by both ends, chosen per path.
//!
//! Two profiles:
//! * **Loopback** (both ends on one machine): datagrams far larger than an
//!   Ethernet frame (initial MTU 8952, discovery up to 65527) so each packet
//!   carries more payload per crypto and syscall overhead. Segmentation
//!   offload is off on this path: quinn 0.11 can build GSO batches larger
//!   than the kernel accepts at such sizes and then loses the path. The
//!   initial MTU stays below the initial congestion window (12,000 bytes),
//!   otherwise the handshake stalls.
//! * **Network** (everything else): quinn's 1200-byte start with MTU
//!   discovery up to 1452, safe on any Internet path.
//!
//! Both use BBR congestion control (see [`transport_config`] for why).
//!
//! Flow-control windows are bounded per connection (see
//! [`TransportLimits`]); larger ones made no difference on loopback and
//! would only cost the server memory per connection.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use quinn::{MtuDiscoveryConfig, TransportConfig, VarInt};

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

/// The kind of path between the two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProfile {
    /// Both ends on this machine.
    Loopback,
    /// Any other path.
    Network,
}

impl PathProfile {
    /// The profile for a peer at `address`.
    pub fn for_peer(address: &SocketAddr) -> Self {
        let ip = match address.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            ip => ip,
        };
        if ip.is_loopback() {
            PathProfile::Loopback
        } else {
            PathProfile::Network
        }
    }
}

/// The initial datagram size on loopback.
const LOOPBACK_INITIAL_MTU: u16 = 8952;
/// The largest datagram MTU discovery may reach on loopback.
const LOOPBACK_MAX_MTU: u16 = 65527;

/// Builds quinn's transport configuration from `limits` for `profile`.
pub fn transport_config(limits: &TransportLimits, profile: PathProfile) -> Arc<TransportConfig> {
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
    // BBR, not quinn's default Cubic: through a relay adding 50 ms round
    // trip and 1% loss each way, a 32 MiB put took 5.9 s with Cubic and
    // 1.5-1.9 s with BBR (three runs), while on loopback both move 1 GiB in
    // about 0.9-1.0 s. Cubic reads every loss as congestion and never
    // reaches the path's rate; quinn marks its BBR as experimental.
    config.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    if profile == PathProfile::Loopback {
        let mut discovery = MtuDiscoveryConfig::default();
        discovery.upper_bound(LOOPBACK_MAX_MTU);
        config
            .initial_mtu(LOOPBACK_INITIAL_MTU)
            .mtu_discovery_config(Some(discovery))
            .enable_segmentation_offload(false);
    }
    Arc::new(config)
}

/// Socket buffer size asked of the kernel for QUIC sockets (the kernel caps
/// it at its own maximum).
const SOCKET_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Binds a UDP socket for a QUIC endpoint with enlarged send and receive
/// buffers, so bursts at high rates are not dropped by the kernel.
pub fn bind_socket(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if address.is_ipv6() {
        // Accept IPv4-mapped peers too when bound to the IPv6 wildcard.
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Creates a quinn endpoint on a socket from [`bind_socket`].
pub fn endpoint(
    address: SocketAddr,
    server_config: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = bind_socket(address)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for the QUIC endpoint"))?;
    let mut config = quinn::EndpointConfig::default();
    // Advertise that we accept datagrams up to the loopback maximum; the
    // default (1472) would cap the peer's MTU discovery on every path.
    config
        .max_udp_payload_size(LOOPBACK_MAX_MTU)
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    quinn::Endpoint::new(config, server_config, socket, runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers_are_recognised() {
        for loopback in ["127.0.0.1:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
            assert_eq!(
                PathProfile::for_peer(&loopback.parse().unwrap()),
                PathProfile::Loopback,
                "{loopback}"
            );
        }
        for network in ["192.0.2.1:1", "[2001:db8::1]:1"] {
            assert_eq!(
                PathProfile::for_peer(&network.parse().unwrap()),
                PathProfile::Network,
                "{network}"
            );
        }
    }
}
