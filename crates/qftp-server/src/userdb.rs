//! The user store: an SQLite database of users (password hash, quota, bytes
//! used, home) and their login sessions.
//!
//! The database runs in WAL mode with a 5 second busy timeout, so the admin
//! commands can change users while the server runs; the server reads the
//! database on every login and authentication, so changes take effect at the
//! next one. `PRAGMA user_version` records the schema version for later
//! migrations.
//!
//! This module stores what it is given: it does not hash passwords or make
//! tokens (that is [`crate::auth`]), and it does not decide what a quota
//! allows (that is [`crate::quota`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

/// The schema version this code reads and writes.
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest user name, in characters.
pub const MAX_USER_NAME: usize = 32;

const USER_NAME_RULE: &str = "user names are 1 to 32 characters from A-Z, a-z, 0-9, '_', '.' and '-', not starting with '.' or '-'";

const SCHEMA: &str = "
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    quota INTEGER NULL,
    used INTEGER NOT NULL DEFAULT 0,
    home TEXT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    expires INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user);
CREATE INDEX sessions_by_expiry ON sessions(expires);
";

/// A user database operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A user of that name already exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// There is no user of that name.
    #[error("no such user {0:?}")]
    NoSuchUser(String),
    /// The name breaks the user name rule.
    #[error("invalid user name {name:?}: {rule}")]
    InvalidName {
        /// The refused name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A home path cannot be stored because it is not UTF-8.
    #[error("home directory {0:?} is not valid UTF-8")]
    InvalidHome(PathBuf),
    /// A number is too large for the database.
    #[error("{what} {value} is too large")]
    TooLarge {
        /// Which number.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The database was written by a newer server.
    #[error("user database {} has schema version {found}, but this server knows only up to {SCHEMA_VERSION}", path.display())]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
    /// The database file could not be created.
    #[error("cannot create user database {}: {source}", path.display())]
    Create {
        /// The database file.
        path: PathBuf,
        /// Why creating it failed.
        source: std::io::Error,
    },
    /// The database could not be opened or prepared.
    #[error("cannot open user database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        source: rusqlite::Error,
    },
    /// A stored value is out of range, e.g. a negative byte count.
    #[error("corrupt user database: {0}")]
    Corrupt(String),
    /// Any other SQLite failure.
    #[error("user database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// One user as stored: the store contract's record, so that what the
/// database reads is what [`crate::embedded`] hands on unchanged. Its
/// `account` is derived from the row, creation time and password hash: a
/// user deleted and added again under the same name is a new account,
/// whose home the server measures afresh (and so, harmlessly, is one whose
/// password changed).
pub use qftp_store::UserRecord;

/// The user database, shared by every connection (and by concurrent
/// processes through SQLite's locking).
#[derive(Debug)]
pub struct UserDb {
    connection: Mutex<Connection>,
}

/// Checks a user name: 1 to 32 characters from `[A-Za-z0-9_.-]`, not
/// starting with `.` or `-`.
pub fn validate_user_name(name: &str) -> Result<(), DbError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let valid = (1..=MAX_USER_NAME).contains(&name.len())
        && name.chars().all(allowed)
        && !name.starts_with(['.', '-']);
    if valid {
        Ok(())
    } else {
        Err(DbError::InvalidName {
            name: name.to_owned(),
            rule: USER_NAME_RULE,
        })
    }
}

impl UserDb {
    /// Opens the database at `path`, creating the file and the schema if
    /// missing.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let open_error = |source| DbError::Open {
            path: path.to_owned(),
            source,
        };
        create_private_file(path).map_err(|source| DbError::Create {
            path: path.to_owned(),
            source,
        })?;
        let mut connection = Connection::open(path).map_err(open_error)?;
        configure(&connection).map_err(open_error)?;
        migrate(&mut connection, path)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    /// Adds a user; [`DbError::UserExists`] if the name is taken.
    pub fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        quota: Option<u64>,
        home: Option<&Path>,
    ) -> Result<(), DbError> {
        validate_user_name(name)?;
        let quota = quota.map(|quota| to_integer("quota", quota)).transpose()?;
        let home = home
            .map(|home| {
                home.to_str()
                    .ok_or_else(|| DbError::InvalidHome(home.to_owned()))
            })
            .transpose()?;
        let inserted = self.lock().execute(
            "INSERT INTO users (name, password_hash, quota, used, home, created)
             VALUES (?1, ?2, ?3, 0, ?4, ?5) ON CONFLICT (name) DO NOTHING",
            params![name, password_hash, quota, home, unix_now()],
        )?;
        match inserted {
            0 => Err(DbError::UserExists(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// The user called `name`, if any.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, DbError> {
        self.lock()
            .query_row(
                "SELECT name, password_hash, quota, used, home, rowid, created FROM users WHERE name = ?1",
                [name],
                read_user,
            )
            .optional()?
            .transpose()
    }

    /// Every user, sorted by name.
    pub fn users(&self) -> Result<Vec<UserRecord>, DbError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
            "SELECT name, password_hash, quota, used, home, rowid, created FROM users ORDER BY name",
        )?;
        let rows = statement.query_map([], read_user)?;
        rows.map(|row| row?).collect()
    }

    /// Replaces a user's password hash and revokes all their sessions.
    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<(), DbError> {
        self.durably(|connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let updated = transaction.execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, password_hash],
            )?;
            if updated == 0 {
                return Err(DbError::NoSuchUser(name.to_owned()));
            }
            transaction.execute("DELETE FROM sessions WHERE user = ?1", [name])?;
            transaction.commit()?;
            Ok(())
        })
    }

    /// Deletes a user and their sessions.
    pub fn delete_user(&self, name: &str) -> Result<(), DbError> {
        let deleted = self.durably(|connection| {
            Ok(connection.execute("DELETE FROM users WHERE name = ?1", [name])?)
        })?;
        require_user(deleted, name)
    }

    /// Sets a user's quota; `None` is unlimited.
    pub fn set_quota(&self, name: &str, quota: Option<u64>) -> Result<(), DbError> {
        let quota = quota.map(|quota| to_integer("quota", quota)).transpose()?;
        let updated = self.lock().execute(
            "UPDATE users SET quota = ?2 WHERE name = ?1",
            params![name, quota],
        )?;
        require_user(updated, name)
    }

    /// A user's bytes used and quota.
    pub fn usage(&self, name: &str) -> Result<(u64, Option<u64>), DbError> {
        let record = self
            .user(name)?
            .ok_or_else(|| DbError::NoSuchUser(name.to_owned()))?;
        Ok((record.used, record.quota))
    }

    /// Atomically adds `delta` (possibly negative) to a user's bytes used,
    /// never going below zero, and returns the new value.
    pub fn add_used(&self, name: &str, delta: i64) -> Result<u64, DbError> {
        // One cached statement: this runs once per stored file, so neither
        // an explicit transaction nor parsing SQL each time is worth paying.
        let connection = self.lock();
        let mut statement = connection.prepare_cached(
            "UPDATE users SET used = max(0, min(used + ?2, 9223372036854775807)) \
             WHERE name = ?1 RETURNING used",
        )?;
        let updated: i64 = statement
            .query_row(params![name, delta], |row| row.get(0))
            .optional()?
            .ok_or_else(|| DbError::NoSuchUser(name.to_owned()))?;
        to_unsigned("used", updated)
    }

    /// Sets a user's bytes used, e.g. after a rescan of their home.
    pub fn set_used(&self, name: &str, used: u64) -> Result<(), DbError> {
        let used = to_integer("used", used)?;
        let updated = self.lock().execute(
            "UPDATE users SET used = ?2 WHERE name = ?1",
            params![name, used],
        )?;
        require_user(updated, name)
    }

    /// Stores a session of user `name`, identified by the hash of its token,
    /// valid until `expires_unix` (seconds since the epoch).
    pub fn create_session(
        &self,
        name: &str,
        token_hash: &[u8; 32],
        expires_unix: i64,
    ) -> Result<(), DbError> {
        let inserted = self.lock().execute(
            "INSERT INTO sessions (token_hash, user, expires)
             SELECT ?1, name, ?3 FROM users WHERE name = ?2",
            params![token_hash.as_slice(), name, expires_unix],
        )?;
        require_user(inserted, name)
    }

    /// The user of a session, or `None` if the token is unknown or expired
    /// at `now_unix`.
    pub fn session_user(
        &self,
        token_hash: &[u8; 32],
        now_unix: i64,
    ) -> Result<Option<String>, DbError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT user FROM sessions WHERE token_hash = ?1 AND expires > ?2")?;
        let user = statement
            .query_row(params![token_hash.as_slice(), now_unix], |row| row.get(0))
            .optional()?;
        Ok(user)
    }

    /// Removes a session; whether it existed.
    pub fn revoke_session(&self, token_hash: &[u8; 32]) -> Result<bool, DbError> {
        let deleted = self.durably(|connection| {
            Ok(connection.execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [token_hash.as_slice()],
            )?)
        })?;
        Ok(deleted > 0)
    }

    /// Removes the sessions expired at `now_unix`; how many went.
    pub fn purge_expired_sessions(&self, now_unix: i64) -> Result<usize, DbError> {
        let deleted = self
            .lock()
            .execute("DELETE FROM sessions WHERE expires <= ?1", [now_unix])?;
        Ok(deleted)
    }

    /// The connection; a panic elsewhere while holding it leaves SQLite
    /// consistent (an open transaction is rolled back on drop), so poisoning
    /// is ignored.
    /// Runs `change` with every commit synced to disk: for changes that must
    /// survive a power cut (revocations, password changes, deletions), while
    /// routine usage updates skip that fsync.
    fn durably<T>(
        &self,
        change: impl FnOnce(&mut Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut connection = self.lock();
        connection.pragma_update(None, "synchronous", "FULL")?;
        let result = change(&mut connection);
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        result
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Creates an empty database file readable by the owner only (SQLite gives
/// its WAL and shared-memory files the same mode); an existing file is left
/// as it is.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Per-connection settings: busy timeout, foreign keys, WAL.
fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // In WAL mode NORMAL keeps the database consistent after any crash and
    // skips an fsync per commit; a power cut may lose the last few usage
    // updates, which `qftp-server user rescan` recomputes from disk.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`], inside one write transaction
/// so that two processes opening a new file do not both create it.
fn migrate(connection: &mut Connection, path: &Path) -> Result<(), DbError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = transaction.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::NewerSchema {
            path: path.to_owned(),
            found: version,
        });
    }
    if version < 1 {
        transaction.execute_batch(SCHEMA)?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}

/// Reads one `users` row; the inner result reports out-of-range values.
fn read_user(row: &Row<'_>) -> rusqlite::Result<Result<UserRecord, DbError>> {
    let name: String = row.get(0)?;
    let password_hash: String = row.get(1)?;
    let quota: Option<i64> = row.get(2)?;
    let used: i64 = row.get(3)?;
    let home: Option<String> = row.get(4)?;
    let (rowid, created): (i64, i64) = (row.get(5)?, row.get(6)?);
    let account = {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&rowid.to_le_bytes());
        hasher.update(&created.to_le_bytes());
        hasher.update(password_hash.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        u64::from_le_bytes(first)
    };
    Ok((|| {
        Ok(UserRecord {
            name,
            password_hash,
            quota: quota.map(|quota| to_unsigned("quota", quota)).transpose()?,
            used: to_unsigned("used", used)?,
            home: home.map(PathBuf::from),
            account,
        })
    })())
}

fn require_user(rows: usize, name: &str) -> Result<(), DbError> {
    match rows {
        0 => Err(DbError::NoSuchUser(name.to_owned())),
        _ => Ok(()),
    }
}

fn to_integer(what: &'static str, value: u64) -> Result<i64, DbError> {
    i64::try_from(value).map_err(|_| DbError::TooLarge { what, value })
}

fn to_unsigned(what: &str, value: i64) -> Result<u64, DbError> {
    u64::try_from(value).map_err(|_| DbError::Corrupt(format!("{what} is {value}")))
}

fn unix_now() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: [u8; 32] = [7; 32];

    fn database() -> (tempfile::TempDir, UserDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(&dir.path().join("users.db")).unwrap();
        (dir, db)
    }

    #[test]
    fn users_are_added_listed_and_read_back() {
        let (_dir, db) = database();
        db.add_user("bob", "hash-b", None, None).unwrap();
        db.add_user(
            "alice",
            "hash-a",
            Some(1 << 30),
            Some(Path::new("special/alice")),
        )
        .unwrap();
        let alice = db.user("alice").unwrap().unwrap();
        assert_eq!(
            alice,
            UserRecord {
                name: "alice".into(),
                password_hash: "hash-a".into(),
                quota: Some(1 << 30),
                used: 0,
                home: Some(PathBuf::from("special/alice")),
                account: alice.account,
            }
        );
        assert_eq!(db.user("carol").unwrap(), None);
        let names: Vec<String> = db
            .users()
            .unwrap()
            .into_iter()
            .map(|user| user.name)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        assert!(matches!(
            db.add_user("alice", "other", None, None),
            Err(DbError::UserExists(name)) if name == "alice"
        ));
        assert!(matches!(
            db.add_user("../etc", "hash", None, None),
            Err(DbError::InvalidName { .. })
        ));
    }

    #[test]
    fn user_names_follow_the_rule() {
        for good in ["alice", "a", "Bob_2", "x.y-z", &"n".repeat(32)] {
            validate_user_name(good).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "-flag",
            "a/b",
            "a b",
            "é",
            &"n".repeat(33),
            "..",
        ] {
            let error = validate_user_name(bad).unwrap_err();
            assert!(
                error.to_string().contains("1 to 32 characters"),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn quota_and_usage_are_kept() {
        let (_dir, db) = database();
        db.add_user("alice", "hash", Some(1000), None).unwrap();
        assert_eq!(db.usage("alice").unwrap(), (0, Some(1000)));
        assert_eq!(db.add_used("alice", 700).unwrap(), 700);
        assert_eq!(db.add_used("alice", -200).unwrap(), 500);
        assert_eq!(db.add_used("alice", -10_000).unwrap(), 0);
        assert_eq!(db.add_used("alice", i64::MAX).unwrap(), i64::MAX as u64);
        assert_eq!(db.add_used("alice", i64::MAX).unwrap(), i64::MAX as u64);
        db.set_used("alice", 42).unwrap();
        db.set_quota("alice", None).unwrap();
        assert_eq!(db.usage("alice").unwrap(), (42, None));
        assert!(matches!(
            db.set_used("alice", u64::MAX),
            Err(DbError::TooLarge { .. })
        ));
        assert!(matches!(
            db.add_used("nobody", 1),
            Err(DbError::NoSuchUser(_))
        ));
        assert!(matches!(
            db.set_quota("nobody", None),
            Err(DbError::NoSuchUser(_))
        ));
        assert!(matches!(db.usage("nobody"), Err(DbError::NoSuchUser(_))));
    }

    #[test]
    fn sessions_expire_and_can_be_revoked() {
        let (_dir, db) = database();
        db.add_user("alice", "hash", None, None).unwrap();
        db.create_session("alice", &TOKEN, 1000).unwrap();
        assert_eq!(
            db.session_user(&TOKEN, 999).unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(db.session_user(&TOKEN, 1000).unwrap(), None);
        assert_eq!(db.session_user(&[8; 32], 0).unwrap(), None);
        assert!(db.revoke_session(&TOKEN).unwrap());
        assert!(!db.revoke_session(&TOKEN).unwrap());
        assert_eq!(db.session_user(&TOKEN, 0).unwrap(), None);
        assert!(matches!(
            db.create_session("nobody", &TOKEN, 1000),
            Err(DbError::NoSuchUser(_))
        ));
    }

    #[test]
    fn expired_sessions_are_purged() {
        let (_dir, db) = database();
        db.add_user("alice", "hash", None, None).unwrap();
        db.create_session("alice", &[1; 32], 100).unwrap();
        db.create_session("alice", &[2; 32], 200).unwrap();
        db.create_session("alice", &[3; 32], 300).unwrap();
        assert_eq!(db.purge_expired_sessions(200).unwrap(), 2);
        assert_eq!(
            db.session_user(&[3; 32], 250).unwrap().as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn password_change_and_deletion_end_sessions() {
        let (_dir, db) = database();
        db.add_user("alice", "old", None, None).unwrap();
        db.add_user("bob", "hash", None, None).unwrap();
        db.create_session("alice", &[1; 32], 1000).unwrap();
        db.create_session("bob", &[2; 32], 1000).unwrap();
        db.set_password("alice", "new").unwrap();
        assert_eq!(db.user("alice").unwrap().unwrap().password_hash, "new");
        assert_eq!(db.session_user(&[1; 32], 0).unwrap(), None);
        assert!(matches!(
            db.set_password("nobody", "x"),
            Err(DbError::NoSuchUser(_))
        ));
        db.delete_user("bob").unwrap();
        assert_eq!(db.user("bob").unwrap(), None);
        assert_eq!(db.session_user(&[2; 32], 0).unwrap(), None);
        assert!(!db.revoke_session(&[2; 32]).unwrap());
        assert!(matches!(db.delete_user("bob"), Err(DbError::NoSuchUser(_))));
    }

    #[test]
    fn two_handles_see_each_others_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        let server = UserDb::open(&path).unwrap();
        let admin = UserDb::open(&path).unwrap();
        admin.add_user("alice", "first", None, None).unwrap();
        assert_eq!(
            server.user("alice").unwrap().unwrap().password_hash,
            "first"
        );
        server.create_session("alice", &TOKEN, 1000).unwrap();
        admin.set_password("alice", "second").unwrap();
        assert_eq!(
            server.user("alice").unwrap().unwrap().password_hash,
            "second"
        );
        assert_eq!(server.session_user(&TOKEN, 0).unwrap(), None);
        server.add_used("alice", 10).unwrap();
        assert_eq!(admin.usage("alice").unwrap(), (10, None));
    }

    #[test]
    fn reopening_keeps_the_data_and_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        UserDb::open(&path)
            .unwrap()
            .add_user("alice", "hash", Some(5), None)
            .unwrap();
        let db = UserDb::open(&path).unwrap();
        assert_eq!(db.usage("alice").unwrap(), (0, Some(5)));
        let version: i64 = db
            .lock()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = db
            .lock()
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[cfg(unix)]
    #[test]
    fn database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, db) = database();
        db.add_user("alice", "hash", None, None).unwrap();
        for name in ["users.db", "users.db-wal"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        drop(UserDb::open(&path).unwrap());
        let connection = Connection::open(&path).unwrap();
        connection
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(connection);
        assert!(
            matches!(UserDb::open(&path), Err(DbError::NewerSchema { found, .. }) if found == SCHEMA_VERSION + 1)
        );
    }

    #[test]
    fn database_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<UserDb>();
    }
}
