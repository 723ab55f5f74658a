//! [`SessionStore`] for [`PgStore`]: the `sessions` table, and revocations
//! announced to every node with `NOTIFY` in the revoking transaction.

use std::time::SystemTime;

use qftp_store::{BoxFuture, RevocationFeed, SessionStore, StoreError, TokenHash};

use crate::error::unavailable;
use crate::notify::REVOCATIONS;
use crate::store::PgStore;

/// SQLSTATE 23503: the session names no user.
fn is_foreign_key_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
}

impl SessionStore for PgStore {
    fn create_session<'a>(
        &'a self,
        user: &'a str,
        token_hash: &'a TokenHash,
        expires: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let stored = client
                .execute(
                    "INSERT INTO sessions (token_hash, user_name, expires) VALUES ($1, $2, $3)",
                    &[&token_hash.as_slice(), &user, &expires],
                )
                .await;
            match stored {
                Ok(_) => Ok(()),
                Err(error) if is_foreign_key_violation(&error) => {
                    Err(StoreError::UnknownUser(user.to_owned()))
                }
                Err(error) => Err(unavailable(error)),
            }
        })
    }

    fn check_session<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT user_name FROM sessions WHERE token_hash = $1 AND expires > $2",
                    &[&token_hash.as_slice(), &now],
                )
                .await
                .map_err(unavailable)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn revoke_session<'a>(
        &'a self,
        token_hash: &'a TokenHash,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(unavailable)?;
            let removed = transaction
                .execute(
                    "DELETE FROM sessions WHERE token_hash = $1",
                    &[&token_hash.as_slice()],
                )
                .await
                .map_err(unavailable)?;
            if removed > 0 {
                transaction
                    .execute("SELECT pg_notify($1, '')", &[&REVOCATIONS])
                    .await
                    .map_err(unavailable)?;
            }
            transaction.commit().await.map_err(unavailable)?;
            Ok(removed > 0)
        })
    }

    fn purge_expired(&self, now: SystemTime) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let removed = client
                .execute("DELETE FROM sessions WHERE expires <= $1", &[&now])
                .await
                .map_err(unavailable)?;
            Ok(usize::try_from(removed).unwrap_or(usize::MAX))
        })
    }

    fn revocations(&self) -> RevocationFeed {
        self.feeds.revocations.subscribe()
    }
}
