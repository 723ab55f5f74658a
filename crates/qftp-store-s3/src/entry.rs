//! One row of `file_entries`: a file, directory or symlink of a home, and
//! the lookups every namespace change starts with.

use std::time::SystemTime;

use qftp_proto::path::RemotePath;
use qftp_proto::{EntryInfo, EntryKind, ErrorKind};
use qftp_store::{FileError, Footprint};
use tokio_postgres::GenericClient;

use crate::error::{refused, storage};

/// `kind` of a regular file.
pub(crate) const FILE: i16 = 0;
/// `kind` of a directory.
pub(crate) const DIRECTORY: i16 = 1;
/// `kind` of a symlink.
pub(crate) const SYMLINK: i16 = 2;

/// The columns [`Entry::from_row`] reads, in order.
pub(crate) const COLUMNS: &str = "kind, size, mtime, hash, blob, target";

/// A path as the namespace stores it: its names joined with `/`, the home
/// itself being `""` (never stored).
pub(crate) fn key(path: &RemotePath) -> String {
    path.components().join("/")
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) kind: i16,
    pub(crate) size: u64,
    pub(crate) mtime: SystemTime,
    pub(crate) hash: Option<[u8; 32]>,
    pub(crate) blob: Option<String>,
    pub(crate) target: Option<String>,
}

impl Entry {
    /// The entry from `row`'s [`COLUMNS`], starting at column `first`.
    pub(crate) fn from_row(row: &tokio_postgres::Row, first: usize) -> Entry {
        let hash: Option<Vec<u8>> = row.get(first + 3);
        Entry {
            kind: row.get(first),
            size: u64::try_from(row.get::<_, i64>(first + 1)).unwrap_or(0),
            mtime: row.get(first + 2),
            hash: hash.and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok()),
            blob: row.get(first + 4),
            target: row.get(first + 5),
        }
    }

    /// What the entry costs in the ledger.
    pub(crate) fn footprint(&self, entry_cost: u64) -> Footprint {
        if self.kind == FILE {
            Footprint::file(self.size)
        } else {
            Footprint {
                bytes: entry_cost,
                entries: 1,
            }
        }
    }

    /// The entry as the protocol describes it, named `name`.
    pub(crate) fn info(&self, name: String, with_hash: bool) -> EntryInfo {
        let (kind, mode) = match self.kind {
            FILE => (EntryKind::File, 0o644),
            DIRECTORY => (EntryKind::Directory, 0o755),
            _ => (EntryKind::Symlink, 0o777),
        };
        EntryInfo {
            name,
            kind,
            size: if self.kind == FILE { self.size } else { 0 },
            mtime: self.mtime.into(),
            mode,
            hash: if with_hash { self.hash } else { None },
            link_target: self.target.clone(),
        }
    }
}

/// The entry at `path` of `user`'s home; with `lock`, the row is locked
/// for the caller's transaction (`FOR UPDATE`).
pub(crate) async fn lookup(
    client: &impl GenericClient,
    user: &str,
    path: &RemotePath,
    lock: bool,
) -> Result<Option<Entry>, FileError> {
    let locking = if lock { " FOR UPDATE" } else { "" };
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM file_entries WHERE user_name = $1 AND path = $2{locking}"
            ),
            &[&user, &key(path)],
        )
        .await
        .map_err(|error| storage(path, error))?;
    Ok(row.map(|row| Entry::from_row(&row, 0)))
}

/// Deletes the row of `path` (not what lies beneath a directory), in the
/// caller's transaction.
pub(crate) async fn delete_entry(
    client: &impl GenericClient,
    user: &str,
    path: &RemotePath,
) -> Result<(), FileError> {
    client
        .execute(
            "DELETE FROM file_entries WHERE user_name = $1 AND path = $2",
            &[&user, &key(path)],
        )
        .await
        .map_err(|error| storage(path, error))?;
    Ok(())
}

/// Refuses unless `directory` is the home or a directory of it, locking
/// its row against removal for the caller's transaction (`FOR SHARE`).
pub(crate) async fn require_directory(
    client: &impl GenericClient,
    user: &str,
    directory: &RemotePath,
) -> Result<(), FileError> {
    if directory.is_root() {
        return Ok(());
    }
    let row = client
        .query_opt(
            "SELECT kind FROM file_entries WHERE user_name = $1 AND path = $2 FOR SHARE",
            &[&user, &key(directory)],
        )
        .await
        .map_err(|error| storage(directory, error))?;
    match row.map(|row| row.get::<_, i16>(0)) {
        None => Err(refused(ErrorKind::NotFound, directory, "no such directory")),
        Some(DIRECTORY) => Ok(()),
        Some(_) => Err(refused(
            ErrorKind::NotADirectory,
            directory,
            "not a directory",
        )),
    }
}
