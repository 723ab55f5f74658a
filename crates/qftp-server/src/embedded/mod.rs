//! The embedded stores: the implementations of the [`qftp_store`] traits
//! that a single server runs on its own, with nothing else to install.
//!
//! * [`accounts`]: [`EmbeddedAccounts`], the [`qftp_store::UserStore`] and
//!   [`qftp_store::SessionStore`] on the SQLite database of
//!   [`crate::userdb`], every call on the blocking pool;
//! * [`ledger`]: [`EmbeddedLedger`], the [`qftp_store::QuotaLedger`] on
//!   the quota book of [`crate::quota`] (`used` in SQLite, reservations
//!   and their leases in memory), every database step on the blocking pool;
//! * [`throttle`]: [`EmbeddedThrottle`], the [`qftp_store::LoginThrottle`]
//!   counting failed logins in this process's memory.
//!
//! The rest of the server reaches these only through the traits (see
//! [`crate::state::Stores`]), so a shared store can stand in for each.
//! Nothing here hashes a password or speaks the protocol.

pub mod accounts;
pub mod ledger;
pub mod throttle;

pub use accounts::EmbeddedAccounts;
pub use ledger::EmbeddedLedger;
pub use throttle::EmbeddedThrottle;
