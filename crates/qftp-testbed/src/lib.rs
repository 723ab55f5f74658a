//! Real PostgreSQL and SeaweedFS (an S3-compatible object store) servers
//! for qftp's tests.
//!
//! Each server runs on 127.0.0.1 with free ports in a temporary directory
//! of its own, and is stopped by its PID when its handle is dropped, or,
//! for a handle kept in a `static`, when the test process exits (see
//! [`guardian`]). Readiness is waited for with a bound; a program that is
//! not installed is a [`TestbedError::Missing`] naming the package to
//! install, never a silently skipped test.
//!
//! A test binary starts one server of each kind and gives every test a
//! database or key prefix of its own:
//!
//! ```no_run
//! let postgres = qftp_testbed::shared_postgres();
//! let url = postgres.create_database("ledger_race").expect("a database");
//! let s3 = qftp_testbed::shared_seaweed();
//! println!("{url} {} bucket {}", s3.endpoint(), s3.bucket());
//! ```
//!
//! Architecture Invariant: nothing here knows qftp's stores or schema; the
//! testbed only starts, waits for and stops servers.

pub mod error;
pub mod guardian;
pub mod ports;
pub mod postgres;
pub mod programs;
pub mod seaweed;
pub mod shared;
pub mod wait;

pub use error::TestbedError;
pub use postgres::Postgres;
pub use seaweed::{S3Credentials, Seaweed};
pub use shared::{shared_postgres, shared_seaweed};
