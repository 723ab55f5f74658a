//! A streamed upload, from `PutOpen` to the answer of its `PutCommit`.
//!
//! 1. `PutOpen`: a stale upload of the same path gives way
//!    ([`UserQuota::take_over`]); on the blocking pool the target's parent
//!    is opened inside the jail, the free space checked, the quota reserved
//!    and only then the partial file opened ([`prepare_upload`]); a kept
//!    partial is hashed if the client offered to resume. `PutReady` tells
//!    the client where to start.
//! 2. The data stream arrives through [`super::routing`] and
//!    [`qftp_transport::pump::receive_file`] writes and hashes it on a
//!    blocking thread with bounded memory; the core checks where the stream
//!    starts and counts its bytes, and the pump cuts a stream longer than
//!    declared (only it can stop the stream).
//! 3. `PutCommit` brings the client's hash; the core verifies it against
//!    the bytes received and [`super::commit`] does the rest. An upload that ends any other way settles its reservation as
//!    abandoned, on the blocking pool.
//!
//! This module does not commit (that is [`super::commit`]'s) and does not
//! serve the one-exchange small upload ([`super::small`]).

use std::sync::Arc;
use std::time::Duration;

use qftp_proto::path::RemotePath;
use qftp_proto::transfer::{
    ReceiveAction, ReceiveEvent, TransferError, UploadReceiver, UploadState,
};
use qftp_proto::{DataHeader, ErrorKind, HashBytes, Response, Timestamp};
use qftp_transport::pump::{self, PumpError, StreamOptions};
use tokio::sync::oneshot;

use super::commit::{self, Finished, IfUnsealed, Owner, UploadReservation};
use super::routing::{Commit, Inbox, stream_code};
use crate::audit::Audited;
use crate::error::{RequestError, RequestResult};
use crate::jail::{Jail, JailedTarget};
use crate::partials::Staging;
use crate::quota::UserQuota;
use crate::session::{Context, DropOffRuntime, HandlerResult, off_runtime};

/// An upload's open request.
#[derive(Debug)]
pub(crate) struct UploadOpen {
    pub request_id: u64,
    pub transfer_id: u64,
    pub path: String,
    pub size: u64,
    pub mtime: Timestamp,
    pub resume: bool,
}

/// Passes a `PutCommit` to its upload, which answers it.
pub(crate) fn deliver_commit(
    context: &Context,
    request_id: u64,
    transfer_id: u64,
    hash: HashBytes,
) -> HandlerResult {
    let sender = context.transfers.take_commit(transfer_id).ok_or_else(|| {
        RequestError::new(
            ErrorKind::Protocol,
            format!("no open upload with id {transfer_id}"),
        )
    })?;
    sender.send(Commit { request_id, hash }).map_err(|_| {
        RequestError::new(
            ErrorKind::Protocol,
            format!("upload {transfer_id} has already ended"),
        )
    })?;
    Ok(None)
}

/// Abandons an upload; its partial file stays for a later resume.
pub(crate) fn abort_upload(context: &Context, transfer_id: u64) -> HandlerResult {
    context.transfers.forget(transfer_id);
    Ok(Some(Response::Ok))
}

/// What `PutOpen` prepared on the blocking side.
#[derive(Debug)]
pub(crate) struct PreparedUpload {
    /// Where the file lands.
    pub target: JailedTarget,
    /// The partial file, opened for writing.
    pub file: std::fs::File,
}

/// Opens the target's directory, then, under the user's quota lock,
/// reserves room for the upload and only then opens its partial file in the
/// staging directory, so a refused upload leaves nothing behind. With
/// `resume`, an existing partial no longer than `size` is kept (its length
/// is the reservation's [`UploadReservation::kept`]).
pub(crate) fn prepare_upload(
    jail: &Jail,
    staging: &Staging,
    quota: &Arc<UserQuota>,
    path: &RemotePath,
    size: u64,
    resume: bool,
) -> RequestResult<(PreparedUpload, UploadReservation)> {
    let shown = path.to_string();
    let target = jail.open_parent(path)?;
    // A directory in the way is refused before anything is reserved.
    target.existing_footprint(&shown, 0)?;
    check_free_space(target.dir(), size, &shown)?;
    let (file, reservation) = quota.reserve(path, size, staging.partial(path), |_| resume)?;
    Ok((PreparedUpload { target, file }, reservation))
}

/// A prepared upload and what the transfer core made of its partial file.
#[derive(Debug)]
struct OpenedUpload {
    prepared: PreparedUpload,
    machine: UploadReceiver,
    /// What `PutReady` offers.
    offset: u64,
    prefix_hash: Option<HashBytes>,
    /// The hasher fed with the offered prefix.
    hasher: blake3::Hasher,
}

/// Tells the core how long the kept partial is and, when it asks, hashes
/// the prefix it offers, until it answers what `PutReady` says.
fn offer(
    mut machine: UploadReceiver,
    prepared: PreparedUpload,
    kept: u64,
    shown: &str,
) -> RequestResult<OpenedUpload> {
    let refused = |error: TransferError| RequestError::from_transfer(&error, shown);
    let mut hasher = blake3::Hasher::new();
    let mut action = machine
        .handle(ReceiveEvent::PartialFound { length: kept })
        .map_err(refused)?;
    if let ReceiveAction::HashPrefix { length } = action {
        pump::hash_prefix(&prepared.file, length, &mut hasher)
            .map_err(|error| RequestError::from_io(&error, shown))?;
        action = machine
            .handle(ReceiveEvent::PrefixHashed(*hasher.finalize().as_bytes()))
            .map_err(refused)?;
    }
    let ReceiveAction::SendReady {
        offset,
        prefix_hash,
    } = action
    else {
        return Err(unexpected(action, shown));
    };
    Ok(OpenedUpload {
        prepared,
        machine,
        offset,
        prefix_hash,
        hasher,
    })
}

/// The core answered something this driver has no step for.
pub(crate) fn unexpected(action: ReceiveAction, shown: &str) -> RequestError {
    RequestError::new(
        ErrorKind::Internal,
        format!("{shown}: the upload went out of step ({action:?})"),
    )
}

/// Serves `PutOpen` and then the whole upload; answers the commit itself.
pub(crate) async fn upload(context: &Context, open: UploadOpen) -> HandlerResult {
    let audited = Audited::start("put", &open.path);
    let _in_flight = context.live.transfer_started();
    let _active = context.state.metrics.transfer_started();
    // A size no file can have is refused before anything else.
    let machine = UploadReceiver::open(open.size, open.resume)
        .map_err(|error| RequestError::from_transfer(&error, &open.path))?;
    // Hardening (resources): one of the user's open uploads until this ends.
    let _open_upload = context
        .state
        .open_uploads
        .open(&context.session.user, &open.path)?;
    let path = context.parse_path(&open.path)?;
    let (size, resume) = (open.size, open.resume);
    // A rerun after a crashed client takes over from the stale upload.
    context
        .session
        .quota
        .take_over(&path, Duration::from_secs(10))
        .await;
    let (opened, reservation) = {
        let path = path.clone();
        let quota = Arc::clone(&context.session.quota);
        let staging = context.session.staging.clone();
        context
            .blocking(move |jail| {
                let (prepared, reservation) =
                    prepare_upload(jail, &staging, &quota, &path, size, resume)?;
                let kept = reservation.kept();
                Ok((
                    offer(machine, prepared, kept, &path.to_string())?,
                    reservation,
                ))
            })
            .await?
    };
    // However this upload ends, settling its reservation writes the ledger:
    // on the blocking pool, not here.
    let reservation = DropOffRuntime::new(reservation);
    let (stream_sender, stream_receiver) = oneshot::channel();
    let (commit_sender, commit_receiver) = oneshot::channel();
    let slot = context.transfers.claim(
        open.transfer_id,
        Some(Inbox {
            stream: Some(stream_sender),
            commit: Some(commit_sender),
        }),
    )?;
    context
        .reply(
            open.request_id,
            Response::PutReady {
                offset: opened.offset,
                prefix_hash: opened.prefix_hash,
            },
        )
        .await;

    let timeout = context.state.config.idle_timeout();
    let give_way = reservation.asked_to_give_way();
    tokio::pin!(give_way);
    let received = receive(
        context,
        &open,
        opened,
        stream_receiver,
        timeout,
        give_way.as_mut(),
    )
    .await;
    if reservation.is_asked_to_give_way() {
        // The newer upload owns the partial file now; a late commit for this
        // one is answered by `deliver_commit` as ended.
        return Ok(None);
    }
    let commit = tokio::select! {
        commit = tokio::time::timeout(timeout, commit_receiver) => match commit {
            Ok(Ok(commit)) => commit,
            _ => return Ok(None),
        },
        _ = context.connection.closed() => return Ok(None),
        () = &mut give_way => return Ok(None),
    };
    let result = match received {
        Ok(received) => {
            finish_upload(
                context,
                &path,
                &open,
                received,
                commit.hash,
                reservation.into_inner(),
            )
            .await
        }
        Err(error) => {
            reservation.release().await;
            Err(error)
        }
    };
    // The reservation is released by now, before the client hears back.
    drop(slot);
    let bytes = match &result {
        Ok(Response::PutDone { bytes_received, .. }) => *bytes_received,
        _ => 0,
    };
    audited.finish(context, bytes, result.as_ref().map(|_| ()));
    match result {
        Ok(response) => context.reply(commit.request_id, response).await,
        Err(error) => {
            context
                .reply_error(commit.request_id, "put-commit", error)
                .await
        }
    }
    Ok(None)
}

/// An upload whose bytes have all arrived.
#[derive(Debug)]
struct ReceivedUpload {
    prepared: PreparedUpload,
    machine: UploadReceiver,
    /// The hash of every byte of the file so far.
    hasher: blake3::Hasher,
}

async fn receive(
    context: &Context,
    open: &UploadOpen,
    opened: OpenedUpload,
    stream: oneshot::Receiver<(DataHeader, quinn::RecvStream)>,
    timeout: Duration,
    mut give_way: std::pin::Pin<&mut (impl std::future::Future<Output = ()> + ?Sized)>,
) -> RequestResult<ReceivedUpload> {
    let OpenedUpload {
        prepared,
        mut machine,
        hasher: prefix_hasher,
        ..
    } = opened;
    let failed = |message: &str| {
        RequestError::new(
            ErrorKind::IntegrityMismatch,
            format!("{}: {message}", open.path),
        )
    };
    let refused = |error: TransferError| RequestError::from_transfer(&error, &open.path);
    let (header, mut recv) = tokio::select! {
        stream = tokio::time::timeout(timeout, stream) => match stream {
            Ok(Ok(stream)) => stream,
            _ => return Err(failed("no data stream arrived")),
        },
        _ = context.connection.closed() => return Err(failed("connection closed")),
        () = &mut give_way => return Err(failed("superseded by a newer upload of the same file")),
    };
    let accepted = machine.handle(ReceiveEvent::HeaderArrived {
        offset: header.offset,
    });
    let (start, length, continue_prefix) = match accepted {
        Ok(ReceiveAction::AcceptStream {
            start,
            length,
            continue_prefix,
        }) => (start, length, continue_prefix),
        Ok(action) => return Err(unexpected(action, &open.path)),
        Err(error) => {
            let _ = recv.stop(stream_code::BAD_HEADER.into());
            return Err(refused(error));
        }
    };
    let hasher = if continue_prefix {
        prefix_hasher
    } else {
        blake3::Hasher::new()
    };
    let file = prepared
        .file
        .try_clone()
        .map_err(|error| RequestError::from_io(&error, &open.path))?;
    // The core counts every chunk; the pump itself cuts a stream that
    // carries more than `length`, since only it can stop the stream.
    let mut broken = None;
    let (_, hasher) = pump::receive_file(
        &mut recv,
        file,
        start,
        length,
        hasher,
        StreamOptions::unlimited(timeout),
        give_way,
        |bytes| {
            if broken.is_none() {
                broken = machine.handle(ReceiveEvent::Bytes(bytes)).err();
            }
        },
    )
    .await
    .map_err(|error| match error {
        PumpError::Disk(error) => RequestError::from_io(&error, &open.path),
        other => failed(&other.to_string()),
    })?;
    if let Some(error) = broken {
        return Err(refused(error));
    }
    machine
        .handle(ReceiveEvent::StreamFinished)
        .map_err(refused)?;
    Ok(ReceivedUpload {
        prepared,
        machine,
        hasher,
    })
}

/// Verifies a received upload and, if its hash matches, commits it
/// ([`commit`]); all file work runs on one blocking task.
async fn finish_upload(
    context: &Context,
    path: &RemotePath,
    open: &UploadOpen,
    upload: ReceivedUpload,
    client_hash: HashBytes,
    reservation: UploadReservation,
) -> RequestResult<Response> {
    let ReceivedUpload {
        prepared,
        mut machine,
        hasher,
    } = upload;
    let shown = path.to_string();
    let mtime = open.mtime.to_system_time();
    let size = open.size;
    let quota = Arc::clone(&context.session.quota);
    let state = Arc::clone(&context.state);
    let entry_cost = context.session.jail.entry_cost();
    let summary = off_runtime(move || {
        let refused = |error: TransferError| RequestError::from_transfer(&error, &shown);
        let action = machine
            .handle(ReceiveEvent::CommitRequested { hash: client_hash })
            .map_err(refused)?;
        if action != ReceiveAction::Verify {
            return Err(unexpected(action, &shown));
        }
        let computed = *hasher.finalize().as_bytes();
        let answer = machine.handle(ReceiveEvent::HashComputed(computed));
        let verified = match commit::verify(answer, &shown) {
            Ok(verified) => verified,
            Err(error) => {
                // Bytes that do not hash as declared are not kept for a resume.
                if matches!(
                    machine.state(),
                    UploadState::Failed(TransferError::HashMismatch(_))
                ) {
                    reservation.discard();
                }
                return Err(error);
            }
        };
        let upload = Finished {
            file: &prepared.file,
            size,
            mtime,
            shown: &shown,
            if_unsealed: IfUnsealed::Keep,
        };
        let owner = Owner {
            state: &state,
            quota: &quota,
            entry_cost,
        };
        commit::commit(verified, &prepared.target, upload, reservation, owner)?;
        match machine.handle(ReceiveEvent::Committed).map_err(refused)? {
            ReceiveAction::Done(summary) => Ok(summary),
            action => Err(unexpected(action, &shown)),
        }
    })
    .await?;
    tracing::debug!(user = %context.session.user, path = %path, size, resumed = summary.resumed, "upload stored");
    Ok(Response::PutDone {
        bytes_received: summary.transferred,
        resumed: summary.resumed,
    })
}

/// Refuses an upload that needs more bytes than the file system holding
/// `dir` has free (for unprivileged users), before anything is written or
/// reserved; also what bounds the declared size for users without a quota.
pub(crate) fn check_free_space(
    dir: &cap_std::fs::Dir,
    needed: u64,
    shown: &str,
) -> RequestResult<()> {
    if needed == 0 {
        return Ok(());
    }
    let stats = rustix::fs::fstatvfs(dir)
        .map_err(|error| RequestError::from_io(&std::io::Error::from(error), shown))?;
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if needed > free {
        return Err(RequestError::new(
            ErrorKind::QuotaExceeded { needed, free },
            format!(
                "{shown}: not enough space on the server: needs {}, {} free",
                qftp_proto::size::format_size(needed),
                qftp_proto::size::format_size(free)
            ),
        ));
    }
    Ok(())
}
