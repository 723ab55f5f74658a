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
use crate::config::ResourceLimits;
use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;
use crate::jail::{Jail, JailLimits};
use crate::limits::Refusal;
use crate::quota::{Tally, UserQuota};
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
/// Requests of one connection being served at once. Each holds little
/// while it waits (its paths are at most `limits.max_path_bytes`; a small
/// upload's body counts against `limits.max_open_uploads_per_user`), and
/// past this many the control stream is not read any further.
const REQUESTS_IN_FLIGHT: usize = 256;
/// The most bytes of entries put into one listing or walk frame, whatever
/// `max_frame_size` allows: with the reply channel's 64 frames, a connection
/// that reads nothing makes the server hold at most 4 MiB of answers.
const LISTING_FRAME_BYTES: usize = 64 * 1024;
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
    /// The home's staging directory for partial uploads.
    pub staging: crate::partials::Staging,
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
    /// Listings and walks that may run at once on this connection
    /// (`limits.max_listings_per_connection`).
    pub listings: Arc<Semaphore>,
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

    /// Runs a change of the home off the async workers, under the user's
    /// quota lock, with the ledger told what it created and removed.
    pub async fn changing<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Jail, &mut Tally) -> RequestResult<T> + Send + 'static,
    ) -> RequestResult<T> {
        let quota = Arc::clone(&self.session.quota);
        self.blocking(move |jail| quota.change(|tally| work(jail, tally)))
            .await
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

impl Context {
    /// Parses a client path, or explains why it is not acceptable; a path
    /// longer than `limits.max_path_bytes` or with more than
    /// `limits.max_depth` names is refused at a limit.
    pub fn parse_path(&self, path: &str) -> RequestResult<RemotePath> {
        parse_path_within(path, &self.state.config.limits, &self.session.user)
    }

    /// Waits for one of the connection's listing slots.
    async fn listing_slot(&self) -> RequestResult<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.listings)
            .acquire_owned()
            .await
            .map_err(|_| RequestError::new(ErrorKind::Internal, "server error: limiter closed"))
    }
}

/// Parses `path` named by `who` within `limits` (see [`Context::parse_path`]).
fn parse_path_within(path: &str, limits: &ResourceLimits, who: &str) -> RequestResult<RemotePath> {
    if path.len() > limits.max_path_bytes {
        return Err(Refusal {
            setting: "max_path_bytes",
            value: &limits.max_path_bytes.to_string(),
            who,
        }
        .refuse(format!(
            "{}…: path of {} bytes is too long",
            shortened(path),
            path.len()
        )));
    }
    let parsed = RemotePath::parse(path)
        .map_err(|error| RequestError::new(ErrorKind::InvalidPath, error.to_string()))?;
    let depth = parsed.components().len();
    if depth > limits.max_depth {
        return Err(Refusal {
            setting: "max_depth",
            value: &limits.max_depth.to_string(),
            who,
        }
        .refuse(format!(
            "{}…: path of {depth} names is too deep",
            shortened(path)
        )));
    }
    Ok(parsed)
}

/// The start of a long path, for an error message.
fn shortened(path: &str) -> &str {
    let mut end = path.len().min(64);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
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
            listings: Arc::new(Semaphore::new(
                state.config.limits.max_listings_per_connection,
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
    let limits = JailLimits::from_config(&state.config.limits)
        .map_err(|error| RequestError::new(ErrorKind::Internal, error))?;
    let jail = std::fs::create_dir_all(&home)
        .and_then(|()| Jail::open(&home, &record.name, limits))
        .map_err(|error| {
            tracing::error!(user = %record.name, home = %home.display(), %error, "cannot open home");
            RequestError::new(ErrorKind::Internal, "server error: your home directory is unavailable")
        })?;
    let staging = jail.open_staging().map_err(|error| {
        tracing::error!(user = %record.name, home = %home.display(), %error, "cannot open the staging directory");
        RequestError::new(ErrorKind::Internal, "server error: your home directory is unavailable")
    })?;
    // The first login after a start measures the home; every login re-reads
    // the quota.
    let quota = state.quotas.user(record);
    quota.refresh(|| jail.disk_usage())?;
    Ok(Session {
        user: record.name.clone(),
        token_hash,
        jail: Arc::new(jail),
        quota,
        staging,
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
            .usage()
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
    let usage = context.session.quota.usage()?;
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
            let quota = Arc::clone(&context.session.quota);
            let recount = context
                .blocking(move |jail| quota.recount(|| jail.disk_usage()))
                .await;
            if let Err(recount_error) = recount {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_depth: usize, max_path_bytes: usize) -> ResourceLimits {
        ResourceLimits {
            max_depth,
            max_path_bytes,
            ..ResourceLimits::default()
        }
    }

    #[test]
    fn paths_are_refused_beyond_their_length_and_depth() {
        let limits = limits(3, 12);
        assert_eq!(
            parse_path_within("/a/b/c", &limits, "alice")
                .unwrap()
                .components()
                .len(),
            3
        );
        // Depth counts names after normalization.
        assert!(parse_path_within("a/b/../c/d", &limits, "alice").is_ok());
        let deep = parse_path_within("/a/b/c/d", &limits, "alice").unwrap_err();
        assert_eq!(deep.kind, ErrorKind::LimitReached);
        assert!(deep.message.contains("max_depth = 3"), "{}", deep.message);
        let long = parse_path_within("/abcdefghijklm", &limits, "alice").unwrap_err();
        assert_eq!(long.kind, ErrorKind::LimitReached);
        assert!(
            long.message.contains("max_path_bytes = 12"),
            "{}",
            long.message
        );
        // A huge path is not echoed back whole.
        let huge = "é".repeat(100_000);
        let error = parse_path_within(&huge, &limits, "alice").unwrap_err();
        assert!(error.message.len() < 300, "{}", error.message.len());
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
