//! One server of each kind per test process, started at first use.
//!
//! Starting PostgreSQL or SeaweedFS takes seconds, so a test binary shares
//! one of each between its tests, each test using a database or key prefix
//! of its own. The servers live in `static`s; their guardians stop them
//! when the test process exits (see [`crate::guardian`]).

use std::sync::OnceLock;

use crate::postgres::Postgres;
use crate::seaweed::Seaweed;

/// The bucket of the shared SeaweedFS server.
pub const SHARED_BUCKET: &str = "qftp-tests";

/// The shared PostgreSQL server, started at the first call. Panics with
/// the reason (e.g. which package to install) if it cannot start: a test
/// that needs it must fail, never skip.
pub fn shared_postgres() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| {
        Postgres::start().unwrap_or_else(|error| panic!("starting PostgreSQL: {error}"))
    })
}

/// The shared SeaweedFS server with the bucket [`SHARED_BUCKET`], started
/// at the first call. Panics with the reason if it cannot start.
pub fn shared_seaweed() -> &'static Seaweed {
    static SERVER: OnceLock<Seaweed> = OnceLock::new();
    SERVER.get_or_init(|| {
        Seaweed::start(SHARED_BUCKET).unwrap_or_else(|error| panic!("starting SeaweedFS: {error}"))
    })
}
