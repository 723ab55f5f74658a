//! An upload (`put`), as the server receives it and as the client sends it.
//!
//! The exchange, with the event each message becomes:
//!
//! ```text
//! client                                    server
//! UploadSender::new(size, resume)
//!   PutOpen { size, resume, .. }  ───────▶  UploadReceiver::open(size, resume)
//!                                           reserve quota, open the partial
//!                                           ◀ PartialFound { length }
//!                                           ▶ HashPrefix { length }   (resume)
//!                                           ◀ PrefixHashed(hash)
//!                                           ▶ SendReady { offset, prefix_hash }
//! ◀ Ready { offset, prefix_hash }  ◀──────  PutReady { offset, prefix_hash }
//! ▶ HashPrefix { length: offset }  (when worth checking)
//! ◀ PrefixHashed(hash)
//! ▶ Start { start, length, .. }   start = offset on a match, else 0
//!   data stream: DataHeader { offset: start } ─▶ ◀ HeaderArrived { offset }
//!                                           ▶ AcceptStream { start, length, .. }
//! ◀ Bytes(n) …                    ───────▶  ◀ Bytes(n) …
//! ◀ StreamFinished                ───────▶  ◀ StreamFinished
//! ▶ FinishHash, ◀ HashComputed(hash)
//! ▶ SendHash { hash }
//!   PutCommit { hash }            ───────▶  ◀ CommitRequested { hash }
//!                                           ▶ Verify, ◀ HashComputed(hash)
//!                                           ▶ Commit(VerifiedHash)
//!                                           fsync, rename, charge the quota
//!                                           ◀ Committed
//!                                           ▶ Done(summary)
//! ◀ Done { .. }                   ◀──────  PutDone { bytes_received, resumed }
//! ▶ Done(summary)
//! ```
//!
//! (`◀` is an event the machine is told, `▶` the action it answers.)
//!
//! The server refuses a stream that starts anywhere but 0 or its offer, one
//! that carries more or fewer bytes than the rest of the declared size, and
//! a commit whose hash does not match; a `PutCommit` read before the data
//! stream is complete is held until it is. `PutAbort` ([`ReceiveEvent::Aborted`])
//! ends the upload before its commit and keeps the partial for a later
//! resume.

use crate::message::HashBytes;
use crate::transfer::dispatch::{Dispatch, DispatchPhase};
use crate::transfer::error::TransferError;
use crate::transfer::event::{ReceiveAction, ReceiveEvent, SendAction, SendEvent, TransferSummary};
use crate::transfer::limits;
use crate::transfer::machine::{self, Machine};
use crate::transfer::receipt::{Receipt, ReceiptPhase};
use crate::transfer::resume::{self, ResumeCheck};
use crate::transfer::stream::StreamSpan;

/// Where the server's side of an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadState {
    /// `PutOpen` was accepted; waiting for the quota and the partial file.
    Opened {
        /// The declared size.
        size: u64,
        /// Whether the client offered to resume.
        resume: bool,
    },
    /// Waiting for the hash of the partial's first `offset` bytes.
    HashingPrefix {
        /// The declared size.
        size: u64,
        /// The length to offer.
        offset: u64,
    },
    /// `PutReady` is out; waiting for the data stream.
    Ready {
        /// The declared size.
        size: u64,
        /// The offset offered.
        offset: u64,
    },
    /// The data stream is being received, verified or committed.
    Receiving(Receipt),
    /// The file is stored under its final name.
    Done(TransferSummary),
    /// The client abandoned the upload; the partial stays.
    Abandoned,
    /// A rule was broken.
    Failed(TransferError),
}

/// The server's side of one upload.
#[derive(Debug, Clone)]
pub struct UploadReceiver {
    state: UploadState,
    /// A `PutCommit` read before its data stream arrived.
    early_commit: Option<HashBytes>,
}

impl UploadReceiver {
    /// Accepts `PutOpen { size, resume, .. }`; a size no file can have is
    /// refused.
    pub fn open(size: u64, resume: bool) -> Result<Self, TransferError> {
        Ok(Self {
            state: UploadState::Opened {
                size: limits::check_size(size)?,
                resume,
            },
            early_commit: None,
        })
    }

    /// Where the upload stands.
    pub fn state(&self) -> &UploadState {
        &self.state
    }

    /// Handles one event; a refused event leaves the upload failed.
    pub fn handle(&mut self, event: ReceiveEvent) -> Result<ReceiveAction, TransferError> {
        machine::run(self, event)
    }
}

impl Machine for UploadReceiver {
    type Event = ReceiveEvent;
    type Action = ReceiveAction;

    fn describe(&self) -> &'static str {
        match &self.state {
            UploadState::Opened { .. } => "opening",
            UploadState::HashingPrefix { .. } => "hashing its partial file",
            UploadState::Ready { .. } => "waiting for its data stream",
            UploadState::Receiving(receipt) => receipt.describe(),
            UploadState::Done(_) => "done",
            UploadState::Abandoned => "abandoned",
            UploadState::Failed(_) => "failed",
        }
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.state,
            UploadState::Done(_) | UploadState::Abandoned | UploadState::Failed(_)
        )
    }

    fn step(&mut self, event: ReceiveEvent) -> Result<Option<ReceiveAction>, TransferError> {
        let action = match (&mut self.state, event) {
            (UploadState::Opened { size, resume }, ReceiveEvent::PartialFound { length }) => {
                let size = *size;
                let offset = resume::upload_offer(*resume, length, size);
                if offset > 0 {
                    self.state = UploadState::HashingPrefix { size, offset };
                    ReceiveAction::HashPrefix { length: offset }
                } else {
                    self.state = UploadState::Ready { size, offset: 0 };
                    ReceiveAction::SendReady {
                        offset: 0,
                        prefix_hash: None,
                    }
                }
            }
            (UploadState::HashingPrefix { size, offset }, ReceiveEvent::PrefixHashed(hash)) => {
                let offset = *offset;
                self.state = UploadState::Ready {
                    size: *size,
                    offset,
                };
                ReceiveAction::SendReady {
                    offset,
                    prefix_hash: Some(hash),
                }
            }
            (
                UploadState::Ready { size, offset },
                ReceiveEvent::HeaderArrived { offset: start },
            ) => {
                let start = resume::check_upload_start(*offset, start)?;
                let span = StreamSpan::new(*size, start)?;
                self.state = UploadState::Receiving(Receipt::new(span, self.early_commit.take()));
                ReceiveAction::AcceptStream {
                    start,
                    length: span.length(),
                    continue_prefix: start > 0,
                }
            }
            (UploadState::Ready { .. }, ReceiveEvent::CommitRequested { hash })
                if self.early_commit.is_none() =>
            {
                // The control stream overtook the data stream; held.
                self.early_commit = Some(hash);
                ReceiveAction::Wait
            }
            (UploadState::Receiving(receipt), ReceiveEvent::Aborted)
                if !matches!(
                    receipt.phase(),
                    ReceiptPhase::Streaming | ReceiptPhase::Streamed
                ) =>
            {
                return Ok(None);
            }
            (_, ReceiveEvent::Aborted) => {
                self.state = UploadState::Abandoned;
                ReceiveAction::Abandon
            }
            (UploadState::Receiving(receipt), event) => {
                let action = receipt.handle(event)?;
                if let Some(ReceiveAction::Done(summary)) = action {
                    self.state = UploadState::Done(summary);
                }
                return Ok(action);
            }
            _ => return Ok(None),
        };
        Ok(Some(action))
    }

    fn fail(&mut self, error: TransferError) {
        self.state = UploadState::Failed(error);
    }
}

/// Where the client's side of an upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadSendState {
    /// `PutOpen` is out; waiting for `PutReady`.
    Opening {
        /// The file's size.
        size: u64,
        /// Whether the client offered to resume.
        resume: bool,
    },
    /// Waiting for the hash of the local file's first `offset` bytes.
    ComparingPrefix {
        /// The file's size.
        size: u64,
        /// The length the server offered.
        offset: u64,
        /// The server's hash of its prefix.
        expected: HashBytes,
    },
    /// The data stream is being sent, or its hash declared.
    Sending(Dispatch),
    /// The server stored the file.
    Done(TransferSummary),
    /// A rule was broken.
    Failed(TransferError),
}

/// The client's side of one upload.
#[derive(Debug, Clone)]
pub struct UploadSender {
    state: UploadSendState,
}

impl UploadSender {
    /// An upload of a file of `size` bytes, about to send
    /// `PutOpen { size, resume, .. }`.
    pub fn new(size: u64, resume: bool) -> Result<Self, TransferError> {
        Ok(Self {
            state: UploadSendState::Opening {
                size: limits::check_size(size)?,
                resume,
            },
        })
    }

    /// Where the upload stands.
    pub fn state(&self) -> &UploadSendState {
        &self.state
    }

    /// Handles one event; a refused event leaves the upload failed.
    pub fn handle(&mut self, event: SendEvent) -> Result<SendAction, TransferError> {
        machine::run(self, event)
    }

    fn start(&mut self, size: u64, start: u64) -> Result<SendAction, TransferError> {
        let (dispatch, action) = Dispatch::start(StreamSpan::new(size, start)?, start > 0);
        self.state = UploadSendState::Sending(dispatch);
        Ok(action)
    }
}

impl Machine for UploadSender {
    type Event = SendEvent;
    type Action = SendAction;

    fn describe(&self) -> &'static str {
        match &self.state {
            UploadSendState::Opening { .. } => "opening",
            UploadSendState::ComparingPrefix { .. } => "comparing the server's partial file",
            UploadSendState::Sending(dispatch) => dispatch.describe(),
            UploadSendState::Done(_) => "done",
            UploadSendState::Failed(_) => "failed",
        }
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.state,
            UploadSendState::Done(_) | UploadSendState::Failed(_)
        )
    }

    fn step(&mut self, event: SendEvent) -> Result<Option<SendAction>, TransferError> {
        let action = match (&mut self.state, event) {
            (
                UploadSendState::Opening { size, resume },
                SendEvent::Ready {
                    offset,
                    prefix_hash,
                },
            ) => {
                let size = *size;
                match resume::upload_check(*resume, size, offset, prefix_hash) {
                    ResumeCheck::Compare { offset, expected } => {
                        self.state = UploadSendState::ComparingPrefix {
                            size,
                            offset,
                            expected,
                        };
                        SendAction::HashPrefix { length: offset }
                    }
                    ResumeCheck::StartOver => self.start(size, 0)?,
                }
            }
            (
                UploadSendState::ComparingPrefix {
                    size,
                    offset,
                    expected,
                },
                SendEvent::PrefixHashed(computed),
            ) => {
                let size = *size;
                let start = resume::start_after_compare(*offset, expected, &computed);
                self.start(size, start)?
            }
            (
                UploadSendState::Sending(dispatch),
                SendEvent::Done {
                    bytes_received,
                    resumed,
                },
            ) if dispatch.phase() == DispatchPhase::Declared => {
                let span = dispatch.span();
                if bytes_received != span.length() || resumed != span.start() {
                    return Err(TransferError::SummaryMismatch {
                        bytes_received,
                        resumed,
                        sent: span.length(),
                        start: span.start(),
                    });
                }
                let summary = span.summary();
                self.state = UploadSendState::Done(summary);
                SendAction::Done(summary)
            }
            (UploadSendState::Sending(dispatch), event) => return dispatch.handle(event),
            _ => return Ok(None),
        };
        Ok(Some(action))
    }

    fn fail(&mut self, error: TransferError) {
        self.state = UploadSendState::Failed(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReceiveEvent::*;

    const FILE: HashBytes = [1; 32];
    const PREFIX: HashBytes = [2; 32];
    const WRONG: HashBytes = [3; 32];

    /// A server upload of 10 bytes, resumable, with `PutReady` sent for a
    /// partial of `kept` bytes.
    fn ready(kept: u64) -> UploadReceiver {
        let mut upload = UploadReceiver::open(10, true).unwrap();
        let action = upload.handle(PartialFound { length: kept }).unwrap();
        if kept > 0 {
            assert_eq!(action, ReceiveAction::HashPrefix { length: kept });
            upload.handle(PrefixHashed(PREFIX)).unwrap();
        }
        upload
    }

    #[test]
    fn a_resumed_upload_commits_the_verified_file() {
        let mut upload = UploadReceiver::open(10, true).unwrap();
        assert_eq!(
            upload.handle(PartialFound { length: 4 }),
            Ok(ReceiveAction::HashPrefix { length: 4 })
        );
        assert_eq!(
            upload.handle(PrefixHashed(PREFIX)),
            Ok(ReceiveAction::SendReady {
                offset: 4,
                prefix_hash: Some(PREFIX)
            })
        );
        assert_eq!(
            upload.handle(HeaderArrived { offset: 4 }),
            Ok(ReceiveAction::AcceptStream {
                start: 4,
                length: 6,
                continue_prefix: true
            })
        );
        assert_eq!(upload.handle(Bytes(6)), Ok(ReceiveAction::AcceptBytes));
        assert_eq!(upload.handle(StreamFinished), Ok(ReceiveAction::Wait));
        assert_eq!(
            upload.handle(CommitRequested { hash: FILE }),
            Ok(ReceiveAction::Verify)
        );
        let Ok(ReceiveAction::Commit(verified)) = upload.handle(HashComputed(FILE)) else {
            panic!("a matching hash commits");
        };
        assert_eq!(verified.as_bytes(), &FILE);
        let summary = TransferSummary {
            size: 10,
            transferred: 6,
            resumed: 4,
        };
        assert_eq!(upload.handle(Committed), Ok(ReceiveAction::Done(summary)));
        assert_eq!(upload.state(), &UploadState::Done(summary));
    }

    #[test]
    fn the_client_may_start_over_instead_of_resuming() {
        let mut upload = ready(4);
        assert_eq!(
            upload.handle(HeaderArrived { offset: 0 }),
            Ok(ReceiveAction::AcceptStream {
                start: 0,
                length: 10,
                continue_prefix: false
            })
        );
    }

    #[test]
    fn nothing_is_offered_unasked_or_longer_than_the_file() {
        let mut upload = UploadReceiver::open(10, false).unwrap();
        assert_eq!(
            upload.handle(PartialFound { length: 4 }),
            Ok(ReceiveAction::SendReady {
                offset: 0,
                prefix_hash: None
            })
        );
        assert_eq!(
            upload.handle(HeaderArrived { offset: 4 }),
            Err(TransferError::NotAResumePoint {
                offset: 4,
                offered: 0
            })
        );
        let mut upload = UploadReceiver::open(10, true).unwrap();
        assert_eq!(
            upload.handle(PartialFound { length: 11 }),
            Ok(ReceiveAction::SendReady {
                offset: 0,
                prefix_hash: None
            })
        );
    }

    #[test]
    fn a_header_with_another_offset_is_refused() {
        let mut upload = ready(4);
        let refused = TransferError::NotAResumePoint {
            offset: 2,
            offered: 4,
        };
        assert_eq!(
            upload.handle(HeaderArrived { offset: 2 }),
            Err(refused.clone())
        );
        assert_eq!(upload.state(), &UploadState::Failed(refused));
        // Past the size is no resume point either.
        let mut upload = ready(4);
        assert!(upload.handle(HeaderArrived { offset: 11 }).is_err());
    }

    #[test]
    fn a_stream_longer_than_declared_is_refused() {
        let mut upload = ready(0);
        upload.handle(HeaderArrived { offset: 0 }).unwrap();
        upload.handle(Bytes(8)).unwrap();
        assert_eq!(
            upload.handle(Bytes(3)),
            Err(TransferError::TooLong {
                moved: 11,
                expected: 10
            })
        );
        // A failed upload takes nothing more.
        assert_eq!(
            upload.handle(StreamFinished),
            Err(TransferError::OutOfOrder {
                event: "end of the data stream",
                state: "failed"
            })
        );
    }

    #[test]
    fn a_commit_with_a_wrong_hash_is_refused() {
        let mut upload = ready(0);
        upload.handle(HeaderArrived { offset: 0 }).unwrap();
        upload.handle(Bytes(10)).unwrap();
        upload.handle(StreamFinished).unwrap();
        upload.handle(CommitRequested { hash: WRONG }).unwrap();
        let refused = upload.handle(HashComputed(FILE)).unwrap_err();
        assert!(
            matches!(refused, TransferError::HashMismatch(_)),
            "{refused}"
        );
        assert_eq!(refused.kind(), crate::message::ErrorKind::IntegrityMismatch);
        assert!(upload.handle(Committed).is_err());
    }

    #[test]
    fn a_commit_before_the_data_is_complete_is_not_acted_on() {
        let mut upload = ready(0);
        upload.handle(HeaderArrived { offset: 0 }).unwrap();
        upload.handle(Bytes(3)).unwrap();
        // Held, not verified: the driver hears nothing to do.
        assert_eq!(
            upload.handle(CommitRequested { hash: FILE }),
            Ok(ReceiveAction::Wait)
        );
        assert_eq!(
            upload.handle(HashComputed(FILE)),
            Err(TransferError::OutOfOrder {
                event: "computed hash",
                state: "receiving its data"
            })
        );
        // And a stream that ends short never gets to the commit.
        let mut upload = ready(0);
        upload.handle(HeaderArrived { offset: 0 }).unwrap();
        upload.handle(Bytes(3)).unwrap();
        upload.handle(CommitRequested { hash: FILE }).unwrap();
        assert_eq!(
            upload.handle(StreamFinished),
            Err(TransferError::Short {
                moved: 3,
                expected: 10
            })
        );
    }

    #[test]
    fn a_commit_that_overtakes_its_data_stream_is_held() {
        let mut upload = ready(0);
        assert_eq!(
            upload.handle(CommitRequested { hash: FILE }),
            Ok(ReceiveAction::Wait)
        );
        upload.handle(HeaderArrived { offset: 0 }).unwrap();
        upload.handle(Bytes(10)).unwrap();
        assert_eq!(upload.handle(StreamFinished), Ok(ReceiveAction::Verify));
        assert!(matches!(
            upload.handle(HashComputed(FILE)),
            Ok(ReceiveAction::Commit(_))
        ));
    }

    #[test]
    fn commits_out_of_place_are_refused() {
        // Before `PutReady` there is nothing to commit.
        let mut upload = UploadReceiver::open(10, true).unwrap();
        assert!(upload.handle(CommitRequested { hash: FILE }).is_err());
        // A second commit is one too many.
        let mut upload = ready(0);
        upload.handle(CommitRequested { hash: FILE }).unwrap();
        assert!(upload.handle(CommitRequested { hash: FILE }).is_err());
    }

    #[test]
    fn sizes_no_file_can_have_are_refused() {
        let size = limits::FILE_SIZE_MAX + 1;
        assert_eq!(
            UploadReceiver::open(size, false).unwrap_err(),
            TransferError::TooLarge {
                size,
                max: limits::FILE_SIZE_MAX
            }
        );
        assert!(UploadSender::new(size, false).is_err());
    }

    #[test]
    fn an_abort_before_the_commit_keeps_the_partial() {
        let mut upload = ready(4);
        upload.handle(HeaderArrived { offset: 4 }).unwrap();
        upload.handle(Bytes(2)).unwrap();
        assert_eq!(upload.handle(Aborted), Ok(ReceiveAction::Abandon));
        assert_eq!(upload.state(), &UploadState::Abandoned);
        assert!(upload.handle(Bytes(1)).is_err());
        // Once verifying, the client can no longer take the upload back.
        let mut upload = ready(0);
        upload.handle(HeaderArrived { offset: 0 }).unwrap();
        upload.handle(Bytes(10)).unwrap();
        upload.handle(StreamFinished).unwrap();
        upload.handle(CommitRequested { hash: FILE }).unwrap();
        assert!(upload.handle(Aborted).is_err());
    }

    /// A client upload of 10 bytes that asked to resume and got `PutReady`.
    fn sender_after(offset: u64, prefix_hash: Option<HashBytes>) -> (UploadSender, SendAction) {
        let mut upload = UploadSender::new(10, true).unwrap();
        let action = upload
            .handle(SendEvent::Ready {
                offset,
                prefix_hash,
            })
            .unwrap();
        (upload, action)
    }

    #[test]
    fn a_client_resumes_only_from_a_matching_prefix() {
        let (mut upload, action) = sender_after(4, Some(PREFIX));
        assert_eq!(action, SendAction::HashPrefix { length: 4 });
        assert_eq!(
            upload.handle(SendEvent::PrefixHashed(PREFIX)),
            Ok(SendAction::Start {
                start: 4,
                length: 6,
                continue_prefix: true
            })
        );
        assert_eq!(
            upload.handle(SendEvent::Bytes(6)),
            Ok(SendAction::SendBytes)
        );
        assert_eq!(
            upload.handle(SendEvent::StreamFinished),
            Ok(SendAction::FinishHash)
        );
        assert_eq!(
            upload.handle(SendEvent::HashComputed(FILE)),
            Ok(SendAction::SendHash { hash: FILE })
        );
        let summary = TransferSummary {
            size: 10,
            transferred: 6,
            resumed: 4,
        };
        assert_eq!(
            upload.handle(SendEvent::Done {
                bytes_received: 6,
                resumed: 4
            }),
            Ok(SendAction::Done(summary))
        );
        assert_eq!(upload.state(), &UploadSendState::Done(summary));

        let (mut upload, _) = sender_after(4, Some(PREFIX));
        assert_eq!(
            upload.handle(SendEvent::PrefixHashed(WRONG)),
            Ok(SendAction::Start {
                start: 0,
                length: 10,
                continue_prefix: false
            })
        );
    }

    #[test]
    fn a_client_starts_over_from_an_offer_past_its_file() {
        let whole = SendAction::Start {
            start: 0,
            length: 10,
            continue_prefix: false,
        };
        assert_eq!(sender_after(11, Some(PREFIX)).1, whole);
        assert_eq!(sender_after(4, None).1, whole);
        let mut unasked = UploadSender::new(10, false).unwrap();
        assert_eq!(
            unasked.handle(SendEvent::Ready {
                offset: 4,
                prefix_hash: Some(PREFIX)
            }),
            Ok(whole)
        );
    }

    #[test]
    fn a_client_refuses_a_summary_that_disagrees_with_what_it_sent() {
        let (mut upload, _) = sender_after(0, None);
        assert!(
            upload
                .handle(SendEvent::Done {
                    bytes_received: 10,
                    resumed: 0
                })
                .is_err(),
            "done before the stream went out"
        );
        let (mut upload, _) = sender_after(0, None);
        upload.handle(SendEvent::Bytes(10)).unwrap();
        upload.handle(SendEvent::StreamFinished).unwrap();
        upload.handle(SendEvent::HashComputed(FILE)).unwrap();
        assert_eq!(
            upload.handle(SendEvent::Done {
                bytes_received: 6,
                resumed: 4
            }),
            Err(TransferError::SummaryMismatch {
                bytes_received: 6,
                resumed: 4,
                sent: 10,
                start: 0
            })
        );
    }

    #[test]
    fn a_client_cannot_send_more_than_its_file() {
        let (mut upload, _) = sender_after(0, None);
        assert!(upload.handle(SendEvent::Bytes(11)).is_err());
        let (mut upload, _) = sender_after(0, None);
        upload.handle(SendEvent::Bytes(9)).unwrap();
        assert_eq!(
            upload.handle(SendEvent::StreamFinished),
            Err(TransferError::Short {
                moved: 9,
                expected: 10
            })
        );
    }
}
