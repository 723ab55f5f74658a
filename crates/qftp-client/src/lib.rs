//! The qftp client: a typed async API over one QUIC connection, and the
//! `qftp` command built on it.
//!
//! ```no_run
//! # async fn example() -> Result<(), qftp_client::ClientError> {
//! use qftp_client::{Client, ConnectOptions, Trust};
//!
//! let options = ConnectOptions::new("files.example.org:4433", Trust::FirstUse);
//! let client = Client::connect(&options).await?;
//! client.login("alice", "correct horse").await?;
//! for entry in client.list("/").await? {
//!     println!("{}", entry.name);
//! }
//! # Ok(()) }
//! ```
//!
//! Code map:
//! * [`connection`]: [`Client`], the request/response multiplexer over the
//!   control stream, and the routing of incoming data streams.
//! * [`trust`]: certificate pinning (known hosts) and CA verification.
//! * [`transfer`]: uploads and downloads with hashing, resume and progress
//!   events; [`batch`] runs many of them in parallel and expands trees.
//! * [`sync`]: tree comparison and `qftp sync`, on top of [`batch`].
//! * [`settings`]: the client's config directory and its saved session.
//! * [`progress`]: terminal progress bars for transfer events.
//! * [`cli`] and [`shell`]: the `qftp` command and its interactive prompt.
//!
//! This crate never stores a password: `qftp login` exchanges it for a
//! session token, and only the token is saved.

pub mod batch;
pub mod cli;
pub mod connection;
pub mod error;
pub mod progress;
pub mod settings;
pub mod shell;
pub mod sync;
pub mod transfer;
pub mod trust;

pub use connection::{Client, ConnectOptions};
pub use error::ClientError;
pub use trust::Trust;
