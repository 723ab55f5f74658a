//! [`UserStore`]: the accounts.
//!
//! The store keeps each account's name, password hash, home and quota.
//! Passwords never reach it: the caller hashes them (argon2id, as a PHC
//! string) before [`UserStore::add_user`] and [`UserStore::set_password`],
//! and verifies a login against [`UserRecord::password_hash`] itself, so
//! every implementation stores the same hashes and a store never sees a
//! secret it could leak. What a user has *used* belongs to the
//! [`crate::QuotaLedger`]; a record only carries the figure as last
//! written, for listings.

use std::path::PathBuf;

use crate::error::StoreError;
use crate::future::BoxFuture;

/// One account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The login name.
    pub name: String,
    /// The argon2id hash of the password, as a PHC string.
    pub password_hash: String,
    /// The byte quota; `None` is unlimited.
    pub quota: Option<u64>,
    /// Bytes in the home as last written by the ledger (for listings; ask
    /// the [`crate::QuotaLedger`] for the truth).
    pub used: u64,
    /// A home of its own, as the [`crate::FileStore`] reads it (a directory
    /// for the embedded store, a key prefix for an object store); `None`
    /// is the file store's default for the name.
    pub home: Option<PathBuf>,
    /// Which account of this name this is: a user deleted and added again
    /// under the same name gets a different value, so that state kept per
    /// account (a ledger's measurement) is not inherited. A password change
    /// may change it too.
    pub account: u64,
}

/// What [`UserStore::add_user`] stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The login name; the store refuses one that breaks its rules with
    /// [`StoreError::InvalidName`].
    pub name: String,
    /// The argon2id PHC hash, computed by the caller.
    pub password_hash: String,
    /// The byte quota; `None` is unlimited.
    pub quota: Option<u64>,
    /// A home of its own, or `None` for the default.
    pub home: Option<PathBuf>,
}

/// The accounts, shared by every connection (and, for a shared store, by
/// every node and the admin tools while servers run).
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Adds a user with `used = 0` and returns the stored record.
    /// Fails with [`StoreError::UserExists`] if the name is taken (the
    /// existing account is unchanged), [`StoreError::InvalidName`] if the
    /// name breaks the rules.
    fn add_user(&self, user: NewUser) -> BoxFuture<'_, Result<UserRecord, StoreError>>;

    /// Removes a user and every session of theirs, in one step: once this
    /// returns, no token of theirs checks as valid on any node. Fails with
    /// [`StoreError::UnknownUser`] if there is none. Files are the caller's
    /// business.
    fn remove_user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Replaces a user's password hash (computed by the caller) and ends
    /// every session of theirs, in one step, as [`UserStore::remove_user`]
    /// does: a password is changed because it may be known to someone else,
    /// and a session logged in with it must not outlive it. Fails with
    /// [`StoreError::UnknownUser`].
    fn set_password<'a>(
        &'a self,
        name: &'a str,
        password_hash: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Sets a user's quota (`None`: unlimited). The ledger sees it within a
    /// second. Fails with [`StoreError::UnknownUser`].
    fn set_quota<'a>(
        &'a self,
        name: &'a str,
        quota: Option<u64>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The user of this name, or `None`.
    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>>;

    /// Every user, ordered by name.
    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserRecord>, StoreError>>;
}
