//! Why a transfer machine refused an event.

use crate::hash::HashMismatch;
use crate::message::ErrorKind;

/// A transfer broke one of its rules; the machine that says so has failed
/// and accepts no further event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The declared size is larger than any file can be.
    #[error("a file of {size} bytes is larger than any file that can be stored (at most {max})")]
    TooLarge {
        /// The declared size.
        size: u64,
        /// [`crate::transfer::FILE_SIZE_MAX`].
        max: u64,
    },
    /// A small upload declared more than [`crate::SMALL_FILE_MAX`].
    #[error("{size} bytes is too large for a small upload (at most {max})")]
    TooLargeForSmall {
        /// The declared size.
        size: u64,
        /// [`crate::SMALL_FILE_MAX`].
        max: u64,
    },
    /// An offset lies beyond the end of the file.
    #[error("offset {offset} is past the end of the {size}-byte file")]
    OffsetPastSize {
        /// The offset named.
        offset: u64,
        /// The file's size.
        size: u64,
    },
    /// An upload's data stream starts neither at 0 nor at the offset the
    /// server offered.
    #[error("data must start at 0 or {offered}, not {offset}")]
    NotAResumePoint {
        /// Where the stream starts.
        offset: u64,
        /// The offset the server offered in `PutReady`.
        offered: u64,
    },
    /// A data stream starts somewhere other than the one agreed offset.
    #[error("the data stream starts at {offset}, not at the agreed {expected}")]
    WrongOffset {
        /// Where the stream starts.
        offset: u64,
        /// Where it had to start.
        expected: u64,
    },
    /// The server offered to continue a download the client had not
    /// offered to resume, or at another length.
    #[error("the server offered to resume at {offset}, which was not asked")]
    UnaskedResume {
        /// The offset the server offered.
        offset: u64,
    },
    /// The data stream carried more than the declared size.
    #[error("the data stream carried {moved} bytes, more than the {expected} declared")]
    TooLong {
        /// Bytes counted so far, the last chunk included.
        moved: u64,
        /// Bytes that were due.
        expected: u64,
    },
    /// The data stream ended before all declared bytes arrived.
    #[error("the data stream ended after {moved} of {expected} bytes")]
    Short {
        /// Bytes that arrived.
        moved: u64,
        /// Bytes that were due.
        expected: u64,
    },
    /// The data does not hash to what the peer declared.
    #[error(transparent)]
    HashMismatch(#[from] HashMismatch),
    /// The peer's summary of a finished upload disagrees with what was sent.
    #[error(
        "the server reports {bytes_received} bytes received after {resumed} resumed, but {sent} were sent after {start}"
    )]
    SummaryMismatch {
        /// `bytes_received` in the peer's `PutDone`.
        bytes_received: u64,
        /// `resumed` in the peer's `PutDone`.
        resumed: u64,
        /// Bytes this side sent.
        sent: u64,
        /// Where this side started.
        start: u64,
    },
    /// An event that makes no sense in the machine's current state.
    #[error("unexpected {event} while the transfer is {state}")]
    OutOfOrder {
        /// The event, in words.
        event: &'static str,
        /// The state it arrived in, in words.
        state: &'static str,
    },
}

impl TransferError {
    /// The class of failure to report to the peer in an
    /// [`crate::message::ErrorReply`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransferError::TooLarge { .. } => ErrorKind::LimitReached,
            TransferError::TooLong { .. }
            | TransferError::Short { .. }
            | TransferError::HashMismatch(_) => ErrorKind::IntegrityMismatch,
            TransferError::TooLargeForSmall { .. }
            | TransferError::OffsetPastSize { .. }
            | TransferError::NotAResumePoint { .. }
            | TransferError::WrongOffset { .. }
            | TransferError::UnaskedResume { .. }
            | TransferError::SummaryMismatch { .. }
            | TransferError::OutOfOrder { .. } => ErrorKind::Protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_numbers() {
        let cases = [
            (
                TransferError::TooLong {
                    moved: 11,
                    expected: 10,
                },
                "the data stream carried 11 bytes, more than the 10 declared",
            ),
            (
                TransferError::Short {
                    moved: 3,
                    expected: 10,
                },
                "the data stream ended after 3 of 10 bytes",
            ),
            (
                TransferError::NotAResumePoint {
                    offset: 5,
                    offered: 7,
                },
                "data must start at 0 or 7, not 5",
            ),
            (
                TransferError::OffsetPastSize {
                    offset: 12,
                    size: 10,
                },
                "offset 12 is past the end of the 10-byte file",
            ),
            (
                TransferError::OutOfOrder {
                    event: "commit",
                    state: "waiting for its data stream",
                },
                "unexpected commit while the transfer is waiting for its data stream",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }
}
