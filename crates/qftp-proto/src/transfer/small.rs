//! A small upload (`PutSmall`), as the server receives it.
//!
//! ```text
//! client                                    server
//! PutSmall { size, hash, .. }     ───────▶  SmallUploadReceiver::open(size, hash)
//! data stream: DataHeader { offset: 0 } ─▶  ◀ HeaderArrived { offset: 0 }
//!   (sent at once, no PutReady)             ▶ AcceptStream { start: 0, length: size, .. }
//!                                           ◀ Bytes(n) …, ◀ StreamFinished
//!                                           ▶ Verify, ◀ HashComputed(hash)
//!                                           ▶ Commit(VerifiedHash)
//!                                           write, fsync, rename, charge the quota
//!                                           ◀ Committed
//!                                           ▶ Done(summary)
//! PutDone { bytes_received: size } ◀─────
//! ```
//!
//! (`◀` is an event the machine is told, `▶` the action it answers.)
//!
//! The file is at most [`crate::SMALL_FILE_MAX`] bytes, so the driver may
//! hold it in memory; it is never resumed, so its stream starts at 0, and
//! its hash came with the request, so no `PutCommit` follows. The client
//! needs no machine for it: it decides with [`crate::transfer::is_small`]
//! and sends both at once.

use crate::message::HashBytes;
use crate::transfer::error::TransferError;
use crate::transfer::event::{ReceiveAction, ReceiveEvent, TransferSummary};
use crate::transfer::limits;
use crate::transfer::machine::{self, Machine};
use crate::transfer::receipt::Receipt;
use crate::transfer::stream::StreamSpan;

/// Where the server's side of a small upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmallUploadState {
    /// `PutSmall` was accepted; waiting for the data stream.
    AwaitingStream {
        /// The declared size.
        size: u64,
        /// The declared hash.
        hash: HashBytes,
    },
    /// The data stream is being received, verified or committed.
    Receiving(Receipt),
    /// The file is stored under its final name.
    Done(TransferSummary),
    /// A rule was broken.
    Failed(TransferError),
}

/// The server's side of one small upload.
#[derive(Debug, Clone)]
pub struct SmallUploadReceiver {
    state: SmallUploadState,
}

impl SmallUploadReceiver {
    /// Accepts `PutSmall { size, hash, .. }`; a size above
    /// [`crate::SMALL_FILE_MAX`] is refused.
    pub fn open(size: u64, hash: HashBytes) -> Result<Self, TransferError> {
        Ok(Self {
            state: SmallUploadState::AwaitingStream {
                size: limits::check_small_size(size)?,
                hash,
            },
        })
    }

    /// Where the upload stands.
    pub fn state(&self) -> &SmallUploadState {
        &self.state
    }

    /// Handles one event; a refused event leaves the upload failed.
    pub fn handle(&mut self, event: ReceiveEvent) -> Result<ReceiveAction, TransferError> {
        machine::run(self, event)
    }
}

impl Machine for SmallUploadReceiver {
    type Event = ReceiveEvent;
    type Action = ReceiveAction;

    fn describe(&self) -> &'static str {
        match &self.state {
            SmallUploadState::AwaitingStream { .. } => "waiting for its data stream",
            SmallUploadState::Receiving(receipt) => receipt.describe(),
            SmallUploadState::Done(_) => "done",
            SmallUploadState::Failed(_) => "failed",
        }
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.state,
            SmallUploadState::Done(_) | SmallUploadState::Failed(_)
        )
    }

    fn step(&mut self, event: ReceiveEvent) -> Result<Option<ReceiveAction>, TransferError> {
        match (&mut self.state, event) {
            (
                SmallUploadState::AwaitingStream { size, hash },
                ReceiveEvent::HeaderArrived { offset },
            ) => {
                if offset != 0 {
                    return Err(TransferError::WrongOffset {
                        offset,
                        expected: 0,
                    });
                }
                let size = *size;
                self.state =
                    SmallUploadState::Receiving(Receipt::new(StreamSpan::whole(size), Some(*hash)));
                Ok(Some(ReceiveAction::AcceptStream {
                    start: 0,
                    length: size,
                    continue_prefix: false,
                }))
            }
            // The hash was declared up front: a commit is out of order here.
            (SmallUploadState::Receiving(receipt), event) => {
                let action = receipt.handle(event)?;
                if let Some(ReceiveAction::Done(summary)) = action {
                    self.state = SmallUploadState::Done(summary);
                }
                Ok(action)
            }
            _ => Ok(None),
        }
    }

    fn fail(&mut self, error: TransferError) {
        self.state = SmallUploadState::Failed(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReceiveEvent::*;

    const FILE: HashBytes = [1; 32];
    const WRONG: HashBytes = [3; 32];

    fn receiving(size: u64) -> SmallUploadReceiver {
        let mut small = SmallUploadReceiver::open(size, FILE).unwrap();
        assert_eq!(
            small.handle(HeaderArrived { offset: 0 }),
            Ok(ReceiveAction::AcceptStream {
                start: 0,
                length: size,
                continue_prefix: false
            })
        );
        small
    }

    #[test]
    fn a_small_upload_commits_its_verified_body() {
        let mut small = receiving(5);
        small.handle(Bytes(5)).unwrap();
        assert_eq!(small.handle(StreamFinished), Ok(ReceiveAction::Verify));
        assert!(matches!(
            small.handle(HashComputed(FILE)),
            Ok(ReceiveAction::Commit(verified)) if verified.as_bytes() == &FILE
        ));
        assert_eq!(
            small.handle(Committed),
            Ok(ReceiveAction::Done(TransferSummary {
                size: 5,
                transferred: 5,
                resumed: 0
            }))
        );
    }

    #[test]
    fn a_small_upload_is_small() {
        let size = crate::SMALL_FILE_MAX + 1;
        assert_eq!(
            SmallUploadReceiver::open(size, FILE).unwrap_err(),
            TransferError::TooLargeForSmall {
                size,
                max: crate::SMALL_FILE_MAX
            }
        );
        assert!(SmallUploadReceiver::open(crate::SMALL_FILE_MAX, FILE).is_ok());
        assert!(SmallUploadReceiver::open(0, FILE).is_ok());
    }

    #[test]
    fn a_small_upload_starts_at_zero() {
        let mut small = SmallUploadReceiver::open(5, FILE).unwrap();
        assert_eq!(
            small.handle(HeaderArrived { offset: 2 }),
            Err(TransferError::WrongOffset {
                offset: 2,
                expected: 0
            })
        );
    }

    #[test]
    fn a_small_upload_has_its_exact_size_and_hash() {
        let mut small = receiving(5);
        assert!(matches!(
            small.handle(Bytes(6)),
            Err(TransferError::TooLong { .. })
        ));
        let mut small = receiving(5);
        small.handle(Bytes(4)).unwrap();
        assert!(matches!(
            small.handle(StreamFinished),
            Err(TransferError::Short { .. })
        ));
        let mut small = SmallUploadReceiver::open(5, WRONG).unwrap();
        small.handle(HeaderArrived { offset: 0 }).unwrap();
        small.handle(Bytes(5)).unwrap();
        small.handle(StreamFinished).unwrap();
        assert!(matches!(
            small.handle(HashComputed(FILE)),
            Err(TransferError::HashMismatch(_))
        ));
    }

    #[test]
    fn a_small_upload_takes_no_commit_and_no_abort() {
        let mut small = receiving(5);
        assert!(small.handle(CommitRequested { hash: FILE }).is_err());
        let mut small = receiving(5);
        assert!(small.handle(Aborted).is_err());
        let mut small = SmallUploadReceiver::open(5, FILE).unwrap();
        assert!(small.handle(Bytes(1)).is_err(), "bytes before the header");
    }
}
