//! What the transfer machines are told and what they answer.
//!
//! The receiving end of a transfer (the server for uploads, the client for
//! downloads) is told [`ReceiveEvent`]s and answers [`ReceiveAction`]s; the
//! sending end is told [`SendEvent`]s and answers [`SendAction`]s. Every
//! event gets exactly one action or an error. Byte counts and hashes come
//! in as events because the machines touch neither the data nor the disk:
//! the driver moves and hashes the bytes and reports what happened.

use crate::hash::VerifiedHash;
use crate::message::HashBytes;

/// Something the receiving end of a transfer learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveEvent {
    /// Server, upload: the quota is reserved and the partial file holds
    /// `length` bytes (0 when there was none).
    PartialFound {
        /// The partial file's length.
        length: u64,
    },
    /// Client, download: `GetReady { size, offset, .. }` arrived.
    Ready {
        /// The whole file's size.
        size: u64,
        /// Where the data stream starts.
        offset: u64,
    },
    /// The local prefix asked for by [`ReceiveAction::HashPrefix`] hashes
    /// to this.
    PrefixHashed(HashBytes),
    /// A data stream for this transfer arrived with this header offset.
    HeaderArrived {
        /// The `offset` of its [`crate::message::DataHeader`].
        offset: u64,
    },
    /// The data stream carried this many more bytes.
    Bytes(u64),
    /// The data stream ended (the peer finished it).
    StreamFinished,
    /// The peer declared the whole file's hash: `PutCommit` for an upload,
    /// `GetDone` for a download (a small upload declares it up front).
    CommitRequested {
        /// BLAKE3 of the whole file, as the peer says.
        hash: HashBytes,
    },
    /// The driver's hash of the whole file, as asked for by
    /// [`ReceiveAction::Verify`].
    HashComputed(HashBytes),
    /// The verified file is durable under its final name.
    Committed,
    /// Server, upload: the client abandoned the upload (`PutAbort`).
    Aborted,
}

impl ReceiveEvent {
    /// The event in words, for [`crate::transfer::TransferError::OutOfOrder`].
    pub fn name(&self) -> &'static str {
        match self {
            ReceiveEvent::PartialFound { .. } => "partial length",
            ReceiveEvent::Ready { .. } => "ready answer",
            ReceiveEvent::PrefixHashed(_) => "prefix hash",
            ReceiveEvent::HeaderArrived { .. } => "data header",
            ReceiveEvent::Bytes(_) => "data bytes",
            ReceiveEvent::StreamFinished => "end of the data stream",
            ReceiveEvent::CommitRequested { .. } => "commit",
            ReceiveEvent::HashComputed(_) => "computed hash",
            ReceiveEvent::Committed => "completed commit",
            ReceiveEvent::Aborted => "abort",
        }
    }
}

/// What the receiving end's driver must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveAction {
    /// Hash the first `length` bytes of the local partial file and report
    /// [`ReceiveEvent::PrefixHashed`]; keep the hasher, a resume continues it.
    HashPrefix {
        /// How many bytes to hash.
        length: u64,
    },
    /// Server, upload: answer `PutReady { offset, prefix_hash }`.
    SendReady {
        /// Where the client may continue.
        offset: u64,
        /// BLAKE3 of the first `offset` bytes, when `offset` is not 0.
        prefix_hash: Option<HashBytes>,
    },
    /// Receive the data stream: write `length` bytes at `start` (cutting
    /// the partial file there) and hash them, continuing the prefix's
    /// hasher when `continue_prefix` is set and with a fresh one otherwise.
    AcceptStream {
        /// The file offset of the first byte.
        start: u64,
        /// The bytes the stream must carry.
        length: u64,
        /// Whether the bytes before `start` are kept and already hashed.
        continue_prefix: bool,
    },
    /// Keep reading the data stream.
    AcceptBytes,
    /// Nothing to do until the next event.
    Wait,
    /// Finish the hash of the whole file and report
    /// [`ReceiveEvent::HashComputed`].
    Verify,
    /// The file is complete and hashes to what the peer declared: make it
    /// durable, give it its final name, then report [`ReceiveEvent::Committed`].
    Commit(VerifiedHash),
    /// The transfer is complete: the server answers
    /// `PutDone { bytes_received: transferred, resumed }`; the client
    /// reports the outcome.
    Done(TransferSummary),
    /// Server, upload: end the transfer and keep the partial file for a
    /// later resume.
    Abandon,
}

/// Something the sending end of a transfer learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendEvent {
    /// Client, upload: `PutReady { offset, prefix_hash }` arrived.
    Ready {
        /// The length of the server's partial file.
        offset: u64,
        /// BLAKE3 of that prefix.
        prefix_hash: Option<HashBytes>,
    },
    /// The local prefix asked for by [`SendAction::HashPrefix`] hashes to
    /// this.
    PrefixHashed(HashBytes),
    /// This many more bytes went out on the data stream.
    Bytes(u64),
    /// The data stream is finished on this side.
    StreamFinished,
    /// The driver's hash of the whole file, as asked for by
    /// [`SendAction::FinishHash`].
    HashComputed(HashBytes),
    /// Client, upload: `PutDone { bytes_received, resumed }` arrived.
    Done {
        /// Bytes the server received in this transfer.
        bytes_received: u64,
        /// Bytes the server already held.
        resumed: u64,
    },
}

impl SendEvent {
    /// The event in words, for [`crate::transfer::TransferError::OutOfOrder`].
    pub fn name(&self) -> &'static str {
        match self {
            SendEvent::Ready { .. } => "ready answer",
            SendEvent::PrefixHashed(_) => "prefix hash",
            SendEvent::Bytes(_) => "data bytes",
            SendEvent::StreamFinished => "end of the data stream",
            SendEvent::HashComputed(_) => "computed hash",
            SendEvent::Done { .. } => "done answer",
        }
    }
}

/// What the sending end's driver must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAction {
    /// Hash the first `length` bytes of the local file and report
    /// [`SendEvent::PrefixHashed`]; keep the hasher, a resume continues it.
    HashPrefix {
        /// How many bytes to hash.
        length: u64,
    },
    /// Start the data stream at `start` (the server first answers
    /// `GetReady { offset: start, .. }`): open it with
    /// `DataHeader { transfer_id, offset: start }` and send `length` bytes
    /// from `start`, hashing them into the prefix's hasher when
    /// `continue_prefix` is set and into a fresh one otherwise.
    Start {
        /// The file offset of the first byte.
        start: u64,
        /// The bytes the stream must carry.
        length: u64,
        /// Whether the bytes before `start` were hashed already.
        continue_prefix: bool,
    },
    /// Keep sending.
    SendBytes,
    /// Finish the stream's hash of the whole file and report
    /// [`SendEvent::HashComputed`].
    FinishHash,
    /// Declare the whole file's hash: `PutCommit { hash }` for an upload,
    /// `GetDone { hash }` for a download.
    SendHash {
        /// BLAKE3 of the whole file as this side read it.
        hash: HashBytes,
    },
    /// Nothing to do until the next event.
    Wait,
    /// The transfer is complete.
    Done(TransferSummary),
}

/// How one file went, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferSummary {
    /// The whole file's size.
    pub size: u64,
    /// Bytes that travelled in this transfer.
    pub transferred: u64,
    /// Bytes that were already in place from an earlier attempt.
    pub resumed: u64,
}
