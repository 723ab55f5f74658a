//! The part every sending end shares: from the first byte of the data
//! stream to the declaration of the whole file's hash.

use crate::transfer::error::TransferError;
use crate::transfer::event::{SendAction, SendEvent};
use crate::transfer::stream::StreamSpan;

/// Where a dispatch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchPhase {
    /// Bytes are going out.
    Streaming,
    /// Every byte went out; waiting for the driver's hash of the file.
    Hashing,
    /// The hash was declared.
    Declared,
}

/// One data stream being sent, up to the hash declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    span: StreamSpan,
    phase: DispatchPhase,
}

impl Dispatch {
    /// A dispatch of `span`, and the action that starts it.
    pub(crate) fn start(span: StreamSpan, continue_prefix: bool) -> (Self, SendAction) {
        let action = SendAction::Start {
            start: span.start(),
            length: span.length(),
            continue_prefix,
        };
        (
            Self {
                span,
                phase: DispatchPhase::Streaming,
            },
            action,
        )
    }

    /// The part of the file the stream carries, and how much has gone.
    pub fn span(&self) -> &StreamSpan {
        &self.span
    }

    /// Where the dispatch stands.
    pub fn phase(&self) -> DispatchPhase {
        self.phase
    }

    /// The phase in words, for errors.
    pub(crate) fn describe(&self) -> &'static str {
        match self.phase {
            DispatchPhase::Streaming => "sending its data",
            DispatchPhase::Hashing => "hashing its data",
            DispatchPhase::Declared => "waiting for the peer's answer",
        }
    }

    /// Handles one event of the stream; `None` when the event has no place
    /// in the current phase.
    pub(crate) fn handle(&mut self, event: SendEvent) -> Result<Option<SendAction>, TransferError> {
        let action = match (self.phase, event) {
            (DispatchPhase::Streaming, SendEvent::Bytes(bytes)) => {
                self.span.advance(bytes)?;
                SendAction::SendBytes
            }
            (DispatchPhase::Streaming, SendEvent::StreamFinished) => {
                self.span.finish()?;
                self.phase = DispatchPhase::Hashing;
                SendAction::FinishHash
            }
            (DispatchPhase::Hashing, SendEvent::HashComputed(hash)) => {
                self.phase = DispatchPhase::Declared;
                SendAction::SendHash { hash }
            }
            _ => return Ok(None),
        };
        Ok(Some(action))
    }
}
