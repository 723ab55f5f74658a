//! Quota reservations: how parallel uploads of one user stay inside a quota.
//!
//! The user database holds each user's quota and `used` bytes (final files
//! plus partial files on disk). This module adds what only the running
//! server knows: bytes *promised* to uploads in flight. An upload reserves
//! the bytes it still has to receive before the server accepts any of them,
//! and the check `used + reserved + needed <= quota` runs under one lock per
//! user, so uploads racing on several connections cannot together overshoot.
//!
//! The ledger also keeps `used` and the quota between database visits: they
//! are read at each login (measured on disk at a user's first login after a
//! server start, which repairs what a crash between a rename and its charge
//! left behind) and the database is written once per commit,
//! removal or rename (with the new value read back), so an upload costs one
//! database write rather than a read at open, a read and a write at commit.
//!
//! A [`Reservation`] is released when dropped, whatever way the upload ends.
//! It also marks its target path busy, so two uploads never write the same
//! partial file.
//!
//! Accounting rules:
//! * `used` counts final files only. An upload reserves its whole size less
//!   the size of the file it will replace, so an overwrite needs only the
//!   difference; the commit adds that difference to `used`.
//! * Partial files are scratch space covered by the upload's reservation
//!   while it runs. A resumed upload is charged once, for its whole size, at
//!   its commit, however many attempts it took. Abandoned partials are
//!   removed after the configured age ([`crate::partials`]).
//! * Removing files subtracts their sizes; a rename that replaces a file
//!   subtracts the replaced file's size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qftp_proto::path::RemotePath;
use qftp_proto::{ErrorKind, Usage};

use crate::error::{RequestError, RequestResult};
use crate::userdb::UserDb;
use tokio::sync::{Notify, watch};

#[derive(Debug, Default)]
struct Ledger {
    /// `used` and the quota as last read from or written to the database;
    /// `None` until first needed. Re-read at every login.
    figures: Option<(u64, Option<u64>)>,
    reserved: u64,
    /// Whether `used` was measured on disk since this server started.
    measured: bool,
    /// Paths with an upload in flight, each with the switch that asks that
    /// upload to give way.
    busy: HashMap<RemotePath, watch::Sender<bool>>,
}

/// The in-memory reservations of one user, shared by all their connections.
#[derive(Debug)]
pub struct UserQuota {
    user: String,
    ledger: Mutex<Ledger>,
    released: Notify,
}

/// All users' reservations.
#[derive(Debug, Default)]
pub struct QuotaBook {
    users: Mutex<HashMap<String, Arc<UserQuota>>>,
}

impl QuotaBook {
    /// The reservations of `user`, created on first use.
    pub fn user(&self, user: &str) -> Arc<UserQuota> {
        let mut users = self.users.lock().expect("quota book lock");
        users
            .entry(user.to_owned())
            .or_insert_with(|| {
                Arc::new(UserQuota {
                    user: user.to_owned(),
                    ledger: Mutex::new(Ledger::default()),
                    released: Notify::new(),
                })
            })
            .clone()
    }
}

/// Bytes promised to one upload; released on drop.
#[derive(Debug)]
pub struct Reservation {
    quota: Arc<UserQuota>,
    path: RemotePath,
    bytes: u64,
    give_way: watch::Receiver<bool>,
}

impl Reservation {
    /// Bytes currently reserved.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether a newer upload to the same path has asked this one to give way.
    pub fn is_asked_to_give_way(&self) -> bool {
        *self.give_way.borrow()
    }

    /// Completes when a newer upload to the same path asks this one to give
    /// way (see [`UserQuota::take_over`]).
    pub fn asked_to_give_way(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut give_way = self.give_way.clone();
        async move {
            if give_way.wait_for(|asked| *asked).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut ledger = self.quota.ledger.lock().expect("quota lock");
        ledger.reserved = ledger.reserved.saturating_sub(self.bytes);
        ledger.busy.remove(&self.path);
        drop(ledger);
        self.quota.released.notify_waiters();
    }
}

impl Ledger {
    /// `used` and the quota, from the cache or else from the database.
    fn figures(&mut self, db: &UserDb, user: &str) -> RequestResult<(u64, Option<u64>)> {
        match self.figures {
            Some(figures) => Ok(figures),
            None => {
                let figures = db.usage(user).map_err(internal)?;
                self.figures = Some(figures);
                Ok(figures)
            }
        }
    }

    /// Adds `delta` to `used` in the database and keeps the new value.
    fn add_used(&mut self, db: &UserDb, user: &str, delta: i64) -> RequestResult<()> {
        let used = db.add_used(user, delta).map_err(internal)?;
        if let Some((cached, _)) = self.figures.as_mut() {
            *cached = used;
        }
        Ok(())
    }
}

impl UserQuota {
    /// Re-reads `used` and the quota from the database, so that an admin's
    /// change (a new quota, a rescan) applies from the user's next login on.
    ///
    /// The first time in this server process, `used` is measured on disk
    /// with `measure` instead: a server killed between a rename into place
    /// and the database write that charges it leaves the stored figure one
    /// file off, and the home itself is the truth. The user's lock is held
    /// meanwhile, so no upload commits during the measurement.
    pub fn refresh(
        &self,
        db: &UserDb,
        measure: impl FnOnce() -> std::io::Result<u64>,
    ) -> RequestResult<()> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        if !ledger.measured {
            let used = measure().map_err(internal)?;
            db.set_used(&self.user, used).map_err(internal)?;
            ledger.measured = true;
        }
        ledger.figures = Some(db.usage(&self.user).map_err(internal)?);
        Ok(())
    }

    /// The user's figures right now.
    pub fn usage(&self, db: &UserDb) -> RequestResult<Usage> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        let (used, quota) = ledger.figures(db, &self.user)?;
        Ok(Usage {
            used,
            reserved: ledger.reserved,
            quota,
        })
    }

    /// Asks an upload in flight to `path`, if any, to give way and waits up
    /// to `patience` for it to end.
    ///
    /// A client that was killed mid-upload leaves its connection looking
    /// alive until the idle timeout; its rerun must not wait that long. The
    /// newer upload of the same user to the same path wins, and the older
    /// one ends with an error, leaving its partial file for the newer one.
    pub async fn take_over(&self, path: &RemotePath, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let ledger = self.ledger.lock().expect("quota lock");
                match ledger.busy.get(path) {
                    None => return,
                    Some(give_way) => give_way.send_replace(true),
                };
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return;
            }
        }
    }

    /// Reserves room for an upload of `size` bytes to `path` that will
    /// replace a file of `replaced` bytes, or refuses with how much is needed
    /// and how much is free.
    pub fn reserve(
        self: &Arc<Self>,
        db: &UserDb,
        path: &RemotePath,
        size: u64,
        replaced: u64,
    ) -> RequestResult<Reservation> {
        let needed = size.saturating_sub(replaced);
        let mut ledger = self.ledger.lock().expect("quota lock");
        if ledger.busy.contains_key(path) {
            return Err(RequestError::new(
                ErrorKind::Busy,
                format!("{path}: another upload to this file is in progress"),
            ));
        }
        let (used, quota) = ledger.figures(db, &self.user)?;
        if let Some(quota) = quota {
            let committed = used.saturating_add(ledger.reserved);
            if committed.saturating_add(needed) > quota {
                let free = quota.saturating_sub(committed);
                return Err(RequestError::new(
                    ErrorKind::QuotaExceeded { needed, free },
                    format!(
                        "{path}: quota exceeded: needs {}, {} free",
                        qftp_proto::size::format_size(needed),
                        qftp_proto::size::format_size(free)
                    ),
                ));
            }
        }
        // Without a quota nothing else bounds the sum of huge declared sizes.
        ledger.reserved = ledger.reserved.checked_add(needed).ok_or_else(|| {
            RequestError::new(
                ErrorKind::LimitReached,
                format!("{path}: uploads in flight already reserve too many bytes"),
            )
        })?;
        let (give_way_sender, give_way) = watch::channel(false);
        ledger.busy.insert(path.clone(), give_way_sender);
        Ok(Reservation {
            quota: Arc::clone(self),
            path: path.clone(),
            bytes: needed,
            give_way,
        })
    }

    /// Commits a finished upload of `size` bytes that replaces a file of
    /// `replaced` bytes: checks the quota once more, runs `place` (the rename
    /// into the final name) and charges the difference, all under the user's
    /// lock. The check can only fail when the replaced file vanished while
    /// the upload ran.
    pub fn commit(
        &self,
        db: &UserDb,
        reservation: &mut Reservation,
        size: u64,
        replaced: u64,
        place: impl FnOnce() -> RequestResult<()>,
    ) -> RequestResult<()> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        let delta = size as i64 - replaced as i64;
        let (used, quota) = ledger.figures(db, &self.user)?;
        if let Some(quota) = quota {
            let others = ledger.reserved.saturating_sub(reservation.bytes);
            let after = used.saturating_add_signed(delta);
            if delta > 0 && after.saturating_add(others) > quota {
                return Err(RequestError::new(
                    ErrorKind::QuotaExceeded {
                        needed: delta as u64,
                        free: quota.saturating_sub(used.saturating_add(others)),
                    },
                    "quota exceeded: the file this upload replaces was removed meanwhile",
                ));
            }
        }
        place()?;
        ledger.add_used(db, &self.user, delta)?;
        // The bytes are charged now; release the promise in the same step so
        // no other upload ever sees them counted twice.
        ledger.reserved = ledger.reserved.saturating_sub(reservation.bytes);
        reservation.bytes = 0;
        Ok(())
    }

    /// Sets `used` to what `measure` finds on disk (for example after a
    /// removal that failed halfway), under the user's lock so no commit
    /// slips in between the measurement and the update.
    pub fn recount(
        &self,
        db: &UserDb,
        measure: impl FnOnce() -> std::io::Result<u64>,
    ) -> RequestResult<()> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        let used = measure().map_err(internal)?;
        db.set_used(&self.user, used).map_err(internal)?;
        let quota = ledger.figures(db, &self.user)?.1;
        ledger.figures = Some((used, quota));
        Ok(())
    }

    /// Adds `delta` bytes (negative frees) to `used`.
    pub fn adjust(&self, db: &UserDb, delta: i64) -> RequestResult<()> {
        if delta == 0 {
            return Ok(());
        }
        let mut ledger = self.ledger.lock().expect("quota lock");
        ledger.add_used(db, &self.user, delta)
    }
}

fn internal(error: impl std::fmt::Display) -> RequestError {
    tracing::error!(%error, "user database");
    RequestError::new(
        ErrorKind::Internal,
        "server error: user database unavailable",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(quota: Option<u64>) -> (tempfile::TempDir, UserDb) {
        let temp = tempfile::tempdir().unwrap();
        let db = UserDb::open(&temp.path().join("users.db")).unwrap();
        db.add_user("alice", "hash", quota, None).unwrap();
        (temp, db)
    }

    fn path(text: &str) -> RemotePath {
        RemotePath::parse(text).unwrap()
    }

    #[test]
    fn reservations_together_stay_inside_the_quota() {
        let (_temp, db) = database(Some(10));
        let book = QuotaBook::default();
        let quota = book.user("alice");
        let mut first = quota.reserve(&db, &path("/a"), 6, 0).unwrap();
        let error = quota.reserve(&db, &path("/b"), 5, 0).unwrap_err();
        assert_eq!(error.kind, ErrorKind::QuotaExceeded { needed: 5, free: 4 });
        quota.commit(&db, &mut first, 6, 0, || Ok(())).unwrap();
        drop(first);
        assert_eq!(db.usage("alice").unwrap().0, 6);
        // Replacing the 6-byte file with 9 bytes needs only the difference.
        let replacing = quota.reserve(&db, &path("/a"), 9, 6).unwrap();
        assert_eq!(replacing.bytes(), 3);
        let usage = quota.usage(&db).unwrap();
        assert_eq!((usage.used, usage.reserved, usage.free()), (6, 3, Some(1)));
        drop(replacing);
        assert_eq!(quota.usage(&db).unwrap().reserved, 0);
    }

    #[test]
    fn a_failed_placement_charges_nothing() {
        let (_temp, db) = database(None);
        let quota = QuotaBook::default().user("alice");
        let mut reservation = quota.reserve(&db, &path("/a"), 100, 0).unwrap();
        let failed = quota.commit(&db, &mut reservation, 100, 0, || {
            Err(RequestError::new(ErrorKind::IsADirectory, "in the way"))
        });
        assert!(failed.is_err());
        assert_eq!(db.usage("alice").unwrap().0, 0);
    }

    #[test]
    fn one_path_has_one_upload_and_a_newer_one_takes_over() {
        let (_temp, db) = database(None);
        let quota = QuotaBook::default().user("alice");
        let stale = quota.reserve(&db, &path("/a"), 1, 0).unwrap();
        let error = quota.reserve(&db, &path("/a"), 1, 0).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Busy);
        assert!(!stale.is_asked_to_give_way());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let target = path("/a");
        runtime.block_on(async {
            let taking_over = quota.take_over(&target, Duration::from_secs(5));
            let giving_way = async {
                stale.asked_to_give_way().await;
                drop(stale);
            };
            tokio::join!(taking_over, giving_way);
        });
        quota.reserve(&db, &path("/a"), 1, 0).unwrap();
    }

    #[test]
    fn a_recount_replaces_the_ledger_figure() {
        let (_temp, db) = database(Some(100));
        let quota = QuotaBook::default().user("alice");
        quota.adjust(&db, 70).unwrap();
        quota.recount(&db, || Ok(25)).unwrap();
        assert_eq!(db.usage("alice").unwrap().0, 25);
        assert_eq!(quota.usage(&db).unwrap().used, 25);
        assert!(
            quota
                .recount(&db, || Err(std::io::Error::other("unreadable")))
                .is_err()
        );
        assert_eq!(quota.usage(&db).unwrap().used, 25);
    }

    #[test]
    fn an_admin_change_applies_at_the_next_refresh() {
        let (_temp, db) = database(Some(10));
        let quota = QuotaBook::default().user("alice");
        assert_eq!(quota.usage(&db).unwrap().quota, Some(10));
        db.set_quota("alice", Some(20)).unwrap();
        assert_eq!(quota.usage(&db).unwrap().quota, Some(10));
        quota.refresh(&db, || Ok(0)).unwrap();
        assert_eq!(quota.usage(&db).unwrap().quota, Some(20));
    }

    #[test]
    fn the_first_refresh_after_a_start_measures_the_disk() {
        let (_temp, db) = database(Some(100));
        // A previous server process renamed a file into place and was
        // killed before charging it: the database says 10, the disk 40.
        db.set_used("alice", 10).unwrap();
        let quota = QuotaBook::default().user("alice");
        quota.refresh(&db, || Ok(40)).unwrap();
        assert_eq!(quota.usage(&db).unwrap().used, 40);
        assert_eq!(db.usage("alice").unwrap().0, 40);
        // Later logins trust the ledger the server keeps itself.
        quota.adjust(&db, 5).unwrap();
        quota
            .refresh(&db, || panic!("measured only once per process"))
            .unwrap();
        assert_eq!(quota.usage(&db).unwrap().used, 45);
        // A failed measurement refuses the login and is tried again later.
        let fresh = QuotaBook::default().user("alice");
        assert!(
            fresh
                .refresh(&db, || Err(std::io::Error::other("unreadable")))
                .is_err()
        );
        fresh.refresh(&db, || Ok(45)).unwrap();
    }
}
