//! [`EmbeddedThrottle`]: the [`LoginThrottle`] of one server process,
//! counting failed logins in memory.
//!
//! Failures are counted three ways within `login.window_secs`: per address
//! and target (a user, or session tokens), per address across targets, and
//! per user across addresses. Each count has its own bound, and reaching it
//! blocks that key for `login.block_secs`:
//! * `max_failures` blocks the address for that target only, so one user's
//!   typos never lock out the others behind the same address;
//! * `max_failures_per_address` blocks the address for everything, so that
//!   guessing a few passwords of many users is bounded too;
//! * `max_failures_per_user` blocks password logins as that user from every
//!   address except those it logged in from within `known_address_secs`,
//!   so that guesses spread over many addresses are bounded while the real
//!   user keeps their usual address.
//!
//! A success clears only its own address and target's count; it never
//! erases failures against other users, so an account of one's own does not
//! reset the throttle between guesses at someone else's. Every table is
//! bounded, so a flood of made-up names or addresses cannot fill memory.
//!
//! The counts live behind one mutex held for a few map operations, never
//! across an await, so the trait's futures are ready at once. Nothing here
//! hashes a password or reads a user (that is [`crate::auth::LoginGuard`]).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use qftp_store::{Blocked, BoxFuture, LoginAttempt, LoginThrottle, StoreError};

use qftp_store::Bound;

use crate::auth::bound::LoginBound;
use crate::config::LoginLimits;
use crate::userdb::validate_user_name;

/// The most addresses, users, pairs of them and blocked ones remembered
/// each.
const MAX_TRACKED: usize = 100_000;

/// The most addresses remembered per user as ones it logged in from.
const MAX_KNOWN_PER_USER: usize = 16;

/// The most failure times remembered per address or user; beyond this the
/// delay is at its cap anyway.
const MAX_FAILURES_REMEMBERED: usize = 64;

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
    /// What `attempt` tries to enter.
    fn of(attempt: &LoginAttempt<'_>) -> Self {
        match attempt {
            LoginAttempt::Password { user, .. } => Self::user(user),
            LoginAttempt::Token { .. } => Self::Token,
            // A kind of attempt this throttle does not know yet is counted
            // against its address under the key no account has.
            _ => Self::Invalid,
        }
    }

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

/// The login throttle of one process; one per server, shared by all
/// connections.
#[derive(Debug)]
pub struct EmbeddedThrottle {
    /// The bounds and delays in force; a reload may replace them.
    limits: Mutex<LoginLimits>,
    records: Mutex<Records>,
}

impl EmbeddedThrottle {
    /// A throttle enforcing the bounds and delays of `limits`.
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits: Mutex::new(limits),
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

    /// Enforces `limits` from the next attempt on. The failures counted so
    /// far and the blocks in force stay; a block ends when it was set to.
    pub fn set_limits(&self, limits: LoginLimits) {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner) = limits;
    }

    /// The bounds and delays in force now.
    fn limits(&self) -> LoginLimits {
        self.limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The block that refuses `target` from `address` now, if any.
    fn blocked(&self, address: IpAddr, target: &Target) -> Option<Blocked> {
        let now = Instant::now();
        let memory = Duration::from_secs(self.limits().known_address_secs);
        let mut records = self.lock();
        if let Some(retry_after) = records.blocked_addresses.remaining(&address, now) {
            return Some(Blocked {
                retry_after,
                bound: qftp_store::Bound::Address,
                who: address.to_string(),
            });
        }
        if let Some(retry_after) = records
            .blocked_pairs
            .remaining(&(target.clone(), address), now)
        {
            return Some(Blocked {
                retry_after,
                bound: qftp_store::Bound::Pair,
                who: target.who_from(address),
            });
        }
        if let Target::User(name) = target
            && let Some(retry_after) = records.blocked_users.remaining(name, now)
            && !records.known.contains(name, address, now, memory)
        {
            return Some(Blocked {
                retry_after,
                bound: qftp_store::Bound::User,
                who: name.clone(),
            });
        }
        None
    }

    /// Counts a failure of `address` against `target`, blocks whatever
    /// reached its bound (with one rate-limited WARN line each), and
    /// returns how long to delay the reply.
    fn failed(&self, address: IpAddr, target: Target) -> Duration {
        let now = Instant::now();
        let limits = self.limits();
        let window = Duration::from_secs(limits.window_secs);
        let until = now + Duration::from_secs(limits.block_secs);
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
        if user_failures >= limits.max_failures_per_user
            && let Target::User(name) = &target
        {
            records.blocked_users.block(name.clone(), until, now);
            reached.push((Bound::User, name.clone()));
        }
        if address_failures >= limits.max_failures_per_address {
            records.blocked_addresses.block(address, until, now);
            reached.push((Bound::Address, address.to_string()));
        }
        if pair_failures >= limits.max_failures {
            reached.push((Bound::Pair, target.who_from(address)));
            records.blocked_pairs.block((target, address), until, now);
        }
        drop(records);
        for (bound, who) in reached {
            bound.warn(&limits, &who);
        }
        failure_delay(
            &limits,
            pair_failures.max(address_failures).max(user_failures),
        )
    }

    /// Clears the failures of `address` against `target` (and nothing
    /// else) and remembers the address as one `user` logs in from.
    fn succeeded(&self, address: IpAddr, target: &Target, user: &str) {
        let now = Instant::now();
        let memory = Duration::from_secs(self.limits().known_address_secs);
        let mut records = self.lock();
        records.by_pair.clear(&(target.clone(), address));
        records.known.remember(user, address, now, memory);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LoginThrottle for EmbeddedThrottle {
    fn is_blocked<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
    ) -> BoxFuture<'a, Result<Option<Blocked>, StoreError>> {
        let blocked = self.blocked(attempt.address(), &Target::of(&attempt));
        Box::pin(std::future::ready(Ok(blocked)))
    }

    fn record_failure<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
    ) -> BoxFuture<'a, Result<Duration, StoreError>> {
        let delay = self.failed(attempt.address(), Target::of(&attempt));
        Box::pin(std::future::ready(Ok(delay)))
    }

    fn record_success<'a>(
        &'a self,
        attempt: LoginAttempt<'a>,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.succeeded(attempt.address(), &Target::of(&attempt), user);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const OTHER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    /// Small bounds and delays, for tests of the throttle and its callers.
    pub(crate) fn test_limits() -> LoginLimits {
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

    fn address(index: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, index))
    }

    /// Fails `user` from `address` once.
    fn fail(throttle: &EmbeddedThrottle, address: IpAddr, user: &str) -> Duration {
        throttle.failed(address, Target::user(user))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_throttle_keeps_the_login_throttle_contract() {
        let limits = test_limits();
        let throttle = EmbeddedThrottle::new(limits.clone());
        qftp_store::contract::throttle::blocks_after_failures(
            &throttle,
            limits.max_failures,
            "contract-",
        )
        .await;
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

    #[test]
    fn per_user_failures_raise_the_delay_from_any_address() {
        let throttle = EmbeddedThrottle::new(LoginLimits {
            base_delay_ms: 100,
            max_delay_ms: 100_000,
            max_failures: 100,
            max_failures_per_address: 100,
            max_failures_per_user: 100,
            ..test_limits()
        });
        for index in 0..4u8 {
            fail(&throttle, address(index), "alice");
        }
        let delay = fail(&throttle, ADDRESS, "alice");
        assert_eq!(delay, Duration::from_millis(1600));
        let delay = fail(&throttle, ADDRESS, "../not-a-name");
        assert_eq!(delay, Duration::from_millis(200));
        assert!(
            !throttle
                .lock()
                .by_user
                .entries
                .contains_key("../not-a-name")
        );
        assert!(
            throttle
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
    fn throttle_is_shareable_between_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EmbeddedThrottle>();
    }
}
