//! The namespace's tables and their versioned migrations.
//!
//! The namespace lives in the database of the [`qftp_store_pg::PgStore`]
//! it is charged to (its rows name `users`), but versions its tables on
//! its own: a table of its own (`file_schema_migrations`) and an advisory
//! lock of its own, applied with the same machinery
//! ([`qftp_store_pg::schema::migrate_with`]) after the users' schema. So a
//! cluster that keeps users in PostgreSQL but files elsewhere never gets
//! these tables, and each schema moves at its own pace.
//!
//! - `file_entries`: one row per file, directory or symlink of a home;
//!   a file names its immutable blob (`blob`) and carries its size, mtime
//!   and BLAKE3.
//! - `file_uploads`: one row per upload in flight or kept for a resume:
//!   its blob, its multipart upload (if large), the lease of its holder,
//!   what of it the ledger charges.
//! - `file_parts`: per part of a multipart upload, the ETag the object
//!   store gave and its BLAKE3 chaining value.

use qftp_store::StoreError;

/// The key of the advisory lock the namespace migrations run under
/// (`qfts` in ASCII).
pub const MIGRATION_LOCK: i64 = 0x7166_7473;

/// The table recording the namespace migrations applied.
pub const MIGRATION_TABLE: &str = "file_schema_migrations";

/// The migrations, version 1 first; a new one goes at the end.
pub const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE file_entries (
    user_name text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    path text NOT NULL CHECK (path <> ''),
    parent text NOT NULL,
    name text NOT NULL,
    kind smallint NOT NULL CHECK (kind IN (0, 1, 2)),
    size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    mtime timestamptz NOT NULL,
    hash bytea,
    blob text UNIQUE,
    target text,
    PRIMARY KEY (user_name, path),
    CHECK ((kind = 0) = (blob IS NOT NULL AND hash IS NOT NULL)),
    CHECK ((kind = 2) = (target IS NOT NULL))
);
CREATE INDEX file_entries_by_parent ON file_entries (user_name, parent, name);
CREATE TABLE file_uploads (
    user_name text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    path text NOT NULL,
    blob text NOT NULL UNIQUE,
    multipart text,
    size bigint NOT NULL CHECK (size >= 0),
    held bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    kept_hash bytea,
    charged_bytes bigint NOT NULL DEFAULT 0 CHECK (charged_bytes >= 0),
    charged_entries bigint NOT NULL DEFAULT 0 CHECK (charged_entries >= 0),
    lease bytea,
    reported bigint NOT NULL DEFAULT 0 CHECK (reported >= 0),
    expires timestamptz,
    updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_name, path)
);
CREATE TABLE file_parts (
    blob text NOT NULL REFERENCES file_uploads (blob) ON DELETE CASCADE,
    index integer NOT NULL CHECK (index >= 0),
    etag text NOT NULL,
    chaining bytea NOT NULL,
    whole bytea,
    PRIMARY KEY (blob, index)
);
"#];

/// Brings the namespace tables to the newest schema; returns the version.
/// The users' schema must be in place first ([`qftp_store_pg::PgStore`]
/// applies it when it connects).
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<usize, StoreError> {
    qftp_store_pg::schema::migrate_with(client, MIGRATION_TABLE, MIGRATION_LOCK, MIGRATIONS).await
}
