//! A download (`get`), as the server sends it and as the client receives it.
//!
//! The exchange, with the event each message becomes:
//!
//! ```text
//! client                                    server
//! hash the local partial, if any
//! DownloadReceiver::new(asked)
//!   GetOpen { resume: asked, .. } ───────▶  open the file (size known)
//!                                           DownloadSender::open(size, asked)
//!                                           ▶ HashPrefix { length } (a usable offer)
//!                                           ◀ PrefixHashed(hash)
//!                                           ▶ Start { start, length, .. }
//! ◀ Ready { size, offset }        ◀──────  GetReady { size, mtime, offset: start }
//! ▶ Wait
//!   data stream ◀─ DataHeader { offset: start }
//! ◀ HeaderArrived { offset }
//! ▶ AcceptStream { start, length, .. }
//! ◀ Bytes(n) …                    ◀──────  ◀ Bytes(n) …
//! ◀ StreamFinished                ◀──────  ◀ StreamFinished
//!                                           ▶ FinishHash, ◀ HashComputed(hash)
//!                                           ▶ SendHash { hash }
//! ◀ CommitRequested { hash }      ◀──────  GetDone { hash }
//! ▶ Verify, ◀ HashComputed(hash)
//! ▶ Commit(VerifiedHash)
//! fsync, rename the partial into place
//! ◀ Committed
//! ▶ Done(summary)
//! ```
//!
//! (`◀` is an event the machine is told, `▶` the action it answers.)
//!
//! The client refuses an offset it did not offer or one past the size, a
//! data stream that starts anywhere but the agreed offset or carries more
//! or fewer bytes than the rest of the file, and a hash that does not match
//! what it received. A `GetDone` read before the data stream is complete is
//! held until it is.

use crate::message::{HashBytes, ResumePoint};
use crate::transfer::dispatch::Dispatch;
use crate::transfer::error::TransferError;
use crate::transfer::event::{ReceiveAction, ReceiveEvent, SendAction, SendEvent, TransferSummary};
use crate::transfer::limits;
use crate::transfer::machine::{self, Machine};
use crate::transfer::receipt::Receipt;
use crate::transfer::resume::{self, ResumeCheck};
use crate::transfer::stream::StreamSpan;

/// Where the server's side of a download stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadSendState {
    /// Waiting for the hash of the file's first `offset` bytes.
    ComparingPrefix {
        /// The file's size.
        size: u64,
        /// The length of the client's partial.
        offset: u64,
        /// The client's hash of its partial.
        expected: HashBytes,
    },
    /// The data stream is being sent.
    Sending(Dispatch),
    /// `GetDone` is out.
    Done(TransferSummary),
    /// A rule was broken.
    Failed(TransferError),
}

/// The server's side of one download.
#[derive(Debug, Clone)]
pub struct DownloadSender {
    state: DownloadSendState,
}

impl DownloadSender {
    /// A download of a file of `size` bytes for a client that offered
    /// `resume`, and the first thing to do: hash the prefix the client
    /// holds, or start the stream at 0.
    pub fn open(size: u64, resume: Option<ResumePoint>) -> (Self, SendAction) {
        match resume::download_check(resume, size) {
            ResumeCheck::Compare { offset, expected } => (
                Self {
                    state: DownloadSendState::ComparingPrefix {
                        size,
                        offset,
                        expected,
                    },
                },
                SendAction::HashPrefix { length: offset },
            ),
            ResumeCheck::StartOver => {
                let (dispatch, action) = Dispatch::start(StreamSpan::whole(size), false);
                (
                    Self {
                        state: DownloadSendState::Sending(dispatch),
                    },
                    action,
                )
            }
        }
    }

    /// Where the download stands.
    pub fn state(&self) -> &DownloadSendState {
        &self.state
    }

    /// Handles one event; a refused event leaves the download failed.
    pub fn handle(&mut self, event: SendEvent) -> Result<SendAction, TransferError> {
        machine::run(self, event)
    }
}

impl Machine for DownloadSender {
    type Event = SendEvent;
    type Action = SendAction;

    fn describe(&self) -> &'static str {
        match &self.state {
            DownloadSendState::ComparingPrefix { .. } => "comparing the client's partial file",
            DownloadSendState::Sending(dispatch) => dispatch.describe(),
            DownloadSendState::Done(_) => "done",
            DownloadSendState::Failed(_) => "failed",
        }
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.state,
            DownloadSendState::Done(_) | DownloadSendState::Failed(_)
        )
    }

    fn step(&mut self, event: SendEvent) -> Result<Option<SendAction>, TransferError> {
        match (&mut self.state, event) {
            (
                DownloadSendState::ComparingPrefix {
                    size,
                    offset,
                    expected,
                },
                SendEvent::PrefixHashed(computed),
            ) => {
                let start = resume::start_after_compare(*offset, expected, &computed);
                let (dispatch, action) = Dispatch::start(StreamSpan::new(*size, start)?, start > 0);
                self.state = DownloadSendState::Sending(dispatch);
                Ok(Some(action))
            }
            (DownloadSendState::Sending(dispatch), event) => {
                let action = dispatch.handle(event)?;
                if let Some(SendAction::SendHash { .. }) = action {
                    self.state = DownloadSendState::Done(dispatch.span().summary());
                }
                Ok(action)
            }
            _ => Ok(None),
        }
    }

    fn fail(&mut self, error: TransferError) {
        self.state = DownloadSendState::Failed(error);
    }
}

/// Where the client's side of a download stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadState {
    /// `GetOpen` is out; waiting for `GetReady`.
    Opened {
        /// The partial the client offered, if any.
        asked: Option<ResumePoint>,
    },
    /// `GetReady` arrived; waiting for the data stream.
    Ready {
        /// The file's size.
        size: u64,
        /// Where the data stream starts.
        offset: u64,
    },
    /// The data stream is being received, verified or committed.
    Receiving(Receipt),
    /// The file is in place under its final name.
    Done(TransferSummary),
    /// A rule was broken.
    Failed(TransferError),
}

/// The client's side of one download.
#[derive(Debug, Clone)]
pub struct DownloadReceiver {
    state: DownloadState,
    /// A `GetDone` read before the data stream arrived.
    early_commit: Option<HashBytes>,
}

impl DownloadReceiver {
    /// A download about to send `GetOpen { resume: asked, .. }`, where
    /// `asked` is the local partial's length and hash (see
    /// [`resume::download_ask`]).
    pub fn new(asked: Option<ResumePoint>) -> Self {
        Self {
            state: DownloadState::Opened { asked },
            early_commit: None,
        }
    }

    /// Where the download stands.
    pub fn state(&self) -> &DownloadState {
        &self.state
    }

    /// Handles one event; a refused event leaves the download failed.
    pub fn handle(&mut self, event: ReceiveEvent) -> Result<ReceiveAction, TransferError> {
        machine::run(self, event)
    }
}

impl Machine for DownloadReceiver {
    type Event = ReceiveEvent;
    type Action = ReceiveAction;

    fn describe(&self) -> &'static str {
        match &self.state {
            DownloadState::Opened { .. } => "opening",
            DownloadState::Ready { .. } => "waiting for its data stream",
            DownloadState::Receiving(receipt) => receipt.describe(),
            DownloadState::Done(_) => "done",
            DownloadState::Failed(_) => "failed",
        }
    }

    fn is_finished(&self) -> bool {
        matches!(
            self.state,
            DownloadState::Done(_) | DownloadState::Failed(_)
        )
    }

    fn step(&mut self, event: ReceiveEvent) -> Result<Option<ReceiveAction>, TransferError> {
        let action = match (&mut self.state, event) {
            (DownloadState::Opened { asked }, ReceiveEvent::Ready { size, offset }) => {
                let size = limits::check_size(size)?;
                let offset = resume::check_download_offer(*asked, size, offset)?;
                self.state = DownloadState::Ready { size, offset };
                ReceiveAction::Wait
            }
            (
                DownloadState::Ready { size, offset },
                ReceiveEvent::HeaderArrived { offset: start },
            ) => {
                if start != *offset {
                    return Err(TransferError::WrongOffset {
                        offset: start,
                        expected: *offset,
                    });
                }
                let span = StreamSpan::new(*size, start)?;
                self.state = DownloadState::Receiving(Receipt::new(span, self.early_commit.take()));
                ReceiveAction::AcceptStream {
                    start,
                    length: span.length(),
                    continue_prefix: start > 0,
                }
            }
            (DownloadState::Ready { .. }, ReceiveEvent::CommitRequested { hash })
                if self.early_commit.is_none() =>
            {
                // `GetDone` overtook the data stream; held.
                self.early_commit = Some(hash);
                ReceiveAction::Wait
            }
            (DownloadState::Receiving(receipt), event) => {
                let action = receipt.handle(event)?;
                if let Some(ReceiveAction::Done(summary)) = action {
                    self.state = DownloadState::Done(summary);
                }
                return Ok(action);
            }
            _ => return Ok(None),
        };
        Ok(Some(action))
    }

    fn fail(&mut self, error: TransferError) {
        self.state = DownloadState::Failed(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReceiveEvent::*;

    const FILE: HashBytes = [1; 32];
    const PREFIX: HashBytes = [2; 32];
    const WRONG: HashBytes = [3; 32];

    fn point(offset: u64) -> Option<ResumePoint> {
        Some(ResumePoint {
            offset,
            prefix_hash: PREFIX,
        })
    }

    #[test]
    fn the_server_continues_a_matching_partial() {
        let (mut download, action) = DownloadSender::open(10, point(4));
        assert_eq!(action, SendAction::HashPrefix { length: 4 });
        assert_eq!(
            download.handle(SendEvent::PrefixHashed(PREFIX)),
            Ok(SendAction::Start {
                start: 4,
                length: 6,
                continue_prefix: true
            })
        );
        download.handle(SendEvent::Bytes(6)).unwrap();
        assert_eq!(
            download.handle(SendEvent::StreamFinished),
            Ok(SendAction::FinishHash)
        );
        assert_eq!(
            download.handle(SendEvent::HashComputed(FILE)),
            Ok(SendAction::SendHash { hash: FILE })
        );
        assert_eq!(
            download.state(),
            &DownloadSendState::Done(TransferSummary {
                size: 10,
                transferred: 6,
                resumed: 4
            })
        );
    }

    #[test]
    fn the_server_sends_everything_for_a_partial_it_cannot_use() {
        let whole = SendAction::Start {
            start: 0,
            length: 10,
            continue_prefix: false,
        };
        let (mut download, _) = DownloadSender::open(10, point(4));
        assert_eq!(download.handle(SendEvent::PrefixHashed(WRONG)), Ok(whole));
        assert_eq!(DownloadSender::open(10, point(11)).1, whole);
        assert_eq!(DownloadSender::open(10, None).1, whole);
        let (mut download, _) = DownloadSender::open(10, None);
        assert!(download.handle(SendEvent::Bytes(11)).is_err());
    }

    #[test]
    fn a_resumed_download_commits_the_verified_file() {
        let mut download = DownloadReceiver::new(point(4));
        assert_eq!(
            download.handle(Ready {
                size: 10,
                offset: 4
            }),
            Ok(ReceiveAction::Wait)
        );
        assert_eq!(
            download.handle(HeaderArrived { offset: 4 }),
            Ok(ReceiveAction::AcceptStream {
                start: 4,
                length: 6,
                continue_prefix: true
            })
        );
        download.handle(Bytes(6)).unwrap();
        download.handle(StreamFinished).unwrap();
        assert_eq!(
            download.handle(CommitRequested { hash: FILE }),
            Ok(ReceiveAction::Verify)
        );
        assert!(matches!(
            download.handle(HashComputed(FILE)),
            Ok(ReceiveAction::Commit(verified)) if verified.as_bytes() == &FILE
        ));
        assert_eq!(
            download.handle(Committed),
            Ok(ReceiveAction::Done(TransferSummary {
                size: 10,
                transferred: 6,
                resumed: 4
            }))
        );
    }

    #[test]
    fn an_offset_the_client_did_not_offer_is_refused() {
        let mut download = DownloadReceiver::new(None);
        assert_eq!(
            download.handle(Ready {
                size: 10,
                offset: 4
            }),
            Err(TransferError::UnaskedResume { offset: 4 })
        );
        let mut download = DownloadReceiver::new(point(3));
        assert!(
            download
                .handle(Ready {
                    size: 10,
                    offset: 4
                })
                .is_err()
        );
        // Starting over is always allowed.
        let mut download = DownloadReceiver::new(point(3));
        assert!(
            download
                .handle(Ready {
                    size: 10,
                    offset: 0
                })
                .is_ok()
        );
    }

    #[test]
    fn an_offset_past_the_size_is_refused() {
        let mut download = DownloadReceiver::new(point(12));
        assert_eq!(
            download.handle(Ready {
                size: 10,
                offset: 12
            }),
            Err(TransferError::OffsetPastSize {
                offset: 12,
                size: 10
            })
        );
    }

    #[test]
    fn a_header_with_another_offset_is_refused() {
        let mut download = DownloadReceiver::new(point(4));
        download
            .handle(Ready {
                size: 10,
                offset: 4,
            })
            .unwrap();
        assert_eq!(
            download.handle(HeaderArrived { offset: 0 }),
            Err(TransferError::WrongOffset {
                offset: 0,
                expected: 4
            })
        );
    }

    #[test]
    fn a_wrong_hash_or_a_long_stream_commits_nothing() {
        let opened = || {
            let mut download = DownloadReceiver::new(None);
            download
                .handle(Ready {
                    size: 10,
                    offset: 0,
                })
                .unwrap();
            download.handle(HeaderArrived { offset: 0 }).unwrap();
            download
        };
        let mut download = opened();
        download.handle(Bytes(10)).unwrap();
        // `GetDone` before the end of the stream is held.
        assert_eq!(
            download.handle(CommitRequested { hash: WRONG }),
            Ok(ReceiveAction::Wait)
        );
        assert_eq!(download.handle(StreamFinished), Ok(ReceiveAction::Verify));
        assert!(matches!(
            download.handle(HashComputed(FILE)),
            Err(TransferError::HashMismatch(_))
        ));
        let mut download = opened();
        assert!(matches!(
            download.handle(Bytes(11)),
            Err(TransferError::TooLong { .. })
        ));
    }

    #[test]
    fn a_done_answer_that_overtakes_the_data_stream_is_held() {
        let mut download = DownloadReceiver::new(None);
        download.handle(Ready { size: 0, offset: 0 }).unwrap();
        assert_eq!(
            download.handle(CommitRequested { hash: FILE }),
            Ok(ReceiveAction::Wait)
        );
        download.handle(HeaderArrived { offset: 0 }).unwrap();
        assert_eq!(download.handle(StreamFinished), Ok(ReceiveAction::Verify));
    }
}
