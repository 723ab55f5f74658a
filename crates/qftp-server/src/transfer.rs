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
use std::time::{Duration, Instant};

use qftp_proto::path::RemotePath;
use qftp_proto::{DataHeader, EntryKind, ErrorKind, HashBytes, Response, ResumePoint, Timestamp};
use qftp_transport::framed;
use qftp_transport::pump::{self, PumpError, StreamOptions};
use tokio::sync::{Semaphore, oneshot};

use crate::connection::{Context, HandlerResult};
use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;
use crate::jail::Jail;
use crate::partials::{StagedPartial, Staging};
use crate::quota::{Reservation, UserQuota};
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

/// What the table knows of one transfer id.
#[derive(Debug)]
enum Entry {
    /// A transfer is running (downloads have no inbox).
    Open(Option<Inbox>),
    /// A data stream that arrived before the request naming it: a small
    /// upload sends both at once, on separate streams that may be read in
    /// either order.
    Early(DataHeader, quinn::RecvStream, Instant),
    /// A transfer that ended before its data stream arrived; the stream is
    /// stopped as soon as it does.
    Ended(Instant),
}

/// How long a data stream may wait for its request, and an ended
/// transfer's id for its data stream.
const EARLY_WAIT: Duration = Duration::from_secs(10);

/// The transfers open on one connection, by the ids the client chose.
#[derive(Debug)]
pub struct TransferTable {
    open: Mutex<HashMap<u64, Entry>>,
    downloads: Arc<Semaphore>,
    max_early: usize,
}

impl TransferTable {
    /// A table allowing `max_downloads` downloads to stream at once; at most
    /// as many data streams may wait for their requests.
    pub fn new(max_downloads: usize) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            downloads: Arc::new(Semaphore::new(max_downloads.max(1))),
            max_early: max_downloads.max(1),
        }
    }

    fn claim(
        self: &Arc<Self>,
        transfer_id: u64,
        mut inbox: Option<Inbox>,
    ) -> RequestResult<TransferSlot> {
        let mut open = self.open.lock().expect("transfer table lock");
        Self::expire(&mut open, Instant::now());
        match open.remove(&transfer_id) {
            Some(Entry::Open(running)) => {
                open.insert(transfer_id, Entry::Open(running));
                return Err(RequestError::new(
                    ErrorKind::Protocol,
                    format!("transfer id {transfer_id} is already in use"),
                ));
            }
            Some(Entry::Early(header, mut recv, _)) => {
                match inbox.as_mut().and_then(|inbox| inbox.stream.take()) {
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
            Some(Entry::Ended(_)) | None => {}
        }
        open.insert(transfer_id, Entry::Open(inbox));
        Ok(TransferSlot {
            table: Arc::clone(self),
            transfer_id,
        })
    }

    /// Hands a data stream to the upload it names; keeps it a moment when
    /// its request has not been read yet; stops it otherwise.
    pub fn deliver_stream(self: &Arc<Self>, header: DataHeader, mut recv: quinn::RecvStream) {
        let transfer_id = header.transfer_id;
        let mut open = self.open.lock().expect("transfer table lock");
        match open.get_mut(&transfer_id) {
            Some(Entry::Open(Some(inbox))) if inbox.stream.is_some() => {
                let sender = inbox.stream.take().expect("checked above");
                if let Err((_, mut recv)) = sender.send((header, recv)) {
                    let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                }
            }
            Some(Entry::Ended(_)) => {
                open.remove(&transfer_id);
                let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
            }
            Some(_) => {
                let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
            }
            None => {
                Self::expire(&mut open, Instant::now());
                let waiting = open
                    .values()
                    .filter(|entry| matches!(entry, Entry::Early(..)))
                    .count();
                if waiting >= self.max_early {
                    let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                    return;
                }
                let since = Instant::now();
                open.insert(transfer_id, Entry::Early(header, recv, since));
                drop(open);
                // Stop the stream if no request claims it in time.
                let table = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(EARLY_WAIT).await;
                    if let Some(table) = table.upgrade() {
                        let mut open = table.open.lock().expect("transfer table lock");
                        Self::expire(&mut open, since + EARLY_WAIT);
                    }
                });
            }
        }
    }

    /// Drops early streams and ended ids older than [`EARLY_WAIT`] at `now`.
    fn expire(open: &mut HashMap<u64, Entry>, now: Instant) {
        open.retain(|_, entry| match entry {
            Entry::Early(_, recv, since) if now.duration_since(*since) >= EARLY_WAIT => {
                let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                false
            }
            Entry::Ended(since) => now.duration_since(*since) < EARLY_WAIT,
            _ => true,
        });
    }

    fn take_commit(&self, transfer_id: u64) -> Option<oneshot::Sender<Commit>> {
        match self
            .open
            .lock()
            .expect("transfer table lock")
            .get_mut(&transfer_id)
        {
            Some(Entry::Open(Some(inbox))) => inbox.commit.take(),
            _ => None,
        }
    }

    fn forget(&self, transfer_id: u64) -> bool {
        let mut open = self.open.lock().expect("transfer table lock");
        match open.remove(&transfer_id) {
            Some(Entry::Open(Some(inbox))) if inbox.stream.is_some() => {
                // Its data stream may still be on the way.
                open.insert(transfer_id, Entry::Ended(Instant::now()));
                true
            }
            Some(Entry::Open(_)) => true,
            Some(other) => {
                open.insert(transfer_id, other);
                false
            }
            None => false,
        }
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
    /// The target's directory and final name.
    dir: cap_std::fs::Dir,
    name: String,
    /// The partial file, opened for writing.
    file: std::fs::File,
    offset: u64,
    prefix_hash: Option<HashBytes>,
    hasher: blake3::Hasher,
}

/// The quota reservation of one upload and its partial file.
type UploadReservation = Reservation<StagedPartial>;

/// Opens the target's directory, then, under the user's quota lock,
/// reserves room for the upload and only then opens its partial file in the
/// staging directory, so a refused upload leaves nothing behind. With
/// `resume`, an existing partial no longer than `size` is kept and hashed.
fn prepare_upload(
    jail: &Jail,
    staging: &Staging,
    quota: &Arc<UserQuota>,
    path: &RemotePath,
    size: u64,
    resume: bool,
) -> RequestResult<(PreparedUpload, UploadReservation)> {
    let shown = path.to_string();
    let (dir, name) = jail.open_parent(path)?;
    // A directory in the way is refused before anything is reserved.
    replaced_footprint(&dir, &name, &shown, 0)?;
    check_free_space(&dir, size, &shown)?;
    let (file, reservation) = quota.reserve(path, size, staging.partial(path), |_| resume)?;
    let io_error = |error: std::io::Error| RequestError::from_io(&error, &shown);
    let kept = reservation.kept();
    let mut hasher = blake3::Hasher::new();
    let (offset, prefix_hash) = if kept > 0 {
        pump::hash_prefix(&file, kept, &mut hasher).map_err(io_error)?;
        (kept, Some(*hasher.finalize().as_bytes()))
    } else {
        (0, None)
    };
    Ok((
        PreparedUpload {
            dir,
            name,
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
    let (prepared, reservation) = {
        let path = path.clone();
        let quota = Arc::clone(&context.session.quota);
        let staging = context.session.staging.clone();
        context
            .blocking(move |jail| prepare_upload(jail, &staging, &quota, &path, size, resume))
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
    reservation: UploadReservation,
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
    let entry_cost = context.session.jail.entry_cost();
    tokio::task::spawn_blocking(move || {
        if prepared.hasher.finalize().as_bytes() != &client_hash {
            reservation.discard();
            return Err(RequestError::new(
                ErrorKind::IntegrityMismatch,
                format!("{shown}: BLAKE3 mismatch; the upload was discarded"),
            ));
        }
        seal(&prepared.file, mtime).map_err(|error| RequestError::from_io(&error, &shown))?;
        place(
            &state,
            &quota,
            reservation,
            &prepared,
            size,
            &shown,
            entry_cost,
        )
    })
    .await
    .map_err(|_| RequestError::new(ErrorKind::Internal, "server error: task failed"))??;
    tracing::debug!(user = %context.session.user, path = %path, size, resumed = start, "upload stored");
    Ok(Response::PutDone {
        bytes_received: received,
        resumed: start,
    })
}

/// Gives a fully written partial file its mtime and makes its data durable.
fn seal(file: &std::fs::File, mtime: Option<std::time::SystemTime>) -> std::io::Result<()> {
    if let Some(mtime) = mtime {
        let mtime = filetime::FileTime::from_system_time(mtime);
        filetime::set_file_handle_times(file, None, Some(mtime))?;
    }
    file.sync_all()
}

/// Renames a sealed partial over its final name and charges the quota in
/// one step under the user's lock (the replaced entry measured right before
/// the rename), then makes the rename durable with a directory flush shared
/// among the uploads finishing in that directory at the same time.
fn place(
    state: &ServerState,
    quota: &UserQuota,
    reservation: UploadReservation,
    upload: &PreparedUpload,
    size: u64,
    shown: &str,
    entry_cost: u64,
) -> RequestResult<()> {
    let PreparedUpload { dir, name, .. } = upload;
    let io_error = |error: std::io::Error| RequestError::from_io(&error, shown);
    // The directory handle itself may be a path-only descriptor, which
    // cannot be synced; open the directory for reading.
    let directory = dir.open(".").map_err(io_error)?.into_std();
    quota.commit(reservation, size, |partial: &StagedPartial| {
        let replaced = replaced_footprint(dir, name, shown, entry_cost)?;
        partial.rename_into(dir, name).map_err(io_error)?;
        Ok(replaced)
    })?;
    state.dir_sync.sync(&directory).map_err(io_error)
}

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
    if size > qftp_proto::SMALL_FILE_MAX {
        return Err(RequestError::new(
            ErrorKind::Protocol,
            format!(
                "{path}: {size} bytes is too large for a small upload (at most {})",
                qftp_proto::SMALL_FILE_MAX
            ),
        ));
    }
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
    if header.offset != 0 {
        let _ = recv.stop(stream_code::BAD_HEADER.into());
        return Err(RequestError::new(
            ErrorKind::Protocol,
            format!("{shown}: a small upload starts at 0, not {}", header.offset),
        ));
    }
    let body = pump::receive_small(&mut recv, size as usize, timeout, async {
        context.connection.closed().await;
    })
    .await
    .map_err(|error| failed(&error.to_string()))?;
    let quota = Arc::clone(&context.session.quota);
    let state = Arc::clone(&context.state);
    let staging = context.session.staging.clone();
    let entry_cost = context.session.jail.entry_cost();
    let mtime = mtime.to_system_time();
    context
        .blocking(move |jail| {
            if blake3::hash(&body).as_bytes() != &hash {
                return Err(RequestError::new(
                    ErrorKind::IntegrityMismatch,
                    format!("{path}: BLAKE3 mismatch; the upload was discarded"),
                ));
            }
            let upload = SmallStore {
                state: &state,
                quota: &quota,
                staging: &staging,
                path: &path,
                entry_cost,
            };
            store_small(jail, upload, &body, mtime)
        })
        .await?;
    tracing::debug!(user = %context.session.user, path = %shown, size, "small upload stored");
    Ok(Some(Response::PutDone {
        bytes_received: size,
        resumed: 0,
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

/// Writes a verified small file as a partial, makes it durable and moves it
/// into place, with the quota reserved before the first byte and charged at
/// the rename. A failed write leaves no partial behind.
fn store_small(
    jail: &Jail,
    upload: SmallStore<'_>,
    body: &[u8],
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
    let written = std::io::Write::write_all(&mut &prepared.file, body)
        .and_then(|()| seal(&prepared.file, mtime));
    if let Err(error) = written {
        reservation.discard();
        return Err(RequestError::from_io(&error, &shown));
    }
    place(
        state,
        quota,
        reservation,
        &prepared,
        size,
        &shown,
        entry_cost,
    )
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

/// Refuses an upload that needs more bytes than the file system holding
/// `dir` has free (for unprivileged users), before anything is written or
/// reserved; also what bounds the declared size for users without a quota.
fn check_free_space(dir: &cap_std::fs::Dir, needed: u64, shown: &str) -> RequestResult<()> {
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

/// What the entry an upload to `name` in `dir` would replace costs (nothing
/// when there is none); a directory in the way is an error.
fn replaced_footprint(
    dir: &cap_std::fs::Dir,
    name: &str,
    shown: &str,
    entry_cost: u64,
) -> RequestResult<Footprint> {
    match dir.symlink_metadata(name) {
        Ok(metadata) if metadata.is_dir() => Err(RequestError::new(
            ErrorKind::IsADirectory,
            format!("{shown}: is a directory"),
        )),
        Ok(metadata) => Ok(Footprint::of(&metadata, entry_cost)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Footprint::ZERO),
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
    let path = context.parse_path(path)?;
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
    let cutoff = crate::partials::cutoff(max_age);
    for user in users {
        match sweep_user(state, &user, cutoff) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(user = %user.name, removed, "removed abandoned partial uploads")
            }
            Err(error) => tracing::warn!(user = %user.name, %error, "partial sweep failed"),
        }
    }
}

/// Removes `user`'s partial uploads that nothing touched since `cutoff`
/// and no upload is using, and takes them off the user's ledger.
fn sweep_user(
    state: &ServerState,
    user: &crate::userdb::UserRecord,
    cutoff: std::time::SystemTime,
) -> std::io::Result<usize> {
    let home = state.root.home_of(&state.config, user);
    let home = match cap_std::fs::Dir::open_ambient_dir(&home, cap_std::ambient_authority()) {
        Ok(home) => home,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let quota = state.quotas.user(user);
    let mut removed = 0;
    if let Some(staging) = Staging::open_existing(&home)? {
        let partials = staging.partials()?;
        removed += quota.sweep(partials.into_iter(), |partial| {
            partial.changed_before(cutoff)
        });
    }
    let legacy = quota
        .change(|tally| {
            let freed = crate::partials::sweep_legacy(&home, cutoff)
                .map_err(|error| RequestError::from_io(&error, "/"))?;
            tally.remove(freed);
            Ok(freed.entries)
        })
        .map_err(|error| std::io::Error::other(error.message))?;
    Ok(removed + legacy as usize)
}
