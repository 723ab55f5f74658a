//! [`QuotaLedger`] for [`PgStore`]: the figures in `users`, one row of
//! `reservations` per upload in flight.
//!
//! A reservation is ONE conditional statement: the `UPDATE` of the user's
//! row charges `reserved` only where `used + reserved + bytes <= quota`, and
//! the `INSERT` of the reservation row happens only for a charged user; the
//! row lock on the user orders racing nodes, and the primary key on
//! `(user, path)` refuses a second upload of a path (undoing the charge
//! with the statement). Leases are times on the database's clock, so nodes
//! need not agree on theirs.

use std::collections::HashSet;
use std::time::Duration;

use qftp_store::{
    BoxFuture, Change, Footprint, LeaseId, LedgerError, LedgerUsage, QuotaLedger, Reservation,
    StoreError, UploadKey,
};
use tokio::sync::watch;
use tokio_postgres::GenericClient;

use crate::error::{from_bigint, is_unique_violation, ledger_unavailable, to_bigint};
use crate::notify::GIVE_WAY;
use crate::store::PgStore;

/// How often a take-over looks whether the holder has given way (and asks
/// it again, in case the first request came before it listened).
const TAKE_OVER_POLL: Duration = Duration::from_millis(100);

/// The columns of a user's figures, as [`PgStore::usage_of`] reads them.
const FIGURES: &str = "used_bytes, used_entries, reserved, quota, account";

/// A lease as stored: 16 big-endian bytes.
fn lease_bytes(lease: LeaseId) -> Vec<u8> {
    lease.0.to_be_bytes().to_vec()
}

/// A fresh lease from the system's random source.
fn new_lease() -> Result<LeaseId, LedgerError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| {
        LedgerError::Store(StoreError::Unavailable(format!("no random lease: {error}")))
    })?;
    Ok(LeaseId(u128::from_be_bytes(bytes)))
}

/// Seconds as the `float8` that `make_interval` takes.
fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// What a change does to `used`: signed byte and entry deltas.
fn deltas(change: Change) -> Result<(i64, i64), LedgerError> {
    let signed = |added: u64, removed: u64| -> Result<i64, LedgerError> {
        Ok(to_bigint(added)? - to_bigint(removed)?)
    };
    Ok((
        signed(change.added.bytes, change.removed.bytes)?,
        signed(change.added.entries, change.removed.entries)?,
    ))
}

impl PgStore {
    /// The figures of `user` from a row selected as [`FIGURES`].
    fn usage_of(&self, row: &tokio_postgres::Row) -> Result<LedgerUsage, LedgerError> {
        let account = from_bigint(row.get(4))?;
        Ok(LedgerUsage {
            used: Footprint {
                bytes: from_bigint(row.get(0))?,
                entries: from_bigint(row.get(1))?,
            },
            reserved: from_bigint(row.get(2))?,
            quota: row.get::<_, Option<i64>>(3).map(from_bigint).transpose()?,
            measured: self.measured().contains(&account),
        })
    }

    /// The accounts this node measured since it connected.
    fn measured(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.measured_accounts.lock().expect("measured accounts")
    }

    /// The figures of `user` read through `client`.
    async fn usage_through(
        &self,
        client: &impl GenericClient,
        user: &str,
    ) -> Result<LedgerUsage, LedgerError> {
        let row = client
            .query_opt(
                &format!("SELECT {FIGURES} FROM users WHERE name = $1"),
                &[&user],
            )
            .await
            .map_err(ledger_unavailable)?
            .ok_or_else(|| StoreError::UnknownUser(user.to_owned()))?;
        self.usage_of(&row)
    }

    /// Why a reservation of `bytes` for `key` was not made, read through
    /// the caller's `client` (taking a second one from the pool could wait
    /// forever when every caller holds one).
    async fn refusal(
        &self,
        client: &impl GenericClient,
        key: &UploadKey,
        bytes: u64,
    ) -> LedgerError {
        let busy = client
            .query_opt(
                "SELECT 1 FROM reservations WHERE user_name = $1 AND path = $2",
                &[&key.user, &key.path],
            )
            .await;
        match busy {
            Ok(Some(_)) => return LedgerError::Busy,
            Ok(None) => {}
            Err(error) => return ledger_unavailable(error),
        }
        let usage = match self.usage_through(client, &key.user).await {
            Ok(usage) => usage,
            Err(error) => return error,
        };
        match self.options.entry_limit {
            Some(limit) if usage.used.entries >= limit => {
                return LedgerError::TooManyEntries { limit };
            }
            _ => {}
        }
        LedgerError::QuotaExceeded {
            needed: bytes,
            free: usage.free().unwrap_or(u64::MAX),
        }
    }

    /// Ends `reservation` (if its lease is live) and applies `change`, in
    /// one transaction; the user's figures after.
    async fn settle(
        &self,
        reservation: &Reservation,
        change: Change,
    ) -> Result<LedgerUsage, LedgerError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(ledger_unavailable)?;
        let usage = self.settle_in(&*transaction, reservation, change).await?;
        transaction.commit().await.map_err(ledger_unavailable)?;
        self.forget_reservation(reservation);
        Ok(usage)
    }

    /// Ends `reservation` and applies `change` as [`QuotaLedger::commit`]
    /// and [`QuotaLedger::release`] do, inside the caller's `transaction`
    /// on this store's database, so that a change of the caller's own
    /// tables (a file made visible) commits with its charge or not at all.
    /// [`LedgerError::LeaseLost`] (the caller rolls back) if the lease is
    /// not live. After the commit the caller calls
    /// [`PgStore::forget_reservation`].
    pub async fn settle_in(
        &self,
        transaction: &impl GenericClient,
        reservation: &Reservation,
        change: Change,
    ) -> Result<LedgerUsage, LedgerError> {
        let (bytes, entries) = deltas(change)?;
        let ended = transaction
            .query_opt(
                "DELETE FROM reservations
                  WHERE user_name = $1 AND path = $2 AND lease = $3 AND expires > now()
                 RETURNING bytes",
                &[
                    &reservation.key.user,
                    &reservation.key.path,
                    &lease_bytes(reservation.lease),
                ],
            )
            .await
            .map_err(ledger_unavailable)?;
        let Some(ended) = ended else {
            return Err(LedgerError::LeaseLost);
        };
        let reserved: i64 = ended.get(0);
        let row = transaction
            .query_one(
                &format!(
                    "UPDATE users SET reserved = reserved - $2,
                        used_bytes = greatest(used_bytes + $3, 0),
                        used_entries = greatest(used_entries + $4, 0)
                      WHERE name = $1 RETURNING {FIGURES}"
                ),
                &[&reservation.key.user, &reserved, &bytes, &entries],
            )
            .await
            .map_err(ledger_unavailable)?;
        self.usage_of(&row)
    }

    /// Renews `reservation` as [`QuotaLedger::renew`] does, through the
    /// caller's `client` (a transaction that records the partial's growth
    /// in the caller's own tables with it).
    pub async fn renew_in(
        &self,
        client: &impl GenericClient,
        reservation: &Reservation,
        held: u64,
        lease: Duration,
    ) -> Result<Reservation, LedgerError> {
        let held = to_bigint(held)?;
        let row = client
            .query_opt(
                "UPDATE reservations SET held = $4, expires = now() + make_interval(secs => $5)
                  WHERE user_name = $1 AND path = $2 AND lease = $3 AND expires > now()
                 RETURNING expires",
                &[
                    &reservation.key.user,
                    &reservation.key.path,
                    &lease_bytes(reservation.lease),
                    &held,
                    &seconds(lease),
                ],
            )
            .await
            .map_err(ledger_unavailable)?;
        let Some(row) = row else {
            self.feeds.forget(reservation.lease.0);
            return Err(LedgerError::LeaseLost);
        };
        Ok(Reservation {
            expires: row.get(0),
            ..reservation.clone()
        })
    }

    /// Stops the give-way feed of `reservation`, once it ended through
    /// [`PgStore::settle_in`].
    pub fn forget_reservation(&self, reservation: &Reservation) {
        self.feeds.forget(reservation.lease.0);
    }

    /// Applies `change` as [`QuotaLedger::adjust`] does, through the
    /// caller's `client` (a transaction that changes the caller's own
    /// tables with it).
    pub async fn adjust_in(
        &self,
        client: &impl GenericClient,
        user: &str,
        change: Change,
    ) -> Result<LedgerUsage, LedgerError> {
        let (bytes, entries) = deltas(change)?;
        let entry_limit = self.options.entry_limit.map(to_bigint).transpose()?;
        // A change that frees is always applied; one that grows must fit.
        let row = client
            .query_opt(
                &format!(
                    "UPDATE users SET used_bytes = greatest(used_bytes + $2::bigint, 0),
                        used_entries = greatest(used_entries + $3::bigint, 0)
                      WHERE name = $1
                        AND ($2::bigint <= 0 OR used_bytes + reserved + $2::bigint
                             <= coalesce(quota, 9223372036854775807))
                        AND ($3::bigint <= 0 OR $4::bigint IS NULL
                             OR used_entries + $3::bigint <= $4::bigint)
                     RETURNING {FIGURES}"
                ),
                &[&user, &bytes, &entries, &entry_limit],
            )
            .await
            .map_err(ledger_unavailable)?;
        if let Some(row) = row {
            return self.usage_of(&row);
        }
        let usage = self.usage_through(client, user).await?;
        match self.options.entry_limit {
            Some(limit) if entries > 0 && usage.used.entries + entries.unsigned_abs() > limit => {
                Err(LedgerError::TooManyEntries { limit })
            }
            _ => Err(LedgerError::QuotaExceeded {
                needed: bytes.unsigned_abs(),
                free: usage.free().unwrap_or(u64::MAX),
            }),
        }
    }

    /// One look of a take-over: releases `key`'s reservation if its lease
    /// expired (charging its partial as last renewed) and says whether the
    /// key is free now; asks a live holder to give way.
    async fn take_over_once(&self, key: &UploadKey) -> Result<bool, LedgerError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(ledger_unavailable)?;
        let row = transaction
            .query_opt(
                "SELECT lease, bytes, held, expires <= now() FROM reservations
                  WHERE user_name = $1 AND path = $2 FOR UPDATE",
                &[&key.user, &key.path],
            )
            .await
            .map_err(ledger_unavailable)?;
        let Some(row) = row else {
            return Ok(true);
        };
        let lease: Vec<u8> = row.get(0);
        let (bytes, held, expired): (i64, i64, bool) = (row.get(1), row.get(2), row.get(3));
        if expired {
            transaction
                .execute("DELETE FROM reservations WHERE lease = $1", &[&lease])
                .await
                .map_err(ledger_unavailable)?;
            let entries: i64 = if held > 0 { 1 } else { 0 };
            transaction
                .execute(
                    "UPDATE users SET reserved = reserved - $2,
                        used_bytes = used_bytes + $3, used_entries = used_entries + $4
                      WHERE name = $1",
                    &[&key.user, &bytes, &held, &entries],
                )
                .await
                .map_err(ledger_unavailable)?;
            transaction.commit().await.map_err(ledger_unavailable)?;
            return Ok(true);
        }
        let lease = hex_lease(&lease);
        transaction
            .execute("SELECT pg_notify($1, $2)", &[&GIVE_WAY, &lease])
            .await
            .map_err(ledger_unavailable)?;
        transaction.commit().await.map_err(ledger_unavailable)?;
        Ok(false)
    }
}

/// A stored lease as the hex payload of a give-way request.
fn hex_lease(lease: &[u8]) -> String {
    lease.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl QuotaLedger for PgStore {
    fn usage<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            self.usage_through(&**client, user).await
        })
    }

    fn reserve<'a>(
        &'a self,
        key: &'a UploadKey,
        bytes: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Reservation, LedgerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let Ok(amount) = i64::try_from(bytes) else {
                return Err(self.refusal(&**client, key, bytes).await);
            };
            let entry_limit = self.options.entry_limit.map(to_bigint).transpose()?;
            let lease_id = new_lease()?;
            let reserved = client
                .query_opt(
                    "WITH charged AS (
                       UPDATE users SET reserved = reserved + $3
                        WHERE name = $1
                          AND used_bytes + reserved + $3 <= coalesce(quota, 9223372036854775807)
                          AND ($5::bigint IS NULL OR used_entries + 1 <= $5)
                       RETURNING name)
                     INSERT INTO reservations (user_name, path, lease, bytes, expires)
                     SELECT name, $2, $4, $3, now() + make_interval(secs => $6) FROM charged
                     RETURNING expires",
                    &[
                        &key.user,
                        &key.path,
                        &amount,
                        &lease_bytes(lease_id),
                        &entry_limit,
                        &seconds(lease),
                    ],
                )
                .await;
            match reserved {
                Ok(Some(row)) => Ok(Reservation {
                    key: key.clone(),
                    lease: lease_id,
                    bytes,
                    expires: row.get(0),
                }),
                Ok(None) => Err(self.refusal(&**client, key, bytes).await),
                Err(error) if is_unique_violation(&error) => Err(LedgerError::Busy),
                Err(error) => Err(ledger_unavailable(error)),
            }
        })
    }

    fn renew<'a>(
        &'a self,
        reservation: &'a Reservation,
        held: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Reservation, LedgerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            self.renew_in(&**client, reservation, held, lease).await
        })
    }

    fn commit(
        &self,
        reservation: Reservation,
        change: Change,
    ) -> BoxFuture<'_, Result<LedgerUsage, LedgerError>> {
        Box::pin(async move { self.settle(&reservation, change).await })
    }

    fn release(
        &self,
        reservation: Reservation,
        change: Change,
    ) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async move { self.settle(&reservation, change).await.map(|_| ()) })
    }

    fn take_over<'a>(
        &'a self,
        key: &'a UploadKey,
        patience: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + patience;
            loop {
                if self.take_over_once(key).await? {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(LedgerError::Busy);
                }
                tokio::time::sleep_until(
                    deadline.min(tokio::time::Instant::now() + TAKE_OVER_POLL),
                )
                .await;
            }
        })
    }

    fn give_way(&self, reservation: &Reservation) -> watch::Receiver<bool> {
        self.feeds.subscribe(reservation.lease.0)
    }

    fn adjust<'a>(
        &'a self,
        user: &'a str,
        change: Change,
    ) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            self.adjust_in(&**client, user, change).await
        })
    }

    fn recount<'a>(
        &'a self,
        user: &'a str,
        measured: Footprint,
    ) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>> {
        Box::pin(async move {
            let (bytes, entries) = (to_bigint(measured.bytes)?, to_bigint(measured.entries)?);
            let client = self.client().await?;
            let row = client
                .query_opt(
                    &format!(
                        "UPDATE users SET used_bytes = $2, used_entries = $3
                          WHERE name = $1 RETURNING {FIGURES}"
                    ),
                    &[&user, &bytes, &entries],
                )
                .await
                .map_err(ledger_unavailable)?
                .ok_or_else(|| StoreError::UnknownUser(user.to_owned()))?;
            let account = from_bigint(row.get(4))?;
            self.measured().insert(account);
            self.usage_of(&row)
        })
    }
}
