//! Uploads and downloads: one unidirectional QUIC stream per file.
//!
//! An upload's journey (the message sequence is documented in `qftp-proto`):
//! 1. `PutOpen`: the target's parent is opened inside the jail, the partial
//!    file is opened safely ([`crate::partials::open_partial`]), an existing
//!    partial is hashed if the client offered to resume, and the quota is
//!    reserved, all before `PutReady` tells the client where to start.
//! 2. The data stream arrives and [`qftp_transport::pump::receive_file`]
//!    writes and hashes it on a blocking thread with bounded memory. A
//!    stream that sends more than declared is cut.
//! 3. `PutCommit` brings the client's hash. Only if it matches the hash of
//!    the bytes on disk, and the size is exact, is the partial fsynced, given
//!    its mtime, renamed over the final name and the directory fsynced. The
//!    quota is charged at that moment, once.
//!
//! A download checks the client's partial prefix, sends the rest with
//! [`qftp_transport::pump::send_file`] (hashing as it reads), then reports the
//! hash with `GetDone`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qftp_proto::path::RemotePath;
use qftp_proto::{DataHeader, EntryKind, ErrorKind, HashBytes, Response, ResumePoint, Timestamp};
use qftp_transport::framed;
use qftp_transport::pump::{self, PumpError, StreamOptions};
use tokio::sync::{Semaphore, oneshot};

use crate::connection::{Context, HandlerResult, parse_path};
use crate::error::{RequestError, RequestResult};
use crate::jail::Jail;
use crate::quota::Reservation;
use crate::server::ServerState;

/// Error codes used when a data stream is stopped or reset.
pub mod stream_code {
    /// The stream did not start with a valid header.
    pub const BAD_HEADER: u32 = 1;
    /// The header names no open transfer.
    pub const UNKNOWN_TRANSFER: u32 = 2;
    /// The stream carried more bytes than the file's declared size.
    pub const TOO_LONG: u32 = qftp_transport::pump::STOP_TOO_LONG;
    /// The transfer failed on this side.
    pub const FAILED: u32 = qftp_transport::pump::STOP_FAILED;
}

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

#[derive(Debug)]
struct Commit {
    request_id: u64,
    hash: HashBytes,
}

#[derive(Debug)]
struct Inbox {
    stream: Option<oneshot::Sender<(DataHeader, quinn::RecvStream)>>,
    commit: Option<oneshot::Sender<Commit>>,
}

/// The transfers open on one connection, by the ids the client chose.
#[derive(Debug)]
pub struct TransferTable {
    open: Mutex<HashMap<u64, Option<Inbox>>>,
    downloads: Arc<Semaphore>,
}

impl TransferTable {
    /// A table allowing `max_downloads` downloads to stream at once.
    pub fn new(max_downloads: usize) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            downloads: Arc::new(Semaphore::new(max_downloads.max(1))),
        }
    }

    fn claim(
        self: &Arc<Self>,
        transfer_id: u64,
        inbox: Option<Inbox>,
    ) -> RequestResult<TransferSlot> {
        let mut open = self.open.lock().expect("transfer table lock");
        if open.contains_key(&transfer_id) {
            return Err(RequestError::new(
                ErrorKind::Protocol,
                format!("transfer id {transfer_id} is already in use"),
            ));
        }
        open.insert(transfer_id, inbox);
        Ok(TransferSlot {
            table: Arc::clone(self),
            transfer_id,
        })
    }

    /// Hands a data stream to the upload it names, or stops it.
    pub fn deliver_stream(&self, header: DataHeader, mut recv: quinn::RecvStream) {
        let sender = self
            .open
            .lock()
            .expect("transfer table lock")
            .get_mut(&header.transfer_id)
            .and_then(|inbox| inbox.as_mut())
            .and_then(|inbox| inbox.stream.take());
        match sender {
            Some(sender) => {
                if let Err((_, mut recv)) = sender.send((header, recv)) {
                    let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                }
            }
            None => {
                let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
            }
        }
    }

    fn take_commit(&self, transfer_id: u64) -> Option<oneshot::Sender<Commit>> {
        self.open
            .lock()
            .expect("transfer table lock")
            .get_mut(&transfer_id)
            .and_then(|inbox| inbox.as_mut())
            .and_then(|inbox| inbox.commit.take())
    }

    fn forget(&self, transfer_id: u64) -> bool {
        self.open
            .lock()
            .expect("transfer table lock")
            .remove(&transfer_id)
            .is_some()
    }
}

/// Keeps a transfer id claimed while the transfer runs.
#[derive(Debug)]
struct TransferSlot {
    table: Arc<TransferTable>,
    transfer_id: u64,
}

impl Drop for TransferSlot {
    fn drop(&mut self) {
        self.table.forget(self.transfer_id);
    }
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
struct PreparedUpload {
    dir: cap_std::fs::Dir,
    name: String,
    partial: String,
    file: std::fs::File,
    offset: u64,
    prefix_hash: Option<HashBytes>,
    hasher: blake3::Hasher,
}

/// Opens the target's directory, reserves quota through `reserve` (given the
/// size of the file that will be replaced) and only then opens the partial
/// file, so a refused upload leaves nothing behind.
fn prepare_upload(
    jail: &Jail,
    path: &RemotePath,
    size: u64,
    resume: bool,
    reserve: impl FnOnce(u64) -> RequestResult<Reservation>,
) -> RequestResult<(PreparedUpload, Reservation)> {
    let shown = path.to_string();
    let (dir, name) = jail.open_parent(path)?;
    let replaced = replaced_size(&dir, &name, &shown)?;
    let reservation = reserve(replaced)?;
    let partial = qftp_proto::partial_name(&name);
    let io_error = |error: std::io::Error| RequestError::from_io(&error, &shown);
    let (file, existing) = crate::partials::open_partial(&dir, &partial).map_err(io_error)?;
    let mut hasher = blake3::Hasher::new();
    let (offset, prefix_hash) = if resume && existing > 0 && existing <= size {
        pump::hash_prefix(&file, existing, &mut hasher).map_err(io_error)?;
        (existing, Some(*hasher.finalize().as_bytes()))
    } else {
        // A new, empty partial needs no truncation (the common case for
        // small files); an old one not resumed is emptied now.
        if existing > 0 {
            file.set_len(0).map_err(io_error)?;
        }
        (0, None)
    };
    Ok((
        PreparedUpload {
            dir,
            name,
            partial,
            file,
            offset,
            prefix_hash,
            hasher,
        },
        reservation,
    ))
}

/// Serves `PutOpen` and then the whole upload; answers the commit itself.
pub(crate) async fn upload(context: &Context, open: UploadOpen) -> HandlerResult {
    let path = parse_path(&open.path)?;
    let (size, resume) = (open.size, open.resume);
    // A rerun after a crashed client takes over from the stale upload.
    context
        .session
        .quota
        .take_over(&path, Duration::from_secs(10))
        .await;
    let (prepared, reservation) = {
        let path = path.clone();
        let quota = Arc::clone(&context.session.quota);
        let state = Arc::clone(&context.state);
        context
            .blocking(move |jail| {
                prepare_upload(jail, &path, size, resume, |replaced| {
                    quota.reserve(&state.db, &path, size, replaced)
                })
            })
            .await?
    };
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
                offset: prepared.offset,
                prefix_hash: prepared.prefix_hash,
            },
        )
        .await;

    let timeout = context.state.config.idle_timeout();
    let give_way = reservation.asked_to_give_way();
    tokio::pin!(give_way);
    let received = receive(
        context,
        &open,
        prepared,
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
            finish_upload(context, &path, &open, received, commit.hash, reservation).await
        }
        Err(error) => {
            drop(reservation);
            Err(error)
        }
    };
    // The reservation is released by now, before the client hears back.
    drop(slot);
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
    start: u64,
    received: u64,
}

async fn receive(
    context: &Context,
    open: &UploadOpen,
    mut prepared: PreparedUpload,
    stream: oneshot::Receiver<(DataHeader, quinn::RecvStream)>,
    timeout: Duration,
    mut give_way: std::pin::Pin<&mut (impl std::future::Future<Output = ()> + ?Sized)>,
) -> RequestResult<ReceivedUpload> {
    let failed = |message: &str| {
        RequestError::new(
            ErrorKind::IntegrityMismatch,
            format!("{}: {message}", open.path),
        )
    };
    let (header, mut recv) = tokio::select! {
        stream = tokio::time::timeout(timeout, stream) => match stream {
            Ok(Ok(stream)) => stream,
            _ => return Err(failed("no data stream arrived")),
        },
        _ = context.connection.closed() => return Err(failed("connection closed")),
        () = &mut give_way => return Err(failed("superseded by a newer upload of the same file")),
    };
    let start = header.offset;
    if start != prepared.offset && start != 0 {
        let _ = recv.stop(stream_code::BAD_HEADER.into());
        return Err(RequestError::new(
            ErrorKind::Protocol,
            format!(
                "{}: data must start at 0 or {}, not {start}",
                open.path, prepared.offset
            ),
        ));
    }
    let expected = open.size - start;
    let hasher = if start == 0 {
        blake3::Hasher::new()
    } else {
        prepared.hasher.clone()
    };
    let file = prepared
        .file
        .try_clone()
        .map_err(|error| RequestError::from_io(&error, &open.path))?;
    let (_, hasher) = pump::receive_file(
        &mut recv,
        file,
        start,
        expected,
        hasher,
        StreamOptions::unlimited(timeout),
        give_way,
        |_| {},
    )
    .await
    .map_err(|error| match error {
        PumpError::Disk(error) => RequestError::from_io(&error, &open.path),
        other => failed(&other.to_string()),
    })?;
    let received = expected;
    prepared.hasher = hasher;
    Ok(ReceivedUpload {
        prepared,
        start,
        received,
    })
}

/// Verifies a received upload and, if its hash matches, makes it durable
/// and moves it into place; all file work runs on one blocking task, and the
/// rename and the quota charge happen together under the user's quota lock.
async fn finish_upload(
    context: &Context,
    path: &RemotePath,
    open: &UploadOpen,
    upload: ReceivedUpload,
    client_hash: HashBytes,
    mut reservation: Reservation,
) -> RequestResult<Response> {
    let ReceivedUpload {
        prepared,
        start,
        received,
    } = upload;
    let shown = path.to_string();
    let mtime = open.mtime.to_system_time();
    let size = open.size;
    let quota = Arc::clone(&context.session.quota);
    let state = Arc::clone(&context.state);
    tokio::task::spawn_blocking(move || {
        let PreparedUpload {
            dir,
            name,
            partial,
            file,
            hasher,
            ..
        } = prepared;
        if hasher.finalize().as_bytes() != &client_hash {
            let _ = dir.remove_file(&partial);
            return Err(RequestError::new(
                ErrorKind::IntegrityMismatch,
                format!("{shown}: BLAKE3 mismatch; the upload was discarded"),
            ));
        }
        let io_error = |error: std::io::Error| RequestError::from_io(&error, &shown);
        if let Some(mtime) = mtime {
            let mtime = filetime::FileTime::from_system_time(mtime);
            filetime::set_file_handle_times(&file, None, Some(mtime)).map_err(io_error)?;
        }
        file.sync_all().map_err(io_error)?;
        let replaced = replaced_size(&dir, &name, &shown)?;
        quota.commit(&state.db, &mut reservation, size, replaced, || {
            dir.rename(&partial, &dir, &name).map_err(io_error)?;
            // The directory handle itself may be a path-only descriptor,
            // which cannot be synced; open the directory for reading.
            dir.open(".")
                .and_then(|directory| directory.into_std().sync_all())
                .map_err(io_error)
        })
    })
    .await
    .map_err(|_| RequestError::new(ErrorKind::Internal, "server error: task failed"))??;
    tracing::debug!(user = %context.session.user, path = %path, size, resumed = start, "upload stored");
    Ok(Response::PutDone {
        bytes_received: received,
        resumed: start,
    })
}

/// The size of the regular file an upload to `name` in `dir` would replace
/// (0 when there is none); a directory in the way is an error.
fn replaced_size(dir: &cap_std::fs::Dir, name: &str, shown: &str) -> RequestResult<u64> {
    match dir.symlink_metadata(name) {
        Ok(metadata) if metadata.is_dir() => Err(RequestError::new(
            ErrorKind::IsADirectory,
            format!("{shown}: is a directory"),
        )),
        Ok(metadata) if metadata.is_file() => Ok(metadata.len()),
        Ok(_) => Ok(0),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(RequestError::from_io(&error, shown)),
    }
}

/// Serves `GetOpen` and the whole download; answers `GetDone` at the end.
pub(crate) async fn download(
    context: &Context,
    request_id: u64,
    transfer_id: u64,
    path: &str,
    resume: Option<ResumePoint>,
) -> HandlerResult {
    let path = parse_path(path)?;
    let slot = context.transfers.claim(transfer_id, None)?;
    let _permit = Arc::clone(&context.transfers.downloads)
        .acquire_owned()
        .await
        .map_err(|_| RequestError::new(ErrorKind::Internal, "server error: limiter closed"))?;
    let shown = path.to_string();
    let (file, size, mtime, offset, hasher) = context
        .blocking(move |jail| {
            let (file, info) = jail.open_read(&path)?;
            if info.kind != EntryKind::File {
                return Err(RequestError::new(
                    ErrorKind::IsADirectory,
                    format!("{path}: not a regular file"),
                ));
            }
            let mut hasher = blake3::Hasher::new();
            let offset = match resume {
                Some(point) if point.offset > 0 && point.offset <= info.size => {
                    pump::hash_prefix(&file, point.offset, &mut hasher)
                        .map_err(|error| RequestError::from_io(&error, &path.to_string()))?;
                    if hasher.finalize().as_bytes() == &point.prefix_hash {
                        point.offset
                    } else {
                        hasher.reset();
                        0
                    }
                }
                _ => 0,
            };
            Ok((file, info.size, info.mtime, offset, hasher))
        })
        .await?;
    context
        .reply(
            request_id,
            Response::GetReady {
                size,
                mtime,
                offset,
            },
        )
        .await;
    let failed =
        |message: String| RequestError::new(ErrorKind::Internal, format!("{shown}: {message}"));
    let mut send = context
        .connection
        .open_uni()
        .await
        .map_err(|error| failed(format!("cannot open a data stream: {error}")))?;
    framed::write_message(
        &mut send,
        &DataHeader {
            transfer_id,
            offset,
        },
        64,
    )
    .await
    .map_err(|error| failed(error.to_string()))?;

    let stall = StreamOptions::unlimited(context.state.config.idle_timeout());
    let hasher = pump::send_file(
        file,
        offset,
        size - offset,
        hasher,
        &mut send,
        stall,
        |_| {},
    )
    .await
    .map_err(|error| failed(error.to_string()))?;
    let _ = send.finish();
    drop(slot);
    Ok(Some(Response::GetDone {
        hash: *hasher.finalize().as_bytes(),
    }))
}

/// Removes abandoned partial files of every user and expired sessions, now
/// and then periodically.
pub async fn sweep_periodically(state: Arc<ServerState>) {
    let max_age = state.config.partial_max_age();
    let period = (max_age / 4).clamp(Duration::from_secs(60), Duration::from_secs(3600));
    loop {
        let swept_state = Arc::clone(&state);
        let _ = tokio::task::spawn_blocking(move || sweep_all(&swept_state, max_age)).await;
        tokio::time::sleep(period).await;
    }
}

fn sweep_all(state: &ServerState, max_age: Duration) {
    match state
        .db
        .purge_expired_sessions(qftp_proto::Timestamp::now().secs)
    {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "removed expired sessions"),
        Err(error) => tracing::warn!(%error, "cannot purge expired sessions"),
    }
    let users = match state.db.users() {
        Ok(users) => users,
        Err(error) => {
            tracing::warn!(%error, "partial sweep: cannot list users");
            return;
        }
    };
    for user in users {
        let home = state.root.home_of(&state.config, &user);
        if !home.is_dir() {
            continue;
        }
        match crate::partials::sweep(&home, max_age) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(user = %user.name, removed, "removed abandoned partial uploads")
            }
            Err(error) => tracing::warn!(user = %user.name, %error, "partial sweep failed"),
        }
    }
}
