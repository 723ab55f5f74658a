//! A download, from `GetOpen` to `GetDone`.
//!
//! The file is opened inside the jail (regular files only); a client's
//! partial is continued only if the BLAKE3 of its prefix equals ours
//! ([`qftp_proto::hash::verify`]), else the download starts at 0. The rest
//! goes out on a unidirectional stream of its own through
//! [`qftp_transport::pump::send_file`], hashed as it is read, and `GetDone`
//! carries the hash of the whole file. At most `max_streams_per_connection`
//! downloads stream at once on one connection.
//!
//! This module writes nothing to the home and charges no quota.

use qftp_proto::hash;
use qftp_proto::transfer::DATA_HEADER_MAX;
use qftp_proto::{DataHeader, EntryKind, ErrorKind, Response, ResumePoint};
use qftp_transport::framed;
use qftp_transport::pump::{self, StreamOptions};

use crate::error::RequestError;
use crate::session::{Context, HandlerResult};

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
    let _permit = context.transfers.download_slot().await?;
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
                    // The client's prefix is continued only if proven equal.
                    if hash::verify(&point.prefix_hash, hasher.finalize().as_bytes()).is_ok() {
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
        DATA_HEADER_MAX,
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
