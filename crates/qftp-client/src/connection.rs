//! [`Client`]: one QUIC connection to a qftp server.
//!
//! Requests go out on the control stream tagged with an id; a reader task
//! routes each answer to whoever waits for that id, so any number of
//! requests (and transfers) can be in flight at once. Data streams the
//! server opens for downloads are routed by their header's transfer id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qftp_proto::transfer::DATA_HEADER_MAX;
use qftp_proto::{
    ClientFrame, ClientHello, DataHeader, EntryInfo, PROTOCOL_VERSION, Request, Response,
    ServerFrame, ServerHello, Timestamp, Usage,
};
use qftp_transport::tuning::{Congestion, PathProfile, TransportLimits, transport_config};
use qftp_transport::{Fingerprint, framed};
use quinn::crypto::rustls::QuicClientConfig;
use tokio::sync::{mpsc, oneshot};

use crate::address::ServerAddress;
use crate::error::ClientError;
use crate::figures::TransportFigures;
use crate::trust::{self, Trust};

pub use crate::address::DEFAULT_PORT;

/// How long the client waits in silence before it declares the server
/// gone: short enough that a crashed server is noticed quickly, long enough
/// for a lossy path (keep-alives go out every third of it).
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Application error codes the client closes its connection with.
pub mod close_code {
    /// A normal close.
    pub const DONE: u32 = 0;
    /// The user interrupted the program (Ctrl-C): every transfer of the
    /// connection ends now, and their partial files stay for a resume.
    pub const INTERRUPTED: u32 = 0x10;
    /// The code the server closes with when it shuts down (its
    /// `close_code::SHUTTING_DOWN`); its reason tells the user to rerun.
    pub const SERVER_SHUTTING_DOWN: u32 = 4;
    /// The code the server closes with when an administrator ends the
    /// connection (its `close_code::KICKED`).
    pub const SERVER_KICKED: u32 = 5;
}

/// Data streams the server may have open towards us at once.
const INCOMING_DATA_STREAMS: u32 = 256;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `host`, `host:port`, `[v6]:port`, `qftp://host:port` (see [`crate::address`]).
    pub server: String,
    /// How to trust the server's certificate.
    pub trust: Trust,
    /// The known-hosts file, named in the error when a pin does not match.
    pub known_hosts: Option<std::path::PathBuf>,
    /// How long a silent connection lives.
    pub idle_timeout: Duration,
    /// How long to wait for the server to answer the handshake.
    pub connect_timeout: Duration,
}

impl ConnectOptions {
    /// Options for `server` with `trust` and default timeouts.
    pub fn new(server: impl Into<String>, trust: Trust) -> Self {
        Self {
            server: server.into(),
            trust,
            known_hosts: None,
            idle_timeout: CLIENT_IDLE_TIMEOUT,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The QUIC client configuration for `trust`: TLS 1.3 with the qftp ALPN
/// and qftp's transport settings. `presented` receives the fingerprint of
/// the certificate the server shows. Useful to speak to a server directly.
pub fn quic_client_config(
    trust: &Trust,
    presented: Arc<Mutex<Option<Fingerprint>>>,
    idle_timeout: Duration,
    profile: PathProfile,
) -> Result<quinn::ClientConfig, ClientError> {
    let verifier = trust::verifier(trust, presented)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(qftp_transport::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| ClientError::Protocol(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![qftp_proto::ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls)
        .map_err(|error| ClientError::Protocol(error.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let limits = TransportLimits {
        idle_timeout,
        max_uni_streams: INCOMING_DATA_STREAMS,
        max_bi_streams: 0,
        congestion: Congestion::from_env().map_err(ClientError::Usage)?,
        ..TransportLimits::default()
    };
    config.transport_config(transport_config(&limits, profile));
    Ok(config)
}

pub use crate::address::host_key;

/// Why a connection closed, in the words the user sees: a server shutting
/// down or an administrator's kick gives its own reason ("server shutting
/// down, rerun to resume", "administrator ended this connection").
fn describe_close(reason: &quinn::ConnectionError) -> String {
    match reason {
        quinn::ConnectionError::ApplicationClosed(close)
            if [close_code::SERVER_SHUTTING_DOWN, close_code::SERVER_KICKED]
                .iter()
                .any(|code| close.error_code == (*code).into()) =>
        {
            String::from_utf8_lossy(&close.reason).into_owned()
        }
        reason => reason.to_string(),
    }
}

type Waiters = Mutex<Option<HashMap<u64, mpsc::UnboundedSender<Response>>>>;
type StreamWaiters = Mutex<HashMap<u64, oneshot::Sender<(DataHeader, quinn::RecvStream)>>>;

#[derive(Debug)]
struct Inner {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    control: tokio::sync::Mutex<quinn::SendStream>,
    max_frame: usize,
    next_request: AtomicU64,
    next_transfer: AtomicU64,
    waiters: Waiters,
    streams: StreamWaiters,
    host: String,
    fingerprint: Option<Fingerprint>,
    /// How many times [`Client::rebind`] moved the connection.
    rebinds: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.connection.close(close_code::DONE.into(), b"bye");
    }
}

/// A connection to a qftp server; cheap to clone, shared by all tasks.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// The answers to one request that has several (listings, downloads).
#[derive(Debug)]
pub struct Responses {
    id: u64,
    receiver: mpsc::UnboundedReceiver<Response>,
    client: Client,
}

impl Responses {
    /// The next answer; a server refusal becomes [`ClientError::Server`].
    pub async fn next(&mut self) -> Result<Response, ClientError> {
        match self.receiver.recv().await {
            Some(Response::Error(reply)) => Err(ClientError::Server(reply)),
            Some(response) => Ok(response),
            None => Err(self.client.lost()),
        }
    }
}

impl Drop for Responses {
    fn drop(&mut self) {
        if let Some(waiters) = self
            .client
            .inner
            .waiters
            .lock()
            .expect("waiters lock")
            .as_mut()
        {
            waiters.remove(&self.id);
        }
    }
}

fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {response:?}"))
}

impl Client {
    /// Connects, checks the certificate and exchanges hellos.
    pub async fn connect(options: &ConnectOptions) -> Result<Self, ClientError> {
        let server = ServerAddress::parse(&options.server)?;
        let (host, port) = (server.host.clone(), server.port_or_default());
        let key = server.key();
        let unreachable = |reason: String| ClientError::Unreachable {
            address: key.clone(),
            reason,
        };
        let address: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|error| unreachable(error.to_string()))?
            .next()
            .ok_or_else(|| unreachable("no address found".into()))?;

        let presented = Arc::new(Mutex::new(None));
        let profile = PathProfile::for_peer(&address);
        let config = quic_client_config(
            &options.trust,
            Arc::clone(&presented),
            options.idle_timeout,
            profile,
        )?;
        let bind: SocketAddr = if address.is_ipv6() {
            "[::]:0".parse().expect("literal address")
        } else {
            "0.0.0.0:0".parse().expect("literal address")
        };
        let mut endpoint = qftp_transport::tuning::endpoint(bind, None)
            .map_err(|error| unreachable(error.to_string()))?;
        endpoint.set_default_client_config(config);
        let connecting = endpoint
            .connect(address, &host)
            .map_err(|error| unreachable(error.to_string()))?;
        let connected = tokio::select! {
            connected = tokio::time::timeout(options.connect_timeout, connecting) => connected
                .map_err(|_| {
                    unreachable(format!(
                        "no answer within {} s",
                        options.connect_timeout.as_secs()
                    ))
                })?,
            () = crate::probe::refused(address) => {
                return Err(unreachable("connection refused".into()));
            }
        };
        let connection = match connected {
            Ok(connection) => connection,
            Err(error) => {
                let presented = *presented.lock().expect("fingerprint lock");
                if let (Trust::Pinned(pinned), Some(presented)) = (&options.trust, presented)
                    && *pinned != presented
                {
                    return Err(ClientError::CertificateChanged {
                        host: key,
                        pinned: *pinned,
                        presented,
                        known_hosts: options.known_hosts.clone().unwrap_or_default(),
                    });
                }
                return Err(unreachable(error.to_string()));
            }
        };
        let fingerprint = *presented.lock().expect("fingerprint lock");

        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let hello = ClientHello {
            version: PROTOCOL_VERSION,
            client: format!("qftp {}", env!("CARGO_PKG_VERSION")),
        };
        framed::write_message(&mut send, &hello, qftp_proto::DEFAULT_MAX_FRAME).await?;
        let server_hello: ServerHello =
            framed::read_message(&mut recv, qftp_proto::DEFAULT_MAX_FRAME)
                .await?
                .ok_or_else(|| {
                    ClientError::Protocol(
                        "the server closed the connection during the hello".into(),
                    )
                })?;
        if server_hello.version != PROTOCOL_VERSION {
            return Err(ClientError::Protocol(format!(
                "the server speaks protocol version {}, this client {PROTOCOL_VERSION}",
                server_hello.version
            )));
        }
        let max_frame = (server_hello.max_frame as usize).clamp(1024, qftp_proto::HARD_MAX_FRAME);
        let inner = Arc::new(Inner {
            endpoint,
            connection: connection.clone(),
            control: tokio::sync::Mutex::new(send),
            max_frame,
            next_request: AtomicU64::new(1),
            next_transfer: AtomicU64::new(1),
            waiters: Mutex::new(Some(HashMap::new())),
            streams: Mutex::new(HashMap::new()),
            host: key,
            fingerprint,
            rebinds: AtomicU64::new(0),
        });
        tokio::spawn(read_answers(Arc::downgrade(&inner), recv, max_frame));
        tokio::spawn(accept_data_streams(Arc::downgrade(&inner), connection));
        Ok(Self { inner })
    }

    /// The server as `host:port`.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The fingerprint of the certificate the server presented (not known
    /// under CA trust).
    pub fn server_fingerprint(&self) -> Option<Fingerprint> {
        self.inner.fingerprint
    }

    /// The underlying QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.inner.connection
    }

    fn lost(&self) -> ClientError {
        let reason = self.inner.connection.close_reason().map_or_else(
            || "the control stream ended".to_owned(),
            |reason| describe_close(&reason),
        );
        ClientError::ConnectionLost(reason)
    }

    /// `error`, with the reason the connection closed in place of what a
    /// stream saw when the connection is gone: a transfer cut by a server
    /// shutting down says so rather than "connection lost".
    pub fn explain_lost(&self, error: ClientError) -> ClientError {
        match (error, self.inner.connection.close_reason()) {
            (ClientError::ConnectionLost(_), Some(reason)) => {
                ClientError::ConnectionLost(describe_close(&reason))
            }
            (error, _) => error,
        }
    }

    /// Sends `request` and returns the stream of its answers.
    pub async fn send(&self, request: Request) -> Result<Responses, ClientError> {
        let id = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::unbounded_channel();
        match self.inner.waiters.lock().expect("waiters lock").as_mut() {
            Some(waiters) => waiters.insert(id, sender),
            None => return Err(self.lost()),
        };
        let responses = Responses {
            id,
            receiver,
            client: self.clone(),
        };
        let frame = ClientFrame { id, request };
        let mut control = self.inner.control.lock().await;
        framed::write_message(&mut control, &frame, self.inner.max_frame)
            .await
            .map_err(|error| match error {
                qftp_transport::framed::FramedError::Write(_) => self.lost(),
                other => other.into(),
            })?;
        Ok(responses)
    }

    /// Sends `request` and waits for its one answer.
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        self.send(request).await?.next().await
    }

    async fn expect_ok(&self, request: Request) -> Result<(), ClientError> {
        match self.request(request).await? {
            Response::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Logs in with a password; returns the session token and its expiry.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
    ) -> Result<(String, Timestamp), ClientError> {
        let request = Request::Login {
            user: user.to_owned(),
            password: password.to_owned(),
        };
        match self.request(request).await? {
            Response::LoggedIn { token, expires, .. } => Ok((token, expires)),
            other => Err(unexpected(&other)),
        }
    }

    /// Authenticates with a session token; returns the user name.
    pub async fn authenticate(&self, token: &str) -> Result<String, ClientError> {
        match self
            .request(Request::Authenticate {
                token: token.to_owned(),
            })
            .await?
        {
            Response::Authenticated { user } => Ok(user),
            other => Err(unexpected(&other)),
        }
    }

    /// Revokes this connection's session on the server.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.expect_ok(Request::Logout).await
    }

    /// The logged-in user and their quota use.
    pub async fn who_am_i(&self) -> Result<(String, Usage), ClientError> {
        match self.request(Request::WhoAmI).await? {
            Response::Identity { user, usage } => Ok((user, usage)),
            other => Err(unexpected(&other)),
        }
    }

    /// Quota use.
    pub async fn disk_usage(&self) -> Result<Usage, ClientError> {
        match self.request(Request::DiskUsage).await? {
            Response::DiskUsage(usage) => Ok(usage),
            other => Err(unexpected(&other)),
        }
    }

    /// Metadata of `path`.
    pub async fn stat(&self, path: &str) -> Result<EntryInfo, ClientError> {
        match self
            .request(Request::Stat {
                path: path.to_owned(),
            })
            .await?
        {
            Response::Entry(entry) => Ok(entry),
            other => Err(unexpected(&other)),
        }
    }

    /// The entries of a directory (or the one entry of a file).
    pub async fn list(&self, path: &str) -> Result<Vec<EntryInfo>, ClientError> {
        let mut responses = self
            .send(Request::List {
                path: path.to_owned(),
            })
            .await?;
        let mut all = Vec::new();
        loop {
            match responses.next().await? {
                Response::Listing { entries, done } => {
                    all.extend(entries);
                    if done {
                        return Ok(all);
                    }
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Every entry below `path`, chunk by chunk, in one streamed request.
    pub async fn walk(
        &self,
        path: &str,
        hashes: bool,
        mut each_chunk: impl FnMut(Vec<EntryInfo>),
    ) -> Result<(), ClientError> {
        let mut responses = self
            .send(Request::Walk {
                path: path.to_owned(),
                hashes,
            })
            .await?;
        loop {
            match responses.next().await? {
                Response::Tree { entries, done } => {
                    each_chunk(entries);
                    if done {
                        return Ok(());
                    }
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// Creates a directory (with `parents`, also its missing ancestors).
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<(), ClientError> {
        self.expect_ok(Request::Mkdir {
            path: path.to_owned(),
            parents,
        })
        .await
    }

    /// Removes a file, an empty directory, or with `recursive` a tree.
    pub async fn remove(&self, path: &str, recursive: bool) -> Result<(), ClientError> {
        self.expect_ok(Request::Remove {
            path: path.to_owned(),
            recursive,
        })
        .await
    }

    /// Renames or moves `from` to `to`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), ClientError> {
        self.expect_ok(Request::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        })
        .await
    }

    /// Creates a symbolic link at `path` pointing to `target` (which must
    /// stay inside the home).
    pub async fn symlink(&self, path: &str, target: &str) -> Result<(), ClientError> {
        self.expect_ok(Request::Symlink {
            path: path.to_owned(),
            target: target.to_owned(),
        })
        .await
    }

    /// A fresh transfer id for this connection.
    pub fn next_transfer_id(&self) -> u64 {
        self.inner.next_transfer.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers interest in the data stream of download `transfer_id`;
    /// must be called before the download is opened.
    pub(crate) fn expect_data_stream(&self, transfer_id: u64) -> DataStreamWaiter {
        let (sender, receiver) = oneshot::channel();
        self.inner
            .streams
            .lock()
            .expect("streams lock")
            .insert(transfer_id, sender);
        DataStreamWaiter {
            client: self.clone(),
            transfer_id,
            receiver,
        }
    }

    /// Opens a data stream for upload `transfer_id`, starting at `offset`
    /// (a low-level step of [`crate::transfer::upload`]).
    pub async fn open_data_stream(
        &self,
        transfer_id: u64,
        offset: u64,
    ) -> Result<quinn::SendStream, ClientError> {
        let mut send = self
            .inner
            .connection
            .open_uni()
            .await
            .map_err(|_| self.lost())?;
        framed::write_message(
            &mut send,
            &DataHeader {
                transfer_id,
                offset,
            },
            DATA_HEADER_MAX,
        )
        .await?;
        Ok(send)
    }

    /// Moves the connection to a new local socket (a new port, and the
    /// address the system routes from now), as after a change of network.
    /// Transfers in flight carry on: QUIC validates the new path and the
    /// server keeps the connection, its session and its streams. Returns
    /// the new local address.
    pub fn rebind(&self) -> Result<SocketAddr, ClientError> {
        let current = self
            .inner
            .endpoint
            .local_addr()
            .map_err(|error| ClientError::Rebind(error.to_string()))?;
        let wildcard: SocketAddr = if current.is_ipv6() {
            "[::]:0".parse().expect("literal address")
        } else {
            "0.0.0.0:0".parse().expect("literal address")
        };
        let socket = qftp_transport::tuning::bind_socket(wildcard)
            .map_err(|error| ClientError::Rebind(error.to_string()))?;
        self.inner
            .endpoint
            .rebind(socket)
            .map_err(|error| ClientError::Rebind(error.to_string()))?;
        self.inner.rebinds.fetch_add(1, Ordering::Relaxed);
        let moved = self
            .inner
            .endpoint
            .local_addr()
            .map_err(|error| ClientError::Rebind(error.to_string()))?;
        tracing::debug!(from = %current, to = %moved, "moved the connection to a new local socket");
        Ok(moved)
    }

    /// The connection's transport figures now (round trip, loss, window).
    pub fn transport_figures(&self) -> TransportFigures {
        TransportFigures::from_stats(
            &self.inner.connection.stats(),
            self.inner.rebinds.load(Ordering::Relaxed),
        )
    }

    /// Closes the connection politely and waits briefly for the close to be sent.
    pub async fn close(&self) {
        tracing::debug!(figures = %self.transport_figures(), "connection statistics");
        self.close_with(close_code::DONE, b"bye").await;
    }

    /// Closes the connection because the user interrupted the program, so
    /// that the server drops the transfers (and their reservations) now.
    pub async fn close_interrupted(&self) {
        self.close_with(close_code::INTERRUPTED, b"interrupted")
            .await;
    }

    async fn close_with(&self, code: u32, reason: &[u8]) {
        self.inner.connection.close(code.into(), reason);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }
}

/// Waits for the data stream of one download.
#[derive(Debug)]
pub(crate) struct DataStreamWaiter {
    client: Client,
    transfer_id: u64,
    receiver: oneshot::Receiver<(DataHeader, quinn::RecvStream)>,
}

impl DataStreamWaiter {
    pub(crate) async fn stream(&mut self) -> Result<(DataHeader, quinn::RecvStream), ClientError> {
        (&mut self.receiver).await.map_err(|_| self.client.lost())
    }
}

impl Drop for DataStreamWaiter {
    fn drop(&mut self) {
        self.client
            .inner
            .streams
            .lock()
            .expect("streams lock")
            .remove(&self.transfer_id);
    }
}

async fn read_answers(
    inner: std::sync::Weak<Inner>,
    mut recv: quinn::RecvStream,
    max_frame: usize,
) {
    loop {
        let frame = match framed::read_message::<ServerFrame>(&mut recv, max_frame).await {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break,
        };
        let Some(inner) = inner.upgrade() else { return };
        let waiters = inner.waiters.lock().expect("waiters lock");
        if let Some(sender) = waiters.as_ref().and_then(|waiters| waiters.get(&frame.id)) {
            let _ = sender.send(frame.response);
        }
    }
    if let Some(inner) = inner.upgrade() {
        inner.waiters.lock().expect("waiters lock").take();
        inner.streams.lock().expect("streams lock").clear();
    }
}

async fn accept_data_streams(inner: std::sync::Weak<Inner>, connection: quinn::Connection) {
    while let Ok(mut recv) = connection.accept_uni().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            let header = tokio::time::timeout(
                Duration::from_secs(30),
                framed::read_message::<DataHeader>(&mut recv, DATA_HEADER_MAX),
            )
            .await;
            let Ok(Ok(Some(header))) = header else {
                let _ = recv.stop(1u32.into());
                return;
            };
            let Some(inner) = inner.upgrade() else { return };
            let sender = inner
                .streams
                .lock()
                .expect("streams lock")
                .remove(&header.transfer_id);
            match sender {
                Some(sender) => {
                    if let Err((_, mut recv)) = sender.send((header, recv)) {
                        let _ = recv.stop(2u32.into());
                    }
                }
                None => {
                    let _ = recv.stop(2u32.into());
                }
            }
        });
    }
}
