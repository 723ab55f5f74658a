//! [`LoginGuard`]: the gate in front of every login, by password or by
//! token.
//!
//! It asks the [`LoginThrottle`] whether an attempt is blocked before
//! anything else (so a blocked attempt costs neither a read of the user nor
//! a hash), reads the user through the [`UserStore`], limits how many
//! argon2 checks run at once (in a pool of reused working memories),
//! re-checks once a hashing slot is held so that a flood is refused without
//! hashing, and reports each outcome to the throttle, which counts
//! failures and says how long to delay the reply (see
//! [`crate::embedded::throttle`] for the bounds).
//!
//! This module hashes through [`super::password`] and speaks no protocol
//! (that is [`crate::connection`]'s). Nothing here logs a password or a
//! token.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Block;
use qftp_store::{LoginAttempt, LoginThrottle, StoreError, UserRecord, UserStore};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::password::{dummy_hash, verify_password_in};
use crate::config::LoginLimits;
use qftp_store::Bound;

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

/// The gate in front of every login; one per server, shared by all
/// connections.
#[derive(Debug)]
pub struct LoginGuard {
    throttle: Arc<dyn LoginThrottle>,
    hashing: Arc<Semaphore>,
    /// argon2 working memories, one per check that ran at the same time
    /// (so at most `hashing_concurrency` of them), reused by later checks.
    memories: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl LoginGuard {
    /// A guard hashing at most `limits.hashing_concurrency` passwords at
    /// once and counting outcomes in `throttle`. The dummy hash for unknown
    /// users is computed here, so that the first unknown user after a start
    /// costs no more than a known one.
    pub fn new(limits: &LoginLimits, throttle: Arc<dyn LoginThrottle>) -> Self {
        dummy_hash();
        Self {
            throttle,
            hashing: Arc::new(Semaphore::new(
                limits.hashing_concurrency.min(Semaphore::MAX_PERMITS),
            )),
            memories: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A password login attempt by `user` from `address`.
    ///
    /// A blocked attempt is refused at once, before the password or the
    /// user is looked at. Otherwise the user is read from `users` and the
    /// password verified with argon2 on a blocking thread, at most
    /// `hashing_concurrency` at a time, against a dummy hash when the user
    /// is unknown so that both cases cost the same. A failure is counted,
    /// the reply is delayed, and [`LoginError::Failed`] is returned whatever
    /// the reason.
    pub async fn login(
        &self,
        users: &dyn UserStore,
        address: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<UserRecord, LoginError> {
        let attempt = LoginAttempt::Password { address, user };
        self.check(attempt).await?;
        let record = users.user(user).await.map_err(internal)?;
        let hash = record.as_ref().map(|record| record.password_hash.clone());
        let (matches, permit) = self.verify(attempt, hash, password).await?;
        match record {
            Some(record) if matches => {
                drop(permit);
                self.succeeded(attempt, &record.name).await;
                Ok(record)
            }
            _ => {
                // Recorded before the permit goes, so that no attempt
                // waiting for it can start hashing before it sees the block.
                let delay = self.throttle.record_failure(attempt).await;
                drop(permit);
                tokio::time::sleep(delay.map_err(internal)?).await;
                Err(LoginError::Failed)
            }
        }
    }

    /// Whether `address` may try a session token now; a blocked one is
    /// refused before the session is read.
    pub async fn admit_token(&self, address: IpAddr) -> Result<(), LoginError> {
        self.check(LoginAttempt::Token { address }).await
    }

    /// Counts a token that named no valid session as a failure of
    /// `address`, and returns how long to delay the reply.
    pub async fn token_refused(&self, address: IpAddr) -> Result<Duration, LoginError> {
        self.throttle
            .record_failure(LoginAttempt::Token { address })
            .await
            .map_err(internal)
    }

    /// Notes that `address` resumed a session of `user`.
    pub async fn token_accepted(&self, address: IpAddr, user: &str) {
        self.succeeded(LoginAttempt::Token { address }, user).await;
    }

    /// Refuses `attempt` if the throttle blocks it now.
    async fn check(&self, attempt: LoginAttempt<'_>) -> Result<(), LoginError> {
        match self.throttle.is_blocked(attempt).await.map_err(internal)? {
            None => Ok(()),
            Some(blocked) => Err(LoginError::Blocked {
                retry_after: blocked.retry_after,
                bound: blocked.bound,
                who: blocked.who,
            }),
        }
    }

    /// Tells the throttle that `attempt` got in as `user`; a throttle that
    /// cannot store it does not turn the login away.
    async fn succeeded(&self, attempt: LoginAttempt<'_>, user: &str) {
        if let Err(error) = self.throttle.record_success(attempt, user).await {
            tracing::warn!(%error, user, "cannot record a login with the throttle");
        }
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
        attempt: LoginAttempt<'_>,
        hash: Option<String>,
        password: &str,
    ) -> Result<(bool, OwnedSemaphorePermit), LoginError> {
        let permit = Arc::clone(&self.hashing)
            .acquire_owned()
            .await
            .map_err(|error| LoginError::Internal(error.to_string()))?;
        self.check(attempt).await?;
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
}

/// A store failure during a login.
fn internal(error: StoreError) -> LoginError {
    LoginError::Internal(error.to_string())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use super::*;
    use crate::auth::password::{DUMMY, hash_password};
    use crate::config::LoginLimits;
    use crate::embedded::throttle::tests::test_limits;
    use crate::embedded::{EmbeddedAccounts, EmbeddedThrottle};
    use crate::userdb::UserDb;
    use qftp_store::NewUser;

    const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const OTHER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    const TIMEOUT: Duration = Duration::from_secs(30);

    /// A guard with an embedded throttle enforcing `limits`.
    fn guard_of(limits: LoginLimits) -> LoginGuard {
        LoginGuard::new(&limits, Arc::new(EmbeddedThrottle::new(limits.clone())))
    }

    fn database_with_alice() -> (tempfile::TempDir, EmbeddedAccounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(&dir.path().join("users.db")).unwrap();
        db.add_user(
            "alice",
            &hash_password("correct horse").unwrap(),
            None,
            None,
        )
        .unwrap();
        (dir, EmbeddedAccounts::new(Arc::new(db)))
    }

    #[test]
    fn the_dummy_hash_is_ready_once_a_guard_exists() {
        let _guard = guard_of(test_limits());
        assert!(DUMMY.get().is_some());
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_fail_alike_after_a_delay() {
        let (_dir, db) = database_with_alice();
        let limits = LoginLimits {
            base_delay_ms: 20,
            max_delay_ms: 20,
            ..test_limits()
        };
        let guard = guard_of(limits);
        for (user, password) in [("alice", "wrong"), ("mallory", "correct horse")] {
            let started = Instant::now();
            let result = guard.login(&db, OTHER_ADDRESS, user, password).await;
            assert_eq!(result, Err(LoginError::Failed));
            assert!(started.elapsed() >= Duration::from_millis(20));
        }
    }

    /// Fails `user` from `address` once, without hashing.
    async fn fail(guard: &LoginGuard, address: IpAddr, user: &str) -> Duration {
        guard
            .throttle
            .record_failure(LoginAttempt::Password { address, user })
            .await
            .unwrap()
    }

    /// The bound that refuses `user` from `address` now, if any.
    async fn refused(guard: &LoginGuard, address: IpAddr, user: &str) -> Option<Bound> {
        match guard.check(LoginAttempt::Password { address, user }).await {
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
        let guard = guard_of(test_limits());
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
        assert_eq!(refused(&guard, ADDRESS, "bob").await, None);
        assert_eq!(guard.admit_token(ADDRESS).await, Ok(()));
        let elsewhere = guard
            .login(&db, OTHER_ADDRESS, "alice", "correct horse")
            .await;
        assert_eq!(elsewhere.unwrap().name, "alice");
    }

    #[tokio::test]
    async fn a_success_clears_only_its_own_count() {
        let (_dir, db) = database_with_alice();
        db.add_user(NewUser {
            name: "mallory".to_owned(),
            password_hash: hash_password("mine").unwrap(),
            quota: None,
            home: None,
        })
        .await
        .unwrap();
        let guard = guard_of(test_limits());
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
        assert_eq!(refused(&guard, ADDRESS, "alice").await, None);
        // An account of one's own does not reset the count of guesses at
        // someone else's.
        let guard = guard_of(test_limits());
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
        assert_eq!(
            refused(&guard, OTHER_ADDRESS, "alice").await,
            Some(Bound::Pair)
        );
        assert!(matches!(
            guard
                .login(&db, OTHER_ADDRESS, "alice", "correct horse")
                .await,
            Err(LoginError::Blocked { .. })
        ));
    }

    #[tokio::test]
    async fn an_address_guessing_at_many_users_is_blocked_for_all() {
        let guard = guard_of(test_limits());
        // Below the bound (several users' typos behind one NAT) nothing but
        // the pairs at max_failures is refused.
        for index in 0..11 {
            fail(&guard, ADDRESS, &format!("user{index}")).await;
        }
        assert_eq!(refused(&guard, ADDRESS, "user0").await, None);
        assert_eq!(refused(&guard, ADDRESS, "carol").await, None);
        fail(&guard, ADDRESS, "user11").await;
        for user in ["carol", "user0", "alice"] {
            assert_eq!(refused(&guard, ADDRESS, user).await, Some(Bound::Address));
        }
        assert!(matches!(
            guard.admit_token(ADDRESS).await,
            Err(LoginError::Blocked {
                bound: Bound::Address,
                ..
            })
        ));
        assert_eq!(refused(&guard, OTHER_ADDRESS, "user0").await, None);
    }

    #[tokio::test]
    async fn a_user_guessed_at_from_many_addresses_is_blocked_but_for_known_ones() {
        let (_dir, db) = database_with_alice();
        let guard = guard_of(test_limits());
        // Alice logged in from her usual address before the attack.
        assert!(
            guard
                .login(&db, ADDRESS, "alice", "correct horse")
                .await
                .is_ok()
        );
        for index in 0..7 {
            fail(&guard, address(index), "alice").await;
        }
        assert_eq!(refused(&guard, address(200), "alice").await, None);
        fail(&guard, address(7), "alice").await;
        assert_eq!(
            refused(&guard, address(200), "alice").await,
            Some(Bound::User)
        );
        assert_eq!(
            refused(&guard, address(0), "alice").await,
            Some(Bound::User)
        );
        // Other users are not affected, and alice still gets in from home.
        assert_eq!(refused(&guard, address(200), "bob").await, None);
        assert_eq!(refused(&guard, ADDRESS, "alice").await, None);
        assert!(
            guard
                .login(&db, ADDRESS, "alice", "correct horse")
                .await
                .is_ok()
        );
        // Without a memory of known addresses, the block holds everywhere.
        let forgetful = guard_of(LoginLimits {
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
            fail(&forgetful, address(index), "alice").await;
        }
        assert_eq!(
            refused(&forgetful, ADDRESS, "alice").await,
            Some(Bound::User)
        );
    }

    #[tokio::test]
    async fn made_up_tokens_block_the_address_for_tokens() {
        let guard = guard_of(test_limits());
        for _ in 0..4 {
            guard.admit_token(ADDRESS).await.unwrap();
            guard.token_refused(ADDRESS).await.unwrap();
        }
        guard.admit_token(ADDRESS).await.unwrap();
        let delay = guard.token_refused(ADDRESS).await.unwrap();
        assert_eq!(delay, Duration::from_millis(4));
        assert!(matches!(
            guard.admit_token(ADDRESS).await,
            Err(LoginError::Blocked { bound: Bound::Pair, ref who, .. })
                if who == "session tokens from 192.0.2.1"
        ));
        // Password logins from there, and tokens from elsewhere, go on.
        assert_eq!(refused(&guard, ADDRESS, "alice").await, None);
        assert_eq!(guard.admit_token(OTHER_ADDRESS).await, Ok(()));
        // A valid token clears its own address's count.
        for _ in 0..4 {
            guard.token_refused(OTHER_ADDRESS).await.unwrap();
        }
        guard.token_accepted(OTHER_ADDRESS, "alice").await;
        guard.token_refused(OTHER_ADDRESS).await.unwrap();
        assert_eq!(guard.admit_token(OTHER_ADDRESS).await, Ok(()));
    }

    #[tokio::test]
    async fn blocked_attempt_does_not_hash_or_read_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedAccounts::new(Arc::new(
            UserDb::open(&dir.path().join("users.db")).unwrap(),
        ));
        // No hashing permits at all: an attempt that tried to hash would wait
        // forever, and the timeout below would fail the test.
        let guard = guard_of(LoginLimits {
            hashing_concurrency: 0,
            ..test_limits()
        });
        for _ in 0..5 {
            fail(&guard, ADDRESS, "alice").await;
        }
        for index in 0..8 {
            fail(&guard, address(index), "carol").await;
        }
        for index in 0..12 {
            fail(&guard, OTHER_ADDRESS, &format!("user{index}")).await;
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
        let guard = Arc::new(guard_of(LoginLimits {
            hashing_concurrency: 1,
            ..test_limits()
        }));
        // Hold the only permit so that every attempt passes the first check
        // and then waits for hashing, as a flood over many connections does.
        let held = Arc::clone(&guard.hashing).acquire_owned().await.unwrap();
        let attempts: Vec<_> = (0..10)
            .map(|_| {
                let (guard, db) = (Arc::clone(&guard), Arc::clone(&db));
                tokio::spawn(async move { guard.login(&*db, ADDRESS, "alice", "wrong").await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..5 {
            fail(&guard, ADDRESS, "alice").await;
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
        let guard = guard_of(LoginLimits {
            block_secs: 0,
            ..test_limits()
        });
        for index in 0..12 {
            fail(&guard, ADDRESS, "alice").await;
            fail(&guard, address(index), "alice").await;
        }
        assert_eq!(refused(&guard, ADDRESS, "alice").await, None);
        assert_eq!(refused(&guard, address(100), "alice").await, None);
        assert!(
            guard
                .login(&db, ADDRESS, "alice", "correct horse")
                .await
                .is_ok()
        );
    }

    #[test]
    fn guard_is_shareable_between_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LoginGuard>();
    }
}
