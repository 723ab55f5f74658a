//! [`LoginGuard`]: the throttle in front of every login, by password or by
//! token.
//!
//! It counts failures per (user, address), per address and per user,
//! delays replies after failures, blocks at `login.max_failures`,
//! `max_failures_per_address` and `max_failures_per_user`, keeps addresses
//! a user logged in from recently open for them, limits how many argon2
//! checks run at once (in a pool of reused working memories), and re-checks
//! once a hashing slot is held so that a flood is refused without hashing.
//!
//! This module hashes through [`super::password`], reads users from
//! [`crate::userdb`] on the blocking pool, and speaks no protocol (that is
//! [`crate::connection`]'s). Nothing here logs a password or a token.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::Block;
use qftp_proto::ErrorKind;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::password::{dummy_hash, verify_password_in};
use crate::config::LoginLimits;
use crate::error::RequestError;
use crate::limits::Refusal;
use crate::userdb::{UserDb, UserRecord, validate_user_name};

/// The most addresses, users, pairs of them and blocked ones remembered
/// each.
const MAX_TRACKED: usize = 100_000;

/// The most addresses remembered per user as ones it logged in from.
const MAX_KNOWN_PER_USER: usize = 16;

/// The most failure times remembered per address or user; beyond this the
/// delay is at its cap anyway.
const MAX_FAILURES_REMEMBERED: usize = 64;

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Unknown user or wrong password (deliberately not told apart).
    #[error("login failed: unknown user or wrong password")]
    Failed,
    /// Too many recent failures: the attempt was refused unchecked.
    #[error("too many failed logins; try again in {} s", retry_after.as_secs().max(1))]
    Blocked {
        /// How long until such an attempt is accepted again.
        retry_after: Duration,
        /// Which bound was reached.
        bound: Bound,
        /// Who is blocked, for the log: an address, a user, or both.
        who: String,
    },
    /// The server could not check the login.
    #[error("internal error during login: {0}")]
    Internal(String),
}

/// The bounds on failed logins, each a setting of the `[login]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// One address against one user, or against session tokens.
    Pair,
    /// One address against any users and tokens.
    Address,
    /// One user from any addresses (but those it logged in from).
    User,
}

impl Bound {
    /// The setting in `config.toml` that holds this bound.
    pub fn setting(self) -> &'static str {
        match self {
            Self::Pair => "login.max_failures",
            Self::Address => "login.max_failures_per_address",
            Self::User => "login.max_failures_per_user",
        }
    }

    /// This bound's configured value.
    pub fn value(self, limits: &LoginLimits) -> u32 {
        match self {
            Self::Pair => limits.max_failures,
            Self::Address => limits.max_failures_per_address,
            Self::User => limits.max_failures_per_user,
        }
    }

    /// Writes the rate-limited WARN line for `who` reaching this bound.
    pub fn warn(self, limits: &LoginLimits, who: &str) {
        let value = self.value(limits).to_string();
        self.refusal(&value, who).warn();
    }

    /// The client's error for an attempt of `who` refused at this bound,
    /// of kind `kind`, whose message starts with `what`; logged as
    /// [`Refusal`] does.
    pub fn refuse(
        self,
        limits: &LoginLimits,
        who: &str,
        kind: ErrorKind,
        what: impl std::fmt::Display,
    ) -> RequestError {
        let value = self.value(limits).to_string();
        self.refusal(&value, who).refuse_as(kind, what)
    }

    fn refusal<'a>(self, value: &'a str, who: &'a str) -> Refusal<'a> {
        Refusal {
            setting: self.setting(),
            value,
            who,
        }
    }
}

/// The reply delay after `failures` recent failures: `base * 2^(failures-1)`,
/// capped at `max`; nothing for no failures.
fn failure_delay(limits: &LoginLimits, failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u64.checked_shl(failures - 1).unwrap_or(u64::MAX);
    let delay = limits
        .base_delay_ms
        .saturating_mul(factor)
        .min(limits.max_delay_ms);
    Duration::from_millis(delay)
}

/// Recent failure times per key, bounded in entries and in times per entry.
#[derive(Debug)]
struct FailureLog<K> {
    entries: HashMap<K, VecDeque<Instant>>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> FailureLog<K> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// Records a failure for `key` at `now` and returns how many failures
    /// it has within `window` (this one included).
    fn record(&mut self, key: &K, now: Instant, window: Duration) -> u32 {
        if !self.entries.contains_key(key) {
            self.make_room(now, window);
        }
        let times = self.entries.entry(key.clone()).or_default();
        forget_older(times, now, window);
        if times.len() == MAX_FAILURES_REMEMBERED {
            times.pop_front();
        }
        times.push_back(now);
        u32::try_from(times.len()).unwrap_or(u32::MAX)
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Makes room for one more key: first drops keys with no failure within
    /// the window, then, if still full, the key whose last failure is oldest.
    fn make_room(&mut self, now: Instant, window: Duration) {
        if self.entries.len() < self.capacity {
            return;
        }
        self.entries.retain(|_, times| {
            forget_older(times, now, window);
            !times.is_empty()
        });
        while self.entries.len() >= self.capacity.max(1) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, times)| times.back().copied())
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => self.entries.remove(&key),
                None => break,
            };
        }
    }
}

fn forget_older(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|time| now.saturating_duration_since(*time) >= window)
    {
        times.pop_front();
    }
}

/// Keys refused until some instant, bounded in entries.
#[derive(Debug)]
struct Blocklist<K> {
    until: HashMap<K, Instant>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Blocklist<K> {
    fn new(capacity: usize) -> Self {
        Self {
            until: HashMap::new(),
            capacity,
        }
    }

    fn block(&mut self, key: K, until: Instant, now: Instant) {
        if !self.until.contains_key(&key) && self.until.len() >= self.capacity {
            self.until.retain(|_, end| *end > now);
            if self.until.len() >= self.capacity {
                let soonest = self
                    .until
                    .iter()
                    .min_by_key(|(_, end)| **end)
                    .map(|(key, _)| key.clone());
                if let Some(key) = soonest {
                    self.until.remove(&key);
                }
            }
        }
        self.until.insert(key, until);
    }

    /// How long `key` remains refused, forgetting it once it is not.
    fn remaining(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let until = *self.until.get(key)?;
        if until > now {
            Some(until - now)
        } else {
            self.until.remove(key);
            None
        }
    }
}

/// The addresses each user logged in from recently, newest last, bounded
/// in users and in addresses per user.
#[derive(Debug)]
struct KnownAddresses {
    by_user: HashMap<String, Vec<(IpAddr, Instant)>>,
    capacity: usize,
}

impl KnownAddresses {
    fn new(capacity: usize) -> Self {
        Self {
            by_user: HashMap::new(),
            capacity,
        }
    }

    /// Remembers that `user` logged in from `address` at `now`; what is
    /// older than `memory` may be forgotten to make room.
    fn remember(&mut self, user: &str, address: IpAddr, now: Instant, memory: Duration) {
        if !self.by_user.contains_key(user) && self.by_user.len() >= self.capacity {
            self.by_user.retain(|_, addresses| {
                addresses.retain(|(_, at)| now.saturating_duration_since(*at) < memory);
                !addresses.is_empty()
            });
            while self.by_user.len() >= self.capacity.max(1) {
                let oldest = self
                    .by_user
                    .iter()
                    .min_by_key(|(_, addresses)| addresses.last().map(|(_, at)| *at))
                    .map(|(user, _)| user.clone());
                match oldest {
                    Some(user) => self.by_user.remove(&user),
                    None => break,
                };
            }
        }
        let addresses = self.by_user.entry(user.to_owned()).or_default();
        addresses.retain(|(known, _)| *known != address);
        if addresses.len() >= MAX_KNOWN_PER_USER {
            addresses.remove(0);
        }
        addresses.push((address, now));
    }

    /// Whether `user` logged in from `address` within `memory` before `now`.
    fn contains(&self, user: &str, address: IpAddr, now: Instant, memory: Duration) -> bool {
        self.by_user.get(user).is_some_and(|addresses| {
            addresses
                .iter()
                .any(|(known, at)| *known == address && now.saturating_duration_since(*at) < memory)
        })
    }
}

/// What a login attempt tries to enter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    /// A named account, which may or may not exist.
    User(String),
    /// A name that no account can have: all such names are one key, so
    /// that made-up long names cannot fill memory.
    Invalid,
    /// A session, by its token (which names no user).
    Token,
}

impl Target {
    fn user(name: &str) -> Self {
        match validate_user_name(name) {
            Ok(()) => Self::User(name.to_owned()),
            Err(_) => Self::Invalid,
        }
    }

    /// Who is refused when this target is blocked from `address`, for the
    /// refusal's log line.
    fn who_from(&self, address: IpAddr) -> String {
        match self {
            Self::User(name) => format!("{name} from {address}"),
            Self::Invalid => format!("invalid user names from {address}"),
            Self::Token => format!("session tokens from {address}"),
        }
    }
}

/// The failure bookkeeping, behind one lock.
#[derive(Debug)]
struct Records {
    /// Failures of one address against one target.
    by_pair: FailureLog<(Target, IpAddr)>,
    /// Failures of one address against any targets.
    by_address: FailureLog<IpAddr>,
    /// Failures against one user from any addresses.
    by_user: FailureLog<String>,
    blocked_pairs: Blocklist<(Target, IpAddr)>,
    blocked_addresses: Blocklist<IpAddr>,
    blocked_users: Blocklist<String>,
    known: KnownAddresses,
}

/// Throttles logins, by password and by token; one per server, shared by
/// all connections.
///
/// Failures are counted three ways within `window_secs`: per address and
/// target (a user, or session tokens), per address across targets, and per
/// user across addresses. Each count has its own bound, and reaching it
/// blocks that key for `block_secs`:
/// * `max_failures` blocks the address for that target only, so one user's
///   typos never lock out the others behind the same address;
/// * `max_failures_per_address` blocks the address for everything, so that
///   guessing a few passwords of many users is bounded too;
/// * `max_failures_per_user` blocks password logins as that user from every
///   address except those it logged in from within `known_address_secs`,
///   so that guesses spread over many addresses are bounded while the real
///   user keeps their usual address.
///
/// A success clears only its own address and target's count; it never
/// erases failures against other users, so an account of one's own does not
/// reset the throttle between guesses at someone else's.
#[derive(Debug)]
pub struct LoginGuard {
    limits: LoginLimits,
    hashing: Arc<Semaphore>,
    /// argon2 working memories, one per check that ran at the same time
    /// (so at most `hashing_concurrency` of them), reused by later checks.
    memories: Arc<Mutex<Vec<Vec<Block>>>>,
    records: Mutex<Records>,
}

impl LoginGuard {
    /// A guard enforcing `limits`. The dummy hash for unknown users is
    /// computed here, so that the first unknown user after a start costs
    /// no more than a known one.
    pub fn new(limits: LoginLimits) -> Self {
        dummy_hash();
        Self {
            hashing: Arc::new(Semaphore::new(
                limits.hashing_concurrency.min(Semaphore::MAX_PERMITS),
            )),
            memories: Arc::new(Mutex::new(Vec::new())),
            limits,
            records: Mutex::new(Records {
                by_pair: FailureLog::new(MAX_TRACKED),
                by_address: FailureLog::new(MAX_TRACKED),
                by_user: FailureLog::new(MAX_TRACKED),
                blocked_pairs: Blocklist::new(MAX_TRACKED),
                blocked_addresses: Blocklist::new(MAX_TRACKED),
                blocked_users: Blocklist::new(MAX_TRACKED),
                known: KnownAddresses::new(MAX_TRACKED),
            }),
        }
    }

    /// A password login attempt by `user` from `address`.
    ///
    /// A blocked attempt is refused at once, before the password or the
    /// database is looked at. Otherwise the password is verified with
    /// argon2 on a blocking thread, at most `hashing_concurrency` at a time,
    /// against a dummy hash when the user is unknown so that both cases cost
    /// the same. A failure is counted, the reply is delayed, and
    /// [`LoginError::Failed`] is returned whatever the reason.
    pub async fn login(
        &self,
        db: &UserDb,
        address: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<UserRecord, LoginError> {
        let target = Target::user(user);
        self.check(address, &target)?;
        // A primary-key read; WAL mode means an admin's write never blocks it.
        let record = db
            .user(user)
            .map_err(|error| LoginError::Internal(error.to_string()))?;
        let hash = record.as_ref().map(|record| record.password_hash.clone());
        let (matches, permit) = self.verify(address, &target, hash, password).await?;
        match record {
            Some(record) if matches => {
                drop(permit);
                self.succeeded(address, &target, &record.name);
                Ok(record)
            }
            _ => {
                // Recorded before the permit goes, so that no attempt
                // waiting for it can start hashing before it sees the block.
                let delay = self.record_failure(address, target);
                drop(permit);
                tokio::time::sleep(delay).await;
                Err(LoginError::Failed)
            }
        }
    }

    /// Whether `address` may try a session token now; a blocked one is
    /// refused before the database is read.
    pub fn admit_token(&self, address: IpAddr) -> Result<(), LoginError> {
        self.check(address, &Target::Token)
    }

    /// Counts a token that named no valid session as a failure of
    /// `address`, and returns how long to delay the reply.
    pub fn token_refused(&self, address: IpAddr) -> Duration {
        self.record_failure(address, Target::Token)
    }

    /// Notes that `address` resumed a session of `user`.
    pub fn token_accepted(&self, address: IpAddr, user: &str) {
        self.succeeded(address, &Target::Token, user);
    }

    /// The block that refuses `target` from `address` now, if any.
    fn check(&self, address: IpAddr, target: &Target) -> Result<(), LoginError> {
        let now = Instant::now();
        let memory = Duration::from_secs(self.limits.known_address_secs);
        let mut records = self.lock();
        if let Some(retry_after) = records.blocked_addresses.remaining(&address, now) {
            return Err(LoginError::Blocked {
                retry_after,
                bound: Bound::Address,
                who: address.to_string(),
            });
        }
        if let Some(retry_after) = records
            .blocked_pairs
            .remaining(&(target.clone(), address), now)
        {
            return Err(LoginError::Blocked {
                retry_after,
                bound: Bound::Pair,
                who: target.who_from(address),
            });
        }
        if let Target::User(name) = target
            && let Some(retry_after) = records.blocked_users.remaining(name, now)
            && !records.known.contains(name, address, now, memory)
        {
            return Err(LoginError::Blocked {
                retry_after,
                bound: Bound::User,
                who: name.clone(),
            });
        }
        Ok(())
    }

    /// Verifies `password` against `hash` (the dummy when `None`) on a
    /// blocking thread, holding one hashing permit, which is handed back so
    /// that the caller can record the outcome before releasing it.
    ///
    /// The blocks are checked again once the permit is held: attempts that
    /// queued for a permit while they were still allowed (one per
    /// connection of a flood, all arriving at once) are refused without
    /// hashing as soon as the failures before them reached a bound.
    async fn verify(
        &self,
        address: IpAddr,
        target: &Target,
        hash: Option<String>,
        password: &str,
    ) -> Result<(bool, OwnedSemaphorePermit), LoginError> {
        let permit = Arc::clone(&self.hashing)
            .acquire_owned()
            .await
            .map_err(|error| LoginError::Internal(error.to_string()))?;
        self.check(address, target)?;
        let password = password.to_owned();
        let memories = Arc::clone(&self.memories);
        tokio::task::spawn_blocking(move || {
            let mut memory = memories
                .lock()
                .expect("argon2 memory pool lock")
                .pop()
                .unwrap_or_default();
            let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
            let matches = verify_password_in(hash, &password, &mut memory);
            memories
                .lock()
                .expect("argon2 memory pool lock")
                .push(memory);
            (matches, permit)
        })
        .await
        .map_err(|error| LoginError::Internal(format!("password check failed: {error}")))
    }

    /// Counts a failure of `address` against `target`, blocks whatever
    /// reached its bound, and returns how long to delay the reply.
    fn record_failure(&self, address: IpAddr, target: Target) -> Duration {
        let now = Instant::now();
        let window = Duration::from_secs(self.limits.window_secs);
        let until = now + Duration::from_secs(self.limits.block_secs);
        let mut records = self.lock();
        let pair_failures = records
            .by_pair
            .record(&(target.clone(), address), now, window);
        let address_failures = records.by_address.record(&address, now, window);
        let user_failures = match &target {
            Target::User(name) => records.by_user.record(name, now, window),
            Target::Invalid | Target::Token => 0,
        };
        let mut reached = Vec::new();
        if user_failures >= self.limits.max_failures_per_user
            && let Target::User(name) = &target
        {
            records.blocked_users.block(name.clone(), until, now);
            reached.push((Bound::User, name.clone()));
        }
        if address_failures >= self.limits.max_failures_per_address {
            records.blocked_addresses.block(address, until, now);
            reached.push((Bound::Address, address.to_string()));
        }
        if pair_failures >= self.limits.max_failures {
            reached.push((Bound::Pair, target.who_from(address)));
            records.blocked_pairs.block((target, address), until, now);
        }
        drop(records);
        for (bound, who) in reached {
            bound.warn(&self.limits, &who);
        }
        failure_delay(
            &self.limits,
            pair_failures.max(address_failures).max(user_failures),
        )
    }

    /// Clears the failures of `address` against `target` (and nothing
    /// else) and remembers the address as one `user` logs in from.
    fn succeeded(&self, address: IpAddr, target: &Target, user: &str) {
        let now = Instant::now();
        let memory = Duration::from_secs(self.limits.known_address_secs);
        let mut records = self.lock();
        records.by_pair.clear(&(target.clone(), address));
        records.known.remember(user, address, now, memory);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::auth::password::{DUMMY, hash_password};

    const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const OTHER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    const TIMEOUT: Duration = Duration::from_secs(30);

    fn test_limits() -> LoginLimits {
        LoginLimits {
            base_delay_ms: 1,
            max_delay_ms: 4,
            max_failures: 5,
            max_failures_per_address: 12,
            max_failures_per_user: 8,
            known_address_secs: 3600,
            window_secs: 300,
            block_secs: 300,
            hashing_concurrency: 2,
        }
    }

    fn database_with_alice() -> (tempfile::TempDir, UserDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(&dir.path().join("users.db")).unwrap();
        db.add_user(
            "alice",
            &hash_password("correct horse").unwrap(),
            None,
            None,
        )
        .unwrap();
        (dir, db)
    }

    #[test]
    fn the_dummy_hash_is_ready_once_a_guard_exists() {
        let _guard = LoginGuard::new(test_limits());
        assert!(DUMMY.get().is_some());
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let limits = LoginLimits {
            base_delay_ms: 100,
            max_delay_ms: 2000,
            ..LoginLimits::default()
        };
        let delays: Vec<u64> = (0..8)
            .map(|failures| failure_delay(&limits, failures).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            failure_delay(&limits, u32::MAX),
            Duration::from_millis(2000)
        );
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_fail_alike_after_a_delay() {
        let (_dir, db) = database_with_alice();
        let limits = LoginLimits {
            base_delay_ms: 20,
            max_delay_ms: 20,
            ..test_limits()
        };
        let guard = LoginGuard::new(limits);
        for (user, password) in [("alice", "wrong"), ("mallory", "correct horse")] {
            let started = Instant::now();
            let result = guard.login(&db, OTHER_ADDRESS, user, password).await;
            assert_eq!(result, Err(LoginError::Failed));
            assert!(started.elapsed() >= Duration::from_millis(20));
        }
    }

    /// Fails `user` from `address` once, without hashing.
    fn fail(guard: &LoginGuard, address: IpAddr, user: &str) -> Duration {
        guard.record_failure(address, Target::user(user))
    }

    /// The bound that refuses `user` from `address` now, if any.
    fn refused(guard: &LoginGuard, address: IpAddr, user: &str) -> Option<Bound> {
        match guard.check(address, &Target::user(user)) {
            Ok(()) => None,
            Err(LoginError::Blocked { bound, .. }) => Some(bound),
            Err(error) => panic!("{error}"),
        }
    }

    fn address(index: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, index))
    }

    #[tokio::test]
    async fn sixth_attempt_is_blocked_even_with_the_right_password() {
        let (_dir, db) = database_with_alice();
        let guard = LoginGuard::new(test_limits());
        for _ in 0..5 {
            let result = guard.login(&db, ADDRESS, "alice", "wrong").await;
            assert_eq!(result, Err(LoginError::Failed));
        }
        let blocked = guard.login(&db, ADDRESS, "alice", "correct horse").await;
        assert!(
            matches!(&blocked, Err(LoginError::Blocked { retry_after, bound: Bound::Pair, who })
                if *retry_after <= Duration::from_secs(300)
                    && *retry_after > Duration::from_secs(250)
                    && who == "alice from 192.0.2.1"),
            "{blocked:?}"
        );
        // Only alice from this address: others behind it, and alice from
        // elsewhere, are served.
        assert_eq!(refused(&guard, ADDRESS, "bob"), None);
        assert_eq!(guard.admit_token(ADDRESS), Ok(()));
        let elsewhere = guard
            .login(&db, OTHER_ADDRESS, "alice", "correct horse")
            .await;
        assert_eq!(elsewhere.unwrap().name, "alice");
    }

    #[tokio::test]
    async fn a_success_clears_only_its_own_count() {
        let (_dir, db) = database_with_alice();
        db.add_user("mallory", &hash_password("mine").unwrap(), None, None)
            .unwrap();
        let guard = LoginGuard::new(test_limits());
        // The user's own typos are forgotten once they get in.
        for _ in 0..4 {
            assert_eq!(
                guard.login(&db, ADDRESS, "alice", "wrong").await,
                Err(LoginError::Failed)
            );
        }
        assert!(
            guard
                .login(&db, ADDRESS, "alice", "correct horse")
                .await
                .is_ok()
        );
        for _ in 0..4 {
            assert_eq!(
                guard.login(&db, ADDRESS, "alice", "wrong").await,
                Err(LoginError::Failed)
            );
        }
        assert_eq!(refused(&guard, ADDRESS, "alice"), None);
        // An account of one's own does not reset the count of guesses at
        // someone else's.
        let guard = LoginGuard::new(test_limits());
        for _ in 0..5 {
            assert!(
                guard
                    .login(&db, OTHER_ADDRESS, "mallory", "mine")
                    .await
                    .is_ok()
            );
            assert_eq!(
                guard.login(&db, OTHER_ADDRESS, "alice", "guess").await,
                Err(LoginError::Failed)
            );
        }
        assert!(
            guard
                .login(&db, OTHER_ADDRESS, "mallory", "mine")
                .await
                .is_ok()
        );
        assert_eq!(refused(&guard, OTHER_ADDRESS, "alice"), Some(Bound::Pair));
        assert!(matches!(
            guard
                .login(&db, OTHER_ADDRESS, "alice", "correct horse")
                .await,
            Err(LoginError::Blocked { .. })
        ));
    }

    #[test]
    fn an_address_guessing_at_many_users_is_blocked_for_all() {
        let guard = LoginGuard::new(test_limits());
        // Below the bound (several users' typos behind one NAT) nothing but
        // the pairs at max_failures is refused.
        for index in 0..11 {
            fail(&guard, ADDRESS, &format!("user{index}"));
        }
        assert_eq!(refused(&guard, ADDRESS, "user0"), None);
        assert_eq!(refused(&guard, ADDRESS, "carol"), None);
        fail(&guard, ADDRESS, "user11");
        for user in ["carol", "user0", "alice"] {
            assert_eq!(refused(&guard, ADDRESS, user), Some(Bound::Address));
        }
        assert!(matches!(
            guard.admit_token(ADDRESS),
            Err(LoginError::Blocked {
                bound: Bound::Address,
                ..
            })
        ));
        assert_eq!(refused(&guard, OTHER_ADDRESS, "user0"), None);
    }

    #[tokio::test]
    async fn a_user_guessed_at_from_many_addresses_is_blocked_but_for_known_ones() {
        let (_dir, db) = database_with_alice();
        let guard = LoginGuard::new(test_limits());
        // Alice logged in from her usual address before the attack.
        assert!(
            guard
                .login(&db, ADDRESS, "alice", "correct horse")
                .await
                .is_ok()
        );
        for index in 0..7 {
            fail(&guard, address(index), "alice");
        }
        assert_eq!(refused(&guard, address(200), "alice"), None);
        fail(&guard, address(7), "alice");
        assert_eq!(refused(&guard, address(200), "alice"), Some(Bound::User));
        assert_eq!(refused(&guard, address(0), "alice"), Some(Bound::User));
        // Other users are not affected, and alice still gets in from home.
        assert_eq!(refused(&guard, address(200), "bob"), None);
        assert_eq!(refused(&guard, ADDRESS, "alice"), None);
        assert!(
            guard
                .login(&db, ADDRESS, "alice", "correct horse")
                .await
                .is_ok()
        );
        // Without a memory of known addresses, the block holds everywhere.
        let forgetful = LoginGuard::new(LoginLimits {
            known_address_secs: 0,
            ..test_limits()
        });
        assert!(
            forgetful
                .login(&db, ADDRESS, "alice", "correct horse")
                .await
                .is_ok()
        );
        for index in 0..8 {
            fail(&forgetful, address(index), "alice");
        }
        assert_eq!(refused(&forgetful, ADDRESS, "alice"), Some(Bound::User));
    }

    #[test]
    fn made_up_tokens_block_the_address_for_tokens() {
        let guard = LoginGuard::new(test_limits());
        for _ in 0..4 {
            guard.admit_token(ADDRESS).unwrap();
            guard.token_refused(ADDRESS);
        }
        guard.admit_token(ADDRESS).unwrap();
        let delay = guard.token_refused(ADDRESS);
        assert_eq!(delay, Duration::from_millis(4));
        assert!(matches!(
            guard.admit_token(ADDRESS),
            Err(LoginError::Blocked { bound: Bound::Pair, ref who, .. })
                if who == "session tokens from 192.0.2.1"
        ));
        // Password logins from there, and tokens from elsewhere, go on.
        assert_eq!(refused(&guard, ADDRESS, "alice"), None);
        assert_eq!(guard.admit_token(OTHER_ADDRESS), Ok(()));
        // A valid token clears its own address's count.
        for _ in 0..4 {
            guard.token_refused(OTHER_ADDRESS);
        }
        guard.token_accepted(OTHER_ADDRESS, "alice");
        guard.token_refused(OTHER_ADDRESS);
        assert_eq!(guard.admit_token(OTHER_ADDRESS), Ok(()));
    }

    #[tokio::test]
    async fn blocked_attempt_does_not_hash_or_read_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(&dir.path().join("users.db")).unwrap();
        // No hashing permits at all: an attempt that tried to hash would wait
        // forever, and the timeout below would fail the test.
        let guard = LoginGuard::new(LoginLimits {
            hashing_concurrency: 0,
            ..test_limits()
        });
        for _ in 0..5 {
            fail(&guard, ADDRESS, "alice");
        }
        for index in 0..8 {
            fail(&guard, address(index), "carol");
        }
        for index in 0..12 {
            fail(&guard, OTHER_ADDRESS, &format!("user{index}"));
        }
        for (address, user) in [
            (ADDRESS, "alice"),
            (address(100), "carol"),
            (OTHER_ADDRESS, "dave"),
        ] {
            let attempt = guard.login(&db, address, user, "correct horse");
            let result = tokio::time::timeout(TIMEOUT, attempt)
                .await
                .expect("blocked login must not wait for hashing");
            assert!(matches!(result, Err(LoginError::Blocked { .. })), "{user}");
        }
        assert_eq!(guard.hashing.available_permits(), 0);
    }

    #[tokio::test]
    async fn attempts_queued_for_hashing_are_refused_once_the_address_is_blocked() {
        let (_dir, db) = database_with_alice();
        let db = Arc::new(db);
        let guard = Arc::new(LoginGuard::new(LoginLimits {
            hashing_concurrency: 1,
            ..test_limits()
        }));
        // Hold the only permit so that every attempt passes the first check
        // and then waits for hashing, as a flood over many connections does.
        let held = Arc::clone(&guard.hashing).acquire_owned().await.unwrap();
        let attempts: Vec<_> = (0..10)
            .map(|_| {
                let (guard, db) = (Arc::clone(&guard), Arc::clone(&db));
                tokio::spawn(async move { guard.login(&db, ADDRESS, "alice", "wrong").await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..5 {
            fail(&guard, ADDRESS, "alice");
        }
        drop(held);
        for attempt in attempts {
            let result = tokio::time::timeout(TIMEOUT, attempt)
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(result, Err(LoginError::Blocked { .. })),
                "{result:?}"
            );
        }
    }

    #[tokio::test]
    async fn block_expires() {
        let (_dir, db) = database_with_alice();
        let guard = LoginGuard::new(LoginLimits {
            block_secs: 0,
            ..test_limits()
        });
        for index in 0..12 {
            fail(&guard, ADDRESS, "alice");
            fail(&guard, address(index), "alice");
        }
        assert_eq!(refused(&guard, ADDRESS, "alice"), None);
        assert_eq!(refused(&guard, address(100), "alice"), None);
        assert!(
            guard
                .login(&db, ADDRESS, "alice", "correct horse")
                .await
                .is_ok()
        );
    }

    #[test]
    fn per_user_failures_raise_the_delay_from_any_address() {
        let guard = LoginGuard::new(LoginLimits {
            base_delay_ms: 100,
            max_delay_ms: 100_000,
            max_failures: 100,
            max_failures_per_address: 100,
            max_failures_per_user: 100,
            ..test_limits()
        });
        for index in 0..4u8 {
            fail(&guard, address(index), "alice");
        }
        let delay = fail(&guard, ADDRESS, "alice");
        assert_eq!(delay, Duration::from_millis(1600));
        let delay = fail(&guard, ADDRESS, "../not-a-name");
        assert_eq!(delay, Duration::from_millis(200));
        assert!(!guard.lock().by_user.entries.contains_key("../not-a-name"));
        assert!(
            guard
                .lock()
                .by_pair
                .entries
                .contains_key(&(Target::Invalid, ADDRESS))
        );
    }

    #[test]
    fn failure_log_is_bounded() {
        let window = Duration::from_secs(300);
        let start = Instant::now();
        let mut log = FailureLog::new(3);
        for key in 0..3u32 {
            log.record(&key, start + Duration::from_secs(u64::from(key)), window);
        }
        log.record(&0, start + Duration::from_secs(10), window);
        log.record(&99, start + Duration::from_secs(11), window);
        assert_eq!(log.entries.len(), 3);
        assert!(!log.entries.contains_key(&1), "the oldest key goes first");
        for _ in 0..(MAX_FAILURES_REMEMBERED + 10) {
            log.record(&99, start + Duration::from_secs(12), window);
        }
        assert_eq!(log.entries[&99].len(), MAX_FAILURES_REMEMBERED);
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let window = Duration::from_secs(300);
        let start = Instant::now();
        let mut log = FailureLog::new(10);
        assert_eq!(log.record(&ADDRESS, start, window), 1);
        assert_eq!(
            log.record(&ADDRESS, start + Duration::from_secs(100), window),
            2
        );
        assert_eq!(
            log.record(&ADDRESS, start + Duration::from_secs(350), window),
            2
        );
        let mut full = FailureLog::new(1);
        full.record(&ADDRESS, start, window);
        full.record(&OTHER_ADDRESS, start + Duration::from_secs(400), window);
        assert_eq!(full.entries.len(), 1);
    }

    #[test]
    fn blocklist_is_bounded() {
        let start = Instant::now();
        let mut blocked = Blocklist::new(2);
        blocked.block(ADDRESS, start + Duration::from_secs(10), start);
        blocked.block(OTHER_ADDRESS, start + Duration::from_secs(20), start);
        let third = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
        blocked.block(third, start + Duration::from_secs(30), start);
        assert_eq!(blocked.until.len(), 2);
        assert_eq!(blocked.remaining(&ADDRESS, start), None);
        assert_eq!(
            blocked.remaining(&third, start),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn known_addresses_are_bounded() {
        let start = Instant::now();
        let memory = Duration::from_secs(3600);
        let mut known = KnownAddresses::new(2);
        for index in 0..(MAX_KNOWN_PER_USER as u8 + 4) {
            known.remember("alice", address(index), start, memory);
        }
        assert_eq!(known.by_user["alice"].len(), MAX_KNOWN_PER_USER);
        assert!(!known.contains("alice", address(0), start, memory));
        assert!(known.contains(
            "alice",
            address(MAX_KNOWN_PER_USER as u8 + 3),
            start,
            memory
        ));
        let later = start + Duration::from_secs(1);
        known.remember("bob", ADDRESS, later, memory);
        known.remember("carol", ADDRESS, later, memory);
        assert_eq!(known.by_user.len(), 2);
        assert!(
            !known.by_user.contains_key("alice"),
            "the oldest user goes first"
        );
        assert!(!known.contains("bob", ADDRESS, later + memory, memory));
    }

    #[test]
    fn guard_is_shareable_between_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LoginGuard>();
    }
}
