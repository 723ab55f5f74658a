//! One upload or one download, with hashing, resume and progress events.
//!
//! An upload offers to resume; the server answers with the length and hash
//! of the partial file it holds, and the client continues from there only
//! if its own file starts with exactly those bytes. A download works the
//! other way round: the client offers its local partial's length and hash.
//! Either way the whole file's BLAKE3 is checked before the file appears
//! under its final name (on the server for uploads, here for downloads).
//! The rules of both are the transfer core's ([`UploadSender`],
//! [`DownloadReceiver`]); this module moves and hashes the bytes.
//!
//! Where a download lands is not decided here: it is written beneath a
//! [`crate::destination::Destination`], which refuses unsafe names. Many
//! transfers at once are [`crate::batch`]'s business.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use qftp_proto::transfer::{
    DownloadReceiver, ReceiveAction, ReceiveEvent, SendAction, SendEvent, TransferError,
    TransferSummary, UploadSender, is_small, resume,
};
use qftp_proto::{ErrorKind, Request, Response, ResumePoint};
use qftp_transport::pump::{self, PumpError};

use crate::connection::Client;
use crate::destination::{Destination, LocalName};
use crate::error::ClientError;
pub use crate::observer::{SharedObserver, Silent, TransferObserver, TransferOutcome};

/// Options of one transfer.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Continue from a partial file when its content matches.
    pub resume: bool,
    /// A byte-rate limit shared by every transfer using these options.
    pub rate_limit: Option<Arc<pump::RateLimit>>,
}

/// How long a data stream may make no progress before the client gives up
/// on it (the file can be resumed later).
pub const STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl TransferOptions {
    fn stream(&self) -> pump::StreamOptions<'_> {
        pump::StreamOptions {
            rate_limit: self.rate_limit.as_deref(),
            stall_timeout: STALL_TIMEOUT,
        }
    }
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            resume: true,
            rate_limit: None,
        }
    }
}

fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {response:?}"))
}

/// A rule of the transfer core the server broke.
fn broken(error: TransferError) -> ClientError {
    ClientError::Protocol(error.to_string())
}

/// The core asked for a step this code has not.
fn out_of_step(action: &dyn std::fmt::Debug) -> ClientError {
    ClientError::Protocol(format!("the transfer went out of step ({action:?})"))
}

fn outcome(summary: TransferSummary) -> TransferOutcome {
    TransferOutcome {
        size: summary.size,
        transferred: summary.transferred,
        resumed: summary.resumed,
    }
}

fn pump_error(path: &Path, error: PumpError) -> ClientError {
    match error {
        PumpError::Disk(source) => ClientError::local(path, source),
        PumpError::Shrank => ClientError::local(
            path,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while being sent",
            ),
        ),
        other => ClientError::ConnectionLost(other.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ClientError::Protocol(format!("worker thread failed: {error}")))?
}

/// Uploads the local file `local` to the remote path `remote`.
pub async fn upload(
    client: &Client,
    local: &Path,
    remote: &str,
    options: &TransferOptions,
    observer: &dyn TransferObserver,
    job: usize,
) -> Result<TransferOutcome, ClientError> {
    let result = upload_inner(client, local, remote, options, observer, job)
        .await
        .map_err(|error| client.explain_lost(error));
    observer.finished(job, result.as_ref());
    result
}

async fn upload_inner(
    client: &Client,
    local: &Path,
    remote: &str,
    options: &TransferOptions,
    observer: &dyn TransferObserver,
    job: usize,
) -> Result<TransferOutcome, ClientError> {
    let path = local.to_owned();
    let (file, size, mtime, small) = blocking(move || {
        let mut file =
            std::fs::File::open(&path).map_err(|error| ClientError::local(&path, error))?;
        let metadata = file
            .metadata()
            .map_err(|error| ClientError::local(&path, error))?;
        if !metadata.is_file() {
            return Err(ClientError::Usage(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        let mtime = metadata
            .modified()
            .map_err(|error| ClientError::local(&path, error))?;
        let mtime = qftp_proto::Timestamp::from(mtime);
        if !is_small(metadata.len()) {
            return Ok((file, metadata.len(), mtime, None));
        }
        // Read one byte more than allowed so a file that grew meanwhile
        // takes the normal path.
        let mut body = Vec::with_capacity(metadata.len() as usize);
        std::io::Read::take(&mut file, qftp_proto::SMALL_FILE_MAX + 1)
            .read_to_end(&mut body)
            .map_err(|error| ClientError::local(&path, error))?;
        if !is_small(body.len() as u64) {
            return Ok((file, metadata.len(), mtime, None));
        }
        Ok((file, body.len() as u64, mtime, Some(body)))
    })
    .await?;
    if let Some(body) = small {
        return upload_small(client, remote, body, mtime, options, observer, job).await;
    }
    let mut machine = UploadSender::new(size, options.resume).map_err(broken)?;
    let transfer_id = client.next_transfer_id();
    let ready = client
        .request(Request::PutOpen {
            transfer_id,
            path: remote.to_owned(),
            size,
            mtime,
            resume: options.resume,
        })
        .await?;
    let Response::PutReady {
        offset,
        prefix_hash,
    } = ready
    else {
        return Err(unexpected(&ready));
    };
    let path = local.to_owned();
    let (file, mut machine, (start, length), hasher) = blocking(move || {
        let mut hasher = blake3::Hasher::new();
        // The core decides whether the server's prefix is worth comparing.
        let mut action = machine
            .handle(SendEvent::Ready {
                offset,
                prefix_hash,
            })
            .map_err(broken)?;
        if let SendAction::HashPrefix { length } = action {
            pump::hash_prefix(&file, length, &mut hasher)
                .map_err(|error| ClientError::local(&path, error))?;
            action = machine
                .handle(SendEvent::PrefixHashed(*hasher.finalize().as_bytes()))
                .map_err(broken)?;
        }
        let SendAction::Start {
            start,
            length,
            continue_prefix,
        } = action
        else {
            return Err(out_of_step(&action));
        };
        if !continue_prefix {
            hasher.reset();
        }
        Ok((file, machine, (start, length), hasher))
    })
    .await?;
    observer.started(job, remote, size, start);
    let sent = async {
        let mut send = client.open_data_stream(transfer_id, start).await?;
        let mut refused = None;
        let hasher = pump::send_file(
            file,
            start,
            length,
            hasher,
            &mut send,
            options.stream(),
            |bytes| {
                observer.advanced(job, bytes);
                if refused.is_none() {
                    refused = machine.handle(SendEvent::Bytes(bytes)).err();
                }
            },
        )
        .await
        .map_err(|error| pump_error(local, error))?;
        if let Some(error) = refused {
            return Err(broken(error));
        }
        send.finish()
            .map_err(|error| ClientError::ConnectionLost(error.to_string()))?;
        machine.handle(SendEvent::StreamFinished).map_err(broken)?;
        match machine
            .handle(SendEvent::HashComputed(*hasher.finalize().as_bytes()))
            .map_err(broken)?
        {
            SendAction::SendHash { hash } => Ok::<_, ClientError>(hash),
            action => Err(out_of_step(&action)),
        }
    }
    .await;
    let hash = match sent {
        Ok(hash) => hash,
        Err(error) => {
            let _ = client.send(Request::PutAbort { transfer_id }).await;
            return Err(error);
        }
    };
    let done = client
        .request(Request::PutCommit { transfer_id, hash })
        .await?;
    let Response::PutDone {
        bytes_received,
        resumed,
    } = done
    else {
        return Err(unexpected(&done));
    };
    // The server's account of the upload must match what went out.
    match machine
        .handle(SendEvent::Done {
            bytes_received,
            resumed,
        })
        .map_err(broken)?
    {
        SendAction::Done(summary) => Ok(outcome(summary)),
        action => Err(out_of_step(&action)),
    }
}

/// Uploads a small file held in memory in one exchange: the request with
/// the hash and the data stream leave together (see `Request::PutSmall`).
async fn upload_small(
    client: &Client,
    remote: &str,
    body: Vec<u8>,
    mtime: qftp_proto::Timestamp,
    options: &TransferOptions,
    observer: &dyn TransferObserver,
    job: usize,
) -> Result<TransferOutcome, ClientError> {
    let size = body.len() as u64;
    let transfer_id = client.next_transfer_id();
    let mut answer = client
        .send(Request::PutSmall {
            transfer_id,
            path: remote.to_owned(),
            size,
            mtime,
            hash: *blake3::hash(&body).as_bytes(),
        })
        .await?;
    observer.started(job, remote, size, 0);
    let sent = async {
        if let Some(limit) = &options.rate_limit {
            limit.consume(size).await;
        }
        let mut send = client.open_data_stream(transfer_id, 0).await?;
        send.write_all(&body)
            .await
            .map_err(|error| ClientError::ConnectionLost(error.to_string()))?;
        send.finish()
            .map_err(|error| ClientError::ConnectionLost(error.to_string()))?;
        observer.advanced(job, size);
        Ok::<_, ClientError>(())
    };
    // The server's answer decides: when it refuses the file, it stops the
    // data stream, and that stream error says less than the answer does.
    let (sent, done) = tokio::join!(sent, answer.next());
    match done? {
        Response::PutDone {
            bytes_received,
            resumed,
        } => {
            sent?;
            Ok(TransferOutcome {
                size,
                transferred: bytes_received,
                resumed,
            })
        }
        other => Err(unexpected(&other)),
    }
}

/// The hidden partial file that a download of `local` writes to.
pub fn local_partial_path(local: &Path) -> Result<PathBuf, ClientError> {
    let name = local
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| {
            ClientError::Usage(format!("{}: not a usable file name", local.display()))
        })?;
    Ok(local.with_file_name(qftp_proto::partial_name(name)))
}

/// Downloads the remote file `remote` to the local path `local`, whose
/// directory must exist.
pub async fn download(
    client: &Client,
    remote: &str,
    local: &Path,
    options: &TransferOptions,
    observer: &dyn TransferObserver,
    job: usize,
) -> Result<TransferOutcome, ClientError> {
    let (directory, name) = split_local(local)?;
    let destination = Destination::open(directory, false)?;
    download_beneath(client, remote, &destination, &name, options, observer, job).await
}

/// The directory of `local` and its last name.
fn split_local(local: &Path) -> Result<(&Path, LocalName), ClientError> {
    let unusable = || ClientError::Usage(format!("{}: not a usable file name", local.display()));
    let name = local
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(unusable)?;
    let name = LocalName::parse(name).map_err(|_| unusable())?;
    let directory = local
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok((directory, name))
}

/// Downloads the remote file `remote` to `name` beneath `destination`.
pub async fn download_beneath(
    client: &Client,
    remote: &str,
    destination: &Destination,
    name: &LocalName,
    options: &TransferOptions,
    observer: &dyn TransferObserver,
    job: usize,
) -> Result<TransferOutcome, ClientError> {
    let result = download_inner(client, remote, destination, name, options, observer, job)
        .await
        .map_err(|error| client.explain_lost(error));
    observer.finished(job, result.as_ref());
    result
}

async fn download_inner(
    client: &Client,
    remote: &str,
    destination: &Destination,
    name: &LocalName,
    options: &TransferOptions,
    observer: &dyn TransferObserver,
    job: usize,
) -> Result<TransferOutcome, ClientError> {
    // Opening walks a few directories; it is quick enough to stay here.
    let partial = destination.open_partial(name)?;
    let resume = options.resume;
    let (partial, asked, hasher) = blocking(move || {
        let path = partial.partial_path();
        let length = partial
            .file
            .metadata()
            .map_err(|error| ClientError::local(&path, error))?
            .len();
        let mut hasher = blake3::Hasher::new();
        let Some(length) = resume::download_ask(resume, length) else {
            return Ok((partial, None, hasher));
        };
        pump::hash_prefix(&partial.file, length, &mut hasher)
            .map_err(|error| ClientError::local(&path, error))?;
        let point = ResumePoint {
            offset: length,
            prefix_hash: *hasher.finalize().as_bytes(),
        };
        Ok((partial, Some(point), hasher))
    })
    .await?;
    let mut machine = DownloadReceiver::new(asked);

    let transfer_id = client.next_transfer_id();
    let mut stream_waiter = client.expect_data_stream(transfer_id);
    let opened = async {
        let mut responses = client
            .send(Request::GetOpen {
                transfer_id,
                path: remote.to_owned(),
                resume: asked,
            })
            .await?;
        let ready = responses.next().await?;
        Ok::<_, ClientError>((responses, ready))
    }
    .await;
    let (mut responses, ready) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            // Leave no empty partial behind for a file that never came.
            if asked.is_none() {
                partial.discard();
            }
            return Err(error);
        }
    };
    let Response::GetReady {
        size,
        mtime,
        offset,
    } = ready
    else {
        return Err(unexpected(&ready));
    };
    machine
        .handle(ReceiveEvent::Ready { size, offset })
        .map_err(broken)?;
    observer.started(job, remote, size, offset);
    let (header, mut recv) = stream_waiter.stream().await?;
    let (start, length, continue_prefix) = match machine.handle(ReceiveEvent::HeaderArrived {
        offset: header.offset,
    }) {
        Ok(ReceiveAction::AcceptStream {
            start,
            length,
            continue_prefix,
        }) => (start, length, continue_prefix),
        Ok(action) => return Err(out_of_step(&action)),
        Err(error) => {
            let _ = recv.stop(1u32.into());
            return Err(broken(error));
        }
    };
    let hasher = if continue_prefix {
        hasher
    } else {
        blake3::Hasher::new()
    };
    let partial_path = partial.partial_path();
    let file = partial
        .file
        .try_clone()
        .map_err(|error| ClientError::local(&partial_path, error))?;
    // The core counts every chunk; the pump itself cuts a stream longer
    // than `length`, since only it can stop the stream.
    let mut refused = None;
    let (file, hasher) = pump::receive_file(
        &mut recv,
        file,
        start,
        length,
        hasher,
        options.stream(),
        std::future::pending(),
        |bytes| {
            observer.advanced(job, bytes);
            if refused.is_none() {
                refused = machine.handle(ReceiveEvent::Bytes(bytes)).err();
            }
        },
    )
    .await
    .map_err(|error| pump_error(&partial_path, error))?;
    drop(file);
    if let Some(error) = refused {
        return Err(broken(error));
    }
    machine
        .handle(ReceiveEvent::StreamFinished)
        .map_err(broken)?;
    let done = responses.next().await?;
    let Response::GetDone { hash } = done else {
        return Err(unexpected(&done));
    };
    let action = machine
        .handle(ReceiveEvent::CommitRequested { hash })
        .map_err(broken)?;
    if action != ReceiveAction::Verify {
        return Err(out_of_step(&action));
    }
    let computed = *hasher.finalize().as_bytes();
    blocking(move || {
        let verified = match machine.handle(ReceiveEvent::HashComputed(computed)) {
            Ok(ReceiveAction::Commit(verified)) => verified,
            Err(TransferError::HashMismatch(_)) => {
                let path = partial.final_path().to_owned();
                partial.discard();
                return Err(ClientError::IntegrityMismatch { path });
            }
            Err(error) => return Err(broken(error)),
            Ok(action) => return Err(out_of_step(&action)),
        };
        partial.commit(verified, mtime.to_system_time())?;
        match machine.handle(ReceiveEvent::Committed).map_err(broken)? {
            ReceiveAction::Done(summary) => Ok(outcome(summary)),
            action => Err(out_of_step(&action)),
        }
    })
    .await
}

/// Whether an error is worth retrying on a new connection (the network or
/// the server went away) rather than a refusal.
pub fn is_retryable(error: &ClientError) -> bool {
    match error {
        ClientError::ConnectionLost(_) | ClientError::Unreachable { .. } => true,
        ClientError::Server(reply) => matches!(reply.kind, ErrorKind::Busy),
        _ => false,
    }
}
