//! [`UserStore`] for [`PgStore`]: the `users` table.

use std::path::PathBuf;

use qftp_store::{BoxFuture, NewUser, StoreError, UserRecord, UserStore};
use tokio_postgres::Row;

use crate::error::{from_bigint, is_unique_violation, to_bigint, unavailable};
use crate::notify::REVOCATIONS;
use crate::store::PgStore;

/// The longest user name accepted.
const NAME_MAX: usize = 64;

/// The columns [`record`] reads, in its order.
const COLUMNS: &str = "name, password_hash, quota, used_bytes, home, account";

/// A `users` row (selected as [`COLUMNS`]) as a record.
fn record(row: &Row) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        name: row.get(0),
        password_hash: row.get(1),
        quota: row.get::<_, Option<i64>>(2).map(from_bigint).transpose()?,
        used: from_bigint(row.get(3))?,
        home: row.get::<_, Option<String>>(4).map(PathBuf::from),
        account: from_bigint(row.get(5))?,
    })
}

/// Refuses a name that is empty, too long, or not made of letters, digits
/// and `.`, `_`, `-` (not starting with `.` or `-`).
fn check_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason: &str| {
        Err(StoreError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > NAME_MAX {
        return invalid("it is longer than 64 bytes");
    }
    if name.starts_with(['.', '-']) {
        return invalid("it starts with '.' or '-'");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// A home as stored (a path as text).
fn home_text(home: Option<&PathBuf>) -> Result<Option<String>, StoreError> {
    home.map(|home| {
        home.to_str()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Corrupt(format!("home {} is not UTF-8", home.display())))
    })
    .transpose()
}

impl PgStore {
    /// Sets one `column` of user `name` to `value`;
    /// [`StoreError::UnknownUser`] if there is none.
    async fn update_user(
        &self,
        name: &str,
        column: &str,
        value: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                &format!("UPDATE users SET {column} = $2 WHERE name = $1"),
                &[&name, value],
            )
            .await
            .map_err(unavailable)?;
        if changed == 0 {
            return Err(StoreError::UnknownUser(name.to_owned()));
        }
        Ok(())
    }
}

impl UserStore for PgStore {
    fn add_user(&self, user: NewUser) -> BoxFuture<'_, Result<UserRecord, StoreError>> {
        Box::pin(async move {
            check_name(&user.name)?;
            let quota = user.quota.map(to_bigint).transpose()?;
            let home = home_text(user.home.as_ref())?;
            let client = self.client().await?;
            let inserted = client
                .query_one(
                    &format!(
                        "INSERT INTO users (name, password_hash, quota, home)
                         VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
                    ),
                    &[&user.name, &user.password_hash, &quota, &home],
                )
                .await;
            match inserted {
                Ok(row) => record(&row),
                Err(error) if is_unique_violation(&error) => Err(StoreError::UserExists(user.name)),
                Err(error) => Err(unavailable(error)),
            }
        })
    }

    fn remove_user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(unavailable)?;
            // Sessions and reservations go with the row (ON DELETE CASCADE).
            let removed = transaction
                .execute("DELETE FROM users WHERE name = $1", &[&name])
                .await
                .map_err(unavailable)?;
            if removed == 0 {
                return Err(StoreError::UnknownUser(name.to_owned()));
            }
            transaction
                .execute("SELECT pg_notify($1, '')", &[&REVOCATIONS])
                .await
                .map_err(unavailable)?;
            transaction.commit().await.map_err(unavailable)
        })
    }

    fn set_password<'a>(
        &'a self,
        name: &'a str,
        password_hash: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(unavailable)?;
            let changed = transaction
                .execute(
                    "UPDATE users SET password_hash = $2 WHERE name = $1",
                    &[&name, &password_hash],
                )
                .await
                .map_err(unavailable)?;
            if changed == 0 {
                return Err(StoreError::UnknownUser(name.to_owned()));
            }
            // The old password's sessions end with it, on every node.
            transaction
                .execute("DELETE FROM sessions WHERE user_name = $1", &[&name])
                .await
                .map_err(unavailable)?;
            transaction
                .execute("SELECT pg_notify($1, '')", &[&REVOCATIONS])
                .await
                .map_err(unavailable)?;
            transaction.commit().await.map_err(unavailable)
        })
    }

    fn set_quota<'a>(
        &'a self,
        name: &'a str,
        quota: Option<u64>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let quota = quota.map(to_bigint).transpose()?;
            self.update_user(name, "quota", &quota).await
        })
    }

    fn user<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<UserRecord>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM users WHERE name = $1"),
                    &[&name],
                )
                .await
                .map_err(unavailable)?;
            row.as_ref().map(record).transpose()
        })
    }

    fn list_users(&self) -> BoxFuture<'_, Result<Vec<UserRecord>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!("SELECT {COLUMNS} FROM users ORDER BY name COLLATE \"C\""),
                    &[],
                )
                .await
                .map_err(unavailable)?;
            rows.iter().map(record).collect()
        })
    }
}
