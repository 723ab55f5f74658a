//! The transfer core: deterministic state machines for uploads and
//! downloads, with no networking, no files and no clock.
//!
//! Each end of each transfer is one machine. The driver (the server's or
//! the client's transfer code) tells it what happened, an event, and gets
//! back exactly one action to carry out, or a [`TransferError`] that says
//! which rule the peer broke; after an error the machine is failed for
//! good. The machines never see a byte of file data: the driver moves and
//! hashes the bytes and reports counts and hashes, so every rule below can
//! be tested with plain values in and out.
//!
//! | transfer | receiving end | sending end |
//! |----------|---------------|-------------|
//! | upload (`PutOpen`) | server: [`UploadReceiver`] | client: [`UploadSender`] |
//! | small upload (`PutSmall`) | server: [`SmallUploadReceiver`] | client: no state, see [`small`] |
//! | download (`GetOpen`) | client: [`DownloadReceiver`] | server: [`DownloadSender`] |
//!
//! Receiving ends take [`ReceiveEvent`]s and answer [`ReceiveAction`]s;
//! sending ends take [`SendEvent`]s and answer [`SendAction`]s. The
//! message sequence of each transfer, with the events and actions of both
//! ends, is in [`upload`], [`small`] and [`download`].
//!
//! The rules, each enforced in one place:
//! * [`limits`]: the data-header frame limit ([`DATA_HEADER_MAX`]), the
//!   largest file ([`FILE_SIZE_MAX`]), the small-upload bound, offsets
//!   within the size.
//! * [`resume`]: which offset is offered, when a prefix is accepted, when a
//!   transfer falls back to offset 0.
//! * [`stream`]: a data stream carries exactly the rest of the file.
//! * [`receipt`]: a receiving end commits only a complete stream whose hash
//!   [`crate::hash::verify`] accepted; [`ReceiveAction::Commit`] carries the
//!   [`crate::hash::VerifiedHash`], which nothing else can make.
//! * [`dispatch`]: a sending end declares its hash only after the whole
//!   stream went out.
//!
//! What this module does not do: open streams, read or write files,
//! compute hashes, reserve quota or time anything out. Those belong to the
//! drivers, which also map a [`TransferError`] to the peer's
//! [`crate::message::ErrorKind`] with [`TransferError::kind`].

pub mod dispatch;
pub mod download;
pub mod error;
pub mod event;
pub mod limits;
mod machine;
pub mod receipt;
pub mod resume;
pub mod small;
pub mod stream;
pub mod upload;

#[cfg(test)]
mod event_orders;

pub use dispatch::{Dispatch, DispatchPhase};
pub use download::{DownloadReceiver, DownloadSendState, DownloadSender, DownloadState};
pub use error::TransferError;
pub use event::{ReceiveAction, ReceiveEvent, SendAction, SendEvent, TransferSummary};
pub use limits::{DATA_HEADER_MAX, FILE_SIZE_MAX, is_small};
pub use receipt::{Receipt, ReceiptPhase};
pub use resume::ResumeCheck;
pub use small::{SmallUploadReceiver, SmallUploadState};
pub use stream::StreamSpan;
pub use upload::{UploadReceiver, UploadSendState, UploadSender, UploadState};
