//! The error a single request ends with, as the client will see it.

use std::io;

use qftp_proto::size::format_size;
use qftp_proto::transfer::TransferError;
use qftp_proto::{ErrorKind, ErrorReply};
use qftp_store::LedgerError;

/// A request failed; `kind` is for programs, `message` for people.
///
/// Messages name paths as the user sees them (relative to their home) and
/// never include server paths, passwords or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// One line for the user.
    pub message: String,
}

impl RequestError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Translates an I/O error on `user_path` (the path as the user wrote it).
    pub fn from_io(error: &io::Error, user_path: &str) -> Self {
        use io::ErrorKind as Io;
        let (kind, what) = match error.kind() {
            Io::NotFound => (ErrorKind::NotFound, "no such file or directory"),
            Io::AlreadyExists => (ErrorKind::AlreadyExists, "already exists"),
            Io::NotADirectory => (ErrorKind::NotADirectory, "not a directory"),
            Io::IsADirectory => (ErrorKind::IsADirectory, "is a directory"),
            Io::DirectoryNotEmpty => (ErrorKind::DirectoryNotEmpty, "directory not empty"),
            Io::InvalidFilename => (ErrorKind::InvalidPath, "invalid file name"),
            Io::StorageFull | Io::QuotaExceeded => {
                (ErrorKind::Internal, "the server's disk is full")
            }
            // cap-std reports an attempt to leave the sandbox (through `..`
            // or a symlink) as PermissionDenied with this message.
            Io::PermissionDenied if error.to_string().contains("outside of the filesystem") => {
                (ErrorKind::OutsideHome, "outside your home")
            }
            Io::PermissionDenied => (ErrorKind::PermissionDenied, "permission denied"),
            _ => (ErrorKind::Internal, "server error"),
        };
        if kind == ErrorKind::Internal {
            tracing::warn!(path = user_path, %error, "file system error");
        }
        Self::new(kind, format!("{user_path}: {what}"))
    }

    /// A rule of the transfer core broken on `user_path`: its class goes to
    /// the peer as [`TransferError::kind`] says, its words after the path.
    pub fn from_transfer(error: &TransferError, user_path: &str) -> Self {
        Self::new(error.kind(), format!("{user_path}: {error}"))
    }

    /// Translates a quota ledger's error on `user_path`; a failure of the
    /// store behind it is logged and told to the user as a server error.
    pub fn from_ledger(error: &LedgerError, user_path: &str) -> Self {
        match error {
            LedgerError::QuotaExceeded { needed, free } => Self::new(
                ErrorKind::QuotaExceeded {
                    needed: *needed,
                    free: *free,
                },
                format!(
                    "{user_path}: quota exceeded: needs {}, {} free",
                    format_size(*needed),
                    format_size(*free)
                ),
            ),
            LedgerError::TooManyEntries { limit } => Self::new(
                ErrorKind::QuotaExceeded { needed: 0, free: 0 },
                format!("{user_path}: too many files and directories (limit {limit})"),
            ),
            LedgerError::Busy => Self::new(
                ErrorKind::Busy,
                format!("{user_path}: another upload to this file is in progress"),
            ),
            LedgerError::LeaseLost => Self::new(
                ErrorKind::Busy,
                format!("{user_path}: the upload was taken over"),
            ),
            error => {
                tracing::error!(%error, "quota ledger");
                Self::new(
                    ErrorKind::Internal,
                    "server error: user database unavailable",
                )
            }
        }
    }

    /// The wire form.
    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply {
            kind: self.kind,
            message: self.message.clone(),
        }
    }
}

/// A result of one request.
pub type RequestResult<T> = Result<T, RequestError>;
