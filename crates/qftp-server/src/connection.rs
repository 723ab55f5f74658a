//! One client connection: the hello, authentication, and the control
//! stream's request loop.
//!
//! Before authentication (the login stage) only `Login` and `Authenticate`
//! are served; any other request gets `NotAuthenticated`. The login stage is
//! bounded: a connection not logged in within `limits.login_timeout_secs` is
//! closed, an address may have `limits.max_unauthenticated_per_address`
//! such connections, and the peer may open no data stream and send next to
//! nothing ahead until it logs in (the transport limits are raised then).
//! After it, each request runs as its own task (bounded per connection) so a
//! slow listing or a long upload never holds up the next request; answers go
//! back through one writer task. Every request first checks that the
//! session is still valid (not expired, not revoked), except the abort of an
//! upload and the logout itself; a commit refused so ends its upload, the
//! partial file staying for a resume. Data streams are accepted here and
//! handed to the transfer they name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use qftp_proto::path::RemotePath;
use qftp_proto::{
    ClientFrame, ClientHello, DataHeader, EntryInfo, ErrorKind, PROTOCOL_VERSION, Request,
    Response, ServerFrame, ServerHello, Timestamp,
};
use qftp_transport::framed;
use qftp_transport::tuning::{self, PathProfile};
use tokio::sync::{Semaphore, mpsc};

use crate::auth::{LoginError, new_session_token, token_hash};
use crate::error::{RequestError, RequestResult};
use crate::jail::Jail;
use crate::limits::Refusal;
use crate::quota::UserQuota;
use crate::server::{ServerState, UnauthenticatedGuard, UserConnectionGuard};
use crate::transfer::{self, TransferTable};

/// Application error codes used when closing a connection.
pub mod close_code {
    /// A normal close.
    pub const DONE: u32 = 0;
    /// The peer broke the protocol.
    pub const PROTOCOL: u32 = 1;
    /// A limit was reached.
    pub const LIMIT: u32 = 2;
    /// The client's protocol version is not supported.
    pub const VERSION: u32 = 3;
}

/// How long a new connection may take to open its control stream and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests of one connection being served at once.
const REQUESTS_IN_FLIGHT: usize = 256;
/// The largest data-stream header frame accepted.
const DATA_HEADER_LIMIT: usize = 64;
/// The largest file an upload may declare: file sizes and offsets are
/// signed 64-bit numbers on disk, so nothing larger can ever be stored.
const MAX_UPLOAD_SIZE: u64 = i64::MAX as u64;

/// An authenticated user on this connection.
#[derive(Debug)]
pub(crate) struct Session {
    pub user: String,
    pub token_hash: [u8; 32],
    pub jail: Arc<Jail>,
    pub quota: Arc<UserQuota>,
    /// When the session was last found valid, and the server's revocation
    /// count then (see [`check_session`]).
    checked: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
    _admission: UserConnectionGuard,
}

/// How long a session found valid is trusted before the database is asked
/// again, unless this server revoked a session meanwhile. A tree of small
/// files is one request per file; this keeps the check off that path while
/// a logout elsewhere, an expiry or an admin's revocation still takes
/// effect within a second.
const SESSION_RECHECK: Duration = Duration::from_secs(1);

/// Everything a request handler needs.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub state: Arc<ServerState>,
    pub session: Arc<Session>,
    pub connection: quinn::Connection,
    pub replies: mpsc::Sender<ServerFrame>,
    pub transfers: Arc<TransferTable>,
}

impl Context {
    /// Sends one answer; a closed connection is not an error here.
    pub async fn reply(&self, id: u64, response: Response) {
        let _ = self.replies.send(ServerFrame { id, response }).await;
    }

    /// Sends the answer for a failed request and logs it.
    pub async fn reply_error(&self, id: u64, request: &'static str, error: RequestError) {
        tracing::info!(user = %self.session.user, request, kind = ?error.kind, error = %error.message, "request failed");
        self.reply(id, Response::Error(error.to_reply())).await;
    }

    /// Runs a blocking jail operation off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Jail) -> RequestResult<T> + Send + 'static,
    ) -> RequestResult<T> {
        let jail = Arc::clone(&self.session.jail);
        off_runtime(move || work(&jail)).await
    }
}

/// Parses a client path, or explains why it is not acceptable.
pub(crate) fn parse_path(path: &str) -> RequestResult<RemotePath> {
    RemotePath::parse(path)
        .map_err(|error| RequestError::new(ErrorKind::InvalidPath, error.to_string()))
}

/// Serves one incoming connection, with the transport settings of its
/// path, until it closes.
pub async fn handle(
    state: Arc<ServerState>,
    incoming: quinn::Incoming,
    path_config: Arc<quinn::ServerConfig>,
) {
    let deadline = Instant::now() + state.config.limits.login_timeout();
    let remote = incoming.remote_address();
    let admitted = state.admit_unauthenticated(remote.ip());
    let connecting = match incoming.accept_with(path_config) {
        Ok(connecting) => connecting,
        Err(error) => {
            tracing::debug!(%remote, %error, "connection refused");
            return;
        }
    };
    let connection = match tokio::time::timeout_at(deadline, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "handshake too slow");
            return;
        }
    };
    let pending = match admitted {
        Ok(pending) => pending,
        Err(refusal) => {
            // The handshake was completed only to tell the client why.
            connection.close(close_code::LIMIT.into(), refusal.message.as_bytes());
            return;
        }
    };
    match serve(state, connection.clone(), remote, deadline, pending).await {
        Ok(()) => connection.close(close_code::DONE.into(), b"bye"),
        Err((code, reason)) => {
            tracing::info!(%remote, reason, "closing connection");
            connection.close(code.into(), reason.as_bytes());
        }
    }
}

type CloseReason = (u32, String);

fn protocol_error(error: impl std::fmt::Display) -> CloseReason {
    (close_code::PROTOCOL, format!("protocol error: {error}"))
}

/// The close reason for a connection still not logged in at its deadline.
fn login_timed_out(state: &ServerState, remote: SocketAddr) -> CloseReason {
    let seconds = state.config.limits.login_timeout_secs;
    let (value, who) = (seconds.to_string(), remote.ip().to_string());
    let refusal = Refusal {
        setting: "limits.login_timeout_secs",
        value: &value,
        who: &who,
    }
    .refuse(format!("not logged in within {seconds} s"));
    (close_code::LIMIT, refusal.message)
}

/// Exchanges hellos on the control stream the client opens.
async fn hello(
    connection: &quinn::Connection,
    limit: usize,
) -> Result<(quinn::SendStream, quinn::RecvStream), CloseReason> {
    let (mut send, mut recv) = tokio::time::timeout(HELLO_TIMEOUT, connection.accept_bi())
        .await
        .map_err(|_| protocol_error("no control stream"))?
        .map_err(|error| protocol_error(format!("no control stream: {error}")))?;
    let hello: ClientHello =
        tokio::time::timeout(HELLO_TIMEOUT, framed::read_message(&mut recv, limit))
            .await
            .map_err(|_| protocol_error("no hello"))?
            .map_err(protocol_error)?
            .ok_or_else(|| protocol_error("control stream closed before hello"))?;
    let server_hello = ServerHello {
        version: PROTOCOL_VERSION,
        server: format!("qftp-server {}", env!("CARGO_PKG_VERSION")),
        max_frame: limit as u32,
    };
    framed::write_message(&mut send, &server_hello, limit)
        .await
        .map_err(protocol_error)?;
    if hello.version != PROTOCOL_VERSION {
        return Err((
            close_code::VERSION,
            format!(
                "protocol version {} is not supported (server speaks {PROTOCOL_VERSION})",
                hello.version
            ),
        ));
    }
    Ok((send, recv))
}

async fn serve(
    state: Arc<ServerState>,
    connection: quinn::Connection,
    remote: SocketAddr,
    deadline: Instant,
    pending: UnauthenticatedGuard,
) -> Result<(), CloseReason> {
    let limit = state.config.max_frame_size;
    let (send, mut recv) = tokio::time::timeout_at(deadline, hello(&connection, limit))
        .await
        .map_err(|_| login_timed_out(&state, remote))??;

    let (replies, outgoing) = mpsc::channel::<ServerFrame>(64);
    let writer = tokio::spawn(write_replies(send, outgoing, limit));
    let result = async {
        let authenticated = tokio::time::timeout_at(
            deadline,
            authenticate(&state, &mut recv, &replies, remote, limit),
        )
        .await
        .map_err(|_| login_timed_out(&state, remote))??;
        let Some((session, answer)) = authenticated else {
            return Ok(());
        };
        drop(pending);
        // Data streams and the full window only now, before the client
        // hears that it is logged in.
        tuning::open_after_login(
            &connection,
            &state.transport,
            PathProfile::for_peer(&remote),
        );
        let _ = replies.send(answer).await;
        let context = Context {
            state: Arc::clone(&state),
            session: Arc::new(session),
            connection: connection.clone(),
            replies: replies.clone(),
            transfers: Arc::new(TransferTable::new(
                state.config.max_streams_per_connection as usize,
            )),
        };
        let streams = tokio::spawn(accept_data_streams(context.clone()));
        let served = serve_requests(&context, &mut recv, limit).await;
        streams.abort();
        served
    }
    .await;
    drop(replies);
    let _ = writer.await;
    result
}

async fn write_replies(
    mut send: quinn::SendStream,
    mut outgoing: mpsc::Receiver<ServerFrame>,
    limit: usize,
) {
    while let Some(frame) = outgoing.recv().await {
        if let Err(error) = framed::write_message(&mut send, &frame, limit).await {
            tracing::debug!(%error, "control stream write failed");
            return;
        }
    }
    let _ = send.finish();
}

/// Serves requests until one authenticates; then the session and the
/// answer still to send. `None` if the client left first.
async fn authenticate(
    state: &Arc<ServerState>,
    recv: &mut quinn::RecvStream,
    replies: &mpsc::Sender<ServerFrame>,
    remote: SocketAddr,
    limit: usize,
) -> Result<Option<(Session, ServerFrame)>, CloseReason> {
    loop {
        let Some(frame) = framed::read_message::<ClientFrame>(recv, limit)
            .await
            .map_err(protocol_error)?
        else {
            return Ok(None);
        };
        let outcome = match frame.request {
            Request::Login { user, password } => login(state, remote, &user, &password).await,
            Request::Authenticate { token } => resume(state, remote, token).await,
            other => Err(RequestError::new(
                ErrorKind::NotAuthenticated,
                format!("not logged in (request {} needs a login)", other.kind()),
            )),
        };
        match outcome {
            Ok((session, response)) => {
                let answer = ServerFrame {
                    id: frame.id,
                    response,
                };
                return Ok(Some((session, answer)));
            }
            Err(error) => {
                let response = Response::Error(error.to_reply());
                let _ = replies
                    .send(ServerFrame {
                        id: frame.id,
                        response,
                    })
                    .await;
            }
        }
    }
}

/// The client's error for an attempt the login guard refused unchecked.
fn refused_login(state: &ServerState, remote: SocketAddr, error: LoginError) -> RequestError {
    match error {
        LoginError::Blocked {
            retry_after,
            bound,
            who,
        } => {
            tracing::debug!(%remote, who, "login refused: too many failures");
            let retry_after_secs = retry_after.as_secs().max(1);
            bound.refuse(
                &state.config.login,
                &who,
                ErrorKind::TooManyAttempts { retry_after_secs },
                format!("too many failed logins; try again in {retry_after_secs} s"),
            )
        }
        error => {
            tracing::error!(%remote, ?error, "login error");
            RequestError::new(ErrorKind::Internal, "server error during login")
        }
    }
}

async fn login(
    state: &Arc<ServerState>,
    remote: SocketAddr,
    user: &str,
    password: &str,
) -> RequestResult<(Session, Response)> {
    let record = match state
        .login_guard
        .login(&state.db, remote.ip(), user, password)
        .await
    {
        Ok(record) => record,
        Err(LoginError::Failed) => {
            tracing::warn!(%remote, user, "login failed");
            return Err(RequestError::new(
                ErrorKind::AuthenticationFailed,
                "login failed: wrong user name or password",
            ));
        }
        Err(error) => return Err(refused_login(state, remote, error)),
    };
    let (token, hash) = new_session_token();
    let expires = Timestamp::from(std::time::SystemTime::now() + state.config.session_ttl());
    state
        .db
        .create_session(&record.name, &hash, expires.secs)
        .map_err(|error| {
            tracing::error!(%error, "storing a session");
            RequestError::new(
                ErrorKind::Internal,
                "server error: cannot store the session",
            )
        })?;
    let session = {
        let (state, record) = (Arc::clone(state), record.clone());
        off_runtime(move || open_session(&state, &record, hash)).await?
    };
    tracing::info!(%remote, user = %record.name, "login succeeded");
    Ok((
        session,
        Response::LoggedIn {
            user: record.name,
            token,
            expires,
        },
    ))
}

/// A token login, throttled like a password login: a blocked address is
/// refused before the database is read, and a token that names no valid
/// session counts as a failure of the address and delays the reply.
async fn resume(
    state: &Arc<ServerState>,
    remote: SocketAddr,
    token: String,
) -> RequestResult<(Session, Response)> {
    let guard = &state.login_guard;
    guard
        .admit_token(remote.ip())
        .map_err(|error| refused_login(state, remote, error))?;
    let outcome = {
        let state = Arc::clone(state);
        off_runtime(move || resume_session(&state, remote, &token)).await
    };
    match &outcome {
        Ok((session, _)) => guard.token_accepted(remote.ip(), &session.user),
        Err(error) if error.kind == ErrorKind::SessionExpired => {
            let delay = guard.token_refused(remote.ip());
            tokio::time::sleep(delay).await;
        }
        Err(_) => {}
    }
    outcome
}

fn resume_session(
    state: &Arc<ServerState>,
    remote: SocketAddr,
    token: &str,
) -> RequestResult<(Session, Response)> {
    let hash = token_hash(token);
    let now = Timestamp::now().secs;
    let expired = || {
        // Not a warning: failed tokens are throttled, and a blocked address
        // is logged once a minute by its refusal.
        tracing::info!(%remote, "session token refused");
        RequestError::new(
            ErrorKind::SessionExpired,
            "session expired or revoked; log in again with `qftp login`",
        )
    };
    let database_error = |error: crate::userdb::DbError| {
        tracing::error!(%error, "reading a session");
        RequestError::new(
            ErrorKind::Internal,
            "server error: user database unavailable",
        )
    };
    let user = state
        .db
        .session_user(&hash, now)
        .map_err(database_error)?
        .ok_or_else(expired)?;
    let record = state
        .db
        .user(&user)
        .map_err(database_error)?
        .ok_or_else(expired)?;
    let session = open_session(state, &record, hash)?;
    tracing::info!(%remote, user = %record.name, "session resumed");
    Ok((session, Response::Authenticated { user: record.name }))
}

/// Runs session set-up on a blocking thread: it reads the database, opens
/// the home and, at a user's first login after a start, walks the whole
/// home to recount its usage, none of which may stall the async workers.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> RequestResult<T> + Send + 'static,
) -> RequestResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| RequestError::new(ErrorKind::Internal, "server error: task failed"))?
}

fn open_session(
    state: &Arc<ServerState>,
    record: &crate::userdb::UserRecord,
    token_hash: [u8; 32],
) -> RequestResult<Session> {
    let admission = state.admit_user(&record.name).ok_or_else(|| {
        RequestError::new(
            ErrorKind::LimitReached,
            format!(
                "too many connections for {} (limit {})",
                record.name, state.config.max_connections_per_user
            ),
        )
    })?;
    let home = state.root.home_of(&state.config, record);
    let jail = std::fs::create_dir_all(&home)
        .and_then(|()| Jail::open(&home))
        .map_err(|error| {
            tracing::error!(user = %record.name, home = %home.display(), %error, "cannot open home");
            RequestError::new(ErrorKind::Internal, "server error: your home directory is unavailable")
        })?;
    // Admin changes to the quota (or a rescan) apply from this login on.
    let quota = state.quotas.user(&record.name);
    quota.refresh(&state.db, || jail.disk_usage())?;
    Ok(Session {
        user: record.name.clone(),
        token_hash,
        jail: Arc::new(jail),
        quota,
        checked: std::sync::Mutex::new(None),
        _admission: admission,
    })
}

async fn serve_requests(
    context: &Context,
    recv: &mut quinn::RecvStream,
    limit: usize,
) -> Result<(), CloseReason> {
    let in_flight = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT));
    loop {
        let Some(frame) = framed::read_message::<ClientFrame>(recv, limit)
            .await
            .map_err(protocol_error)?
        else {
            return Ok(());
        };
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .map_err(|_| protocol_error("request limiter closed"))?;
        let context = context.clone();
        tokio::spawn(async move {
            dispatch(&context, frame.id, frame.request).await;
            drop(permit);
        });
    }
}

/// Whether `request` needs the session to be valid right now. Abandoning
/// an upload, and logging out, do not. Committing one does: an upload
/// opened before a revocation or an expiry does not land after it.
fn needs_live_session(request: &Request) -> bool {
    !matches!(request, Request::PutAbort { .. } | Request::Logout)
}

/// Checks that the connection's session has neither expired nor been
/// revoked (by a logout elsewhere, a password change or the user's
/// deletion): a connection does not outlive the session it was opened with.
fn check_session(context: &Context) -> RequestResult<()> {
    let revocations = context
        .state
        .revocations
        .load(std::sync::atomic::Ordering::Acquire);
    let checked = *context.session.checked.lock().expect("session check lock");
    if let Some((at, seen)) = checked
        && seen == revocations
        && at.elapsed() < SESSION_RECHECK
    {
        return Ok(());
    }
    let now = Timestamp::now().secs;
    match context
        .state
        .db
        .session_user(&context.session.token_hash, now)
    {
        Ok(Some(user)) if user == context.session.user => {
            *context.session.checked.lock().expect("session check lock") =
                Some((std::time::Instant::now(), revocations));
            Ok(())
        }
        Ok(_) => Err(RequestError::new(
            ErrorKind::SessionExpired,
            "session expired or revoked; log in again with `qftp login`",
        )),
        Err(error) => {
            tracing::error!(%error, "reading a session");
            Err(RequestError::new(
                ErrorKind::Internal,
                "server error: user database unavailable",
            ))
        }
    }
}

async fn dispatch(context: &Context, id: u64, request: Request) {
    let kind = request.kind();
    if needs_live_session(&request)
        && let Err(error) = check_session(context)
    {
        if let Request::PutCommit { transfer_id, .. } = request {
            // The upload ends here; its partial file stays for a resume
            // after the next login.
            let _ = transfer::abort_upload(context, transfer_id);
        }
        context.reply_error(id, kind, error).await;
        return;
    }
    let result = match request {
        Request::Login { .. } | Request::Authenticate { .. } => Err(RequestError::new(
            ErrorKind::Protocol,
            "already logged in on this connection",
        )),
        Request::Logout => logout(context).await,
        Request::WhoAmI => who_am_i(context),
        Request::DiskUsage => context
            .session
            .quota
            .usage(&context.state.db)
            .map(|usage| Some(Response::DiskUsage(usage))),
        Request::Stat { path } => match parse_path(&path) {
            Ok(path) => context
                .blocking(move |jail| jail.stat(&path))
                .await
                .map(|entry| Some(Response::Entry(entry))),
            Err(error) => Err(error),
        },
        Request::List { path } => list(context, id, &path).await,
        Request::Walk { path, hashes } => walk(context, id, &path, hashes).await,
        Request::Mkdir { path, parents } => match parse_path(&path) {
            Ok(path) => context
                .blocking(move |jail| jail.mkdir(&path, parents))
                .await
                .map(|()| Some(Response::Ok)),
            Err(error) => Err(error),
        },
        Request::Remove { path, recursive } => remove(context, &path, recursive).await,
        Request::Symlink { path, target } => match parse_path(&path) {
            Ok(path) => context
                .blocking(move |jail| jail.symlink(&path, &target))
                .await
                .map(|()| Some(Response::Ok)),
            Err(error) => Err(error),
        },
        Request::Rename { from, to } => rename(context, &from, &to).await,
        Request::PutOpen { path, size, .. } if size > MAX_UPLOAD_SIZE => Err(RequestError::new(
            ErrorKind::LimitReached,
            format!("{path}: a file of {size} bytes is larger than any file the server can store"),
        )),
        Request::PutOpen {
            transfer_id,
            path,
            size,
            mtime,
            resume,
        } => {
            let open = transfer::UploadOpen {
                request_id: id,
                transfer_id,
                path,
                size,
                mtime,
                resume,
            };
            transfer::upload(context, open).await
        }
        Request::PutCommit { transfer_id, hash } => {
            transfer::deliver_commit(context, id, transfer_id, hash)
        }
        Request::PutAbort { transfer_id } => transfer::abort_upload(context, transfer_id),
        Request::PutSmall {
            transfer_id,
            path,
            size,
            mtime,
            hash,
        } => {
            let small = transfer::SmallUpload {
                transfer_id,
                path,
                size,
                mtime,
                hash,
            };
            transfer::upload_small(context, small).await
        }
        Request::GetOpen {
            transfer_id,
            path,
            resume,
        } => transfer::download(context, id, transfer_id, &path, resume).await,
        _ => Err(RequestError::new(
            ErrorKind::Protocol,
            "request not supported by this server",
        )),
    };
    match result {
        Ok(Some(response)) => context.reply(id, response).await,
        Ok(None) => {}
        Err(error) => context.reply_error(id, kind, error).await,
    }
}

/// What a handler returns: an answer to send, or `None` when it has
/// already answered (chunked listings, transfers).
pub(crate) type HandlerResult = RequestResult<Option<Response>>;

async fn logout(context: &Context) -> HandlerResult {
    let revoked = context
        .state
        .db
        .revoke_session(&context.session.token_hash)
        .map_err(|error| {
            tracing::error!(%error, "revoking a session");
            RequestError::new(
                ErrorKind::Internal,
                "server error: cannot revoke the session",
            )
        })?;
    // Open connections of this session notice at their next request.
    context
        .state
        .revocations
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    tracing::info!(user = %context.session.user, revoked, "logout");
    Ok(Some(Response::Ok))
}

fn who_am_i(context: &Context) -> HandlerResult {
    let usage = context.session.quota.usage(&context.state.db)?;
    Ok(Some(Response::Identity {
        user: context.session.user.clone(),
        usage,
    }))
}

/// Splits entries into chunks whose encoding stays well inside `limit`.
fn chunk_by_size(entries: Vec<EntryInfo>, limit: usize) -> Vec<Vec<EntryInfo>> {
    let budget = limit / 2;
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

async fn list(context: &Context, id: u64, path: &str) -> HandlerResult {
    let path = parse_path(path)?;
    let entries = context.blocking(move |jail| jail.list(&path)).await?;
    let chunks = chunk_by_size(entries, context.state.config.max_frame_size);
    let last = chunks.len() - 1;
    for (index, entries) in chunks.into_iter().enumerate() {
        context
            .reply(
                id,
                Response::Listing {
                    entries,
                    done: index == last,
                },
            )
            .await;
    }
    Ok(None)
}

async fn walk(context: &Context, id: u64, path: &str, hashes: bool) -> HandlerResult {
    let path = parse_path(path)?;
    let replies = context.replies.clone();
    let limit = context.state.config.max_frame_size;
    context
        .blocking(move |jail| {
            jail.walk(&path, hashes, &mut |entries| {
                chunk_by_size(entries, limit).into_iter().all(|entries| {
                    let response = Response::Tree {
                        entries,
                        done: false,
                    };
                    replies.blocking_send(ServerFrame { id, response }).is_ok()
                })
            })
        })
        .await?;
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
    let path = parse_path(path)?;
    let freed = match context
        .blocking(move |jail| jail.remove(&path, recursive))
        .await
    {
        Ok(freed) => freed,
        Err(error) => {
            if recursive {
                // Part of the tree may be gone already; count what is left
                // rather than keep charging for what was removed.
                let quota = Arc::clone(&context.session.quota);
                let state = Arc::clone(&context.state);
                let recount = context
                    .blocking(move |jail| quota.recount(&state.db, || jail.disk_usage()))
                    .await;
                if let Err(recount_error) = recount {
                    tracing::warn!(user = %context.session.user, error = %recount_error.message, "quota recount failed");
                }
            }
            return Err(error);
        }
    };
    context
        .session
        .quota
        .adjust(&context.state.db, -(freed as i64))?;
    Ok(Some(Response::Ok))
}

async fn rename(context: &Context, from: &str, to: &str) -> HandlerResult {
    let from = parse_path(from)?;
    let to = parse_path(to)?;
    let freed = context
        .blocking(move |jail| jail.rename(&from, &to))
        .await?;
    context
        .session
        .quota
        .adjust(&context.state.db, -(freed as i64))?;
    Ok(Some(Response::Ok))
}

/// Accepts data streams and hands each to the upload it names.
async fn accept_data_streams(context: Context) {
    loop {
        let mut recv = match context.connection.accept_uni().await {
            Ok(recv) => recv,
            Err(_) => return,
        };
        let transfers = Arc::clone(&context.transfers);
        tokio::spawn(async move {
            let header = tokio::time::timeout(
                HELLO_TIMEOUT,
                framed::read_message::<DataHeader>(&mut recv, DATA_HEADER_LIMIT),
            )
            .await;
            match header {
                Ok(Ok(Some(header))) => transfers.deliver_stream(header, recv),
                _ => {
                    let _ = recv.stop(transfer::stream_code::BAD_HEADER.into());
                }
            }
        });
    }
}
