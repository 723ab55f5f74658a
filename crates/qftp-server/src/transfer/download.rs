//! A download, from `GetOpen` to `GetDone`.
//!
//! The file is opened inside the jail (regular files only); the transfer
//! core ([`DownloadSender`]) continues a client's partial only if the
//! BLAKE3 of its prefix equals ours, else the download starts at 0. The rest
//! goes out on a unidirectional stream of its own through
//! [`qftp_transport::pump::send_file`], hashed as it is read and counted by
//! the core, and `GetDone` carries the hash of the whole file once the
//! core has seen the whole stream go out. At most `max_streams_per_connection`
//! downloads stream at once on one connection.
//!
//! This module writes nothing to the home and charges no quota.

use qftp_proto::transfer::{DATA_HEADER_MAX, DownloadSender, SendAction, SendEvent};
use qftp_proto::{DataHeader, EntryKind, ErrorKind, Response, ResumePoint};
use qftp_transport::framed;
use qftp_transport::pump::{self, StreamOptions};

use crate::audit::Audited;
use crate::error::RequestError;
use crate::session::{Context, HandlerResult};

/// Serves `GetOpen` and the whole download; answers `GetDone` at the end.
/// Its audit line counts the bytes sent.
pub(crate) async fn download(
    context: &Context,
    request_id: u64,
    transfer_id: u64,
    path: &str,
    resume: Option<ResumePoint>,
) -> HandlerResult {
    let audited = Audited::start("get", path);
    let _in_flight = context.live.transfer_started();
    let _active = context.state.metrics.transfer_started();
    let mut bytes_sent = 0;
    let result = send_download(
        context,
        request_id,
        transfer_id,
        path,
        resume,
        &mut bytes_sent,
    )
    .await;
    audited.finish(context, bytes_sent, result.as_ref().map(|_| ()));
    result
}

async fn send_download(
    context: &Context,
    request_id: u64,
    transfer_id: u64,
    path: &str,
    resume: Option<ResumePoint>,
    bytes_sent: &mut u64,
) -> HandlerResult {
    let path = context.parse_path(path)?;
    let slot = context.transfers.claim(transfer_id, None)?;
    let _permit = context.transfers.download_slot().await?;
    let shown = path.to_string();
    let failed =
        |message: String| RequestError::new(ErrorKind::Internal, format!("{shown}: {message}"));
    let (file, size, mtime, mut machine, (start, length), hasher) = context
        .blocking(move |jail| {
            let (file, info) = jail.open_read(&path)?;
            if info.kind != EntryKind::File {
                return Err(RequestError::new(
                    ErrorKind::IsADirectory,
                    format!("{path}: not a regular file"),
                ));
            }
            let mut hasher = blake3::Hasher::new();
            // The core decides whether the client's prefix is worth hashing
            // and continues it only if proven equal.
            let (mut machine, mut action) = DownloadSender::open(info.size, resume);
            if let SendAction::HashPrefix { length } = action {
                pump::hash_prefix(&file, length, &mut hasher)
                    .map_err(|error| RequestError::from_io(&error, &path.to_string()))?;
                action = machine
                    .handle(SendEvent::PrefixHashed(*hasher.finalize().as_bytes()))
                    .map_err(|error| out_of_step(&path.to_string(), &error))?;
            }
            let SendAction::Start {
                start,
                length,
                continue_prefix,
            } = action
            else {
                return Err(out_of_step(&path.to_string(), &action));
            };
            if !continue_prefix {
                hasher.reset();
            }
            Ok((
                file,
                info.size,
                info.mtime,
                machine,
                (start, length),
                hasher,
            ))
        })
        .await?;
    context
        .reply(
            request_id,
            Response::GetReady {
                size,
                mtime,
                offset: start,
            },
        )
        .await;
    let mut send = context
        .connection
        .open_uni()
        .await
        .map_err(|error| failed(format!("cannot open a data stream: {error}")))?;
    framed::write_message(
        &mut send,
        &DataHeader {
            transfer_id,
            offset: start,
        },
        DATA_HEADER_MAX,
    )
    .await
    .map_err(|error| failed(error.to_string()))?;

    let stall = StreamOptions::unlimited(context.state.config.idle_timeout());
    let mut broken = None;
    let hasher = pump::send_file(file, start, length, hasher, &mut send, stall, |bytes| {
        *bytes_sent += bytes;
        if broken.is_none() {
            broken = machine.handle(SendEvent::Bytes(bytes)).err();
        }
    })
    .await
    .map_err(|error| failed(error.to_string()))?;
    if let Some(error) = broken {
        return Err(out_of_step(&shown, &error));
    }
    let declared = machine
        .handle(SendEvent::StreamFinished)
        .and_then(|_| machine.handle(SendEvent::HashComputed(*hasher.finalize().as_bytes())))
        .map_err(|error| out_of_step(&shown, &error))?;
    let SendAction::SendHash { hash } = declared else {
        return Err(out_of_step(&shown, &declared));
    };
    let _ = send.finish();
    drop(slot);
    Ok(Some(Response::GetDone { hash }))
}

/// The core refused what this side did, or asked for a step this driver
/// has not: a fault of the server's, never the client's.
fn out_of_step(shown: &str, what: &dyn std::fmt::Debug) -> RequestError {
    RequestError::new(
        ErrorKind::Internal,
        format!("{shown}: the download went out of step ({what:?})"),
    )
}
