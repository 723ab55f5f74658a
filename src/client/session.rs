//! A connected, authenticated session of the `qftp` command: logging in
//! (trust in the certificate, the password, the saved token), logging out,
//! and connecting again with the saved session. It runs no command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use qftp_client::ClientError;
use qftp_client::connection::{Client, ConnectOptions, host_key, split_host_port};
use qftp_client::settings::{KNOWN_HOSTS_FILE, SavedSession, config_dir};
use qftp_client::trust::{KnownHosts, Trust};
use qftp_proto::ErrorKind;
use qftp_proto::path::RemotePath;

use super::cli::LoginArgs;
use super::prompt::{ask_to_trust, read_password};

/// A connected, authenticated session.
#[derive(Debug)]
pub struct Session {
    /// The connection.
    pub client: Client,
    /// What is saved on disk.
    pub saved: SavedSession,
    /// The config directory.
    pub config: PathBuf,
    /// The remote current directory.
    pub cwd: RemotePath,
}

impl Session {
    /// Resolves a user-typed remote path against the current directory.
    pub fn resolve(&self, path: &str) -> anyhow::Result<RemotePath> {
        RemotePath::resolve(&self.cwd, path)
            .map_err(|error| anyhow::anyhow!("invalid remote path {path:?}: {error}"))
    }

    /// [`Session::resolve`], as the string a request carries.
    pub fn resolve_string(&self, path: &str) -> anyhow::Result<String> {
        self.resolve(path).map(|path| path.to_string())
    }
}

/// Entry point of the `qftp` binary.
fn known_hosts(config: &std::path::Path) -> anyhow::Result<KnownHosts> {
    Ok(KnownHosts::load(&config.join(KNOWN_HOSTS_FILE))?)
}

/// `qftp login`: connects, settles trust, logs in and saves the session.
pub async fn login(args: LoginArgs, idle_timeout: std::time::Duration) -> anyhow::Result<ExitCode> {
    let config = config_dir()?;
    let (user, server) = match args.server.split_once('@') {
        Some((user, server)) => (user.to_owned(), server.to_owned()),
        None => (
            std::env::var("USER")
                .context("no user name given and $USER is not set; use USER@HOST")?,
            args.server.clone(),
        ),
    };
    let (host, port) = split_host_port(&server)?;
    let key = host_key(&host, port);
    let mut known = known_hosts(&config)?;
    let trust = match (&args.ca, args.fingerprint, known.get(&key)) {
        (Some(ca), _, _) => {
            Trust::CertificateAuthority(std::path::absolute(ca).unwrap_or_else(|_| ca.clone()))
        }
        (None, Some(fingerprint), _) => Trust::Pinned(fingerprint),
        (None, None, Some(pinned)) => Trust::Pinned(pinned),
        (None, None, None) => Trust::FirstUse,
    };
    let mut options = ConnectOptions::new(key.clone(), trust.clone());
    options.known_hosts = Some(known.path().to_owned());
    options.idle_timeout = idle_timeout;
    let client = Client::connect(&options).await?;
    if let Some(fingerprint) = client.server_fingerprint() {
        let accepted = match trust {
            Trust::FirstUse => args.trust || ask_to_trust(&key, fingerprint)?,
            _ => true,
        };
        if !accepted {
            client.close().await;
            return Err(ClientError::Untrusted {
                host: key,
                fingerprint,
            }
            .into());
        }
    }
    let password = read_password(args.password_stdin, &user, &key)?;
    let (token, _expires) = client.login(&user, &password).await?;
    drop(password);
    // Pin only once the login worked, so a mistyped address pins nothing.
    if let Some(fingerprint) = client.server_fingerprint()
        && known.get(&key) != Some(fingerprint)
        && !matches!(trust, Trust::CertificateAuthority(_))
    {
        known.pin(&key, fingerprint)?;
        eprintln!("pinned {key} {fingerprint} in {}", known.path().display());
    }
    let saved = SavedSession {
        server: key.clone(),
        user: user.clone(),
        token,
        cwd: "/".into(),
        ca: args
            .ca
            .as_ref()
            .map(|ca| std::path::absolute(ca).unwrap_or_else(|_| ca.clone())),
    };
    saved.save(&config)?;
    client.close().await;
    println!("logged in as {user} on {key}");
    Ok(ExitCode::SUCCESS)
}

/// `qftp logout`: revokes the session on the server and forgets it here.
pub async fn logout(idle_timeout: std::time::Duration) -> anyhow::Result<ExitCode> {
    let config = config_dir()?;
    if SavedSession::load(&config)?.is_none() {
        anyhow::bail!(ClientError::NotLoggedIn);
    }
    let revoked = match connect_saved(idle_timeout).await {
        Ok(session) => {
            let result = session.client.logout().await;
            session.client.close().await;
            result.map_err(anyhow::Error::from)
        }
        Err(error) => Err(error),
    };
    SavedSession::remove(&config)?;
    match revoked {
        Ok(()) => println!("logged out"),
        Err(error) => eprintln!(
            "qftp: warning: the server could not revoke the session ({error}); it was forgotten here"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects with the saved session; a connection silent for `idle_timeout`
/// is given up.
pub async fn connect_saved(idle_timeout: std::time::Duration) -> anyhow::Result<Session> {
    let config = config_dir()?;
    let saved = SavedSession::load(&config)?.ok_or(ClientError::NotLoggedIn)?;
    let known = known_hosts(&config)?;
    let trust = match (&saved.ca, known.get(&saved.server)) {
        (Some(ca), _) => Trust::CertificateAuthority(ca.clone()),
        (None, Some(pinned)) => Trust::Pinned(pinned),
        (None, None) => anyhow::bail!(
            "no pinned certificate for {} in {}; log in again with `qftp login`",
            saved.server,
            known.path().display()
        ),
    };
    let mut options = ConnectOptions::new(saved.server.clone(), trust);
    options.known_hosts = Some(known.path().to_owned());
    options.idle_timeout = idle_timeout;
    let client = Client::connect(&options).await?;
    match client.authenticate(&saved.token).await {
        Ok(_) => {}
        Err(error) if error.server_kind() == Some(ErrorKind::SessionExpired) => {
            client.close().await;
            anyhow::bail!(
                "session expired or revoked; log in again with `qftp login {}@{}`",
                saved.user,
                saved.server
            );
        }
        Err(error) => return Err(error.into()),
    }
    let cwd = RemotePath::parse(&saved.cwd).unwrap_or_default();
    Ok(Session {
        client,
        saved,
        config,
        cwd,
    })
}
