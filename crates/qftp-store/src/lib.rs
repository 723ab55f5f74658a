//! qftp's storage and state contracts.
//!
//! A qftp server keeps five kinds of state, each behind one trait here:
//!
//! | trait | what it owns |
//! |---|---|
//! | [`UserStore`] | accounts: name, argon2id password hash, home, quota |
//! | [`SessionStore`] | session tokens (by their SHA-256 only) and their revocation |
//! | [`QuotaLedger`] | what each user has on disk and what uploads in flight have reserved |
//! | [`LoginThrottle`] | failed logins per address, per user and per pair |
//! | [`FileStore`] / [`HomeFiles`] / [`OpenUpload`] | the files of each home |
//!
//! The server ships one implementation of each (the *embedded* one: SQLite
//! and a directory per home, in `qftp-server`); other crates may implement
//! them for shared storage (a PostgreSQL database, an object store) without
//! depending on the server. Nothing here names SQLite, cap-std, quinn or a
//! tokio runtime: the traits speak in plain values, the protocol's path and
//! entry types ([`qftp_proto::path::RemotePath`], [`qftp_proto::EntryInfo`])
//! and [`BoxFuture`]s, so each is usable as `Arc<dyn Trait>`.
//!
//! Every method documents its contract; the `contract-tests` feature adds
//! [`contract`], a suite any implementation runs against itself.
//!
//! ```
//! use std::sync::Arc;
//! use qftp_store::{FileStore, LoginThrottle, QuotaLedger, SessionStore, UserStore};
//!
//! /// What a server needs, whatever holds it.
//! struct Stores {
//!     users: Arc<dyn UserStore>,
//!     sessions: Arc<dyn SessionStore>,
//!     ledger: Arc<dyn QuotaLedger>,
//!     throttle: Arc<dyn LoginThrottle>,
//!     files: Arc<dyn FileStore>,
//! }
//! ```
//!
//! Architecture Invariant: this crate holds contracts and values only; it
//! performs no I/O and knows no wire format beyond the protocol's path and
//! entry types.

pub mod error;
pub mod files;
pub mod future;
pub mod ledger;
pub mod sessions;
pub mod throttle;
pub mod users;

#[cfg(feature = "contract-tests")]
pub mod contract;

pub use error::{FileError, LedgerError, StoreError};
pub use files::{EntryPages, FileStore, HomeFiles, OpenUpload, UploadStart};
pub use future::BoxFuture;
pub use ledger::{Change, Footprint, LeaseId, LedgerUsage, QuotaLedger, Reservation, UploadKey};
pub use sessions::{RevocationFeed, SessionStore, TokenHash};
pub use throttle::{Blocked, Bound, LoginAttempt, LoginThrottle};
pub use users::{NewUser, UserRecord, UserStore};
