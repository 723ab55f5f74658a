//! The QUIC listener: TLS setup, the global connection limit, the accept
//! loop, the periodic sweep and the shutdown on a signal.
//!
//! Connections are accepted in the login stage (no data streams, a small
//! receive window; see [`qftp_transport::tuning::login_stage_config`]) and
//! counted per address until they log in. Serving a connection is
//! [`crate::connection`]'s; what connections share is [`crate::state`]'s.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use qftp_transport::Fingerprint;
use qftp_transport::tuning::{Congestion, PathProfile, TransportLimits, login_stage_config};
use quinn::crypto::rustls::QuicServerConfig;

use crate::certs::CertError;
use crate::config::{ServerConfig, ServerRoot};
use crate::embedded::{EmbeddedAccounts, EmbeddedThrottle};
use crate::quota::QuotaBook;
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
        let quotas = QuotaBook::new(Arc::clone(&db), ledger_limits);
        let accounts = Arc::new(EmbeddedAccounts::new(db));
        let stores = Stores {
            users: Arc::clone(&accounts) as Arc<dyn qftp_store::UserStore>,
            sessions: accounts,
            throttle: Arc::new(EmbeddedThrottle::new(config.login.clone())),
        };
        let state = Arc::new(ServerState::new(root, config, stores, quotas, limits));
        Ok(Self {
            endpoint,
            state,
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

    /// Serves connections until `shutdown` completes, then closes them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let sweeper = tokio::spawn(crate::transfer::sweep::sweep_periodically(Arc::clone(
            &self.state,
        )));
        tokio::pin!(shutdown);
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                () = &mut shutdown => break,
            };
            let Some(incoming) = incoming else { break };
            let Ok(permit) = Arc::clone(&self.state.connections).try_acquire_owned() else {
                tracing::warn!(remote = %incoming.remote_address(), "connection refused: server full");
                incoming.refuse();
                continue;
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
        sweeper.abort();
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"server shutting down");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.endpoint.wait_idle())
            .await;
    }
}

/// Binds `listen`, prints the `listening on` line and serves until Ctrl-C
/// or SIGTERM.
pub async fn run(
    root: ServerRoot,
    config: ServerConfig,
    listen: SocketAddr,
) -> Result<(), ServerError> {
    raise_open_file_limit();
    let server = Server::bind(root, config, listen)?;
    let address = server.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "listening on {address} certificate {}",
        server.fingerprint()
    )?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%address, "serving");
    server.run(shutdown_signal()).await;
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

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
