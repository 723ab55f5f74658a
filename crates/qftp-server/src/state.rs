//! What every connection of one server shares: the configuration, the
//! stores ([`Stores`]: users, sessions, the login throttle and the quota
//! ledger, each behind its `qftp-store` trait), the quota book the uploads
//! and namespace changes still reach directly, the login gate, the metrics,
//! and the counts behind the
//! connection limits (per user, and per address before login).
//!
//! This module serves no connection and binds no socket: that is
//! [`crate::connection`]'s and [`crate::server`]'s. It is the shared piece
//! both of them, and the transfers, look at.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use qftp_store::{LoginThrottle, QuotaLedger, RevocationFeed, SessionStore, UserStore};
use qftp_transport::durable::FlushGroups;
use qftp_transport::tuning::TransportLimits;

use crate::auth::LoginGuard;
use crate::config::{LoginLimits, ServerConfig, ServerRoot};
use crate::connection_limit::ConnectionLimit;
use crate::error::RequestError;
use crate::limits::Refusal;
use crate::live::LiveConnections;
use crate::metrics::Metrics;
use crate::open_uploads::OpenUploads;
use crate::quota::QuotaBook;

/// What all connections share.
#[derive(Debug)]
pub struct ServerState {
    /// The server root's layout.
    pub root: ServerRoot,
    /// The configuration loaded at start. A reload ([`crate::reload`])
    /// changes the live settings elsewhere: `max_connections` in
    /// [`Self::connections`], `[login]` in [`Self::login_limits`].
    pub config: ServerConfig,
    /// The accounts.
    pub users: Arc<dyn UserStore>,
    /// The sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// The failed-login counts (also held by `login_guard`).
    pub throttle: Arc<dyn LoginThrottle>,
    /// The quota ledger: usage, recounts and the sweep's charges.
    pub ledger: Arc<dyn QuotaLedger>,
    /// The gate in front of every login: throttle, then password check.
    pub login_guard: LoginGuard,
    /// The quota book behind the embedded ledger, which uploads and
    /// namespace changes still use directly (their file-system step runs
    /// inside the user's lock).
    pub quotas: Arc<QuotaBook>,
    /// Per-user counts of open uploads (`limits.max_open_uploads_per_user`).
    pub open_uploads: OpenUploads,
    /// Flushes to disk shared among uploads finishing at the same time.
    pub flushes: FlushGroups,
    /// The session store's revocations: a change tells open connections to
    /// check their session again at once.
    pub revocations: RevocationFeed,
    /// The transport limits a connection gets once it has logged in.
    pub transport: TransportLimits,
    /// The connections that may be open at once (`max_connections`).
    pub connections: ConnectionLimit,
    login: Mutex<LoginLimits>,
    /// The connections live now, and the drain on shutdown.
    pub live: Arc<LiveConnections>,
    /// The exported series (see [`crate::metrics`]).
    pub metrics: Arc<Metrics>,
    per_user: Mutex<HashMap<String, usize>>,
    unauthenticated: Mutex<HashMap<IpAddr, usize>>,
}

/// The stores a server runs on, each behind its trait.
#[derive(Debug, Clone)]
pub struct Stores {
    /// The accounts.
    pub users: Arc<dyn UserStore>,
    /// The sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// The failed-login counts.
    pub throttle: Arc<dyn LoginThrottle>,
    /// What each user has on disk and what uploads in flight reserve.
    pub ledger: Arc<dyn QuotaLedger>,
}

/// Counts one connection of an address that has not logged in yet, until
/// it logs in or ends.
#[derive(Debug)]
pub struct UnauthenticatedGuard {
    state: Arc<ServerState>,
    address: IpAddr,
}

impl Drop for UnauthenticatedGuard {
    fn drop(&mut self) {
        let mut counts = self
            .state
            .unauthenticated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Counts one authenticated connection of a user while it lives.
#[derive(Debug)]
pub struct UserConnectionGuard {
    state: Arc<ServerState>,
    user: String,
}

impl Drop for UserConnectionGuard {
    fn drop(&mut self) {
        let mut per_user = self.state.per_user.lock().expect("per-user lock");
        if let Some(count) = per_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

impl ServerState {
    /// The state of a server with these parts and no connection yet.
    pub fn new(
        root: ServerRoot,
        config: ServerConfig,
        stores: Stores,
        quotas: Arc<QuotaBook>,
        transport: TransportLimits,
    ) -> Self {
        Self {
            login_guard: LoginGuard::new(&config.login, Arc::clone(&stores.throttle)),
            revocations: stores.sessions.revocations(),
            users: stores.users,
            sessions: stores.sessions,
            throttle: stores.throttle,
            ledger: stores.ledger,
            connections: ConnectionLimit::new(config.max_connections),
            login: Mutex::new(config.login.clone()),
            live: Arc::new(LiveConnections::default()),
            metrics: Arc::new(Metrics::new()),
            per_user: Mutex::new(HashMap::new()),
            quotas,
            open_uploads: OpenUploads::new(config.limits.max_open_uploads_per_user),
            flushes: FlushGroups::default(),
            transport,
            unauthenticated: Mutex::new(HashMap::new()),
            root,
            config,
        }
    }

    /// The `[login]` settings in force (the last reload's, else the start's).
    pub fn login_limits(&self) -> LoginLimits {
        self.login
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the `[login]` settings in force (see [`crate::reload`]).
    pub fn set_login_limits(&self, limits: LoginLimits) {
        *self
            .login
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// Registers a connection of `user`, or `None` when they are at their limit.
    pub fn admit_user(self: &Arc<Self>, user: &str) -> Option<UserConnectionGuard> {
        let mut per_user = self.per_user.lock().expect("per-user lock");
        let count = per_user.entry(user.to_owned()).or_insert(0);
        if *count >= self.config.max_connections_per_user {
            return None;
        }
        *count += 1;
        Some(UserConnectionGuard {
            state: Arc::clone(self),
            user: user.to_owned(),
        })
    }

    /// Registers a connection from `address` that has not logged in yet,
    /// or refuses it when the address has
    /// `limits.max_unauthenticated_per_address` of them already.
    pub fn admit_unauthenticated(
        self: &Arc<Self>,
        address: IpAddr,
    ) -> Result<UnauthenticatedGuard, RequestError> {
        let limit = self.config.limits.max_unauthenticated_per_address;
        let mut counts = self
            .unauthenticated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(address).or_insert(0);
        if *count >= limit {
            let (value, who) = (limit.to_string(), address.to_string());
            return Err(Refusal {
                setting: "limits.max_unauthenticated_per_address",
                value: &value,
                who: &who,
            }
            .refuse(format!(
                "too many connections from {address} that have not logged in"
            )));
        }
        *count += 1;
        Ok(UnauthenticatedGuard {
            state: Arc::clone(self),
            address,
        })
    }
}
