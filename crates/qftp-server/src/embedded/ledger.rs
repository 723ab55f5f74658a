//! [`EmbeddedLedger`]: the [`QuotaLedger`] of a single server, on its
//! quota book ([`crate::quota`]).
//!
//! `used` lives in the SQLite user database, the entry count, the
//! reservations and their leases in this process's memory, beside the
//! reservations the book makes itself: one path has one upload in flight,
//! whichever way it reserved. Every step that may touch the database runs
//! as one short task on tokio's blocking pool and is awaited; no blocking
//! thread waits on the runtime.
//!
//! One node holds every lease, so a lease ends only with its process (or
//! its commit or release): [`QuotaLedger::renew`] checks that the lease
//! still holds its path and moves its end, and the bytes it reports are not
//! kept, as no other node can take the upload over after a crash. A
//! take-over is always by giving way.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use qftp_proto::path::RemotePath;
use qftp_store::{
    BoxFuture, Change, Footprint, LedgerError, LedgerUsage, QuotaLedger, Reservation, StoreError,
    UploadKey,
};
use tokio::sync::watch;

use crate::quota::{QuotaBook, UserQuota, ledger_failure};

/// The quota book as a [`QuotaLedger`].
#[derive(Debug)]
pub struct EmbeddedLedger {
    book: Arc<QuotaBook>,
}

impl EmbeddedLedger {
    /// The ledger of `book`.
    pub fn new(book: Arc<QuotaBook>) -> Self {
        Self { book }
    }

    /// Runs `work` on the ledger of `user` on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        user: &str,
        work: impl FnOnce(&UserQuota) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let book = Arc::clone(&self.book);
        let user = user.to_owned();
        tokio::task::spawn_blocking(move || work(&*book.named(&user).map_err(ledger_failure)?))
            .await
            .map_err(|error| {
                LedgerError::Store(StoreError::Unavailable(format!(
                    "ledger task failed: {error}"
                )))
            })?
    }

    /// Settles `reservation` with `change` (its commit or release).
    async fn end(
        &self,
        reservation: Reservation,
        change: Change,
    ) -> Result<LedgerUsage, LedgerError> {
        let path = upload_path(&reservation.key)?;
        let lease = reservation.lease;
        self.run(&reservation.key.user, move |quota| {
            quota.end_hold(&path, lease, change)
        })
        .await
    }
}

/// The path of an upload key, which the protocol spells as a normalized
/// remote path.
fn upload_path(key: &UploadKey) -> Result<RemotePath, LedgerError> {
    RemotePath::parse(&key.path).map_err(|error| {
        LedgerError::Store(StoreError::Unstorable(format!(
            "upload path {:?}: {error}",
            key.path
        )))
    })
}

/// When a lease of `lease` taken now ends.
fn expiry(lease: Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(lease)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

impl QuotaLedger for EmbeddedLedger {
    fn usage<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>> {
        Box::pin(self.run(user, UserQuota::figures))
    }

    fn reserve<'a>(
        &'a self,
        key: &'a UploadKey,
        bytes: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Reservation, LedgerError>> {
        Box::pin(async move {
            let path = upload_path(key)?;
            let held = self
                .run(&key.user, move |quota| quota.hold(&path, bytes))
                .await?;
            Ok(Reservation {
                key: key.clone(),
                lease: held,
                bytes,
                expires: expiry(lease),
            })
        })
    }

    fn renew<'a>(
        &'a self,
        reservation: &'a Reservation,
        _held: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Reservation, LedgerError>> {
        Box::pin(async move {
            let path = upload_path(&reservation.key)?;
            let held = reservation.lease;
            let live = self
                .run(&reservation.key.user, move |quota| {
                    Ok(quota.holds(&path, held))
                })
                .await?;
            if !live {
                return Err(LedgerError::LeaseLost);
            }
            Ok(Reservation {
                expires: expiry(lease),
                ..reservation.clone()
            })
        })
    }

    fn commit(
        &self,
        reservation: Reservation,
        change: Change,
    ) -> BoxFuture<'_, Result<LedgerUsage, LedgerError>> {
        Box::pin(self.end(reservation, change))
    }

    fn release(
        &self,
        reservation: Reservation,
        change: Change,
    ) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async move { self.end(reservation, change).await.map(drop) })
    }

    fn take_over<'a>(
        &'a self,
        key: &'a UploadKey,
        patience: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let path = upload_path(key)?;
            // No ledger open for the user: nothing of theirs is in flight.
            let Some(quota) = self.book.existing(&key.user) else {
                return Ok(());
            };
            if quota.take_over(&path, patience).await {
                Ok(())
            } else {
                Err(LedgerError::Busy)
            }
        })
    }

    fn give_way(&self, reservation: &Reservation) -> watch::Receiver<bool> {
        let quota = self.book.existing(&reservation.key.user);
        match (quota, upload_path(&reservation.key)) {
            (Some(quota), Ok(path)) => quota.give_way(&path, reservation.lease),
            // Without a ledger or a valid path there is no such reservation:
            // its lease is lost.
            _ => watch::channel(true).1,
        }
    }

    fn adjust<'a>(
        &'a self,
        user: &'a str,
        change: Change,
    ) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>> {
        Box::pin(self.run(user, move |quota| quota.adjust(change)))
    }

    fn recount<'a>(
        &'a self,
        user: &'a str,
        measured: Footprint,
    ) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>> {
        Box::pin(self.run(user, move |quota| quota.recount_to(measured.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedAccounts;
    use crate::quota::LedgerLimits;
    use crate::userdb::UserDb;
    use qftp_store::contract;

    const LIMITS: LedgerLimits = LedgerLimits {
        max_entries: 3,
        entry_cost: 4096,
    };

    fn stores() -> (tempfile::TempDir, EmbeddedAccounts, Arc<EmbeddedLedger>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(UserDb::open(&dir.path().join("users.db")).unwrap());
        let book = Arc::new(QuotaBook::new(Arc::clone(&db), LIMITS));
        (
            dir,
            EmbeddedAccounts::new(db),
            Arc::new(EmbeddedLedger::new(book)),
        )
    }

    fn key(user: &str, path: &str) -> UploadKey {
        UploadKey {
            user: user.to_owned(),
            path: path.to_owned(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_ledger_keeps_the_reservation_contract() {
        let (_dir, accounts, ledger) = stores();
        contract::ledger::reservation_race(&accounts, ledger.clone(), "contract-").await;
        contract::ledger::commit_and_release(&accounts, &*ledger, "contract-").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_ledger_keeps_the_take_over_contract() {
        let (_dir, accounts, ledger) = stores();
        contract::ledger::take_over_by_giving_way(&accounts, ledger, "contract-").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_unknown_users_and_lost_leases_are_refused() {
        let (_dir, accounts, ledger) = stores();
        contract::add_user(&accounts, "alice", None).await;
        let lease = Duration::from_secs(60);
        let three = Change {
            added: Footprint {
                bytes: 0,
                entries: 3,
            },
            removed: Footprint::ZERO,
        };
        ledger.adjust("alice", three).await.unwrap();
        let refused = ledger.reserve(&key("alice", "/one-more"), 1, lease).await;
        assert_eq!(refused, Err(LedgerError::TooManyEntries { limit: 3 }));
        let unknown = ledger.usage("nobody").await;
        assert!(
            matches!(unknown, Err(LedgerError::Store(StoreError::UnknownUser(_)))),
            "{unknown:?}"
        );
        ledger.recount("alice", Footprint::ZERO).await.unwrap();
        let reservation = ledger
            .reserve(&key("alice", "/file"), 10, lease)
            .await
            .unwrap();
        let renewed = ledger.renew(&reservation, 5, lease).await.unwrap();
        assert_eq!(renewed.lease, reservation.lease);
        ledger
            .release(reservation.clone(), Change::default())
            .await
            .unwrap();
        assert_eq!(
            ledger.release(reservation.clone(), Change::default()).await,
            Err(LedgerError::LeaseLost),
            "a reservation ends once"
        );
        assert_eq!(
            ledger.renew(&reservation, 5, lease).await,
            Err(LedgerError::LeaseLost)
        );
        assert!(
            *ledger.give_way(&reservation).borrow(),
            "an ended reservation is told to give way"
        );
        let long_name = "n".repeat(1000);
        let bad = ledger.reserve(&key("alice", &long_name), 1, lease).await;
        assert!(matches!(bad, Err(LedgerError::Store(_))), "{bad:?}");
    }
}
