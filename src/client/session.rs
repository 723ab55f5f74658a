//! A connected, authenticated session of the `qftp` command: logging in
//! (trust in the certificate, the password, the saved token), logging out,
//! and connecting again with the saved session of a server. It runs no
//! command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use qftp_client::ClientError;
use qftp_client::connection::{Client, ConnectOptions};
use qftp_client::hosts::{ClientConfig, ServerChoice};
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

fn known_hosts(config: &std::path::Path) -> anyhow::Result<KnownHosts> {
    Ok(KnownHosts::load(&config.join(KNOWN_HOSTS_FILE))?)
}

/// How long to wait for a server.
#[derive(Debug, Clone, Copy)]
pub struct Dial {
    /// A silent connection is given up after this long.
    pub idle_timeout: Duration,
    /// A server that does not answer the handshake is given up after this long.
    pub connect_timeout: Duration,
}

impl Dial {
    fn options(&self, server: &str, trust: Trust, known: &KnownHosts) -> ConnectOptions {
        let mut options = ConnectOptions::new(server, trust);
        options.known_hosts = Some(known.path().to_owned());
        options.idle_timeout = self.idle_timeout;
        options.connect_timeout = self.connect_timeout;
        options
    }
}

/// `qftp login`: connects, settles trust, logs in and saves the session.
pub async fn login(args: LoginArgs, dial: Dial) -> anyhow::Result<ExitCode> {
    let config = config_dir()?;
    // Parsed before anything is sent: a malformed address never reaches
    // the server's login throttle.
    let choice = ClientConfig::load(&config)?.resolve(&args.server)?;
    let user = match &choice.user {
        Some(user) => user.clone(),
        None => std::env::var("USER")
            .context("no user name given and $USER is not set; use USER@HOST")?,
    };
    let key = choice.key.clone();
    let mut known = known_hosts(&config)?;
    let ca = args.ca.clone().or_else(|| choice.ca.clone());
    let expected = args.fingerprint.or(choice.fingerprint);
    let trust = match (&ca, expected, known.get(&key)) {
        (Some(ca), _, _) => {
            Trust::CertificateAuthority(std::path::absolute(ca).unwrap_or_else(|_| ca.clone()))
        }
        (None, Some(fingerprint), _) => Trust::Pinned(fingerprint),
        (None, None, Some(pinned)) => Trust::Pinned(pinned),
        (None, None, None) => Trust::FirstUse,
    };
    let client = match Client::connect(&dial.options(&key, trust.clone(), &known)).await {
        Ok(client) => client,
        Err(ClientError::CertificateChanged {
            presented, pinned, ..
        }) if expected == Some(pinned) => anyhow::bail!(
            "fingerprint mismatch: {key} presented {presented}, not the {pinned} that was \
             expected (--fingerprint or the host profile); check it with the server's admin \
             (`qftp-server cert fingerprint`); nothing was pinned"
        ),
        Err(error) => return Err(error.into()),
    };
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
        ca: ca
            .as_ref()
            .map(|ca| std::path::absolute(ca).unwrap_or_else(|_| ca.clone())),
    };
    say_what_is_replaced(&config, &saved)?;
    saved.save_as_default(&config)?;
    client.close().await;
    println!("logged in as {user} on {key}");
    Ok(ExitCode::SUCCESS)
}

/// Tells what a new login replaces: the session with the same server, or
/// the default (which stays saved for its server).
fn say_what_is_replaced(config: &std::path::Path, new: &SavedSession) -> anyhow::Result<()> {
    if let Some(old) = SavedSession::load_for(config, &new.server)?
        && old.user != new.user
    {
        eprintln!(
            "replacing the session of {}@{} with {}@{}",
            old.user, old.server, new.user, new.server
        );
    }
    if let Some(default) = SavedSession::load(config)?
        && default.server != new.server
    {
        eprintln!(
            "{}@{} is the default server now; {}@{} stays logged in (name it as {}:PATH)",
            new.user, new.server, default.user, default.server, default.server
        );
    }
    Ok(())
}

/// `qftp logout`: revokes the session on the server and forgets it here.
pub async fn logout(dial: Dial, server: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = config_dir()?;
    let saved = saved_session(&config, server)?;
    let revoked = match connect_saved(dial, Some(&saved.server)).await {
        Ok(session) => {
            let result = session.client.logout().await;
            session.client.close().await;
            result.map_err(anyhow::Error::from)
        }
        Err(error) => Err(error),
    };
    SavedSession::remove_for(&config, &saved.server)?;
    match revoked {
        Ok(()) => println!("logged out of {}", saved.server),
        Err(error) => eprintln!(
            "qftp: warning: the server could not revoke the session ({error}); it was forgotten here"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `qftp known-hosts remove HOST`: forgets a pinned certificate.
pub fn forget_host(host: &str) -> anyhow::Result<ExitCode> {
    let config = config_dir()?;
    let choice = ClientConfig::load(&config)?.resolve(host)?;
    let mut known = known_hosts(&config)?;
    match known.remove(&choice.key)? {
        Some(fingerprint) => {
            println!(
                "removed {} {fingerprint} from {}",
                choice.key,
                known.path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => anyhow::bail!("{} is not in {}", choice.key, known.path().display()),
    }
}

/// The saved session with the server `server` names (a profile or an
/// address), or the default one.
fn saved_session(config: &std::path::Path, server: Option<&str>) -> anyhow::Result<SavedSession> {
    let Some(server) = server else {
        return Ok(SavedSession::load(config)?.ok_or(ClientError::NotLoggedIn)?);
    };
    let choice: ServerChoice = ClientConfig::load(config)?.resolve(server)?;
    SavedSession::load_for(config, &choice.key)?
        .filter(|saved| choice.user.as_ref().is_none_or(|user| *user == saved.user))
        .with_context(|| {
            let login = match &choice.profile {
                Some(profile) => profile.clone(),
                None => format!(
                    "{}{}",
                    choice
                        .user
                        .as_ref()
                        .map_or(String::new(), |user| format!("{user}@")),
                    choice.key
                ),
            };
            format!(
                "not logged in to {}; run `qftp login {login}` first",
                choice.key
            )
        })
}

/// Connects with the saved session of `server` (a profile or an address;
/// the default session when `None`).
pub async fn connect_saved(dial: Dial, server: Option<&str>) -> anyhow::Result<Session> {
    let config = config_dir()?;
    let saved = saved_session(&config, server)?;
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
    let client = Client::connect(&dial.options(&saved.server, trust, &known)).await?;
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
