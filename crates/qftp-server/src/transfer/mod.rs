//! Uploads and downloads: one unidirectional QUIC stream per file.
//!
//! * [`routing`]: the transfers open on one connection, and data streams
//!   routed to them by transfer id.
//! * [`upload`]: a streamed upload, from `PutOpen` to its commit.
//! * [`small`]: the one-exchange small upload (`PutSmall`).
//! * [`commit`]: the atomic commit both kinds of upload end with.
//! * [`download`]: a download, from `GetOpen` to `GetDone`.
//! * [`sweep`]: the periodic removal of abandoned partial files.
//!
//! The message sequences are documented in `qftp-proto`. Nothing here
//! reads the control stream or checks sessions: requests arrive through
//! [`crate::requests`].

pub(crate) mod commit;
pub(crate) mod download;
pub mod routing;
pub(crate) mod small;
pub mod sweep;
pub(crate) mod upload;
