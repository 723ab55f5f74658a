//! The live connections of a server: where each comes from, since when,
//! who logged in on it, and how many transfers it has in flight; and the
//! drain that ends them on shutdown.
//!
//! [`LiveConnections::register`] counts a connection from its handshake to
//! its end (the [`Registration`] removes it when dropped); each upload and
//! download holds an [`InFlight`] of its connection while it runs. When
//! the server is asked to stop, [`LiveConnections::begin_drain`] closes at
//! once every connection with nothing in flight, and a connection that
//! registers or asks for anything new while draining is closed as well;
//! connections with transfers in flight are left to finish them, and
//! [`LiveConnections::wait_empty`] tells the listener when all are gone.
//!
//! The same table answers `qftp-server sessions` and `kick` (through
//! [`crate::admin_socket`]).
//!
//! This module accepts nothing and decides no timeout: the grace period
//! and the close code are the listener's ([`crate::server`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::watch;

/// How the server closes a connection itself (a drain, a kick).
#[derive(Debug, Clone, Copy)]
pub struct ServerClose {
    /// The QUIC application error code.
    pub code: u32,
    /// The reason the client shows.
    pub reason: &'static str,
}

/// Every live connection of one server.
#[derive(Debug)]
pub struct LiveConnections {
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, Arc<LiveConnection>>>,
    count: watch::Sender<usize>,
    drain: Mutex<Option<ServerClose>>,
}

/// One live connection.
#[derive(Debug)]
pub struct LiveConnection {
    /// The peer's address.
    pub remote: SocketAddr,
    /// When its handshake completed.
    pub since: SystemTime,
    user: Mutex<Option<String>>,
    transfers: AtomicUsize,
    bytes: AtomicU64,
    connection: quinn::Connection,
}

/// Keeps a connection in the table until dropped.
#[derive(Debug)]
pub struct Registration {
    live: Arc<LiveConnections>,
    id: u64,
    entry: Arc<LiveConnection>,
}

/// One transfer in flight on a connection, until dropped.
#[derive(Debug)]
pub struct InFlight {
    entry: Arc<LiveConnection>,
}

impl Default for LiveConnections {
    fn default() -> Self {
        Self {
            next_id: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
            count: watch::Sender::new(0),
            drain: Mutex::new(None),
        }
    }
}

impl LiveConnections {
    /// Counts `connection` from `remote` until the registration is dropped;
    /// closed at once if the server is draining.
    pub fn register(self: &Arc<Self>, connection: &quinn::Connection) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(LiveConnection {
            remote: connection.remote_address(),
            since: SystemTime::now(),
            user: Mutex::new(None),
            transfers: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            connection: connection.clone(),
        });
        {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.insert(id, Arc::clone(&entry));
            self.count.send_replace(entries.len());
        }
        if let Some(close) = self.drain_close() {
            entry.close(close);
        }
        Registration {
            live: Arc::clone(self),
            id,
            entry,
        }
    }

    /// Whether the server is draining (see [`Self::begin_drain`]).
    pub fn is_draining(&self) -> bool {
        self.drain_close().is_some()
    }

    /// How the server closes connections while draining, if it is.
    pub fn drain_close(&self) -> Option<ServerClose> {
        *self.drain.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts draining: every connection with no transfer in flight is
    /// closed with `close` now, the others when they ask for anything new
    /// or by [`Self::close_all`].
    pub fn begin_drain(&self, close: ServerClose) {
        *self.drain.lock().unwrap_or_else(PoisonError::into_inner) = Some(close);
        for entry in self.snapshot() {
            if entry.transfers() == 0 {
                entry.close(close);
            }
        }
    }

    /// Closes every connection with `close`.
    pub fn close_all(&self, close: ServerClose) {
        for entry in self.snapshot() {
            entry.close(close);
        }
    }

    /// Closes every connection `user` logged in on with `close`; how many.
    pub fn close_user(&self, user: &str, close: ServerClose) -> usize {
        let theirs: Vec<_> = self
            .snapshot()
            .into_iter()
            .filter(|entry| entry.user().as_deref() == Some(user))
            .collect();
        for entry in &theirs {
            entry.close(close);
        }
        theirs.len()
    }

    /// The connections live now.
    pub fn snapshot(&self) -> Vec<Arc<LiveConnection>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.values().cloned().collect()
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        *self.count.borrow()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes once no connection is live.
    pub async fn wait_empty(&self) {
        let mut count = self.count.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = count.wait_for(|count| *count == 0).await;
    }
}

impl LiveConnection {
    /// The user logged in on it, if any yet.
    pub fn user(&self) -> Option<String> {
        self.user
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Transfers in flight on it now.
    pub fn transfers(&self) -> usize {
        self.transfers.load(Ordering::Acquire)
    }

    /// Bytes its finished transfers moved, both ways.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Counts `bytes` a transfer of it moved.
    pub fn add_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Closes it with `close`.
    pub fn close(&self, close: ServerClose) {
        self.connection
            .close(close.code.into(), close.reason.as_bytes());
    }
}

impl Registration {
    /// Records that `user` logged in on this connection.
    pub fn logged_in(&self, user: &str) {
        *self
            .entry
            .user
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(user.to_owned());
    }

    /// The connection's entry.
    pub fn entry(&self) -> &Arc<LiveConnection> {
        &self.entry
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut entries = self
            .live
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        entries.remove(&self.id);
        self.live.count.send_replace(entries.len());
    }
}

impl LiveConnection {
    /// Counts one transfer in flight until the answer is dropped.
    pub fn transfer_started(self: &Arc<Self>) -> InFlight {
        self.transfers.fetch_add(1, Ordering::AcqRel);
        InFlight {
            entry: Arc::clone(self),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.entry.transfers.fetch_sub(1, Ordering::AcqRel);
    }
}
