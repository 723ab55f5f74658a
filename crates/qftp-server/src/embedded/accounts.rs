//! [`EmbeddedAccounts`]: the accounts and sessions of the SQLite user
//! database, behind [`UserStore`] and [`SessionStore`].
//!
//! Every method runs its SQLite work as one short task on tokio's blocking
//! pool and awaits it; nothing here waits on the runtime from a blocking
//! thread. Revocations made through this value (a revoked session, a
//! password change, a removed user) advance a counter that every
//! [`RevocationFeed`] of it sees at once; changes made by another process
//! on the same file (the admin commands) are seen by the next check of a
//! session, which a connection makes at least once a second.

use std::sync::Arc;
use std::time::SystemTime;

use qftp_proto::Timestamp;
use qftp_store::{
    BoxFuture, NewUser, RevocationFeed, SessionStore, StoreError, TokenHash, UserRecord, UserStore,
};
use tokio::sync::watch;

use crate::userdb::{DbError, UserDb};

/// The user database as a [`UserStore`] and a [`SessionStore`].
#[derive(Debug)]
pub struct EmbeddedAccounts {
    db: Arc<UserDb>,
    revoked: watch::Sender<u64>,
}

impl EmbeddedAccounts {
    /// The stores of `db`.
    pub fn new(db: Arc<UserDb>) -> Self {
        Self {
            db,
            revoked: watch::Sender::new(0),
        }
    }

    /// Runs `work` on the database on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&UserDb) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|error| StoreError::Unavailable(format!("database task failed: {error}")))?
            .map_err(store_error)
    }

    /// Tells every feed that some session ended.
    fn announce_revocation(&self) {
        self.revoked
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}

impl UserStore for EmbeddedAccounts {
    fn add_user(&self, user: NewUser) -> BoxFuture<'_, Result<UserRecord, StoreError>> {
        Box::pin(self.run(move |db| {
            db.add_user(
                &user.name,
                &user.password_hash,
                user.quota,
                user.home.as_deref(),
            )?;
            db.user(&user.name)?
                .ok_or_else(|| DbError::NoSuchUser(user.name.clone()))
        }))
    }

    fn remove_user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let name = name.to_owned();
        Box::pin(async move {
            self.run(move |db| db.delete_user(&name)).await?;
            self.announce_revocation();
            Ok(())
        })
    }

    fn set_password<'a>(
        &'a self,
        name: &'a str,
        password_hash: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (name, password_hash) = (name.to_owned(), password_hash.to_owned());
        Box::pin(async move {
            // The database ends the user's sessions with the old password.
            self.run(move |db| db.set_password(&name, &password_hash))
                .await?;
            self.announce_revocation();
            Ok(())
        })
    }

    fn set_quota<'a>(
        &'a self,
        name: &'a str,
        quota: Option<u64>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let name = name.to_owned();
        Box::pin(self.run(move |db| db.set_quota(&name, quota)))
    }

    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        let name = name.to_owned();
        Box::pin(self.run(move |db| db.user(&name)))
    }

    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserRecord>, StoreError>> {
        Box::pin(self.run(UserDb::users))
    }
}

impl SessionStore for EmbeddedAccounts {
    fn create_session<'a>(
        &'a self,
        user: &'a str,
        token_hash: &'a TokenHash,
        expires: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (user, token_hash) = (user.to_owned(), *token_hash);
        let expires = Timestamp::from(expires).secs;
        Box::pin(self.run(move |db| db.create_session(&user, &token_hash, expires)))
    }

    fn check_session<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let token_hash = *token_hash;
        let now = Timestamp::from(now).secs;
        Box::pin(self.run(move |db| db.session_user(&token_hash, now)))
    }

    fn revoke_session<'a>(
        &'a self,
        token_hash: &'a TokenHash,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let token_hash = *token_hash;
        Box::pin(async move {
            let existed = self.run(move |db| db.revoke_session(&token_hash)).await?;
            self.announce_revocation();
            Ok(existed)
        })
    }

    fn purge_expired(&self, now: SystemTime) -> BoxFuture<'_, Result<usize, StoreError>> {
        let now = Timestamp::from(now).secs;
        Box::pin(self.run(move |db| db.purge_expired_sessions(now)))
    }

    fn revocations(&self) -> RevocationFeed {
        self.revoked.subscribe()
    }
}

/// The contract's error for a database error.
fn store_error(error: DbError) -> StoreError {
    match error {
        DbError::UserExists(name) => StoreError::UserExists(name),
        DbError::NoSuchUser(name) => StoreError::UnknownUser(name),
        DbError::InvalidName { name, rule } => StoreError::InvalidName {
            name,
            reason: rule.to_owned(),
        },
        DbError::Corrupt(what) => StoreError::Corrupt(what),
        error @ DbError::NewerSchema { .. } => StoreError::Corrupt(error.to_string()),
        error @ (DbError::InvalidHome(_) | DbError::TooLarge { .. }) => {
            StoreError::Unstorable(error.to_string())
        }
        error => StoreError::Unavailable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qftp_store::contract;

    fn accounts() -> (tempfile::TempDir, EmbeddedAccounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = UserDb::open(&dir.path().join("users.db")).unwrap();
        (dir, EmbeddedAccounts::new(Arc::new(db)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accounts_keep_the_user_store_contract() {
        let (_dir, accounts) = accounts();
        contract::users::accounts(&accounts, "contract-").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_keep_the_session_store_contract() {
        let (_dir, accounts) = accounts();
        contract::sessions::sessions(&accounts, &accounts, &accounts, "contract-").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_of_one_file_share_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        let node = EmbeddedAccounts::new(Arc::new(UserDb::open(&path).unwrap()));
        let other = EmbeddedAccounts::new(Arc::new(UserDb::open(&path).unwrap()));
        contract::add_user(&node, "alice", None).await;
        let token = [3u8; 32];
        let now = SystemTime::now();
        node.create_session("alice", &token, now + std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            other.check_session(&token, now).await.unwrap().as_deref(),
            Some("alice")
        );
        other
            .set_password("alice", "$argon2id$changed")
            .await
            .unwrap();
        assert_eq!(
            node.check_session(&token, now).await.unwrap(),
            None,
            "a password changed through another handle ends the session"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusals_keep_their_class() {
        let (_dir, accounts) = accounts();
        let refused = accounts
            .add_user(NewUser {
                name: "../etc".to_owned(),
                password_hash: contract::TEST_PASSWORD_HASH.to_owned(),
                quota: None,
                home: None,
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::InvalidName { .. })),
            "{refused:?}"
        );
        let too_large = accounts
            .add_user(NewUser {
                name: "big".to_owned(),
                password_hash: contract::TEST_PASSWORD_HASH.to_owned(),
                quota: Some(u64::MAX),
                home: None,
            })
            .await;
        assert!(
            matches!(too_large, Err(StoreError::Unstorable(_))),
            "{too_large:?}"
        );
        assert_eq!(accounts.user("big").await.unwrap(), None);
    }
}
