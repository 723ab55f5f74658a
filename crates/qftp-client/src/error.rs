//! The errors the client library reports.

use std::path::PathBuf;

use qftp_proto::{ErrorKind, ErrorReply};
use qftp_transport::Fingerprint;

use crate::refusal::Refusal;

/// Something the client could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server could not be reached or the handshake failed.
    #[error("server unreachable: {address}: {reason}")]
    Unreachable {
        /// The address tried.
        address: String,
        /// Why it failed.
        reason: String,
    },
    /// The connection could not move to a new local socket.
    #[error("cannot move the connection to a new local socket: {0}")]
    Rebind(String),
    /// The server presented a certificate other than the pinned one.
    #[error(
        "certificate changed!\n\
         the server {host} presented a certificate with fingerprint\n    {presented}\n\
         but the pinned fingerprint is\n    {pinned}\n\
         this can mean someone is intercepting the connection, or the server's certificate was replaced.\n\
         if you know it was replaced, run `qftp known-hosts remove {host}` (it edits {known_hosts}) and log in again"
    )]
    CertificateChanged {
        /// host:port.
        host: String,
        /// The fingerprint in the known-hosts file.
        pinned: Fingerprint,
        /// The fingerprint the server presented.
        presented: Fingerprint,
        /// The known-hosts file.
        known_hosts: PathBuf,
    },
    /// The certificate is not trusted and the user did not accept it.
    #[error("certificate of {host} ({fingerprint}) is not trusted")]
    Untrusted {
        /// host:port.
        host: String,
        /// The fingerprint presented.
        fingerprint: Fingerprint,
    },
    /// The server refused a request.
    #[error("{}", .0.message)]
    Server(ErrorReply),
    /// The server or the network broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection ended.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// Not logged in.
    #[error("not logged in; run `qftp login USER@HOST` first")]
    NotLoggedIn,
    /// A downloaded file did not match the server's hash.
    #[error("{path}: BLAKE3 mismatch after download; the partial file was discarded")]
    IntegrityMismatch {
        /// The local path.
        path: PathBuf,
    },
    /// The local file system has too little room for a pull.
    #[error(
        "not enough space: needs {}, {} free on {} ({} missing)",
        qftp_proto::size::format_size(*needed),
        qftp_proto::size::format_size(*free),
        path.display(),
        qftp_proto::size::format_size(needed.saturating_sub(*free))
    )]
    NoSpace {
        /// The local directory the files were to land in.
        path: PathBuf,
        /// Bytes the pull needs.
        needed: u64,
        /// Bytes free there.
        free: u64,
    },
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Local {
        /// The local path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server sent an entry that is not safe to write here (a hostile
    /// or broken server); nothing was written for it.
    #[error("refused {name:?}: {reason}")]
    Refused {
        /// The entry's name as the server sent it (or the part of it
        /// that reached the destination).
        name: String,
        /// Why.
        reason: Refusal,
    },
    /// The input was not acceptable.
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// The server's error kind, when the server refused the request.
    pub fn server_kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Server(reply) => Some(reply.kind),
            _ => None,
        }
    }

    /// Wraps a local I/O error with its path.
    pub fn local(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClientError::Local {
            path: path.into(),
            source,
        }
    }
}

impl From<qftp_transport::framed::FramedError> for ClientError {
    fn from(error: qftp_transport::framed::FramedError) -> Self {
        ClientError::Protocol(error.to_string())
    }
}

impl From<crate::address::AddressError> for ClientError {
    fn from(error: crate::address::AddressError) -> Self {
        ClientError::Usage(error.to_string())
    }
}
