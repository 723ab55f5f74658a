//! The schema and its versioned migrations.
//!
//! Each migration is applied once, in order, in one transaction that holds
//! an advisory lock ([`MIGRATION_LOCK`]), so any number of nodes and admin
//! tools may connect at once; `schema_migrations` records the versions
//! applied. A database whose version is newer than this build knows is
//! refused rather than used.

use qftp_store::StoreError;

use crate::error::unavailable;

/// The key of the advisory lock migrations run under (`qftp` in ASCII).
pub const MIGRATION_LOCK: i64 = 0x7166_7470;

/// The migrations, version 1 first; a new one goes at the end.
pub const MIGRATIONS: &[&str] = &[r#"
CREATE SEQUENCE accounts;
CREATE TABLE users (
    name text PRIMARY KEY,
    password_hash text NOT NULL,
    quota bigint CHECK (quota >= 0),
    home text,
    account bigint NOT NULL DEFAULT nextval('accounts'),
    used_bytes bigint NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    used_entries bigint NOT NULL DEFAULT 0 CHECK (used_entries >= 0),
    reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0)
);
CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY,
    user_name text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    expires timestamptz NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires);
CREATE TABLE reservations (
    user_name text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    path text NOT NULL,
    lease bytea NOT NULL UNIQUE,
    bytes bigint NOT NULL CHECK (bytes >= 0),
    held bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    expires timestamptz NOT NULL,
    PRIMARY KEY (user_name, path)
);
CREATE TABLE login_failures (
    subject text PRIMARY KEY,
    failures integer NOT NULL,
    last_failure timestamptz NOT NULL,
    blocked_until timestamptz
);
CREATE TABLE login_origins (
    user_name text NOT NULL,
    address text NOT NULL,
    seen timestamptz NOT NULL,
    PRIMARY KEY (user_name, address)
);
"#];

/// Brings the database to the newest schema; returns the version it has.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<usize, StoreError> {
    migrate_with(client, "schema_migrations", MIGRATION_LOCK, MIGRATIONS).await
}

/// Applies `migrations` (version 1 first) not yet recorded in the table
/// `table`, in one transaction under the advisory lock `lock`; returns the
/// version the database has. Other stores keeping tables in the same
/// database (a file namespace beside the users) version theirs with this,
/// each with a table and a lock of its own.
pub async fn migrate_with(
    client: &mut tokio_postgres::Client,
    table: &str,
    lock: i64,
    migrations: &[&str],
) -> Result<usize, StoreError> {
    let transaction = client.transaction().await.map_err(unavailable)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
        .await
        .map_err(unavailable)?;
    transaction
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                version integer PRIMARY KEY,
                applied timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .map_err(unavailable)?;
    let row = transaction
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {table}"),
            &[],
        )
        .await
        .map_err(unavailable)?;
    let current = usize::try_from(row.get::<_, i32>(0))
        .map_err(|_| StoreError::Corrupt("negative schema version".to_owned()))?;
    if current > migrations.len() {
        return Err(StoreError::Corrupt(format!(
            "the database's schema ({table}) is version {current}, newer than this program's {}",
            migrations.len()
        )));
    }
    for (index, migration) in migrations.iter().enumerate().skip(current) {
        transaction
            .batch_execute(migration)
            .await
            .map_err(unavailable)?;
        let version = i32::try_from(index + 1).expect("few migrations");
        transaction
            .execute(
                &format!("INSERT INTO {table} (version) VALUES ($1)"),
                &[&version],
            )
            .await
            .map_err(unavailable)?;
    }
    transaction.commit().await.map_err(unavailable)?;
    Ok(migrations.len())
}
