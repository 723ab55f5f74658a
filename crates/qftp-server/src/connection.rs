//! One client connection: the hello, the login stage, the control stream's
//! request loop and the acceptor of data streams.
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
//!
//! What each request does is [`crate::requests`]'s; the logged-in user and
//! the context every request runs with are [`crate::session`]'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use qftp_proto::transfer::DATA_HEADER_MAX;
use qftp_proto::{
    ClientFrame, ClientHello, DataHeader, ErrorKind, PROTOCOL_VERSION, Request, Response,
    ServerFrame, ServerHello, Timestamp,
};
use qftp_transport::framed::{self, FramedError};
use qftp_transport::tuning::{self, PathProfile};
use tokio::sync::{Semaphore, mpsc};

use crate::audit;
use crate::auth::{LoginBound, LoginError, new_session_token, token_hash};
use crate::error::{RequestError, RequestResult};
use crate::limits::Refusal;
use crate::live::Registration;
use crate::metrics::{LoginMethod, LoginResult};
use crate::requests::dispatch;
use crate::session::{Context, Session, off_runtime};
use crate::state::{ServerState, UnauthenticatedGuard};
use crate::transfer::routing::{TransferTable, stream_code};

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
    /// The server is shutting down; a rerun against it once it is back
    /// resumes what was cut.
    pub const SHUTTING_DOWN: u32 = 4;
    /// An administrator ended the connection (`qftp-server kick`).
    pub const KICKED: u32 = 5;
}

/// How long a new connection may take to open its control stream and say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests of one connection being served at once. Each holds little
/// while it waits (its paths are at most `limits.max_path_bytes`; a small
/// upload's body counts against `limits.max_open_uploads_per_user`), and
/// past this many the control stream is not read any further.
const REQUESTS_IN_FLIGHT: usize = 256;

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
    let registration = state.live.register(&connection);
    let _counted = state.metrics.connection_opened();
    tokio::spawn(crate::metrics::watch_path(
        Arc::clone(&state.metrics),
        connection.clone(),
    ));
    match serve(
        state,
        connection.clone(),
        remote,
        deadline,
        pending,
        &registration,
    )
    .await
    {
        Ok(()) => {
            tracing::debug!(%remote, "connection closed");
            connection.close(close_code::DONE.into(), b"bye");
        }
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

/// Reads the client's next frame; `None` once the client is done, having
/// ended its control stream or closed the connection the normal way.
async fn next_frame(
    recv: &mut quinn::RecvStream,
    limit: usize,
) -> Result<Option<ClientFrame>, CloseReason> {
    match framed::read_message::<ClientFrame>(recv, limit).await {
        Ok(frame) => Ok(frame),
        Err(FramedError::Read(quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::ApplicationClosed(close),
        ))) if close.error_code == close_code::DONE.into() => Ok(None),
        // Closed by this server (a drain, a kick).
        Err(FramedError::Read(quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::LocallyClosed,
        ))) => Ok(None),
        Err(error) => Err(protocol_error(error)),
    }
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
    registration: &Registration,
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
        registration.logged_in(&session.user);
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
            live: Arc::clone(registration.entry()),
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
        let Some(frame) = next_frame(recv, limit).await? else {
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

/// The client's error for an attempt by `method` that the login guard
/// refused unchecked (or could not check), counted as blocked (or failed).
fn refused_login(
    state: &ServerState,
    remote: SocketAddr,
    error: LoginError,
    method: LoginMethod,
) -> RequestError {
    let result = match error {
        LoginError::Blocked { .. } => LoginResult::Blocked,
        _ => LoginResult::Failed,
    };
    state.metrics.login(method, result);
    login_refusal(state, remote, error)
}

/// The client's error for a login the guard refused.
fn login_refusal(state: &ServerState, remote: SocketAddr, error: LoginError) -> RequestError {
    match error {
        LoginError::Blocked {
            retry_after,
            bound,
            who,
        } => {
            tracing::debug!(%remote, who, "login refused: too many failures");
            let retry_after_secs = retry_after.as_secs().max(1);
            bound.refuse(
                &state.login_limits(),
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
        .login(&*state.users, remote.ip(), user, password)
        .await
    {
        Ok(record) => record,
        Err(LoginError::Failed) => {
            state
                .metrics
                .login(LoginMethod::Password, LoginResult::Failed);
            tracing::warn!(%remote, user, "login failed");
            return Err(RequestError::new(
                ErrorKind::AuthenticationFailed,
                "login failed: wrong user name or password",
            ));
        }
        Err(error) => {
            return Err(refused_login(state, remote, error, LoginMethod::Password));
        }
    };
    let (token, hash) = new_session_token();
    let expires_at = std::time::SystemTime::now() + state.config.session_ttl();
    let expires = Timestamp::from(expires_at);
    state
        .sessions
        .create_session(&record.name, &hash, expires_at)
        .await
        .map_err(|error| {
            tracing::error!(%error, "storing a session");
            RequestError::new(
                ErrorKind::Internal,
                "server error: cannot store the session",
            )
        })?;
    let session = {
        let (state, record) = (Arc::clone(state), record.clone());
        off_runtime(move || Session::open(&state, &record, hash)).await?
    };
    audit::login(&record.name, remote, LoginMethod::Password);
    state.metrics.login(LoginMethod::Password, LoginResult::Ok);
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
        .await
        .map_err(|error| refused_login(state, remote, error, LoginMethod::Token))?;
    let outcome = resume_session(state, remote, &token).await;
    match &outcome {
        Ok((session, _)) => {
            state.metrics.login(LoginMethod::Token, LoginResult::Ok);
            guard.token_accepted(remote.ip(), &session.user).await;
        }
        Err(error) if error.kind == ErrorKind::SessionExpired => {
            state.metrics.login(LoginMethod::Token, LoginResult::Failed);
            // Counted as failed: the block it may cause counts from the
            // next attempt on.
            let delay = guard
                .token_refused(remote.ip())
                .await
                .map_err(|error| login_refusal(state, remote, error))?;
            tokio::time::sleep(delay).await;
        }
        Err(_) => {}
    }
    outcome
}

async fn resume_session(
    state: &Arc<ServerState>,
    remote: SocketAddr,
    token: &str,
) -> RequestResult<(Session, Response)> {
    let hash = token_hash(token);
    let expired = || {
        // Not a warning: failed tokens are throttled, and a blocked address
        // is logged once a minute by its refusal.
        tracing::info!(%remote, "session token refused");
        RequestError::new(
            ErrorKind::SessionExpired,
            "session expired or revoked; log in again with `qftp login`",
        )
    };
    let store_error = |error: qftp_store::StoreError| {
        tracing::error!(%error, "reading a session");
        RequestError::new(
            ErrorKind::Internal,
            "server error: user database unavailable",
        )
    };
    let user = state
        .sessions
        .check_session(&hash, std::time::SystemTime::now())
        .await
        .map_err(store_error)?
        .ok_or_else(expired)?;
    let record = state
        .users
        .user(&user)
        .await
        .map_err(store_error)?
        .ok_or_else(expired)?;
    let session = {
        let state = Arc::clone(state);
        off_runtime(move || Session::open(&state, &record, hash)).await?
    };
    audit::login(&session.user, remote, LoginMethod::Token);
    let user = session.user.clone();
    Ok((session, Response::Authenticated { user }))
}

async fn serve_requests(
    context: &Context,
    recv: &mut quinn::RecvStream,
    limit: usize,
) -> Result<(), CloseReason> {
    let in_flight = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT));
    loop {
        let Some(frame) = next_frame(recv, limit).await? else {
            return Ok(());
        };
        if let Some(close) = context.state.live.drain_close()
            && !continues_transfer(&frame.request)
        {
            // Draining: nothing new starts; the transfers in flight go on.
            context.live.close(close);
            return Ok(());
        }
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

/// Whether `request` belongs to a transfer already in flight, which a
/// draining server still serves.
fn continues_transfer(request: &Request) -> bool {
    matches!(
        request,
        Request::PutCommit { .. } | Request::PutAbort { .. }
    )
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
                framed::read_message::<DataHeader>(&mut recv, DATA_HEADER_MAX),
            )
            .await;
            match header {
                Ok(Ok(Some(header))) => transfers.deliver_stream(header, recv),
                _ => {
                    let _ = recv.stop(stream_code::BAD_HEADER.into());
                }
            }
        });
    }
}
