//! The error a single request ends with, as the client will see it.

use std::io;

use qftp_proto::transfer::TransferError;
use qftp_proto::{ErrorKind, ErrorReply};

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
