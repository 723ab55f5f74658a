//! qftp's users, sessions, quota ledger and login throttle in PostgreSQL,
//! shared by every node of a cluster.
//!
//! One [`PgStore`] implements [`qftp_store::UserStore`],
//! [`qftp_store::SessionStore`], [`qftp_store::QuotaLedger`] and
//! [`qftp_store::LoginThrottle`] on a pool of connections
//! (deadpool-postgres over tokio-postgres). Every node of a cluster opens
//! its own `PgStore` on the same database:
//!
//! - a reservation is one conditional statement (`used + reserved + size <=
//!   quota`), so racing nodes never reserve past a quota together; each has
//!   a row with a lease that its node renews, and another node takes over
//!   an upload whose lease expired (its node crashed);
//! - a revocation is stored and announced with `NOTIFY` in one
//!   transaction; each store `LISTEN`s on a connection of its own and turns
//!   the announcements into its [`qftp_store::RevocationFeed`] (and a
//!   take-over's request into the holder's give-way feed);
//! - the schema is versioned ([`schema`]) and brought up to date under an
//!   advisory lock when a store connects, so nodes starting together apply
//!   each migration once.
//!
//! ```no_run
//! # async fn example() -> Result<(), qftp_store::StoreError> {
//! use std::sync::Arc;
//! use qftp_store::{QuotaLedger, UserStore};
//! use qftp_store_pg::{PgOptions, PgStore};
//!
//! let store = Arc::new(PgStore::connect("postgres://qftp@127.0.0.1/qftp", PgOptions::default()).await?);
//! let users: Arc<dyn UserStore> = store.clone();
//! let ledger: Arc<dyn QuotaLedger> = store;
//! # Ok(()) }
//! ```
//!
//! Architecture Invariant: this crate knows the store traits and
//! PostgreSQL, nothing of the server, the files or the wire.

mod error;
mod ledger;
mod notify;
mod options;
pub mod schema;
mod sessions;
mod store;
mod throttle;
mod users;

pub use options::{PgOptions, ThrottleBounds};
pub use store::PgStore;
