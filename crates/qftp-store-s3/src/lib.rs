//! qftp's file store on S3-compatible object storage, its namespace in
//! PostgreSQL, shared by every node of a cluster.
//!
//! [`S3Store`] implements [`qftp_store::FileStore`] on two shared systems:
//!
//! - **PostgreSQL**, the database of the [`qftp_store_pg::PgStore`] it is
//!   built on, holds the namespace (paths, kinds, sizes, mtimes, BLAKE3,
//!   which blob a file is), the uploads in flight and their parts
//!   ([`schema`]). Every namespace change is one transaction that also
//!   charges the user's quota in the same database, so a change and its
//!   charge never part.
//! - **The bucket** ([`Bucket`]) holds immutable blobs keyed by random ids.
//!   A rename moves rows, never objects; a removal deletes its blobs after
//!   its transaction.
//!
//! An upload of more than [`PART_SIZE`] (8 MiB) bytes is a multipart upload
//! of fixed parts; each part's ETag and BLAKE3 chaining value are stored,
//! so any node resumes it and proves its prefix from the stored values,
//! and the commit verifies the whole file from them ([`tree`]). Smaller
//! files are one PUT. A file becomes visible only in the transaction that
//! ends its reservation in the ledger with its charge, and only while its
//! lease is live ([`qftp_store::FileError::LeaseLost`] otherwise).
//!
//! # The sweep
//!
//! [`S3Store::sweep`] aborts abandoned uploads and deletes objects that
//! nothing names (what a crash between completing an object and the
//! database commit leaves).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use qftp_store_pg::{PgOptions, PgStore};
//! use qftp_store_s3::{Bucket, S3Options, S3Store};
//!
//! let ledger = Arc::new(PgStore::connect("postgres://qftp@127.0.0.1/qftp", PgOptions::default()).await?);
//! let bucket = Bucket {
//!     endpoint: "http://127.0.0.1:8333".to_owned(),
//!     region: "us-east-1".to_owned(),
//!     name: "qftp".to_owned(),
//!     prefix: "cluster-1".to_owned(),
//!     access_key_id: std::env::var("AWS_ACCESS_KEY_ID")?,
//!     secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY")?,
//! };
//! let files = S3Store::connect(ledger, &bucket, S3Options::default()).await?;
//! # Ok(()) }
//! ```
//!
//! Architecture Invariant: this crate knows the store traits, PostgreSQL
//! (through `qftp-store-pg`'s ledger and pool) and the object store;
//! nothing of the server or the wire beyond paths and entries.

mod bucket;
pub mod danger;
mod entry;
mod error;
mod home;
mod options;
mod pages;
pub mod schema;
mod shared;
mod store;
mod sweep;
pub mod tree;
mod upload;

pub use bucket::Bucket;
pub use options::{S3Options, SweepReport, SweepRules};
pub use store::S3Store;
pub use tree::PART_SIZE;
