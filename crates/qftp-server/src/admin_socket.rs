//! The local administration socket `ROOT/admin.sock` of a running server:
//! `qftp-server sessions` lists its live connections and
//! `qftp-server kick USER` ends a user's connections.
//!
//! The socket is a Unix stream socket with mode 0600 (only the account the
//! server runs as may use it), made by the serving process while it holds
//! the root's lock, so a socket left by a crash is replaced. Each exchange
//! is one request line (`sessions`, or `kick NAME`) and an answer of lines:
//! one per connection, tab-separated (user or `-`, address, Unix time of
//! the handshake, transfers in flight, bytes moved), or the number of
//! connections kicked. Both ends are in this module: [`sessions`] and
//! [`kick`] are what the program calls, [`serve`] is the server's side.
//!
//! What a connection holds is [`crate::live`]'s; this module only reads
//! that table and asks it to close connections.

use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

use crate::config::ServerRoot;
use crate::connection::close_code;
use crate::live::{LiveConnections, ServerClose};

/// How a kicked connection is closed: the client shows the reason.
pub const KICKED: ServerClose = ServerClose {
    code: close_code::KICKED,
    reason: "administrator ended this connection",
};

/// The longest request line the server reads.
const REQUEST_MAX: u64 = 256;
/// How long a command waits for the server's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The running server could not be asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminSocketError {
    /// No server serves this root (no socket, or nobody listening on it).
    #[error("no qftp-server is serving {} (nothing listens on {})", root.display(), socket.display())]
    NotRunning {
        /// The root asked about.
        root: PathBuf,
        /// The socket looked for.
        socket: PathBuf,
    },
    /// The exchange failed.
    #[error("talking to the server through {}", socket.display())]
    Io {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The server answered something this program does not understand.
    #[error("unexpected answer from the server: {0:?}")]
    Answer(String),
}

/// One live connection, as `sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The user logged in on it, `None` before login.
    pub user: Option<String>,
    /// The client's address.
    pub remote: SocketAddr,
    /// When it connected.
    pub since: SystemTime,
    /// Transfers in flight.
    pub transfers: usize,
    /// Bytes its finished transfers moved.
    pub bytes: u64,
}

/// The live connections of the server running on `root`.
pub fn sessions(root: &ServerRoot) -> Result<Vec<SessionRow>, AdminSocketError> {
    ask(root, "sessions")?
        .iter()
        .map(|line| parse_row(line).ok_or_else(|| AdminSocketError::Answer(line.clone())))
        .collect()
}

/// Ends every connection of `user` on the server running on `root`; how
/// many there were.
pub fn kick(root: &ServerRoot, user: &str) -> Result<usize, AdminSocketError> {
    if user.is_empty() || user.chars().any(char::is_whitespace) {
        return Err(AdminSocketError::Answer(format!(
            "{user:?} is not a user name"
        )));
    }
    let lines = ask(root, &format!("kick {user}"))?;
    match lines.as_slice() {
        [count] => count
            .parse()
            .map_err(|_| AdminSocketError::Answer(count.clone())),
        _ => Err(AdminSocketError::Answer(lines.join("\n"))),
    }
}

/// Sends one request line and reads the answer's lines.
fn ask(root: &ServerRoot, request: &str) -> Result<Vec<String>, AdminSocketError> {
    let socket = root.admin_socket();
    let failed = |source: io::Error| AdminSocketError::Io {
        socket: socket.clone(),
        source,
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(AdminSocketError::NotRunning {
                root: root.path().to_owned(),
                socket,
            });
        }
        Err(error) => return Err(failed(error)),
    };
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(failed)?;
    writeln!(stream, "{request}").map_err(failed)?;
    stream.shutdown(std::net::Shutdown::Write).map_err(failed)?;
    BufReader::new(stream)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(failed)
}

fn parse_row(line: &str) -> Option<SessionRow> {
    let mut fields = line.split('\t');
    let user = fields.next()?;
    let row = SessionRow {
        user: (user != "-").then(|| user.to_owned()),
        remote: fields.next()?.parse().ok()?,
        since: SystemTime::UNIX_EPOCH + Duration::from_secs(fields.next()?.parse().ok()?),
        transfers: fields.next()?.parse().ok()?,
        bytes: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(row)
}

/// Binds `ROOT/admin.sock` with mode 0600, replacing a socket a crashed
/// server left (the caller holds the root's lock).
pub(crate) fn bind(root: &ServerRoot) -> io::Result<tokio::net::UnixListener> {
    let path = root.admin_socket();
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers requests on `listener` until the task is dropped.
pub(crate) async fn serve(listener: tokio::net::UnixListener, live: Arc<LiveConnections>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, most likely: try again in a moment.
                tracing::warn!(%error, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let live = Arc::clone(&live);
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &live).await {
                tracing::debug!(%error, "admin socket exchange failed");
            }
        });
    }
}

async fn answer(stream: tokio::net::UnixStream, live: &LiveConnections) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut request = String::new();
    tokio::io::BufReader::new(read.take(REQUEST_MAX))
        .read_line(&mut request)
        .await?;
    let request = request.trim_end();
    let answer = if request == "sessions" {
        live.snapshot()
            .iter()
            .map(|entry| {
                let since = entry
                    .since
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let user = entry.user().unwrap_or_else(|| "-".to_owned());
                format!(
                    "{user}\t{}\t{since}\t{}\t{}\n",
                    entry.remote,
                    entry.transfers(),
                    entry.bytes()
                )
            })
            .collect()
    } else if let Some(user) = request.strip_prefix("kick ") {
        let kicked = live.close_user(user, KICKED);
        tracing::info!(user, connections = kicked, "kicked by the administrator");
        format!("{kicked}\n")
    } else {
        format!("unknown request {request:?}\n")
    };
    write.write_all(answer.as_bytes()).await?;
    write.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_and_bad_ones_do_not() {
        let row = parse_row("alice\t127.0.0.1:5000\t1700000000\t2\t1024").unwrap();
        assert_eq!(row.user.as_deref(), Some("alice"));
        assert_eq!(row.transfers, 2);
        assert_eq!(row.bytes, 1024);
        assert_eq!(parse_row("-\t127.0.0.1:5000\t0\t0\t0").unwrap().user, None);
        assert!(parse_row("alice\t127.0.0.1:5000\t0\t0").is_none());
        assert!(parse_row("alice\tsomewhere\t0\t0\t0").is_none());
        assert!(parse_row("alice\t127.0.0.1:5000\t0\t0\t0\textra").is_none());
    }

    #[test]
    fn a_root_with_no_server_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let error = sessions(&ServerRoot::new(dir.path())).unwrap_err();
        assert!(
            matches!(error, AdminSocketError::NotRunning { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("admin.sock"));
    }
}
