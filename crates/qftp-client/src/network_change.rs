//! Changes of the local network (an address added or removed, a link going
//! up or down), as the operating system reports them, so that a connection
//! can move to a new local socket (QUIC connection migration, see
//! [`crate::Client::rebind`]) before its old path fails.
//!
//! On Linux the kernel's routing netlink socket tells of every change; a
//! thread of its own reads it and wakes [`NetworkChanges::next`], several
//! changes close together waking it once. Elsewhere nothing tells, and
//! `next` waits forever: a failed path then ends the connection, and the
//! next run resumes, as without this module.
//!
//! This module decides nothing about connections: what to do on a change
//! is the caller's.

use std::time::Duration;

use tokio::sync::mpsc;

/// How long the reading thread waits for a message before it checks
/// whether anyone still listens.
#[cfg(target_os = "linux")]
const POLL: Duration = Duration::from_secs(1);

/// Changes closer together than this wake [`NetworkChanges::next`] once
/// (bringing up an interface sends a burst of messages).
pub const SETTLE: Duration = Duration::from_millis(300);

/// Reports changes of the local network until dropped.
#[derive(Debug)]
pub struct NetworkChanges {
    changes: mpsc::Receiver<()>,
    /// Where nothing reports changes, the sender is kept here so that
    /// `next` waits instead of reporting a failed source.
    _silent: Option<mpsc::Sender<()>>,
}

impl NetworkChanges {
    /// Starts watching. Fails only where the platform has a source of
    /// changes that cannot be opened (a sandbox without netlink sockets).
    pub fn watch() -> std::io::Result<Self> {
        let (sender, changes) = mpsc::channel(1);
        let silent = start(sender)?;
        Ok(Self {
            changes,
            _silent: silent,
        })
    }

    /// Waits for the next change, then for the network to settle; `None`
    /// once the source of changes has failed.
    pub async fn next(&mut self) -> Option<()> {
        self.changes.recv().await?;
        // Swallow the rest of a burst.
        loop {
            match tokio::time::timeout(SETTLE, self.changes.recv()).await {
                Ok(Some(())) => {}
                Ok(None) | Err(_) => return Some(()),
            }
        }
    }
}

/// Starts the source of changes; returns the sender when there is none.
#[cfg(target_os = "linux")]
fn start(sender: mpsc::Sender<()>) -> std::io::Result<Option<mpsc::Sender<()>>> {
    use rustix::net::netlink::SocketAddrNetlink;
    use rustix::net::{AddressFamily, RecvFlags, SocketType, sockopt};

    let socket = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)?;
    rustix::net::bind(&socket, &SocketAddrNetlink::new(0, route::GROUPS))?;
    sockopt::set_socket_timeout(&socket, sockopt::Timeout::Recv, Some(POLL))?;
    std::thread::Builder::new()
        .name("qftp-network-watch".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 16 * 1024];
            while !sender.is_closed() {
                match rustix::net::recv(&socket, &mut buffer[..], RecvFlags::empty()) {
                    Ok((length, _)) => {
                        if route::announces_change(&buffer[..length.min(buffer.len())]) {
                            // A full channel already holds a wake-up.
                            let _ = sender.try_send(());
                        }
                    }
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                    // The kernel dropped messages for us: something changed.
                    Err(rustix::io::Errno::NOBUFS) => {
                        let _ = sender.try_send(());
                    }
                    Err(error) => {
                        tracing::debug!(%error, "the network watch stopped");
                        return;
                    }
                }
            }
        })?;
    Ok(None)
}

/// Nothing tells of changes here.
#[cfg(not(target_os = "linux"))]
fn start(sender: mpsc::Sender<()>) -> std::io::Result<Option<mpsc::Sender<()>>> {
    Ok(Some(sender))
}

/// The few facts of the routing netlink protocol (rtnetlink(7)) this
/// module reads: a datagram is a run of messages, each starting with a
/// 16-byte header whose first field is the message's length and second
/// its type, each aligned to 4 bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod route {
    /// Multicast groups: links, IPv4 addresses, IPv6 addresses.
    pub const GROUPS: u32 = 0x1 | 0x10 | 0x100;
    const HEADER: usize = 16;
    const NEW_LINK: u16 = 16;
    const DELETE_LINK: u16 = 17;
    const NEW_ADDRESS: u16 = 20;
    const DELETE_ADDRESS: u16 = 21;

    /// Whether a datagram holds a link or address change; a malformed
    /// datagram is read up to where it stops making sense.
    pub fn announces_change(datagram: &[u8]) -> bool {
        let mut offset = 0;
        while let Some(header) = datagram.get(offset..offset + HEADER) {
            let length = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let kind = u16::from_ne_bytes([header[4], header[5]]);
            if length < HEADER || offset + length > datagram.len() {
                return false;
            }
            if matches!(kind, NEW_LINK | DELETE_LINK | NEW_ADDRESS | DELETE_ADDRESS) {
                return true;
            }
            offset += length.next_multiple_of(4);
        }
        false
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn message(kind: u16, payload: usize) -> Vec<u8> {
            let length = (HEADER + payload) as u32;
            let mut bytes = length.to_ne_bytes().to_vec();
            bytes.extend_from_slice(&kind.to_ne_bytes());
            bytes.extend_from_slice(&[0; 10]);
            bytes.resize(HEADER + payload, 7);
            bytes.resize((HEADER + payload).next_multiple_of(4), 0);
            bytes
        }

        #[test]
        fn address_and_link_messages_are_changes_and_others_are_not() {
            assert!(announces_change(&message(NEW_ADDRESS, 8)));
            assert!(announces_change(&message(DELETE_ADDRESS, 8)));
            assert!(announces_change(&message(NEW_LINK, 30)));
            assert!(announces_change(&message(DELETE_LINK, 0)));
            // A route message (RTM_NEWROUTE) alone is not a change of ours.
            assert!(!announces_change(&message(24, 12)));
            assert!(!announces_change(&[]));
        }

        #[test]
        fn a_change_after_other_messages_is_found_and_garbage_is_not_read_past() {
            let mut datagram = message(24, 5);
            datagram.extend(message(NEW_ADDRESS, 3));
            assert!(announces_change(&datagram));

            // A header claiming more than the datagram holds stops the walk.
            let mut lying = message(24, 4);
            lying[0..4].copy_from_slice(&1000u32.to_ne_bytes());
            lying.extend(message(NEW_ADDRESS, 0));
            assert!(!announces_change(&lying));
            // So does one claiming less than a header.
            let mut short = message(NEW_ADDRESS, 0);
            short[0..4].copy_from_slice(&3u32.to_ne_bytes());
            assert!(!announces_change(&short));
            // A truncated trailing header is ignored.
            let mut truncated = message(24, 0);
            truncated.extend_from_slice(&[1, 2, 3]);
            assert!(!announces_change(&truncated));
        }
    }
}
