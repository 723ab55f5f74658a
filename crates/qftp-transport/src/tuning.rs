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
//! Congestion control, chosen per path by measurement (see
//! [`Congestion::for_path`]): qftp's own delivery-rate controller
//! ([`crate::congestion`]) on network paths, quinn's BBR on loopback.
//! `QFTP_CONGESTION` overrides both, for measuring them side by side.
//!
//! Flow-control windows are bounded per connection (see
//! [`TransportLimits`]). On a network path they must cover more than the
//! bandwidth-delay product: after a loss, the receiver cannot release
//! window beyond the hole until the retransmission arrives, about one and a
//! half round trips later. Through 50 ms and 1 % loss, an 8 MiB stream
//! window held a 256 MiB put to 4.7 s, 24 MiB to 2.8 s, 48 MiB to 1.9 s (the
//! loss-free time). On loopback larger windows gained nothing, so that
//! path keeps smaller ones: a window is memory the receiver may have to
//! hold when its disk is slower than the sender.
//!
//! A server can hold a connection in a login stage ([`login_stage_config`]):
//! no unidirectional streams and a connection window of
//! [`LOGIN_STAGE_WINDOW`] until [`open_after_login`] raises them, so a peer
//! without an account can make it buffer next to nothing.

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
    /// Bytes the peer may have in flight on one stream (on loopback at most
    /// [`LOOPBACK_STREAM_WINDOW`]).
    pub stream_window: u32,
    /// Bytes the peer may have in flight on the whole connection (on
    /// loopback at most [`LOOPBACK_CONNECTION_WINDOW`]).
    pub connection_window: u32,
    /// The congestion controller of this end's sending side; `None`: the
    /// path's default ([`Congestion::for_path`]).
    pub congestion: Option<Congestion>,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            max_uni_streams: 64,
            max_bi_streams: 1,
            stream_window: DEFAULT_CONNECTION_WINDOW / 2,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            congestion: None,
        }
    }
}

/// The congestion controllers an end can send with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Congestion {
    /// qftp's delivery-rate controller ([`crate::congestion`]).
    DeliveryRate,
    /// quinn's BBR (marked experimental by quinn).
    Bbr,
    /// quinn's default, Cubic.
    Cubic,
}

impl Congestion {
    /// The environment variable that overrides the default, for measuring
    /// the controllers against each other.
    pub const ENV: &'static str = "QFTP_CONGESTION";

    /// Each controller with the name [`Congestion::parse`] accepts for it.
    const CHOICES: [(&'static str, Self); 3] = [
        ("delivery-rate", Self::DeliveryRate),
        ("bbr", Self::Bbr),
        ("cubic", Self::Cubic),
    ];

    /// Reads a controller name.
    pub fn parse(name: &str) -> Result<Self, String> {
        let wanted = name.trim().to_ascii_lowercase();
        Self::CHOICES
            .iter()
            .find(|(known, _)| *known == wanted)
            .map(|(_, choice)| *choice)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::CHOICES.iter().map(|(known, _)| *known).collect();
                format!(
                    "unknown congestion controller {wanted:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }

    /// The controller a path gets unless told otherwise.
    ///
    /// On network paths, qftp's: through 50 ms and 1 % loss it carried a
    /// 256 MiB put in the loss-free time (1.9 s) where quinn's BBR took
    /// 2.3 s and Cubic collapsed. On loopback, where nothing is lost at
    /// random, quinn's BBR moved 1,000 × 1 MiB a little faster (1.03-1.05 s
    /// against 1.07-1.20 s in alternating runs): qftp's model sizes the
    /// window from the minimum round trip, tens of microseconds there.
    pub fn for_path(profile: PathProfile) -> Self {
        match profile {
            PathProfile::Loopback => Self::Bbr,
            PathProfile::Network => Self::DeliveryRate,
        }
    }

    /// The controller named by [`Congestion::ENV`], or `None` when it is
    /// unset or empty.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var(Self::ENV) {
            Ok(name) if !name.trim().is_empty() => Self::parse(&name)
                .map(Some)
                .map_err(|error| format!("{}: {error}", Self::ENV)),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{} is not valid UTF-8", Self::ENV))
            }
        }
    }

    fn factory(self) -> Arc<dyn quinn::congestion::ControllerFactory + Send + Sync> {
        match self {
            Self::DeliveryRate => Arc::new(crate::congestion::DeliveryRateConfig::default()),
            Self::Bbr => Arc::new(quinn::congestion::BbrConfig::default()),
            Self::Cubic => Arc::new(quinn::congestion::CubicConfig::default()),
        }
    }
}

/// Default receive window of a connection on a network path: 96 MiB.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 96 * 1024 * 1024;
/// Largest stream receive window on loopback.
pub const LOOPBACK_STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// Largest connection receive window on loopback.
pub const LOOPBACK_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

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

/// The connection receive window of a connection in the login stage: room
/// for the hello and a login request, not for data.
pub const LOGIN_STAGE_WINDOW: u32 = 64 * 1024;

/// The stream and connection receive windows `limits` give on `profile`.
fn windows(limits: &TransportLimits, profile: PathProfile) -> (u32, u32) {
    match profile {
        PathProfile::Loopback => (
            limits.stream_window.min(LOOPBACK_STREAM_WINDOW),
            limits.connection_window.min(LOOPBACK_CONNECTION_WINDOW),
        ),
        PathProfile::Network => (limits.stream_window, limits.connection_window),
    }
}

/// Builds quinn's transport configuration from `limits` for `profile`.
pub fn transport_config(limits: &TransportLimits, profile: PathProfile) -> Arc<TransportConfig> {
    Arc::new(build(limits, profile))
}

/// Like [`transport_config`], for a server's connections before they log
/// in: the peer may open no unidirectional stream and have at most
/// [`LOGIN_STAGE_WINDOW`] bytes in flight, until [`open_after_login`]. The
/// stream window and this end's send window are the full ones already (a
/// stream's window is fixed at the handshake).
pub fn login_stage_config(limits: &TransportLimits, profile: PathProfile) -> Arc<TransportConfig> {
    let (_, connection_window) = windows(limits, profile);
    let mut config = build(limits, profile);
    config
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .receive_window(VarInt::from_u32(connection_window.min(LOGIN_STAGE_WINDOW)));
    Arc::new(config)
}

/// Gives a connection accepted with [`login_stage_config`] the full
/// `limits` of `profile`: its data streams and its whole receive window.
pub fn open_after_login(
    connection: &quinn::Connection,
    limits: &TransportLimits,
    profile: PathProfile,
) {
    let (_, connection_window) = windows(limits, profile);
    connection.set_receive_window(VarInt::from_u32(connection_window));
    connection.set_max_concurrent_uni_streams(VarInt::from_u32(limits.max_uni_streams));
}

fn build(limits: &TransportLimits, profile: PathProfile) -> TransportConfig {
    let mut config = TransportConfig::default();
    let (stream_window, connection_window) = windows(limits, profile);
    let idle = quinn::IdleTimeout::try_from(limits.idle_timeout)
        .unwrap_or_else(|_| VarInt::from_u32(60_000).into());
    config
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(limits.idle_timeout / 3))
        .max_concurrent_uni_streams(VarInt::from_u32(limits.max_uni_streams))
        .max_concurrent_bidi_streams(VarInt::from_u32(limits.max_bi_streams))
        .stream_receive_window(VarInt::from_u32(stream_window))
        .receive_window(VarInt::from_u32(connection_window))
        .send_window(u64::from(connection_window));
    // Never quinn's default Cubic unless asked: through a relay adding 50 ms
    // round trip and 1% loss each way, a 32 MiB put took 5.9 s with Cubic
    // and 1.5-1.9 s with BBR. Cubic reads every loss as congestion.
    let congestion = limits
        .congestion
        .unwrap_or_else(|| Congestion::for_path(profile));
    config.congestion_controller_factory(congestion.factory());
    if profile == PathProfile::Loopback {
        let mut discovery = MtuDiscoveryConfig::default();
        discovery.upper_bound(LOOPBACK_MAX_MTU);
        config
            .initial_mtu(LOOPBACK_INITIAL_MTU)
            .mtu_discovery_config(Some(discovery))
            .enable_segmentation_offload(false);
    }
    config
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
    fn controller_names_are_read_and_bad_ones_explained() {
        assert_eq!(Congestion::parse("bbr"), Ok(Congestion::Bbr));
        assert_eq!(Congestion::parse(" Cubic "), Ok(Congestion::Cubic));
        assert_eq!(
            Congestion::parse("delivery-rate"),
            Ok(Congestion::DeliveryRate)
        );
        let error = Congestion::parse("reno").unwrap_err();
        assert!(error.contains("\"reno\"") && error.contains("delivery-rate, bbr, cubic"));
    }

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
