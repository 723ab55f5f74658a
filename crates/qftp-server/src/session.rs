//! A logged-in user on one connection, and what each of their requests
//! runs with.
//!
//! [`Session`] is the user's identity, jail, quota ledger and staging
//! directory for the life of the connection, and knows whether the session
//! token behind it is still valid ([`Context::check_session`]: trusted for
//! [`SESSION_RECHECK`] at most, rechecked at once after a logout on this
//! server). [`Context`] is what a request handler holds: the session, the
//! shared state, the reply channel and the connection's transfer table. It
//! also owns the way work leaves the async workers ([`off_runtime`],
//! [`Context::blocking`], [`Context::changing`]) and the path limits every
//! request passes ([`Context::parse_path`]).
//!
//! This module reads no frames and decides nothing about which request is
//! allowed when: that is [`crate::connection`]'s and [`crate::requests`]'s.

use std::sync::Arc;
use std::time::Duration;

use qftp_proto::path::RemotePath;
use qftp_proto::{ErrorKind, Response, ServerFrame};
use tokio::sync::{Semaphore, mpsc};

use crate::config::ResourceLimits;
use crate::error::{RequestError, RequestResult};
use crate::jail::{Jail, JailLimits};
use crate::limits::Refusal;
use crate::live::LiveConnection;
use crate::partials::Staging;
use crate::quota::{Tally, UserQuota};
use crate::state::{ServerState, UserConnectionGuard};
use crate::transfer::routing::TransferTable;
use crate::userdb::UserRecord;

/// An authenticated user on this connection.
#[derive(Debug)]
pub(crate) struct Session {
    pub user: String,
    pub token_hash: [u8; 32],
    pub jail: Arc<Jail>,
    pub quota: Arc<UserQuota>,
    /// The home's staging directory for partial uploads.
    pub staging: Staging,
    /// When the session was last found valid, and the server's revocation
    /// count then (see [`Context::check_session`]).
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
    /// The connection's entry among the live ones (its transfers in flight).
    pub live: Arc<LiveConnection>,
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
        if matches!(error.kind, ErrorKind::QuotaExceeded { .. }) {
            self.state.metrics.quota_refused();
        }
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
    pub async fn listing_slot(&self) -> RequestResult<tokio::sync::OwnedSemaphorePermit> {
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

/// What a handler returns: an answer to send, or `None` when it has
/// already answered (chunked listings, transfers).
pub(crate) type HandlerResult = RequestResult<Option<Response>>;

/// Runs blocking work (file-system operations, SQLite, session set-up with
/// its first-login recount of a home) on the blocking pool, so that none of
/// it stalls the async workers.
pub(crate) async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> RequestResult<T> + Send + 'static,
) -> RequestResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| RequestError::new(ErrorKind::Internal, "server error: task failed"))?
}

/// Holds a value whose drop does blocking work (a quota reservation, whose
/// settling writes the user database) and drops it on the blocking pool,
/// however the holder ends: an early return on an async worker does not
/// run that work there.
#[derive(Debug)]
pub(crate) struct DropOffRuntime<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> DropOffRuntime<T> {
    /// Wraps `value`.
    pub(crate) fn new(value: T) -> Self {
        Self(Some(value))
    }

    /// The value, to be used up by the caller (on the blocking pool).
    pub(crate) fn into_inner(mut self) -> T {
        self.0.take().expect("the value is present until taken")
    }

    /// Drops the value on the blocking pool and waits until it is gone,
    /// for a caller that must answer only after that.
    pub(crate) async fn release(mut self) {
        if let Some(value) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || drop(value)).await;
        }
    }
}

impl<T: Send + 'static> std::ops::Deref for DropOffRuntime<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("the value is present until taken")
    }
}

impl<T: Send + 'static> Drop for DropOffRuntime<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || drop(value));
            }
            Err(_) => drop(value),
        }
    }
}

impl Session {
    /// Opens the session of `record` on a blocking thread: admits one more
    /// connection of the user, opens the home and its staging directory and
    /// refreshes the user's ledger (measuring the home at the account's first
    /// login after a start).
    pub(crate) fn open(
        state: &Arc<ServerState>,
        record: &UserRecord,
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
}

impl Context {
    /// Checks that the connection's session has neither expired nor been
    /// revoked (by a logout elsewhere, a password change or the user's
    /// deletion): a connection does not outlive the session it was opened with.
    ///
    /// A session found valid within [`SESSION_RECHECK`], with no revocation
    /// announced by the session store since, is trusted without asking the
    /// store again (whose embedded read runs on the blocking pool).
    pub(crate) async fn check_session(&self) -> RequestResult<()> {
        let revocations = *self.state.revocations.borrow();
        let checked = *self.session.checked.lock().expect("session check lock");
        if let Some((at, seen)) = checked
            && seen == revocations
            && at.elapsed() < SESSION_RECHECK
        {
            return Ok(());
        }
        let found = self
            .state
            .sessions
            .check_session(&self.session.token_hash, std::time::SystemTime::now())
            .await;
        match found {
            Ok(Some(user)) if user == self.session.user => {
                *self.session.checked.lock().expect("session check lock") =
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
    fn shortened_paths_end_on_a_character_boundary() {
        assert_eq!(shortened("short"), "short");
        let long = "é".repeat(40);
        let cut = shortened(&long);
        assert!(cut.len() <= 64 && cut.len() >= 62, "{}", cut.len());
        assert!(long.starts_with(cut));
    }

    #[tokio::test]
    async fn blocking_work_runs_off_the_async_workers() {
        // The test runs on a single-threaded runtime: work on its one worker
        // would run on this very thread.
        let worker = std::thread::current().id();
        let ran_on = off_runtime(|| Ok(std::thread::current().id()))
            .await
            .unwrap();
        assert_ne!(ran_on, worker);
        let error = off_runtime(|| -> RequestResult<()> {
            Err(RequestError::new(ErrorKind::NotFound, "gone"))
        })
        .await
        .unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
    }

    /// Tells the test, from its drop, on which thread it was dropped.
    struct Dropped(Option<std::sync::mpsc::Sender<std::thread::ThreadId>>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            if let Some(sender) = self.0.take() {
                let _ = sender.send(std::thread::current().id());
            }
        }
    }

    #[tokio::test]
    async fn a_held_value_is_dropped_on_the_blocking_pool() {
        let worker = std::thread::current().id();
        let (sender, receiver) = std::sync::mpsc::channel();
        drop(DropOffRuntime::new(Dropped(Some(sender))));
        let dropped_on = tokio::task::spawn_blocking(move || receiver.recv().unwrap())
            .await
            .unwrap();
        assert_ne!(dropped_on, worker);

        let (sender, receiver) = std::sync::mpsc::channel();
        DropOffRuntime::new(Dropped(Some(sender))).release().await;
        // Released means gone already.
        assert_ne!(receiver.try_recv().unwrap(), worker);

        let (sender, receiver) = std::sync::mpsc::channel();
        let held = DropOffRuntime::new(Dropped(Some(sender)));
        assert!(held.0.is_some());
        drop(held.into_inner());
        assert_eq!(receiver.try_recv().unwrap(), worker);
    }
}
