//! The store's listening connection: `NOTIFY` announcements from every
//! node, turned into the revocation feed and the give-way feeds.
//!
//! Two channels: [`REVOCATIONS`] (a session was revoked or a user removed:
//! every connection checks its session again) and [`GIVE_WAY`] (payload: a
//! lease in hex, whose holder is asked to stop). If the connection is lost
//! the listener counts a revocation (a lost announcement must not leave a
//! revoked session trusted) and connects again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel of revocations.
pub(crate) const REVOCATIONS: &str = "qftp_revocations";

/// The channel of requests to give way.
pub(crate) const GIVE_WAY: &str = "qftp_give_way";

/// How long the listener waits before connecting again after a loss.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// What the listener feeds, shared with the store.
#[derive(Debug)]
pub(crate) struct Feeds {
    /// Counts revocations heard.
    pub revocations: watch::Sender<u64>,
    /// The give-way feed of each lease held through this store.
    pub give_way: Mutex<HashMap<u128, watch::Sender<bool>>>,
}

impl Feeds {
    pub fn new() -> Feeds {
        Feeds {
            revocations: watch::Sender::new(0),
            give_way: Mutex::new(HashMap::new()),
        }
    }

    fn revoked(&self) {
        self.revocations.send_modify(|count| *count += 1);
    }

    fn asked_to_give_way(&self, payload: &str) {
        let Ok(lease) = u128::from_str_radix(payload, 16) else {
            return;
        };
        if let Some(sender) = self.give_way.lock().expect("give-way map").get(&lease) {
            sender.send_replace(true);
        }
    }

    /// The give-way feed of `lease`, made at the first call.
    pub fn subscribe(&self, lease: u128) -> watch::Receiver<bool> {
        self.give_way
            .lock()
            .expect("give-way map")
            .entry(lease)
            .or_insert_with(|| watch::Sender::new(false))
            .subscribe()
    }

    /// Forgets `lease`'s feed, telling its subscribers it ended.
    pub fn forget(&self, lease: u128) {
        if let Some(sender) = self.give_way.lock().expect("give-way map").remove(&lease) {
            sender.send_replace(true);
        }
    }
}

/// Connects a listening connection to `url`, returning once it listens, and
/// keeps it (reconnecting) until the returned task is aborted.
pub(crate) async fn listen(
    url: String,
    feeds: Arc<Feeds>,
) -> Result<tokio::task::JoinHandle<()>, tokio_postgres::Error> {
    let first = connect(&url, &feeds).await?;
    Ok(tokio::spawn(async move {
        let mut running = first;
        loop {
            running.finished().await;
            feeds.revoked();
            running = loop {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                if let Ok(listening) = connect(&url, &feeds).await {
                    break listening;
                }
            };
        }
    }))
}

/// A listening connection's driving task, aborted when this is dropped (so
/// aborting the listener ends its connection too).
struct Listening {
    driver: tokio::task::JoinHandle<()>,
    /// Issues `LISTEN`; the connection lives while this does.
    client: tokio_postgres::Client,
}

impl Listening {
    async fn finished(&mut self) {
        let _ = (&mut self.driver).await;
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// One listening connection, returned once `LISTEN` is in effect.
async fn connect(url: &str, feeds: &Arc<Feeds>) -> Result<Listening, tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let driven = Arc::clone(feeds);
    let driver = tokio::spawn(async move {
        while let Some(Ok(message)) =
            std::future::poll_fn(|context| connection.poll_message(context)).await
        {
            if let AsyncMessage::Notification(notification) = message {
                match notification.channel() {
                    REVOCATIONS => driven.revoked(),
                    GIVE_WAY => driven.asked_to_give_way(notification.payload()),
                    _ => {}
                }
            }
        }
    });
    let listening = Listening { driver, client };
    listening
        .client
        .batch_execute(&format!("LISTEN {REVOCATIONS}; LISTEN {GIVE_WAY}"))
        .await?;
    Ok(listening)
}
