//! The audit trail: one INFO line, under the target `qftp_server::audit`,
//! for every finished operation that changes or moves data (put, get,
//! mkdir, rm, mv) and for every login and logout.
//!
//! Each operation line names the user, their address, the operation, the
//! path (and the new path of a rename), the bytes moved, how long it took
//! and its result (`ok`, or the kind of error the client was told). The
//! lines never carry a password or a token. An administrator keeps only
//! these with `RUST_LOG=qftp_server::audit=info`.
//!
//! The same end feeds the operation's figures to [`crate::metrics`].
//!
//! This module decides nothing about the operations; their handlers tell
//! it when one starts and how it ended.

use std::net::SocketAddr;
use std::time::Instant;

use qftp_proto::Request;

use crate::error::RequestError;
use crate::metrics::LoginMethod;
use crate::session::Context;

/// An operation on its way to its audit line.
#[derive(Debug)]
pub(crate) struct Audited {
    operation: &'static str,
    path: String,
    to: Option<String>,
    started: Instant,
}

impl Audited {
    /// Starts timing `operation` on `path`.
    pub(crate) fn start(operation: &'static str, path: &str) -> Self {
        Self {
            operation,
            path: path.to_owned(),
            to: None,
            started: Instant::now(),
        }
    }

    /// The audited operation a navigation request or small upload is, with
    /// the bytes it moves; `None` for requests that change nothing, and for
    /// the transfers that report their own end (`PutOpen`, `GetOpen`).
    pub(crate) fn of_request(request: &Request) -> Option<(Self, u64)> {
        match request {
            Request::Mkdir { path, .. } => Some((Self::start("mkdir", path), 0)),
            Request::Remove { path, .. } => Some((Self::start("rm", path), 0)),
            Request::Rename { from, to } => {
                let mut audited = Self::start("mv", from);
                audited.to = Some(to.clone());
                Some((audited, 0))
            }
            Request::PutSmall { path, size, .. } => Some((Self::start("put", path), *size)),
            _ => None,
        }
    }

    /// Writes the line: `bytes` moved, and how the operation ended.
    pub(crate) fn finish(self, context: &Context, bytes: u64, outcome: Result<(), &RequestError>) {
        context.live.add_bytes(bytes);
        let user = context.session.user.as_str();
        let remote = context.connection.remote_address();
        let elapsed = self.started.elapsed();
        context
            .state
            .metrics
            .operation_finished(self.operation, bytes, elapsed, outcome.is_ok());
        let duration_ms = elapsed.as_millis() as u64;
        let (operation, path, to) = (self.operation, self.path.as_str(), self.to.as_deref());
        let (result, error) = match outcome {
            Ok(()) => ("ok".to_owned(), None),
            Err(error) => (format!("{:?}", error.kind), Some(error.message.as_str())),
        };
        tracing::info!(
            user,
            %remote,
            operation,
            path,
            to,
            bytes,
            duration_ms,
            result,
            error,
            "audit"
        );
    }
}

/// The line for a successful login.
pub(crate) fn login(user: &str, remote: SocketAddr, method: LoginMethod) {
    let method = match method {
        LoginMethod::Password => "password",
        LoginMethod::Token => "token",
    };
    tracing::info!(user, %remote, operation = "login", method, result = "ok", "audit");
}

/// The line for a logout, which ended `revoked` sessions.
pub(crate) fn logout(user: &str, remote: SocketAddr, revoked: bool) {
    tracing::info!(user, %remote, operation = "logout", revoked, result = "ok", "audit");
}
