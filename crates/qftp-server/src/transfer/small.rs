//! The one-exchange small upload (`PutSmall`, at most
//! [`qftp_proto::SMALL_FILE_MAX`] bytes): the transfer core
//! ([`SmallUploadReceiver`]) checks the size and where the stream starts,
//! the body is read whole into memory (bounded by the declared size), the
//! core verifies its hash, and then one blocking step reserves, writes the
//! partial and commits it.
//!
//! This module streams nothing to disk and keeps no partial for a resume: a
//! failed small upload leaves nothing behind. The commit itself is
//! [`super::commit`]'s.

use std::sync::Arc;
use std::time::Duration;

use qftp_proto::hash::VerifiedHash;
use qftp_proto::path::RemotePath;
use qftp_proto::transfer::{ReceiveAction, ReceiveEvent, SmallUploadReceiver, TransferError};
use qftp_proto::{ErrorKind, HashBytes, Response, Timestamp};
use qftp_transport::pump;
use tokio::sync::oneshot;

use super::commit::{self, Finished, IfUnsealed, Owner};
use super::routing::{Inbox, stream_code};
use super::upload::{self, prepare_upload};
use crate::error::{RequestError, RequestResult};
use crate::jail::Jail;
use crate::partials::Staging;
use crate::quota::UserQuota;
use crate::session::{Context, HandlerResult};
use crate::state::ServerState;

/// Serves `PutSmall`: receives the whole file into memory, then stores it
/// in one blocking step (reserve, write, verify, sync, rename, charge).
pub(crate) async fn upload_small(context: &Context, small: SmallUpload) -> HandlerResult {
    let SmallUpload {
        transfer_id,
        path,
        size,
        mtime,
        hash,
    } = small;
    let _in_flight = context.live.transfer_started();
    let _active = context.state.metrics.transfer_started();
    // Claim the id first: the data stream may already be waiting, and if
    // this upload fails, a stream still on its way is stopped on arrival.
    let (stream_sender, stream_receiver) = oneshot::channel();
    let _slot = context.transfers.claim(
        transfer_id,
        Some(Inbox {
            stream: Some(stream_sender),
            commit: None,
        }),
    )?;
    // Hardening (resources): one of the user's open uploads until this ends;
    // taken after the claim so that a refused upload's stream is stopped.
    let _open_upload = context
        .state
        .open_uploads
        .open(&context.session.user, &path)?;
    // Above the small-upload bound the core refuses it.
    let mut machine = SmallUploadReceiver::open(size, hash)
        .map_err(|error| RequestError::from_transfer(&error, &path))?;
    let path = context.parse_path(&path)?;
    context
        .session
        .quota
        .take_over(&path, Duration::from_secs(10))
        .await;
    let shown = path.to_string();
    let failed = |message: &str| {
        RequestError::new(ErrorKind::IntegrityMismatch, format!("{shown}: {message}"))
    };
    let timeout = context.state.config.idle_timeout();
    let (header, mut recv) = tokio::select! {
        stream = tokio::time::timeout(timeout, stream_receiver) => match stream {
            Ok(Ok(stream)) => stream,
            _ => return Err(failed("no data stream arrived")),
        },
        _ = context.connection.closed() => return Err(failed("connection closed")),
    };
    let refused = |error: TransferError| RequestError::from_transfer(&error, &shown);
    let length = match machine.handle(ReceiveEvent::HeaderArrived {
        offset: header.offset,
    }) {
        Ok(ReceiveAction::AcceptStream { length, .. }) => length,
        Ok(action) => return Err(upload::unexpected(action, &shown)),
        Err(error) => {
            let _ = recv.stop(stream_code::BAD_HEADER.into());
            return Err(refused(error));
        }
    };
    // The pump holds at most `length` bytes and cuts a longer stream.
    let body = pump::receive_small(&mut recv, length as usize, timeout, async {
        context.connection.closed().await;
    })
    .await
    .map_err(|error| failed(&error.to_string()))?;
    machine
        .handle(ReceiveEvent::Bytes(body.len() as u64))
        .map_err(refused)?;
    let action = machine
        .handle(ReceiveEvent::StreamFinished)
        .map_err(refused)?;
    if action != ReceiveAction::Verify {
        return Err(upload::unexpected(action, &shown));
    }
    let quota = Arc::clone(&context.session.quota);
    let state = Arc::clone(&context.state);
    let staging = context.session.staging.clone();
    let entry_cost = context.session.jail.entry_cost();
    let mtime = mtime.to_system_time();
    let summary = context
        .blocking(move |jail| {
            let shown = path.to_string();
            let computed = *blake3::hash(&body).as_bytes();
            let verified =
                commit::verify(machine.handle(ReceiveEvent::HashComputed(computed)), &shown)?;
            let upload = SmallStore {
                state: &state,
                quota: &quota,
                staging: &staging,
                path: &path,
                entry_cost,
            };
            store_small(jail, upload, &body, verified, mtime)?;
            match machine
                .handle(ReceiveEvent::Committed)
                .map_err(|error| RequestError::from_transfer(&error, &shown))?
            {
                ReceiveAction::Done(summary) => Ok(summary),
                action => Err(upload::unexpected(action, &shown)),
            }
        })
        .await?;
    tracing::debug!(user = %context.session.user, path = %shown, size, "small upload stored");
    Ok(Some(Response::PutDone {
        bytes_received: summary.transferred,
        resumed: summary.resumed,
    }))
}

/// A `PutSmall` request.
#[derive(Debug)]
pub(crate) struct SmallUpload {
    pub transfer_id: u64,
    pub path: String,
    pub size: u64,
    pub mtime: Timestamp,
    pub hash: HashBytes,
}

/// Writes a verified small file as a partial and commits it
/// ([`commit::commit`]), with the quota reserved before the first byte and
/// charged at the rename. A failed write leaves no partial behind.
fn store_small(
    jail: &Jail,
    upload: SmallStore<'_>,
    body: &[u8],
    verified: VerifiedHash,
    mtime: Option<std::time::SystemTime>,
) -> RequestResult<()> {
    let SmallStore {
        state,
        quota,
        staging,
        path,
        entry_cost,
    } = upload;
    let shown = path.to_string();
    let size = body.len() as u64;
    let (prepared, reservation) = prepare_upload(jail, staging, quota, path, size, false)?;
    if let Err(error) = std::io::Write::write_all(&mut &prepared.file, body) {
        reservation.discard();
        return Err(RequestError::from_io(&error, &shown));
    }
    let finished = Finished {
        file: &prepared.file,
        size,
        mtime,
        shown: &shown,
        if_unsealed: IfUnsealed::Discard,
    };
    let owner = Owner {
        state,
        quota,
        entry_cost,
    };
    commit::commit(verified, &prepared.target, finished, reservation, owner)
}

/// Where a small upload goes and who pays for it.
#[derive(Debug)]
struct SmallStore<'a> {
    state: &'a ServerState,
    quota: &'a Arc<UserQuota>,
    staging: &'a Staging,
    path: &'a RemotePath,
    entry_cost: u64,
}
