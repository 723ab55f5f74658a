//! The part every receiving end shares: from the first byte of the data
//! stream to the commit.
//!
//! The stream must carry exactly its span; the peer's declared hash may
//! come before the stream ends (the control stream and the data stream are
//! independent, so either can be read first) and is then held. Only once
//! both the last byte and the declaration are in does the driver hear
//! [`ReceiveAction::Verify`], and only a [`crate::hash::verify`] success
//! turns into [`ReceiveAction::Commit`]. A declared hash can therefore never
//! commit a file with a byte missing, or one too many.

use crate::hash;
use crate::message::HashBytes;
use crate::transfer::error::TransferError;
use crate::transfer::event::{ReceiveAction, ReceiveEvent};
use crate::transfer::stream::StreamSpan;

/// Where a receipt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptPhase {
    /// Bytes are arriving.
    Streaming,
    /// Every byte arrived; the declared hash has not.
    Streamed,
    /// Waiting for the driver's hash of the whole file.
    Verifying,
    /// The hash matched; waiting for the file to be committed.
    Committing,
    /// The file is committed.
    Committed,
}

/// One data stream being received, up to its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    span: StreamSpan,
    declared: Option<HashBytes>,
    phase: ReceiptPhase,
}

impl Receipt {
    /// A receipt of `span`, with the peer's hash if it was declared already.
    pub(crate) fn new(span: StreamSpan, declared: Option<HashBytes>) -> Self {
        Self {
            span,
            declared,
            phase: ReceiptPhase::Streaming,
        }
    }

    /// The part of the file the stream carries, and how much has come.
    pub fn span(&self) -> &StreamSpan {
        &self.span
    }

    /// Where the receipt stands.
    pub fn phase(&self) -> ReceiptPhase {
        self.phase
    }

    /// The phase in words, for errors.
    pub(crate) fn describe(&self) -> &'static str {
        match self.phase {
            ReceiptPhase::Streaming => "receiving its data",
            ReceiptPhase::Streamed => "waiting for its commit",
            ReceiptPhase::Verifying => "verifying its hash",
            ReceiptPhase::Committing => "committing",
            ReceiptPhase::Committed => "done",
        }
    }

    /// Handles one event of the stream or the commit; `None` when the event
    /// has no place in the current phase.
    pub(crate) fn handle(
        &mut self,
        event: ReceiveEvent,
    ) -> Result<Option<ReceiveAction>, TransferError> {
        let action = match (self.phase, event) {
            (ReceiptPhase::Streaming, ReceiveEvent::Bytes(bytes)) => {
                self.span.advance(bytes)?;
                ReceiveAction::AcceptBytes
            }
            (ReceiptPhase::Streaming, ReceiveEvent::StreamFinished) => {
                self.span.finish()?;
                if self.declared.is_some() {
                    self.phase = ReceiptPhase::Verifying;
                    ReceiveAction::Verify
                } else {
                    self.phase = ReceiptPhase::Streamed;
                    ReceiveAction::Wait
                }
            }
            (ReceiptPhase::Streaming, ReceiveEvent::CommitRequested { hash })
                if self.declared.is_none() =>
            {
                // Held until the last byte is in.
                self.declared = Some(hash);
                ReceiveAction::Wait
            }
            (ReceiptPhase::Streamed, ReceiveEvent::CommitRequested { hash }) => {
                self.declared = Some(hash);
                self.phase = ReceiptPhase::Verifying;
                ReceiveAction::Verify
            }
            (ReceiptPhase::Verifying, ReceiveEvent::HashComputed(computed)) => {
                let Some(declared) = self.declared else {
                    return Ok(None);
                };
                let verified = hash::verify(&declared, &computed)?;
                self.phase = ReceiptPhase::Committing;
                ReceiveAction::Commit(verified)
            }
            (ReceiptPhase::Committing, ReceiveEvent::Committed) => {
                self.phase = ReceiptPhase::Committed;
                ReceiveAction::Done(self.span.summary())
            }
            _ => return Ok(None),
        };
        Ok(Some(action))
    }
}
