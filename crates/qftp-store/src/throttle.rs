//! [`LoginThrottle`]: failed logins counted per address, per user and per
//! pair, and the blocks they lead to.
//!
//! The throttle only counts and decides; checking a password (argon2id) is
//! the caller's, and it asks [`LoginThrottle::is_blocked`] *before* it reads
//! a user or hashes, so a blocked attempt costs neither. A shared throttle
//! (one table for all nodes) makes the bounds hold across nodes; the
//! embedded one counts per process.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::StoreError;
use crate::future::BoxFuture;

/// One login attempt, as the throttle sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginAttempt<'a> {
    /// A password login as `user` from `address`.
    Password {
        /// Where the attempt came from.
        address: IpAddr,
        /// The user name tried.
        user: &'a str,
    },
    /// A session token from `address` (whose user is unknown until the
    /// token checks).
    Token {
        /// Where the attempt came from.
        address: IpAddr,
    },
}

impl LoginAttempt<'_> {
    /// Where the attempt came from.
    pub fn address(&self) -> IpAddr {
        match self {
            LoginAttempt::Password { address, .. } | LoginAttempt::Token { address } => *address,
        }
    }
}

/// Which count reached its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// One address against one user, or against session tokens.
    Pair,
    /// One address against any users and tokens.
    Address,
    /// One user from any addresses (but those it logged in from recently).
    User,
}

/// An attempt refused unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// How long until such an attempt is accepted again.
    pub retry_after: Duration,
    /// Which bound was reached.
    pub bound: Bound,
    /// Who is blocked, for the log: an address, a user, or both.
    pub who: String,
}

/// The login throttle.
pub trait LoginThrottle: Send + Sync + std::fmt::Debug {
    /// The block that refuses `attempt` now, if any. Reads only; a blocked
    /// attempt must then be refused without reading the user or hashing.
    fn is_blocked<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
    ) -> BoxFuture<'a, Result<Option<Blocked>, StoreError>>;

    /// Counts a failed attempt (wrong password, unknown user, or a token
    /// naming no valid session) against its pair, address and user, blocks
    /// whatever reached its bound, and returns how long the caller delays
    /// its reply (growing with the failures).
    fn record_failure<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
    ) -> BoxFuture<'a, Result<Duration, StoreError>>;

    /// Notes that `attempt` succeeded as `user`: clears the failures of its
    /// own pair (never those against other users) and remembers the address
    /// as one `user` logs in from, which the per-user bound spares.
    fn record_success<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}
