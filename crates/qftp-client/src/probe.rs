//! Noticing at once that nothing listens on a server's port.
//!
//! QUIC runs over UDP, where a closed port answers with an ICMP "port
//! unreachable" that quinn does not report: a connection attempt would wait
//! for its whole timeout. A connected UDP socket does see that ICMP message,
//! as `ECONNREFUSED` on its next receive, so [`refused`] sends a few tiny
//! datagrams (far below the 1200 bytes a QUIC server needs to answer
//! anything, so a real server drops them unread) and resolves only when the
//! kernel reports the port closed. It runs beside the real handshake, which
//! wins whenever a server is there.

use std::net::SocketAddr;
use std::time::Duration;

/// When the probe datagrams go out, after the start: ICMP answers can be
/// rate limited or lost, so one is not enough.
const SEND_AT: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(100),
    Duration::from_millis(400),
    Duration::from_millis(1000),
];

/// Resolves when `address` answers UDP with "port unreachable"; pends
/// forever otherwise (also when a socket cannot be made: the handshake
/// then decides alone).
pub(crate) async fn refused(address: SocketAddr) {
    if probe(address).await {
        return;
    }
    std::future::pending::<()>().await;
}

async fn probe(address: SocketAddr) -> bool {
    let bind: SocketAddr = if address.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
        return false;
    };
    if socket.connect(address).await.is_err() {
        return false;
    }
    let mut buffer = [0u8; 64];
    let start = tokio::time::Instant::now();
    for (index, at) in SEND_AT.iter().enumerate() {
        tokio::time::sleep_until(start + *at).await;
        if let Err(error) = socket.send(&[0]).await {
            return error.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let window = SEND_AT
            .get(index + 1)
            .map_or(Duration::from_secs(1), |next| next.saturating_sub(*at));
        match tokio::time::timeout(window, socket.recv(&mut buffer)).await {
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                return true;
            }
            // Something answered: a server is there.
            Ok(Ok(_)) => return false,
            Ok(Err(_)) | Err(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_noticed() {
        // A port that was just bound and released has nobody on it.
        let address = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(probe(address).await);
    }

    #[tokio::test]
    async fn a_listening_port_is_not_called_closed() {
        let listener = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), probe(address))
                .await
                .is_err()
        );
    }
}
