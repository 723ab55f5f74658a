//! A UDP relay between a client and a server that delays and drops
//! datagrams, standing in for a slow, lossy network on loopback (this
//! kernel has no netem). It serves one client at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;

/// What the relay does to each datagram, in each direction.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// One-way delay.
    pub delay: Duration,
    /// Probability of dropping a datagram, 0.0 to 1.0.
    pub loss: f64,
}

/// A running relay; stops when dropped.
pub struct Relay {
    /// Where clients connect.
    pub address: SocketAddr,
    /// Datagrams dropped so far.
    pub dropped: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying between a new loopback port and `server`.
    pub fn start(server: SocketAddr, impairment: Impairment) -> Self {
        let (ready_sender, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dropped);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("relay runtime");
            runtime.block_on(async move {
                let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("relay front"));
                let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("relay back"));
                back.connect(server).await.expect("relay back connect");
                ready_sender
                    .send(front.local_addr().expect("relay address"))
                    .expect("ready");
                let client = Arc::new(tokio::sync::Mutex::new(None::<SocketAddr>));
                let forward = pump(
                    Arc::clone(&front),
                    Arc::clone(&back),
                    Arc::clone(&client),
                    impairment,
                    Arc::clone(&counter),
                    true,
                );
                let backward = pump(back, front, client, impairment, counter, false);
                tokio::select! {
                    _ = forward => {}
                    _ = backward => {}
                    _ = stopped => {}
                }
            });
        });
        let address = ready.recv().expect("relay started");
        Self {
            address,
            dropped,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Moves datagrams from `from` to `to`; `to_server` tells the direction.
async fn pump(
    from: Arc<UdpSocket>,
    to: Arc<UdpSocket>,
    client: Arc<tokio::sync::Mutex<Option<SocketAddr>>>,
    impairment: Impairment,
    dropped: Arc<AtomicU64>,
    to_server: bool,
) {
    let mut buffer = vec![0u8; 65536];
    let mut state = if to_server {
        0x2545_f491_4f6c_dd1du64
    } else {
        0x9e37_79b9_7f4a_7c15
    };
    loop {
        let Ok((length, source)) = from.recv_from(&mut buffer).await else {
            return;
        };
        if to_server {
            *client.lock().await = Some(source);
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if (state % 1_000_000) as f64 / 1_000_000.0 < impairment.loss {
            dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let datagram = buffer[..length].to_vec();
        let to = Arc::clone(&to);
        let target = if to_server {
            None
        } else {
            *client.lock().await
        };
        tokio::spawn(async move {
            tokio::time::sleep(impairment.delay).await;
            let _ = match target {
                Some(client) => to.send_to(&datagram, client).await,
                None => to.send(&datagram).await,
            };
        });
    }
}
