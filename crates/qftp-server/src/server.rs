//! The QUIC listener: TLS setup, the global connection limit, the accept
//! loop, the periodic sweep and the drain on a signal (a second signal
//! stops at once); SIGHUP reloads the configuration ([`crate::reload`]).
//! [`run`] serves only while it holds the root's lock ([`crate::lock`]).
//!
//! Connections are accepted in the login stage (no data streams, a small
//! receive window; see [`qftp_transport::tuning::login_stage_config`]) and
//! counted per address until they log in. With `metrics_listen` set,
//! [`run`] also serves [`crate::metrics_listener`] beside the QUIC endpoint. Serving a connection is
//! [`crate::connection`]'s; what connections share is [`crate::state`]'s.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use qftp_transport::Fingerprint;
use qftp_transport::tuning::{Congestion, PathProfile, TransportLimits, login_stage_config};
use quinn::crypto::rustls::QuicServerConfig;

use tokio::sync::watch;

use crate::certs::CertError;
use crate::config::{ServerConfig, ServerRoot};
use crate::connection::close_code;
use crate::embedded::{EmbeddedAccounts, EmbeddedLedger, EmbeddedThrottle};
use crate::live::ServerClose;
use crate::lock::{LockError, RootLock};
use crate::quota::QuotaBook;
use crate::reload::Reloader;
use crate::state::{ServerState, Stores};
use crate::userdb::{DbError, UserDb};

/// The server could not be set up or could not start listening.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The certificate or its key could not be read.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// The certificate file holds no certificate.
    #[error("the certificate file holds no certificate")]
    NoCertificate,
    /// The TLS library does not offer TLS 1.3.
    #[error("TLS 1.3 is not available")]
    Tls13(#[source] rustls::Error),
    /// The key does not belong to the certificate.
    #[error("the certificate and key do not match")]
    KeyMismatch(#[source] rustls::Error),
    /// QUIC cannot use the TLS configuration.
    #[error("building the QUIC TLS config")]
    QuicTls(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
    /// A setting (in `config.toml` or the environment) has an unusable value.
    #[error("{0}")]
    Setting(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The user database could not be opened.
    #[error("opening the user database {}", path.display())]
    Database {
        /// The database file.
        path: std::path::PathBuf,
        /// Why.
        source: DbError,
    },
    /// The administration socket could not be made.
    #[error("cannot listen on {}", path.display())]
    AdminSocket {
        /// The socket's path.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics listener (`metrics_listen`) could not be bound.
    #[error("cannot listen for metrics on {address} (metrics_listen)")]
    MetricsListen {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Another server holds the root, or its lock file cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The socket's address could not be read or the `listening on` line
    /// could not be written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    state: Arc<ServerState>,
    reloader: Arc<Reloader>,
    fingerprint: Fingerprint,
    network_config: Arc<quinn::ServerConfig>,
    loopback_config: Arc<quinn::ServerConfig>,
}

impl Server {
    /// Opens the user store, loads the certificate and binds `listen`.
    pub fn bind(
        root: ServerRoot,
        config: ServerConfig,
        listen: SocketAddr,
    ) -> Result<Self, ServerError> {
        let (certificates, key) = crate::certs::load(&root.cert_file(), &root.key_file())?;
        let fingerprint =
            Fingerprint::of_der(certificates.first().ok_or(ServerError::NoCertificate)?);
        let mut tls =
            rustls::ServerConfig::builder_with_provider(qftp_transport::crypto_provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(ServerError::Tls13)?
                .with_no_client_auth()
                .with_single_cert(certificates, key)
                .map_err(ServerError::KeyMismatch)?;
        tls.alpn_protocols = vec![qftp_proto::ALPN.to_vec()];
        tls.max_early_data_size = 0;
        let crypto = Arc::new(QuicServerConfig::try_from(tls).map_err(ServerError::QuicTls)?);
        let receive_window = config.receive_window().map_err(ServerError::Setting)?;
        let limits = TransportLimits {
            idle_timeout: config.idle_timeout(),
            max_uni_streams: config.max_streams_per_connection,
            stream_window: receive_window / 2,
            connection_window: receive_window,
            congestion: Congestion::from_env().map_err(ServerError::Setting)?,
            ..TransportLimits::default()
        };
        let path_config = |profile| {
            let mut server_config = quinn::ServerConfig::with_crypto(crypto.clone());
            server_config.transport_config(login_stage_config(&limits, profile));
            Arc::new(server_config)
        };
        let network_config = path_config(PathProfile::Network);
        let loopback_config = path_config(PathProfile::Loopback);
        let endpoint = qftp_transport::tuning::endpoint(listen, Some((*network_config).clone()))
            .map_err(|source| ServerError::Listen {
                address: listen,
                source,
            })?;
        let db = UserDb::open(&root.database()).map_err(|source| ServerError::Database {
            path: root.database(),
            source,
        })?;
        let db = Arc::new(db);
        let ledger_limits = crate::quota::LedgerLimits {
            max_entries: config.limits.max_entries_per_user,
            entry_cost: config.limits.entry_cost().map_err(ServerError::Setting)?,
        };
        let quotas = Arc::new(QuotaBook::new(Arc::clone(&db), ledger_limits));
        let accounts = Arc::new(EmbeddedAccounts::new(db));
        let throttle = Arc::new(EmbeddedThrottle::new(config.login.clone()));
        let stores = Stores {
            users: Arc::clone(&accounts) as Arc<dyn qftp_store::UserStore>,
            sessions: accounts,
            throttle: Arc::clone(&throttle) as Arc<dyn qftp_store::LoginThrottle>,
            ledger: Arc::new(EmbeddedLedger::new(Arc::clone(&quotas))),
        };
        let state = Arc::new(ServerState::new(root, config, stores, quotas, limits));
        let reloader = Arc::new(Reloader::new(Arc::clone(&state), move |login| {
            throttle.set_limits(login);
        }));
        Ok(Self {
            endpoint,
            state,
            reloader,
            fingerprint,
            network_config,
            loopback_config,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The fingerprint of the server's certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The shared state (for tests and embedding).
    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// What reloads the configuration into this server.
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// Serves connections until `shutdown` completes, then drains (see
    /// [`Self::run_draining`]) for at most `shutdown_grace_secs`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_draining(shutdown, std::future::pending()).await;
    }

    /// Serves connections until `shutdown` completes, then drains: new
    /// connections are refused, connections with nothing in flight are
    /// closed with [`close_code::SHUTTING_DOWN`], the transfers in flight
    /// may finish for `shutdown_grace_secs`, and then every connection left
    /// is closed the same way. `stop_now` completing ends the drain at once.
    pub async fn run_draining(
        self,
        shutdown: impl Future<Output = ()>,
        stop_now: impl Future<Output = ()>,
    ) {
        let sweeper = tokio::spawn(crate::transfer::sweep::sweep_periodically(Arc::clone(
            &self.state,
        )));
        tokio::pin!(shutdown);
        tokio::pin!(stop_now);
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                () = &mut shutdown => break,
            };
            let Some(incoming) = incoming else { break };
            self.admit(incoming);
        }
        let live = &self.state.live;
        let grace = self.state.config.shutdown_grace();
        tracing::info!(
            connections = live.len(),
            grace_secs = grace.as_secs(),
            "shutting down: refusing new connections, letting the transfers in flight finish"
        );
        live.begin_drain(SHUTTING_DOWN);
        let deadline = tokio::time::Instant::now() + grace;
        let mut at_once = false;
        loop {
            tokio::select! {
                incoming = self.endpoint.accept() => match incoming {
                    Some(incoming) => incoming.refuse(),
                    None => break,
                },
                () = live.wait_empty() => break,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(connections = live.len(), "grace period over: closing the connections still transferring");
                    break;
                }
                () = &mut stop_now => {
                    tracing::warn!(connections = live.len(), "second signal: stopping at once");
                    at_once = true;
                    break;
                }
            }
        }
        live.close_all(SHUTTING_DOWN);
        sweeper.abort();
        self.endpoint.close(
            close_code::SHUTTING_DOWN.into(),
            SHUTTING_DOWN.reason.as_bytes(),
        );
        // Long enough for the close to reach the clients; a second signal
        // waits for little more than that.
        let linger = std::time::Duration::from_secs(if at_once { 1 } else { 5 });
        let _ = tokio::time::timeout(linger, self.endpoint.wait_idle()).await;
    }

    /// Serves one incoming connection, or refuses it when the server is full.
    fn admit(&self, incoming: quinn::Incoming) {
        let Some(permit) = self.state.connections.try_admit() else {
            tracing::warn!(remote = %incoming.remote_address(), "connection refused: server full");
            incoming.refuse();
            return;
        };
        let state = Arc::clone(&self.state);
        let path_config = match PathProfile::for_peer(&incoming.remote_address()) {
            PathProfile::Loopback => Arc::clone(&self.loopback_config),
            PathProfile::Network => Arc::clone(&self.network_config),
        };
        tokio::spawn(async move {
            crate::connection::handle(state, incoming, path_config).await;
            drop(permit);
        });
    }
}

/// How a draining server closes connections: the client shows the reason.
pub const SHUTTING_DOWN: ServerClose = ServerClose {
    code: close_code::SHUTTING_DOWN,
    reason: "server shutting down, rerun to resume",
};

/// Binds `listen` (and `metrics_listen`, if set), prints the `listening
/// on ADDR certificate FINGERPRINT [metrics ADDR]` line and serves until
/// Ctrl-C or SIGTERM.
pub async fn run(
    root: ServerRoot,
    config: ServerConfig,
    listen: SocketAddr,
) -> Result<(), ServerError> {
    raise_open_file_limit();
    // Held until the server has stopped.
    let _lock = RootLock::acquire(root.path())?;
    let server = Server::bind(root, config, listen)?;
    let metrics = match server
        .state
        .config
        .metrics_listen()
        .map_err(ServerError::Setting)?
    {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|source| ServerError::MetricsListen { address, source })?;
            let bound = listener.local_addr()?;
            let serving = tokio::spawn(crate::metrics_listener::serve(
                listener,
                Arc::clone(&server.state.metrics),
                Arc::clone(&server.state.live),
            ));
            Some((bound, serving))
        }
        None => None,
    };
    let admin_listener = crate::admin_socket::bind(&server.state.root).map_err(|source| {
        ServerError::AdminSocket {
            path: server.state.root.admin_socket(),
            source,
        }
    })?;
    let admin = tokio::spawn(crate::admin_socket::serve(
        admin_listener,
        Arc::clone(&server.state.live),
    ));
    let admin_path = server.state.root.admin_socket();
    // Before the `listening on` line: a signal from then on drains, or
    // reloads.
    let signals = count_stop_signals();
    let reloads = reload_on_hangup(Arc::clone(server.reloader()));
    let address = server.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    write!(
        stdout,
        "listening on {address} certificate {}",
        server.fingerprint()
    )?;
    match &metrics {
        Some((bound, _)) => writeln!(stdout, " metrics {bound}")?,
        None => writeln!(stdout)?,
    }
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%address, metrics = ?metrics.as_ref().map(|(bound, _)| bound), "serving");
    server
        .run_draining(signalled(signals.clone(), 1), signalled(signals, 2))
        .await;
    admin.abort();
    reloads.abort();
    if let Some((_, serving)) = metrics {
        serving.abort();
    }
    let _ = std::fs::remove_file(&admin_path);
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: the bounds on
/// uploads, downloads and traversals are sized for a server that may use
/// the descriptors the system grants it, not the historical soft 1024.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(%error, "cannot raise the open files limit");
        }
    }
}

/// Counts the stop signals (Ctrl-C, SIGTERM) the process receives.
fn count_stop_signals() -> watch::Receiver<u32> {
    let (count, received) = watch::channel(0u32);
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            #[cfg(unix)]
            let terminated = async {
                match terminate.as_mut() {
                    Some(terminate) => {
                        terminate.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let terminated = std::future::pending::<()>();
            tokio::select! {
                interrupted = tokio::signal::ctrl_c() => {
                    if interrupted.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                () = terminated => {}
            }
            count.send_modify(|count| *count += 1);
        }
    });
    received
}

/// Reloads the configuration at each SIGHUP (elsewhere than on Unix,
/// never), on the blocking pool since a reload reads files.
fn reload_on_hangup(reloader: Arc<Reloader>) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    tokio::spawn(async move {
        #[cfg(unix)]
        match hangup {
            Ok(mut hangup) => {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let reloader = Arc::clone(&reloader);
                    if let Err(error) = tokio::task::spawn_blocking(move || reloader.reload()).await
                    {
                        tracing::error!(%error, "the reload failed");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot catch SIGHUP: no reloads"),
        }
        #[cfg(not(unix))]
        let _ = reloader;
    })
}

/// Completes once `signals` has counted `at_least` signals.
async fn signalled(mut signals: watch::Receiver<u32>, at_least: u32) {
    // The counting task never ends, so the sender is never dropped.
    let _ = signals.wait_for(|count| *count >= at_least).await;
}
