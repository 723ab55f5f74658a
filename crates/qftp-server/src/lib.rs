//! The qftp server: users with jailed homes and quotas, serving logins,
//! navigation and file transfers over QUIC.
//!
//! The binary `qftp-server` is a thin layer over this library: [`cli`] parses
//! the command line, [`server::run`] runs the listener.
//!
//! Code map:
//! * [`config`]: the server root's layout and `config.toml`.
//! * [`certs`]: the self-signed development certificate.
//! * [`userdb`]: the SQLite user store (password hashes, quotas, sessions).
//! * [`auth`]: password hashing, session tokens and login throttling.
//! * [`footprint`]: what an entry costs: quota bytes and one entry.
//! * [`jail`]: every file-system operation, confined to one home.
//! * [`links`]: the rule that keeps every symlink in a home resolving inside it.
//! * [`limits`]: refusals at a configured limit: the client's error and a rate-limited WARN.
//! * [`open_uploads`]: how many uploads each user has open, over all their connections.
//! * [`quota`]: reservations that keep parallel uploads inside a quota.
//! * [`partials`]: partial upload files: safe opening and the sweep of abandoned ones.
//! * [`tree`]: traversals of any depth that hold a bounded number of directory handles.
//! * [`server`], [`connection`], [`transfer`]: the QUIC side.

pub mod auth;
pub mod certs;
pub mod cli;
pub mod config;
pub mod connection;
pub mod durable;
pub mod error;
pub mod footprint;
pub mod jail;
pub mod limits;
pub mod links;
pub mod open_uploads;
pub mod partials;
pub mod quota;
pub mod server;
pub mod transfer;
pub mod tree;
pub mod userdb;
