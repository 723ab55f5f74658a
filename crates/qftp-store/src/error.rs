//! The errors of the stores.
//!
//! Three enums: [`StoreError`] for users, sessions and the throttle,
//! [`LedgerError`] for the quota ledger (which adds the refusals a
//! reservation can meet), [`FileError`] for the file stores (whose refusals
//! carry the protocol's [`ErrorKind`], so the server answers a client with
//! exactly what the store said). [`cause_chain`] puts an underlying
//! failure and its causes on one line for their messages.

use qftp_proto::ErrorKind;

/// A user, session or throttle operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No user of this name.
    #[error("no such user: {0}")]
    UnknownUser(String),
    /// A user of this name exists already.
    #[error("user {0} exists already")]
    UserExists(String),
    /// The name breaks the rules of user names.
    #[error("invalid user name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A value the store cannot hold (a number beyond its range, a home
    /// it cannot name); nothing was changed.
    #[error("cannot store {0}")]
    Unstorable(String),
    /// A stored value is not what the store expects (corrupt or from a
    /// newer version).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The storage behind the store failed (a database error, a lost
    /// connection); the operation may or may not have happened.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// A quota ledger operation failed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The bytes do not fit: `used + reserved + needed > quota`.
    #[error("quota exceeded: {needed} bytes needed, {free} free")]
    QuotaExceeded {
        /// Bytes asked for.
        needed: u64,
        /// Bytes still free.
        free: u64,
    },
    /// The entries do not fit the entry limit.
    #[error("too many files and directories (limit {limit})")]
    TooManyEntries {
        /// The entry limit.
        limit: u64,
    },
    /// Another live upload holds this upload key.
    #[error("another upload of this path is in flight")]
    Busy,
    /// The reservation's lease expired or was taken over: this holder may
    /// no longer commit, renew or release it.
    #[error("the upload's lease was lost")]
    LeaseLost,
    /// The user or its storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A file store operation failed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Refused for a reason the client is told: `kind` for programs,
    /// `message` (naming the path as the user wrote it, never a server
    /// path) for people.
    #[error("{message}")]
    Refused {
        /// The class of refusal, as the protocol carries it.
        kind: ErrorKind,
        /// One line for the user.
        message: String,
    },
    /// An open upload's lease was lost (another node took it over, or it
    /// expired): the upload may not be committed.
    #[error("{path}: the upload's lease was lost")]
    LeaseLost {
        /// The path as the user wrote it.
        path: String,
    },
    /// The storage failed (I/O, a network error to an object store).
    #[error("{path}: storage failed: {reason}")]
    Storage {
        /// The path as the user wrote it.
        path: String,
        /// What failed, for the log.
        reason: String,
    },
}

impl FileError {
    /// A refusal of `kind` with `message`.
    pub fn refused(kind: ErrorKind, message: impl Into<String>) -> FileError {
        FileError::Refused {
            kind,
            message: message.into(),
        }
    }

    /// The protocol's class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FileError::Refused { kind, .. } => *kind,
            FileError::LeaseLost { .. } => ErrorKind::Busy,
            FileError::Storage { .. } => ErrorKind::Internal,
        }
    }
}

/// `error` and its causes, one line (`outer: inner: root`): how an
/// implementation's database or network failure becomes the message of
/// [`StoreError::Unavailable`] and the like.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
