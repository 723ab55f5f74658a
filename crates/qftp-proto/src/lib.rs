//! The qftp wire protocol: message types, framing and the codec, with no I/O.
//!
//! This crate knows nothing about sockets, QUIC or files. It defines what the
//! client and the server say to each other and how those messages become
//! bytes, so that every rule about the format can be tested with bytes in and
//! bytes out.
//!
//! # Connection layout
//!
//! A qftp connection is one QUIC connection negotiated with the ALPN
//! [`ALPN`] (`qftp/1`).
//!
//! * The **control stream** is the client's first bidirectional stream. Both
//!   directions carry length-prefixed frames (see [`frame`]). The client
//!   opens with a [`message::ClientHello`]; the server answers with a
//!   [`message::ServerHello`]. After that the client sends
//!   [`message::ClientFrame`]s, each a [`message::Request`] tagged with a
//!   request id of the client's choosing, and the server answers with
//!   [`message::ServerFrame`]s carrying the same id. Most requests get exactly
//!   one answer; listings arrive as several chunks, and a download gets a
//!   second answer once its data stream is complete.
//! * **Data streams** are unidirectional. Each starts with one frame holding a
//!   [`message::DataHeader`] (transfer id, offset; at most
//!   [`transfer::DATA_HEADER_MAX`] bytes) and continues with the raw
//!   bytes of one file, ending when the stream is finished. The length is
//!   known from the open exchange on the control stream, so the receiver
//!   never guesses where the data ends. Uploads flow client to server,
//!   downloads server to client.
//!
//! # Message sequences
//!
//! Login: `Login { user, password }` → `LoggedIn { token, .. }` or an error.
//! A later connection presents the token with `Authenticate { token }`.
//! Before authentication the server accepts only these two requests.
//!
//! Upload (`put`):
//! 1. client → `PutOpen { transfer_id, path, size, mtime, resume }`
//! 2. server reserves quota for the bytes still to come and answers
//!    `PutReady { offset, prefix_hash }`: the length of a partial file it
//!    already holds and the BLAKE3 hash of that prefix (or offset 0).
//! 3. client compares the prefix hash with its own file and opens a data
//!    stream with `DataHeader { transfer_id, offset }`, where the offset is
//!    either the one offered (resume) or 0 (start over), then sends the rest.
//! 4. client → `PutCommit { transfer_id, hash }` with the BLAKE3 of the whole
//!    file; the server checks it against what it received, makes the file
//!    durable and renames it into place, then answers `PutDone`.
//!
//! Small upload (a file of at most [`SMALL_FILE_MAX`] bytes, never resumed):
//! client → `PutSmall { transfer_id, path, size, mtime, hash }` and, without
//! waiting, a data stream with `DataHeader { transfer_id, offset: 0 }` and
//! the whole file; the server checks size and hash, makes the file durable,
//! renames it into place and answers `PutDone`, or an error (and stops the
//! data stream). One round trip per file instead of two, which is what
//! many-small-file trees are bound by.
//!
//! Download (`get`):
//! 1. client → `GetOpen { transfer_id, path, resume }` where `resume` holds
//!    the length and BLAKE3 of a local partial, if any.
//! 2. server → `GetReady { size, mtime, offset }`, then opens a data stream
//!    with `DataHeader { transfer_id, offset }` and the bytes from `offset`.
//! 3. server → `GetDone { hash }` (same request id) with the BLAKE3 of the
//!    whole file as it was read; the client checks it before renaming its
//!    partial into place.
//!
//! # Code map
//!
//! * [`message`]: every message; [`frame`] and [`codec`]: how they become
//!   bytes.
//! * [`path`]: remote paths and symlink targets, normalized and checked.
//! * [`hash`]: declared and verified file hashes.
//! * [`transfer`]: the transfer core, a state machine per end of each
//!   upload and download (events in, actions out), with the data-header
//!   limit, the resume rules and the size checks.
//! * [`size`]: byte sizes as people write them.
//!
//! # Compatibility
//!
//! [`PROTOCOL_VERSION`] changes whenever a message changes shape; the hello
//! exchange refuses a peer with another version. The encoding itself lives
//! behind [`codec`] alone.

pub mod codec;
pub mod frame;
pub mod hash;
pub mod message;
pub mod path;
pub mod size;
pub mod transfer;

pub use codec::CodecError;
pub use frame::{FrameDecoder, FrameError};
pub use hash::{HashMismatch, VerifiedHash};
pub use message::*;

/// The ALPN protocol name that every qftp connection negotiates.
pub const ALPN: &[u8] = b"qftp/1";

/// The protocol version carried in the hello exchange.
pub const PROTOCOL_VERSION: u32 = 2;

/// The default maximum size of one control frame's payload, in bytes.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

/// No peer may configure a frame limit above this.
pub const HARD_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The largest file sent with [`message::Request::PutSmall`]: one exchange
/// instead of two, and a receiver that may hold the whole file in memory.
pub const SMALL_FILE_MAX: u64 = 64 * 1024;

/// The largest number of entries sent in one listing chunk.
pub const LIST_CHUNK_ENTRIES: usize = 512;

/// The suffix of a partial (incomplete) file's name, on either side.
///
/// A client's partial download of `name` is called `.name.qftp-part` and lives in the same
/// directory as its final name, so the final rename never crosses a file
/// system.
pub const PARTIAL_SUFFIX: &str = ".qftp-part";

/// The name of the partial file that holds the incomplete contents of `name`.
pub fn partial_name(name: &str) -> String {
    format!(".{name}{PARTIAL_SUFFIX}")
}

/// Whether `name` is the name of a partial file.
pub fn is_partial_name(name: &str) -> bool {
    name.len() > PARTIAL_SUFFIX.len() + 1 && name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX)
}

/// The directory at the top of every home on a server that holds its
/// partial uploads, one file per upload.
pub const STAGING_DIR: &str = ".qftp-partials";

/// Whether a server reserves `name` for itself: the staging directory and
/// partial files (clients keep their partial downloads beside the final
/// names, and so did servers of earlier releases with uploads). No remote path may contain a reserved name, so no
/// request can reach a partial upload.
pub fn is_reserved_name(name: &str) -> bool {
    name == STAGING_DIR || is_partial_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_round_trip() {
        let partial = partial_name("report.pdf");
        assert_eq!(partial, ".report.pdf.qftp-part");
        assert!(is_partial_name(&partial));
        assert!(!is_partial_name("report.pdf"));
        assert!(!is_partial_name(".qftp-part"));
    }
}
