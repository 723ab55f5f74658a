//! The qftp client library: a typed async API over one QUIC connection.
//! It has no argument parser, prompt or progress bar; the `qftp` program
//! (the root package) puts those on top, and any other program can too.
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
//! * [`address`]: server addresses and scp-style `HOST:PATH` targets,
//!   parsed before anything is sent.
//! * [`connection`]: [`Client`], the request/response multiplexer over the
//!   control stream, and the routing of incoming data streams.
//!   A closed port is noticed at once by a UDP probe beside the handshake.
//! * [`figures`]: the connection's transport figures (round trip, loss,
//!   window) for `--stats`; [`network_change`]: the operating system's
//!   word that the local network changed, the cue for
//!   [`Client::rebind`] (connection migration).
//! * [`trust`]: certificate pinning (known hosts) and CA verification.
//! * [`transfer`]: uploads and downloads with hashing, resume and progress
//!   events; [`batch`] runs many of them in parallel and expands trees.
//! * [`sync`]: tree comparison and `qftp sync`, on top of [`batch`].
//! * [`destination`]: every local write of a pull, confined beneath the
//!   destination directory; [`refusal`]: why an entry was not written;
//!   [`free_space`]: the room a pull needs, checked before it starts.
//! * [`settings`]: the client's config directory and its saved sessions;
//!   [`hosts`]: the host profiles of its `config.toml`.
//!
//! Progress reaches a program through [`observer::TransferObserver`]
//! (also reachable as `transfer::TransferObserver`):
//! every transfer reports when it starts, each batch of bytes moved, and
//! how it ended. Errors are [`ClientError`].
//!
//! This crate never stores a password: `qftp login` exchanges it for a
//! session token, and only the token is saved.

pub mod address;
pub mod batch;
pub mod connection;
pub mod destination;
pub mod error;
pub mod figures;
pub mod free_space;
pub mod hosts;
pub mod network_change;
pub mod observer;
mod probe;
pub mod refusal;
pub mod settings;
pub mod sync;
pub mod transfer;
pub mod trust;

pub use connection::{Client, ConnectOptions};
pub use error::ClientError;
pub use refusal::Refusal;
pub use trust::Trust;
