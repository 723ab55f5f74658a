//! The atomic commit of an upload, in one place: verify, seal, rename with
//! the quota charge, directory flush.
//!
//! 1. [`verify`]: the transfer core compared the client's declared hash
//!    with the hash of the bytes received; a mismatch discards the upload
//!    and its partial file. Only a match yields the [`VerifiedHash`] that
//!    [`commit`] asks for.
//! 2. Seal: the partial file gets the client's mtime and its data is
//!    flushed, through the server's [`FlushGroups`]: alone, an fsync of the
//!    file; with other uploads finishing at the same time, one `syncfs`
//!    shared by all of them.
//! 3. Under the user's quota lock ([`UserQuota::commit`]), the entry under
//!    the final name is measured, the partial is renamed over it, and the
//!    difference is charged in the same critical section.
//! 4. The rename is flushed the same way (an fsync of the directory, or a
//!    shared `syncfs`); the caller answers `PutDone` only after it, so
//!    "done" means the data, the final name and the directory entry are all
//!    on disk.
//!
//! [`commit`] takes a [`JailedTarget`], which only the jail's resolution
//! of a client path makes, and a [`VerifiedHash`], which only a successful
//! comparison makes: committing unverified bytes, or to a place outside a
//! home, does not compile.
//!
//! This module receives no bytes and opens no partial file (that is
//! [`super::upload`]'s and [`super::small`]'s), and it runs blocking work:
//! call it on the blocking pool.

use std::fs::File;
use std::time::SystemTime;

use qftp_proto::ErrorKind;
use qftp_proto::hash::VerifiedHash;
use qftp_proto::transfer::{ReceiveAction, TransferError};
use qftp_transport::durable::FlushGroups;

use crate::error::{RequestError, RequestResult};
use crate::jail::JailedTarget;
use crate::partials::StagedPartial;
use crate::quota::{Reservation, UserQuota};
use crate::state::ServerState;

/// The quota reservation of one upload and its partial file.
pub(crate) type UploadReservation = Reservation<StagedPartial>;

/// What becomes of the partial file when sealing it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfUnsealed {
    /// Keep it, charged, for a resume (a streamed upload).
    Keep,
    /// Remove it (a small upload, which is never resumed).
    Discard,
}

/// The upload to commit: its bytes are all in `file`.
#[derive(Debug)]
pub(crate) struct Finished<'a> {
    /// The partial file, written in full.
    pub file: &'a File,
    /// The declared (and received) size.
    pub size: u64,
    /// The mtime the client asked for.
    pub mtime: Option<SystemTime>,
    /// The path as the user named it, for messages.
    pub shown: &'a str,
    /// What to do with the partial if sealing fails.
    pub if_unsealed: IfUnsealed,
}

/// Who pays for the upload and whose directory flushes it shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    /// The server's shared state (its directory syncer).
    pub state: &'a ServerState,
    /// The user's quota ledger.
    pub quota: &'a UserQuota,
    /// What a directory or link costs (`limits.entry_cost`).
    pub entry_cost: u64,
}

/// Step 1: takes the transfer core's answer to the driver's hash of the
/// bytes received. Only [`ReceiveAction::Commit`] carries on; a hash
/// mismatch is reported as [`mismatch`] (the caller discards what it
/// holds), any other broken rule as the peer's error as is.
pub(crate) fn verify(
    answer: Result<ReceiveAction, TransferError>,
    shown: &str,
) -> RequestResult<VerifiedHash> {
    match answer {
        Ok(ReceiveAction::Commit(verified)) => Ok(verified),
        Err(TransferError::HashMismatch(_)) => Err(mismatch(shown)),
        Err(error) => Err(RequestError::from_transfer(&error, shown)),
        Ok(action) => Err(RequestError::new(
            ErrorKind::Internal,
            format!("{shown}: the upload cannot be committed ({action:?})"),
        )),
    }
}

/// The error for bytes that do not hash to what the client declared.
fn mismatch(shown: &str) -> RequestError {
    RequestError::new(
        ErrorKind::IntegrityMismatch,
        format!("{shown}: BLAKE3 mismatch; the upload was discarded"),
    )
}

/// Steps 2 to 4: seals the verified upload, renames it over `target` with
/// the quota charge under the user's lock, and flushes the directory.
pub(crate) fn commit(
    verified: VerifiedHash,
    target: &JailedTarget,
    upload: Finished<'_>,
    reservation: UploadReservation,
    owner: Owner<'_>,
) -> RequestResult<()> {
    let Finished {
        file,
        size,
        mtime,
        shown,
        if_unsealed,
    } = upload;
    let io_error = |error: std::io::Error| RequestError::from_io(&error, shown);
    if let Err(error) = seal(file, mtime, &owner.state.flushes) {
        if if_unsealed == IfUnsealed::Discard {
            reservation.discard();
        }
        return Err(io_error(error));
    }
    // The directory handle itself may be a path-only descriptor, which
    // cannot be synced; open the directory for reading.
    let directory = target.dir().open(".").map_err(io_error)?.into_std();
    owner
        .quota
        .commit(reservation, size, |partial: &StagedPartial| {
            let replaced = target.existing_footprint(shown, owner.entry_cost)?;
            partial
                .rename_into(target.dir(), target.name())
                .map_err(io_error)?;
            Ok(replaced)
        })?;
    owner.state.flushes.flush(&directory).map_err(io_error)?;
    tracing::trace!(path = shown, hash = %verified, "committed");
    Ok(())
}

/// Gives a fully written partial file its mtime and makes its data durable.
fn seal(file: &File, mtime: Option<SystemTime>, flushes: &FlushGroups) -> std::io::Result<()> {
    if let Some(mtime) = mtime {
        let mtime = filetime::FileTime::from_system_time(mtime);
        filetime::set_file_handle_times(file, None, Some(mtime))?;
    }
    flushes.flush(file)
}
