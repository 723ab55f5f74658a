//! How database, object store and ledger failures become [`FileError`]s,
//! naming the path as the user wrote it.

use qftp_proto::ErrorKind;
use qftp_proto::path::RemotePath;
use qftp_store::error::cause_chain;
use qftp_store::{FileError, LedgerError};

/// A failure of the database or the object store while working on `path`.
pub(crate) fn storage(path: &RemotePath, error: impl std::error::Error + 'static) -> FileError {
    FileError::Storage {
        path: path.to_string(),
        reason: cause_chain(&error),
    }
}

/// A refusal of `kind` about `path`.
pub(crate) fn refused(kind: ErrorKind, path: &RemotePath, what: &str) -> FileError {
    FileError::refused(kind, format!("{path}: {what}"))
}

/// A ledger's refusal or failure about `path`.
pub(crate) fn from_ledger(path: &RemotePath, error: LedgerError) -> FileError {
    match error {
        LedgerError::QuotaExceeded { needed, free } => refused(
            ErrorKind::QuotaExceeded { needed, free },
            path,
            &format!("quota exceeded: {needed} bytes needed, {free} free"),
        ),
        LedgerError::TooManyEntries { limit } => refused(
            ErrorKind::LimitReached,
            path,
            &format!("too many files and directories (limit {limit})"),
        ),
        LedgerError::Busy => refused(
            ErrorKind::Busy,
            path,
            "another upload of this path is in flight",
        ),
        LedgerError::LeaseLost => FileError::LeaseLost {
            path: path.to_string(),
        },
        other => storage(path, other),
    }
}
