//! [`SessionStore`]: session tokens and their revocation.
//!
//! A session is created at a password login and identified by the SHA-256
//! of its token ([`TokenHash`]); the token itself is only ever on the
//! client. A connection that logged in checks its session again before
//! trusting it for longer than a second, and at once when
//! [`SessionStore::revocations`] says some session was revoked anywhere:
//! the feed carries no token, only "check again", so it can be implemented
//! by a counter (embedded), `LISTEN/NOTIFY` (PostgreSQL) or a poll of a
//! revocation sequence (at least once a second).

use std::time::SystemTime;

use tokio::sync::watch;

use crate::error::StoreError;
use crate::future::BoxFuture;

/// The SHA-256 of a session token.
pub type TokenHash = [u8; 32];

/// A subscription to revocations: its value changes (to an increasing
/// count) whenever any session is revoked or a user removed, on any node
/// sharing the store, within a second of the revocation being stored.
/// Wait with [`watch::Receiver::changed`]; the value has no other meaning.
pub type RevocationFeed = watch::Receiver<u64>;

/// The sessions, shared by every connection.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores a session of user `user`, valid until `expires`.
    /// Fails with [`StoreError::UnknownUser`] if there is no such user.
    fn create_session<'a>(
        &'a self,
        user: &'a str,
        token_hash: &'a TokenHash,
        expires: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The user of a session that exists and has not expired at `now`,
    /// else `None` (unknown, revoked and expired look the same).
    fn check_session<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// Revokes a session; whether it existed. Once this returns, it checks
    /// as `None` everywhere and every [`RevocationFeed`] changes within a
    /// second.
    fn revoke_session<'a>(
        &'a self,
        token_hash: &'a TokenHash,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Removes the sessions expired at `now`; how many went. (Expired ones
    /// already check as `None`; this only frees their storage.)
    fn purge_expired(&self, now: SystemTime) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// A new subscription to revocations (see [`RevocationFeed`]).
    fn revocations(&self) -> RevocationFeed;
}
