//! The requests of a logged-in connection: which need a live session, and
//! what each one does.
//!
//! [`dispatch`] checks the session (except for the abort of an upload and
//! the logout itself), then serves navigation here (stat, list, walk,
//! mkdir, remove, symlink, rename, usage, logout) and hands transfers to
//! [`crate::transfer`]. Listings and walks go out chunk by chunk, each
//! frame at most [`LISTING_FRAME_BYTES`].
//!
//! This module reads no frames and accepts no streams (that is
//! [`crate::connection`]'s), and its file-system work is the jail's, run on
//! the blocking pool through [`Context`].

use qftp_proto::{EntryInfo, ErrorKind, Request, Response, Usage};

use crate::audit::{self, Audited};
use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;
use crate::session::{Context, HandlerResult, off_runtime};
use crate::transfer::{download, small, upload};

/// The most bytes of entries put into one listing or walk frame, whatever
/// `max_frame_size` allows: with the reply channel's 64 frames, a connection
/// that reads nothing makes the server hold at most 4 MiB of answers.
const LISTING_FRAME_BYTES: usize = 64 * 1024;

/// Whether `request` needs the session to be valid right now. Abandoning
/// an upload, and logging out, do not. Committing one does: an upload
/// opened before a revocation or an expiry does not land after it.
fn needs_live_session(request: &Request) -> bool {
    !matches!(request, Request::PutAbort { .. } | Request::Logout)
}

/// Serves one request of a logged-in connection and sends its answer
/// (handlers that stream their answers send them themselves).
pub(crate) async fn dispatch(context: &Context, id: u64, request: Request) {
    let kind = request.kind();
    if needs_live_session(&request)
        && let Err(error) = context.check_session().await
    {
        if let Request::PutCommit { transfer_id, .. } = request {
            // The upload ends here; its partial file stays for a resume
            // after the next login.
            let _ = upload::abort_upload(context, transfer_id);
        }
        context.reply_error(id, kind, error).await;
        return;
    }
    let audited = Audited::of_request(&request);
    let result = match request {
        Request::Login { .. } | Request::Authenticate { .. } => Err(RequestError::new(
            ErrorKind::Protocol,
            "already logged in on this connection",
        )),
        Request::Logout => logout(context).await,
        Request::WhoAmI => who_am_i(context).await,
        Request::DiskUsage => usage(context)
            .await
            .map(|usage| Some(Response::DiskUsage(usage))),
        Request::Stat { path } => match context.parse_path(&path) {
            Ok(path) => context
                .blocking(move |jail| jail.stat(&path))
                .await
                .map(|entry| Some(Response::Entry(entry))),
            Err(error) => Err(error),
        },
        Request::List { path } => list(context, id, &path).await,
        Request::Walk { path, hashes } => walk(context, id, &path, hashes).await,
        Request::Mkdir { path, parents } => match context.parse_path(&path) {
            Ok(path) => context
                .changing(move |jail, tally| jail.mkdir(&path, parents, tally))
                .await
                .map(|()| Some(Response::Ok)),
            Err(error) => Err(error),
        },
        Request::Remove { path, recursive } => remove(context, &path, recursive).await,
        Request::Symlink { path, target } => match context.parse_path(&path) {
            Ok(path) => context
                .changing(move |jail, tally| {
                    let cost = Footprint::node(tally.entry_cost());
                    tally.check(cost, &path.to_string())?;
                    jail.symlink(&path, &target)?;
                    tally.add(cost);
                    Ok(())
                })
                .await
                .map(|()| Some(Response::Ok)),
            Err(error) => Err(error),
        },
        Request::Rename { from, to } => rename(context, &from, &to).await,
        Request::PutOpen {
            transfer_id,
            path,
            size,
            mtime,
            resume,
        } => {
            let open = upload::UploadOpen {
                request_id: id,
                transfer_id,
                path,
                size,
                mtime,
                resume,
            };
            upload::upload(context, open).await
        }
        Request::PutCommit { transfer_id, hash } => {
            upload::deliver_commit(context, id, transfer_id, hash)
        }
        Request::PutAbort { transfer_id } => upload::abort_upload(context, transfer_id),
        Request::PutSmall {
            transfer_id,
            path,
            size,
            mtime,
            hash,
        } => {
            let small = small::SmallUpload {
                transfer_id,
                path,
                size,
                mtime,
                hash,
            };
            small::upload_small(context, small).await
        }
        Request::GetOpen {
            transfer_id,
            path,
            resume,
        } => download::download(context, id, transfer_id, &path, resume).await,
        _ => Err(RequestError::new(
            ErrorKind::Protocol,
            "request not supported by this server",
        )),
    };
    if let Some((audited, bytes)) = audited {
        audited.finish(context, bytes, result.as_ref().map(|_| ()));
    }
    match result {
        Ok(Some(response)) => context.reply(id, response).await,
        Ok(None) => {}
        Err(error) => context.reply_error(id, kind, error).await,
    }
}

async fn logout(context: &Context) -> HandlerResult {
    let revoked = context
        .state
        .sessions
        .revoke_session(&context.session.token_hash)
        .await
        .map_err(|error| {
            tracing::error!(%error, "revoking a session");
            RequestError::new(
                ErrorKind::Internal,
                "server error: cannot revoke the session",
            )
        })?;
    // Open connections of this session notice at their next request, told
    // by the session store's revocation feed.
    audit::logout(
        &context.session.user,
        context.connection.remote_address(),
        revoked,
    );
    Ok(Some(Response::Ok))
}

/// The user's figures, from the quota ledger.
async fn usage(context: &Context) -> RequestResult<Usage> {
    let usage = context
        .state
        .ledger
        .usage(&context.session.user)
        .await
        .map_err(|error| RequestError::from_ledger(&error, "/"))?;
    Ok(Usage {
        used: usage.used.bytes,
        reserved: usage.reserved,
        quota: usage.quota,
    })
}

/// Sets the user's figures to what their home holds now, measured on the
/// blocking pool and handed to the quota ledger.
async fn recount(context: &Context) -> RequestResult<()> {
    let measured = context
        .blocking(|jail| {
            jail.disk_usage()
                .map_err(|error| RequestError::from_io(&error, "/"))
        })
        .await?;
    context
        .state
        .ledger
        .recount(&context.session.user, measured.into())
        .await
        .map_err(|error| RequestError::from_ledger(&error, "/"))?;
    Ok(())
}

async fn who_am_i(context: &Context) -> HandlerResult {
    let usage = usage(context).await?;
    Ok(Some(Response::Identity {
        user: context.session.user.clone(),
        usage,
    }))
}

/// Splits entries into chunks whose encoding stays well inside `limit` and
/// [`LISTING_FRAME_BYTES`]; always at least one chunk.
fn chunk_by_size(entries: Vec<EntryInfo>, limit: usize) -> Vec<Vec<EntryInfo>> {
    let budget = (limit / 2).min(LISTING_FRAME_BYTES);
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for entry in entries {
        let estimate = 64 + entry.name.len() + entry.link_target.as_ref().map_or(0, String::len);
        if !current.is_empty() && size + estimate > budget {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += estimate;
        current.push(entry);
    }
    chunks.push(current);
    chunks
}

/// Streams a listing: each chunk is read on a blocking thread and sent
/// before the next is read, so a client that does not read stops the
/// listing (with no thread held) once the reply channel is full.
async fn list(context: &Context, id: u64, path: &str) -> HandlerResult {
    let path = context.parse_path(path)?;
    let _slot = context.listing_slot().await?;
    let mut lister = context.blocking(move |jail| jail.lister(&path)).await?;
    let limit = context.state.config.max_frame_size;
    loop {
        let (returned, chunk) = off_runtime(move || {
            let chunk = lister.next_chunk();
            Ok((lister, chunk))
        })
        .await?;
        lister = returned;
        let (entries, done) = chunk?;
        let chunks = chunk_by_size(entries, limit);
        let last = chunks.len() - 1;
        for (index, entries) in chunks.into_iter().enumerate() {
            let done = done && index == last;
            context.reply(id, Response::Listing { entries, done }).await;
        }
        if done || context.replies.is_closed() {
            return Ok(None);
        }
    }
}

/// Streams a walk like [`list`], chunk by chunk.
async fn walk(context: &Context, id: u64, path: &str, hashes: bool) -> HandlerResult {
    let path = context.parse_path(path)?;
    let _slot = context.listing_slot().await?;
    let mut walker = context
        .blocking(move |jail| jail.walker(&path, hashes))
        .await?;
    let limit = context.state.config.max_frame_size;
    loop {
        let (returned, chunk) = off_runtime(move || {
            let chunk = walker.next_chunk();
            Ok((walker, chunk))
        })
        .await?;
        walker = returned;
        let Some(entries) = chunk? else { break };
        for entries in chunk_by_size(entries, limit) {
            let response = Response::Tree {
                entries,
                done: false,
            };
            context.reply(id, response).await;
        }
        if context.replies.is_closed() {
            return Ok(None);
        }
    }
    context
        .reply(
            id,
            Response::Tree {
                entries: Vec::new(),
                done: true,
            },
        )
        .await;
    Ok(None)
}

async fn remove(context: &Context, path: &str, recursive: bool) -> HandlerResult {
    let path = context.parse_path(path)?;
    let removed = context
        .changing(move |jail, tally| jail.remove(&path, recursive, tally))
        .await;
    if let Err(error) = removed {
        if recursive {
            // Part of the tree may be gone already; count what is left
            // rather than keep charging for what was removed.
            if let Err(recount_error) = recount(context).await {
                tracing::warn!(user = %context.session.user, error = %recount_error.message, "quota recount failed");
            }
        }
        return Err(error);
    }
    Ok(Some(Response::Ok))
}

async fn rename(context: &Context, from: &str, to: &str) -> HandlerResult {
    let from = context.parse_path(from)?;
    let to = context.parse_path(to)?;
    context
        .changing(move |jail, tally| jail.rename(&from, &to, tally))
        .await?;
    Ok(Some(Response::Ok))
}

#[cfg(test)]
mod tests {
    use qftp_proto::Timestamp;

    use super::*;

    #[test]
    fn only_the_abort_and_the_logout_skip_the_session_check() {
        assert!(!needs_live_session(&Request::Logout));
        assert!(!needs_live_session(&Request::PutAbort { transfer_id: 1 }));
        assert!(needs_live_session(&Request::PutCommit {
            transfer_id: 1,
            hash: [0; 32]
        }));
        assert!(needs_live_session(&Request::WhoAmI));
    }

    #[test]
    fn listing_frames_stay_small_whatever_the_frame_limit() {
        let entry = |index: usize| EntryInfo {
            name: format!("{index:0>200}"),
            kind: qftp_proto::EntryKind::File,
            size: 1,
            mtime: Timestamp::default(),
            mode: 0o644,
            hash: Some([0; 32]),
            link_target: None,
        };
        let entries: Vec<EntryInfo> = (0..2000).map(entry).collect();
        let chunks = chunk_by_size(entries, qftp_proto::HARD_MAX_FRAME);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 2000);
        for chunk in &chunks {
            let encoded = qftp_proto::codec::to_bytes(&Response::Listing {
                entries: chunk.clone(),
                done: false,
            })
            .unwrap();
            assert!(encoded.len() <= LISTING_FRAME_BYTES, "{}", encoded.len());
        }
        assert_eq!(chunk_by_size(Vec::new(), 1024).len(), 1);
    }
}
