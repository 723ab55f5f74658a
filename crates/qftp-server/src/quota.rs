//! The quota ledger: the one owner of what each user has on disk.
//!
//! The user database holds each user's quota and `used` bytes; this module
//! is the only code that changes `used`, and it changes it in the same
//! critical section (one lock per user) as the file-system change it
//! accounts for. Every namespace change of a user — an upload's commit, a
//! removal, a rename, a mkdir, a link — runs *inside* [`UserQuota::change`]
//! or an upload's [`Reservation`], and the sizes it frees or takes are
//! measured there too, so two changes racing on one file can never both
//! count it.
//!
//! # What is charged
//!
//! Everything on disk below the home, by the rule of [`crate::footprint`]:
//! files their length, directories and links `entry_cost` bytes each, and
//! every entry one against the entry limit. That includes partial uploads:
//! a partial is a file in the home's staging directory
//! ([`crate::partials`]) and costs what it holds.
//!
//! While an upload runs, its partial file grows; the growth is covered by
//! the upload's **reservation**, made before the first byte is accepted:
//! `used + reserved + growth <= quota`, checked under the user's lock, so
//! uploads racing on any number of connections cannot together overshoot.
//! An overwrite needs room for the new copy beside the old one until the
//! rename, as it really takes that much disk. When the upload ends:
//! * committed: the partial becomes the final file; `used` gains the growth
//!   and loses the file it replaced (measured at the rename);
//! * abandoned (the client vanished, the stream stalled, the connection
//!   closed): the partial stays for a resume and `used` gains what was
//!   actually written, so an abandoned partial is charged to its owner
//!   until it is resumed, or swept after `partial_max_age`;
//! * discarded (hash mismatch): the partial is removed and nothing stays
//!   charged.
//!
//! # Where the figures come from
//!
//! `used` and the quota are cached here and re-read from the database at
//! most a second old, so an administrator's new quota reaches connections
//! that are already open within a second. The entry count lives only here:
//! it is measured on disk, together with `used`, at a user's first login
//! after a server start (which also repairs what a crash between a rename
//! and its database write left behind), and kept exact from then on.
//! Another account of the same name (deleted and added again) is a new
//! ledger, measured afresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qftp_proto::path::RemotePath;
use qftp_proto::size::format_size;
use qftp_proto::{ErrorKind, Usage};
use qftp_store::{Change, LeaseId, LedgerError, LedgerUsage, StoreError};
use tokio::sync::{Notify, watch};

use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;
use crate::limits::Refusal;
use crate::userdb::{DbError, UserDb, UserRecord};

/// How old the cached `used` and quota may be before a check reads them
/// from the database again.
const FIGURES_RECHECK: Duration = Duration::from_secs(1);

/// The bounds the ledger enforces besides each user's byte quota.
#[derive(Debug, Clone, Copy)]
pub struct LedgerLimits {
    /// Entries one user may have (`limits.max_entries_per_user`).
    pub max_entries: u64,
    /// Bytes a directory or a symlink costs (`limits.entry_cost`).
    pub entry_cost: u64,
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    used: u64,
    quota: Option<u64>,
    read_at: Instant,
}

#[derive(Debug, Default)]
struct Ledger {
    /// `used` and the quota as last read from or written to the database.
    figures: Option<Figures>,
    /// Entries on disk; exact once `measured`.
    entries: u64,
    /// Bytes promised to uploads in flight.
    reserved: u64,
    /// Whether the home was measured since this server started.
    measured: bool,
    /// Paths with an upload in flight, each with its holding.
    busy: HashMap<RemotePath, Holding>,
}

/// The reservation an upload in flight holds on its path.
#[derive(Debug)]
struct Holding {
    /// The switch that asks the upload to give way.
    give_way: watch::Sender<bool>,
    /// Which holding this is: a later upload of the path gets another.
    lease: LeaseId,
    /// Bytes it reserves.
    bytes: u64,
}

impl Holding {
    /// A new holding of `bytes`, with a lease no other holding in this
    /// process has had.
    fn new(bytes: u64) -> (Holding, watch::Receiver<bool>) {
        static NEXT_LEASE: AtomicU64 = AtomicU64::new(1);
        let (give_way, asked) = watch::channel(false);
        let lease = LeaseId(u128::from(NEXT_LEASE.fetch_add(1, Ordering::Relaxed)));
        (
            Holding {
                give_way,
                lease,
                bytes,
            },
            asked,
        )
    }
}

/// Why a change does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// The bytes pass the quota: `needed` asked, `free` left.
    Bytes {
        /// Bytes asked for.
        needed: u64,
        /// Bytes still free.
        free: u64,
    },
    /// The entries pass the entry limit.
    Entries {
        /// The entry limit.
        limit: u64,
    },
}

impl From<Shortfall> for LedgerError {
    fn from(shortfall: Shortfall) -> LedgerError {
        match shortfall {
            Shortfall::Bytes { needed, free } => LedgerError::QuotaExceeded { needed, free },
            Shortfall::Entries { limit } => LedgerError::TooManyEntries { limit },
        }
    }
}

/// The ledger of one user account, shared by all their connections.
#[derive(Debug)]
pub struct UserQuota {
    db: Arc<UserDb>,
    user: String,
    account: u64,
    limits: LedgerLimits,
    ledger: Mutex<Ledger>,
    released: Notify,
}

/// All users' ledgers.
#[derive(Debug)]
pub struct QuotaBook {
    db: Arc<UserDb>,
    limits: LedgerLimits,
    users: Mutex<HashMap<String, Arc<UserQuota>>>,
}

impl QuotaBook {
    /// An empty book keeping its figures in `db` and enforcing `limits`.
    pub fn new(db: Arc<UserDb>, limits: LedgerLimits) -> Self {
        Self {
            db,
            limits,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// The ledger of `record`'s account, created on first use (and anew
    /// when the name now belongs to another account).
    pub fn user(&self, record: &UserRecord) -> Arc<UserQuota> {
        let mut users = self.users.lock().expect("quota book lock");
        if let Some(existing) = users.get(&record.name)
            && existing.account == record.account
        {
            return Arc::clone(existing);
        }
        let quota = Arc::new(UserQuota {
            db: Arc::clone(&self.db),
            user: record.name.clone(),
            account: record.account,
            limits: self.limits,
            ledger: Mutex::new(Ledger::default()),
            released: Notify::new(),
        });
        users.insert(record.name.clone(), Arc::clone(&quota));
        quota
    }

    /// The ledger of `user` if one is open in this process.
    pub fn existing(&self, user: &str) -> Option<Arc<UserQuota>> {
        self.users
            .lock()
            .expect("quota book lock")
            .get(user)
            .cloned()
    }

    /// The ledger of the account named `user`: the one open in this
    /// process, else that of the account the database holds. It may read
    /// the database: call it on the blocking pool.
    pub fn named(&self, user: &str) -> Result<Arc<UserQuota>, DbError> {
        if let Some(existing) = self.existing(user) {
            return Ok(existing);
        }
        let record = self
            .db
            .user(user)?
            .ok_or_else(|| DbError::NoSuchUser(user.to_owned()))?;
        Ok(self.user(&record))
    }
}

/// What a namespace change did, told to the ledger as it happens.
#[derive(Debug)]
pub struct Tally {
    used: u64,
    reserved: u64,
    quota: Option<u64>,
    entries: u64,
    max_entries: u64,
    added: Footprint,
    removed: Footprint,
    user: String,
    entry_cost: u64,
}

impl Tally {
    /// A tally with no quota and no entry limit, for measuring what a change
    /// does outside a ledger (tests, offline tools).
    pub fn unlimited(entry_cost: u64) -> Tally {
        Tally {
            used: 0,
            reserved: 0,
            quota: None,
            entries: 0,
            max_entries: u64::MAX,
            added: Footprint::ZERO,
            removed: Footprint::ZERO,
            user: String::new(),
            entry_cost,
        }
    }

    /// What the change created so far.
    pub fn added(&self) -> Footprint {
        self.added
    }

    /// What the change removed so far.
    pub fn removed(&self) -> Footprint {
        self.removed
    }

    /// What a directory or a symlink costs.
    pub fn entry_cost(&self) -> u64 {
        self.entry_cost
    }

    /// Refuses unless `more` fits in the quota and the entry limit next to
    /// what is on disk, promised and already added in this change. `what`
    /// names the path for the message.
    pub fn check(&self, more: Footprint, what: &str) -> RequestResult<()> {
        match self.shortfall(more) {
            None => Ok(()),
            Some(Shortfall::Bytes { needed, free }) => Err(quota_exceeded(what, needed, free)),
            Some(Shortfall::Entries { limit }) => {
                let value = limit.to_string();
                Err(Refusal {
                    setting: "limits.max_entries_per_user",
                    value: &value,
                    who: &self.user,
                }
                .refuse_as(
                    ErrorKind::QuotaExceeded {
                        needed: more.bytes,
                        free: 0,
                    },
                    format!("{what}: too many files and directories"),
                ))
            }
        }
    }

    /// What keeps `more` from fitting in the quota and the entry limit next
    /// to what is on disk, promised and already added in this change, or
    /// `None` when it fits.
    pub fn shortfall(&self, more: Footprint) -> Option<Shortfall> {
        if let Some(quota) = self.quota {
            let committed = self
                .used
                .saturating_add(self.reserved)
                .saturating_add(self.added.bytes)
                .saturating_sub(self.removed.bytes);
            if committed.saturating_add(more.bytes) > quota {
                let free = quota.saturating_sub(committed);
                return Some(Shortfall::Bytes {
                    needed: more.bytes,
                    free,
                });
            }
        }
        let entries = self
            .entries
            .saturating_add(self.added.entries)
            .saturating_sub(self.removed.entries);
        if entries.saturating_add(more.entries) > self.max_entries {
            return Some(Shortfall::Entries {
                limit: self.max_entries,
            });
        }
        None
    }

    /// Records that `footprint` now exists on disk.
    pub fn add(&mut self, footprint: Footprint) {
        self.added += footprint;
    }

    /// Records that `footprint` is gone from disk.
    pub fn remove(&mut self, footprint: Footprint) {
        self.removed += footprint;
    }
}

fn quota_exceeded(what: &str, needed: u64, free: u64) -> RequestError {
    RequestError::new(
        ErrorKind::QuotaExceeded { needed, free },
        format!(
            "{what}: quota exceeded: needs {}, {} free",
            format_size(needed),
            format_size(free)
        ),
    )
}

impl Ledger {
    /// `used` and the quota, from the cache if fresh, else from the database.
    fn figures(&mut self, db: &UserDb, user: &str) -> Result<Figures, DbError> {
        match self.figures {
            Some(figures) if figures.read_at.elapsed() < FIGURES_RECHECK => Ok(figures),
            _ => {
                let (used, quota) = db.usage(user)?;
                let figures = Figures {
                    used,
                    quota,
                    read_at: Instant::now(),
                };
                self.figures = Some(figures);
                Ok(figures)
            }
        }
    }

    /// Applies a change of `added` and `removed` to `used` and the entry
    /// count, writing `used` to the database when it moved.
    fn apply(
        &mut self,
        db: &UserDb,
        user: &str,
        added: Footprint,
        removed: Footprint,
    ) -> Result<(), DbError> {
        self.entries = self
            .entries
            .saturating_add(added.entries)
            .saturating_sub(removed.entries);
        let delta = i128::from(added.bytes) - i128::from(removed.bytes);
        if delta == 0 {
            return Ok(());
        }
        let delta = i64::try_from(delta).unwrap_or(if delta > 0 { i64::MAX } else { i64::MIN });
        let used = db.add_used(user, delta)?;
        if let Some(figures) = self.figures.as_mut() {
            figures.used = used;
        }
        Ok(())
    }
}

impl UserQuota {
    /// The user this ledger belongs to.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Called at each login: the first time in this server process (for
    /// this account), measures the home with `measure` and stores the
    /// result; every time, re-reads the quota.
    ///
    /// A server killed between a rename into place and the database write
    /// that charges it leaves the stored figure one file off, and the home
    /// itself is the truth. The user's lock is held meanwhile, so nothing
    /// changes during the measurement.
    pub fn refresh(
        &self,
        measure: impl FnOnce() -> std::io::Result<Footprint>,
    ) -> RequestResult<()> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        if !ledger.measured {
            let footprint = measure().map_err(internal)?;
            self.adopt(&mut ledger, footprint).map_err(internal)?;
        }
        ledger.figures = None;
        ledger.figures(&self.db, &self.user).map_err(internal)?;
        Ok(())
    }

    /// Whether the home was measured in this process, so that the ledger's
    /// figures are exact.
    pub fn is_measured(&self) -> bool {
        self.ledger.lock().expect("quota lock").measured
    }

    /// The user's figures right now.
    pub fn usage(&self) -> RequestResult<Usage> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        let figures = ledger.figures(&self.db, &self.user).map_err(internal)?;
        Ok(Usage {
            used: figures.used,
            reserved: ledger.reserved,
            quota: figures.quota,
        })
    }

    /// Entries charged to the user right now.
    pub fn entries(&self) -> u64 {
        self.ledger.lock().expect("quota lock").entries
    }

    /// A fresh tally of the ledger as it stands (the lock held by the caller).
    fn tally(&self, ledger: &mut Ledger) -> Result<Tally, DbError> {
        let figures = ledger.figures(&self.db, &self.user)?;
        Ok(Tally {
            used: figures.used,
            reserved: ledger.reserved,
            quota: figures.quota,
            entries: ledger.entries,
            max_entries: self.limits.max_entries,
            added: Footprint::ZERO,
            removed: Footprint::ZERO,
            user: self.user.clone(),
            entry_cost: self.limits.entry_cost,
        })
    }

    /// Runs the namespace change `work` under the user's lock. `work` checks
    /// what it is about to create with [`Tally::check`] and reports what it
    /// created and removed; the ledger applies that afterwards, also when
    /// `work` fails halfway, so it never keeps charging for what is gone.
    pub fn change<T>(&self, work: impl FnOnce(&mut Tally) -> RequestResult<T>) -> RequestResult<T> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        let mut tally = self.tally(&mut ledger).map_err(internal)?;
        let result = work(&mut tally);
        ledger
            .apply(&self.db, &self.user, tally.added, tally.removed)
            .map_err(internal)?;
        result
    }

    /// Makes `footprint`, what is on disk, the ledger's figures (the lock
    /// held by the caller): `used` in the database, the entry count here.
    fn adopt(&self, ledger: &mut Ledger, footprint: Footprint) -> Result<(), DbError> {
        self.db.set_used(&self.user, footprint.bytes)?;
        ledger.entries = footprint.entries;
        ledger.measured = true;
        ledger.figures = None;
        Ok(())
    }

    /// Asks an upload in flight to `path`, if any, to give way and waits up
    /// to `patience` for it to end.
    ///
    /// A client that was killed mid-upload leaves its connection looking
    /// alive until the idle timeout; its rerun must not wait that long. The
    /// newer upload of the same user to the same path wins, and the older
    /// one ends with an error, leaving its partial file for the newer one.
    /// Returns whether the path is free (`false`: the upload in flight did
    /// not end within `patience`).
    pub async fn take_over(&self, path: &RemotePath, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let ledger = self.ledger.lock().expect("quota lock");
                match ledger.busy.get(path) {
                    None => return true,
                    Some(holding) => holding.give_way.send_replace(true),
                };
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return !self.is_busy(path);
            }
        }
    }

    /// Whether an upload to `path` is in flight.
    pub fn is_busy(&self, path: &RemotePath) -> bool {
        self.ledger
            .lock()
            .expect("quota lock")
            .busy
            .contains_key(path)
    }

    /// Reserves room for an upload of `size` bytes to `path` and opens its
    /// partial file through `partial`, all under the user's lock.
    ///
    /// `partial` is the upload's partial file: [`PartialFile::length`] says
    /// what is on disk now, and the upload keeps `keep` bytes of it (a
    /// resume) or empties it. Only once the growth from there to `size`
    /// fits is [`PartialFile::open`] called; a refused upload changes
    /// nothing on disk.
    pub fn reserve<P: PartialFile>(
        self: &Arc<Self>,
        path: &RemotePath,
        size: u64,
        partial: P,
        keep: impl FnOnce(u64) -> bool,
    ) -> RequestResult<(P::Opened, Reservation<P>)> {
        let shown = path.to_string();
        let mut ledger = self.ledger.lock().expect("quota lock");
        if ledger.busy.contains_key(path) {
            return Err(RequestError::new(
                ErrorKind::Busy,
                format!("{path}: another upload to this file is in progress"),
            ));
        }
        let existing = partial
            .length()
            .map_err(|error| RequestError::from_io(&error, &shown))?;
        let kept = match existing {
            Some(length) if length > 0 && length <= size && keep(length) => length,
            _ => 0,
        };
        let growth = size - kept;
        let mut tally = self.tally(&mut ledger).map_err(internal)?;
        // Emptying an old partial frees its bytes before the growth counts.
        let emptied = existing.unwrap_or(0) - kept;
        tally.remove(Footprint {
            bytes: emptied,
            entries: 0,
        });
        let created = if existing.is_none() {
            Footprint::file(0)
        } else {
            Footprint::ZERO
        };
        tally.check(
            Footprint {
                bytes: growth,
                entries: created.entries,
            },
            &shown,
        )?;
        let reserved = ledger.reserved.checked_add(growth).ok_or_else(|| {
            RequestError::new(
                ErrorKind::LimitReached,
                format!("{path}: uploads in flight already reserve too many bytes"),
            )
        })?;
        let opened = partial
            .open(kept)
            .map_err(|error| RequestError::from_io(&error, &shown))?;
        tally.add(created);
        ledger
            .apply(&self.db, &self.user, tally.added, tally.removed)
            .map_err(internal)?;
        ledger.reserved = reserved;
        let (holding, give_way) = Holding::new(growth);
        ledger.busy.insert(path.clone(), holding);
        Ok((
            opened,
            Reservation {
                quota: Arc::clone(self),
                path: path.clone(),
                partial: Some(partial),
                growth,
                settled: kept,
                give_way,
            },
        ))
    }

    /// Ends a reservation, with the user's lock held (`ledger`): releases
    /// its promise and charges what its partial holds now. The caller wakes
    /// the uploads waiting to take over once the lock is released.
    fn settle<P: PartialFile>(
        &self,
        ledger: &mut Ledger,
        reservation: &mut Reservation<P>,
        end: End,
    ) {
        let Some(partial) = reservation.partial.take() else {
            return;
        };
        ledger.reserved = ledger.reserved.saturating_sub(reservation.growth);
        ledger.busy.remove(&reservation.path);
        let (added, removed) = match end {
            End::Committed { size, replaced } => (
                Footprint {
                    bytes: size - reservation.settled.min(size),
                    entries: 0,
                },
                replaced,
            ),
            End::Discard => {
                let removed = match partial.remove() {
                    Ok(()) | Err(_) => Footprint::file(reservation.settled),
                };
                (Footprint::ZERO, removed)
            }
            End::Abandoned => match partial.length() {
                Ok(Some(length)) => (
                    Footprint {
                        bytes: length.saturating_sub(reservation.settled),
                        entries: 0,
                    },
                    Footprint {
                        bytes: reservation.settled.saturating_sub(length),
                        entries: 0,
                    },
                ),
                Ok(None) => (Footprint::ZERO, Footprint::file(reservation.settled)),
                Err(error) => {
                    // Unknown: count it on disk at the next measurement.
                    tracing::warn!(user = %self.user, %error, "cannot measure an abandoned partial upload");
                    ledger.measured = false;
                    (Footprint::ZERO, Footprint::ZERO)
                }
            },
        };
        if let Err(error) = ledger.apply(&self.db, &self.user, added, removed) {
            tracing::error!(user = %self.user, %error, "cannot charge an upload's end");
            ledger.measured = false;
        }
    }

    /// Commits a finished upload: runs `place` on its partial file (the
    /// rename over the final name, which returns the footprint of the entry
    /// it replaced, measured right before the rename) and charges the
    /// result, under the user's lock.
    pub fn commit<P: PartialFile>(
        &self,
        mut reservation: Reservation<P>,
        size: u64,
        place: impl FnOnce(&P) -> RequestResult<Footprint>,
    ) -> RequestResult<()> {
        // The rename and its charge happen under one hold of the lock. A
        // failed rename drops the reservation after the lock is released,
        // which charges the partial as an abandoned one.
        let mut ledger = self.ledger.lock().expect("quota lock");
        let Some(partial) = reservation.partial.as_ref() else {
            return Err(RequestError::new(
                ErrorKind::Internal,
                "server error: the upload has already ended",
            ));
        };
        let replaced = place(partial)?;
        self.settle(
            &mut ledger,
            &mut reservation,
            End::Committed { size, replaced },
        );
        drop(ledger);
        self.released.notify_waiters();
        Ok(())
    }

    /// Removes partial files for which `expired` says so and that no upload
    /// is using, and takes them off the ledger; returns how many went.
    pub fn sweep<P: PartialFile>(
        &self,
        partials: impl Iterator<Item = (RemotePathKey, P)>,
        expired: impl Fn(&P) -> bool,
    ) -> usize {
        let mut ledger = self.ledger.lock().expect("quota lock");
        let busy: std::collections::HashSet<String> = ledger
            .busy
            .keys()
            .map(RemotePathKey::of)
            .map(|key| key.0)
            .collect();
        let mut removed = Footprint::ZERO;
        let mut count = 0;
        for (key, partial) in partials {
            if busy.contains(&key.0) || !expired(&partial) {
                continue;
            }
            let length = partial.length().ok().flatten().unwrap_or(0);
            if partial.remove().is_ok() {
                removed += Footprint::file(length);
                count += 1;
            }
        }
        if ledger.measured
            && let Err(error) = ledger.apply(&self.db, &self.user, Footprint::ZERO, removed)
        {
            tracing::error!(user = %self.user, %error, "cannot charge a sweep");
            ledger.measured = false;
        }
        count
    }
}

/// Reservations whose partial file the caller keeps (the
/// [`qftp_store::QuotaLedger`] of [`crate::embedded::ledger`]): the caller
/// tells the ledger what an upload's end did, and each step runs under the
/// user's lock beside the reservations above. Every one of these may write
/// the user database: call them on the blocking pool.
impl UserQuota {
    /// The user's figures as the ledger trait reports them.
    pub fn figures(&self) -> Result<LedgerUsage, LedgerError> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        self.report(&mut ledger)
    }

    /// The figures, with the lock held by the caller.
    fn report(&self, ledger: &mut Ledger) -> Result<LedgerUsage, LedgerError> {
        let figures = ledger
            .figures(&self.db, &self.user)
            .map_err(ledger_failure)?;
        Ok(LedgerUsage {
            used: qftp_store::Footprint {
                bytes: figures.used,
                entries: ledger.entries,
            },
            reserved: ledger.reserved,
            quota: figures.quota,
            measured: ledger.measured,
        })
    }

    /// Reserves `bytes` for an upload of `path`, which will make one entry:
    /// [`LedgerError::Busy`] while another upload holds `path`, a refusal
    /// unless the bytes and the entry fit beside what is used and reserved.
    pub fn hold(&self, path: &RemotePath, bytes: u64) -> Result<LeaseId, LedgerError> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        if ledger.busy.contains_key(path) {
            return Err(LedgerError::Busy);
        }
        let tally = self.tally(&mut ledger).map_err(ledger_failure)?;
        if let Some(shortfall) = tally.shortfall(Footprint { bytes, entries: 1 }) {
            return Err(shortfall.into());
        }
        let reserved = ledger
            .reserved
            .checked_add(bytes)
            .ok_or(LedgerError::QuotaExceeded {
                needed: bytes,
                free: 0,
            })?;
        ledger.reserved = reserved;
        let (holding, _) = Holding::new(bytes);
        let lease = holding.lease;
        ledger.busy.insert(path.clone(), holding);
        Ok(lease)
    }

    /// Whether `lease` still holds `path`.
    pub fn holds(&self, path: &RemotePath, lease: LeaseId) -> bool {
        let ledger = self.ledger.lock().expect("quota lock");
        ledger
            .busy
            .get(path)
            .is_some_and(|holding| holding.lease == lease)
    }

    /// Ends the holding `lease` of `path` and applies `change` to `used`
    /// and the entry count; [`LedgerError::LeaseLost`] (nothing applied)
    /// unless `lease` holds `path`. Wakes the uploads waiting to take over.
    pub fn end_hold(
        &self,
        path: &RemotePath,
        lease: LeaseId,
        change: Change,
    ) -> Result<LedgerUsage, LedgerError> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        let holding = match ledger.busy.remove(path) {
            Some(holding) if holding.lease == lease => holding,
            Some(other) => {
                ledger.busy.insert(path.clone(), other);
                return Err(LedgerError::LeaseLost);
            }
            None => return Err(LedgerError::LeaseLost),
        };
        ledger.reserved = ledger.reserved.saturating_sub(holding.bytes);
        let applied = ledger.apply(
            &self.db,
            &self.user,
            change.added.into(),
            change.removed.into(),
        );
        let result = match applied {
            Ok(()) => self.report(&mut ledger),
            Err(error) => {
                // The reservation is gone either way; what it left on disk
                // is counted at the next measurement.
                ledger.measured = false;
                Err(ledger_failure(error))
            }
        };
        drop(ledger);
        drop(holding);
        self.released.notify_waiters();
        result
    }

    /// A feed that turns `true` once a newer upload of `path` asks the
    /// holding `lease` to give way, already `true` if `lease` no longer
    /// holds `path`.
    pub fn give_way(&self, path: &RemotePath, lease: LeaseId) -> watch::Receiver<bool> {
        let ledger = self.ledger.lock().expect("quota lock");
        match ledger.busy.get(path) {
            Some(holding) if holding.lease == lease => holding.give_way.subscribe(),
            _ => watch::channel(true).1,
        }
    }

    /// Applies `change`, a namespace change outside an upload, refusing it
    /// (nothing applied) if what it adds beyond what it removes does not
    /// fit beside what is used and reserved.
    pub fn adjust(&self, change: Change) -> Result<LedgerUsage, LedgerError> {
        let (added, removed) = (
            Footprint::from(change.added),
            Footprint::from(change.removed),
        );
        let growth = added.saturating_sub(removed);
        let mut ledger = self.ledger.lock().expect("quota lock");
        let tally = self.tally(&mut ledger).map_err(ledger_failure)?;
        if growth != Footprint::ZERO
            && let Some(shortfall) = tally.shortfall(growth)
        {
            return Err(shortfall.into());
        }
        ledger
            .apply(&self.db, &self.user, added, removed)
            .map_err(ledger_failure)?;
        self.report(&mut ledger)
    }

    /// Makes `measured`, what the home holds now, the ledger's figures and
    /// marks the account measured; reservations in flight stay.
    pub fn recount_to(&self, measured: Footprint) -> Result<LedgerUsage, LedgerError> {
        let mut ledger = self.ledger.lock().expect("quota lock");
        self.adopt(&mut ledger, measured).map_err(ledger_failure)?;
        self.report(&mut ledger)
    }
}

/// The ledger trait's error for a database error.
pub(crate) fn ledger_failure(error: DbError) -> LedgerError {
    match error {
        DbError::NoSuchUser(name) => LedgerError::Store(StoreError::UnknownUser(name)),
        error => LedgerError::Store(StoreError::Unavailable(error.to_string())),
    }
}

/// The name a partial upload of a path has in the staging directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemotePathKey(pub String);

impl RemotePathKey {
    /// The key of `path`: the first 128 bits of the BLAKE3 of its printed
    /// form, in hex. One path, one partial; another path (a directory
    /// renamed meanwhile, say) never shares it.
    pub fn of(path: &RemotePath) -> RemotePathKey {
        let hash = blake3::hash(path.to_string().as_bytes());
        RemotePathKey(hex::encode(&hash.as_bytes()[..16]))
    }
}

/// How a reservation ended.
#[derive(Debug, Clone, Copy)]
enum End {
    /// The partial became the final file of `size` bytes, replacing an
    /// entry of `replaced`.
    Committed { size: u64, replaced: Footprint },
    /// The partial is to be removed.
    Discard,
    /// The upload stopped; the partial stays as it is.
    Abandoned,
}

/// The partial file of one upload, as the ledger needs to see it.
pub trait PartialFile {
    /// What [`PartialFile::open`] gives the upload.
    type Opened;
    /// Its length on disk, `None` when it does not exist.
    fn length(&self) -> std::io::Result<Option<u64>>;
    /// Opens it (creating it if needed), keeping its first `keep` bytes.
    fn open(&self, keep: u64) -> std::io::Result<Self::Opened>;
    /// Removes it.
    fn remove(&self) -> std::io::Result<()>;
}

/// Room promised to one upload and its partial file; settled exactly once:
/// by [`UserQuota::commit`], [`Reservation::discard`], or when dropped (the
/// upload was abandoned and its partial is charged as it is).
#[derive(Debug)]
pub struct Reservation<P: PartialFile> {
    quota: Arc<UserQuota>,
    path: RemotePath,
    partial: Option<P>,
    /// Bytes promised: what the partial may still grow by.
    growth: u64,
    /// Bytes of the partial already charged to `used`.
    settled: u64,
    give_way: watch::Receiver<bool>,
}

impl<P: PartialFile> Reservation<P> {
    /// Bytes currently reserved.
    pub fn bytes(&self) -> u64 {
        self.growth
    }

    /// Bytes of an existing partial that the upload continues from.
    pub fn kept(&self) -> u64 {
        self.settled
    }

    /// Removes the partial file (its content was wrong) and releases the
    /// promise; nothing stays charged.
    pub fn discard(mut self) {
        let quota = Arc::clone(&self.quota);
        let mut ledger = quota.ledger.lock().expect("quota lock");
        quota.settle(&mut ledger, &mut self, End::Discard);
        drop(ledger);
        quota.released.notify_waiters();
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

impl<P: PartialFile> Drop for Reservation<P> {
    fn drop(&mut self) {
        if self.partial.is_some() {
            let quota = Arc::clone(&self.quota);
            let mut ledger = quota.ledger.lock().expect("quota lock");
            quota.settle(&mut ledger, self, End::Abandoned);
            drop(ledger);
            quota.released.notify_waiters();
        }
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
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// A partial file held in memory: its length, or `None` when absent.
    #[derive(Debug, Clone, Default)]
    struct MemoryPartial(Arc<StdMutex<Option<u64>>>);

    impl MemoryPartial {
        fn set(&self, length: Option<u64>) {
            *self.0.lock().unwrap() = length;
        }
        fn get(&self) -> Option<u64> {
            *self.0.lock().unwrap()
        }
    }

    impl PartialFile for MemoryPartial {
        type Opened = ();
        fn length(&self) -> std::io::Result<Option<u64>> {
            Ok(self.get())
        }
        fn open(&self, keep: u64) -> std::io::Result<()> {
            self.set(Some(keep));
            Ok(())
        }
        fn remove(&self) -> std::io::Result<()> {
            self.set(None);
            Ok(())
        }
    }

    const LIMITS: LedgerLimits = LedgerLimits {
        max_entries: 10,
        entry_cost: 100,
    };

    fn ledger(quota: Option<u64>) -> (tempfile::TempDir, Arc<UserDb>, Arc<UserQuota>) {
        let temp = tempfile::tempdir().unwrap();
        let db = Arc::new(UserDb::open(&temp.path().join("users.db")).unwrap());
        db.add_user("alice", "hash", quota, None).unwrap();
        let book = QuotaBook::new(Arc::clone(&db), LIMITS);
        let quota = book.user(&db.user("alice").unwrap().unwrap());
        quota.refresh(|| Ok(Footprint::ZERO)).unwrap();
        (temp, db, quota)
    }

    fn path(text: &str) -> RemotePath {
        RemotePath::parse(text).unwrap()
    }

    fn used(db: &UserDb) -> u64 {
        db.usage("alice").unwrap().0
    }

    #[test]
    fn reservations_together_stay_inside_the_quota() {
        let (_temp, db, quota) = ledger(Some(1000));
        let first = MemoryPartial::default();
        let (_, running) = quota
            .reserve(&path("/a"), 600, first.clone(), |_| false)
            .unwrap();
        let error = quota
            .reserve(&path("/b"), 500, MemoryPartial::default(), |_| false)
            .unwrap_err();
        assert_eq!(
            error.kind,
            ErrorKind::QuotaExceeded {
                needed: 500,
                free: 400
            }
        );
        first.set(Some(600));
        quota.commit(running, 600, |_| Ok(Footprint::ZERO)).unwrap();
        assert_eq!(used(&db), 600);
        assert_eq!(quota.usage().unwrap().reserved, 0);
        // Replacing the 600-byte file needs room for the new copy beside the
        // old one until the rename, since both are on disk meanwhile.
        let error = quota
            .reserve(&path("/a"), 600, MemoryPartial::default(), |_| false)
            .unwrap_err();
        assert!(matches!(error.kind, ErrorKind::QuotaExceeded { .. }));
        let partial = MemoryPartial::default();
        let (_, replacing) = quota
            .reserve(&path("/a"), 300, partial.clone(), |_| false)
            .unwrap();
        partial.set(Some(300));
        quota
            .commit(replacing, 300, |_| Ok(Footprint::file(600)))
            .unwrap();
        assert_eq!(used(&db), 300);
        assert_eq!(
            quota.entries(),
            1,
            "one file: a partial made, a file replaced"
        );
    }

    #[test]
    fn an_abandoned_partial_is_charged_until_resumed_or_swept() {
        let (_temp, db, quota) = ledger(Some(1000));
        let partial = MemoryPartial::default();
        let (_, reservation) = quota
            .reserve(&path("/a"), 800, partial.clone(), |_| true)
            .unwrap();
        assert_eq!(quota.entries(), 1);
        partial.set(Some(300));
        drop(reservation);
        assert_eq!(used(&db), 300, "what was written stays charged");
        assert_eq!(quota.usage().unwrap().reserved, 0);
        // The charge counts against new uploads.
        let error = quota
            .reserve(&path("/b"), 800, MemoryPartial::default(), |_| false)
            .unwrap_err();
        assert_eq!(
            error.kind,
            ErrorKind::QuotaExceeded {
                needed: 800,
                free: 700
            }
        );
        // A resume keeps the 300 bytes and reserves only the rest.
        let (_, resumed) = quota
            .reserve(&path("/a"), 800, partial.clone(), |_| true)
            .unwrap();
        assert_eq!((resumed.kept(), resumed.bytes()), (300, 500));
        partial.set(Some(800));
        quota.commit(resumed, 800, |_| Ok(Footprint::ZERO)).unwrap();
        assert_eq!(used(&db), 800);
        // Starting over empties the partial and frees its bytes at once.
        let other = MemoryPartial::default();
        let (_, first) = quota
            .reserve(&path("/c"), 100, other.clone(), |_| false)
            .unwrap();
        other.set(Some(100));
        drop(first);
        assert_eq!(used(&db), 900);
        let (_, again) = quota
            .reserve(&path("/c"), 100, other.clone(), |_| false)
            .unwrap();
        assert_eq!((again.kept(), used(&db)), (0, 800));
        // A sweep of an unused partial frees it; one in use is left alone.
        other.set(Some(40));
        let swept = quota.sweep(
            vec![(RemotePathKey::of(&path("/c")), other.clone())].into_iter(),
            |_| true,
        );
        assert_eq!((swept, other.get()), (0, Some(40)));
        drop(again);
        assert_eq!(used(&db), 840);
        let swept = quota.sweep(
            vec![(RemotePathKey::of(&path("/c")), other.clone())].into_iter(),
            |_| true,
        );
        assert_eq!((swept, other.get(), used(&db)), (1, None, 800));
    }

    #[test]
    fn a_discarded_upload_leaves_nothing_charged() {
        let (_temp, db, quota) = ledger(None);
        let partial = MemoryPartial::default();
        let (_, reservation) = quota
            .reserve(&path("/a"), 100, partial.clone(), |_| false)
            .unwrap();
        partial.set(Some(100));
        reservation.discard();
        assert_eq!((used(&db), quota.entries(), partial.get()), (0, 0, None));
        assert_eq!(quota.usage().unwrap().reserved, 0);
    }

    #[test]
    fn a_failed_rename_charges_the_partial_as_abandoned() {
        let (_temp, db, quota) = ledger(None);
        let partial = MemoryPartial::default();
        let (_, reservation) = quota
            .reserve(&path("/a"), 100, partial.clone(), |_| false)
            .unwrap();
        partial.set(Some(100));
        let failed = quota.commit(reservation, 100, |_| {
            Err(RequestError::new(ErrorKind::IsADirectory, "in the way"))
        });
        assert!(failed.is_err());
        assert_eq!((used(&db), quota.entries()), (100, 1));
        assert!(!quota.is_busy(&path("/a")));
    }

    #[test]
    fn one_path_has_one_upload_and_a_newer_one_takes_over() {
        let (_temp, _db, quota) = ledger(None);
        let (_, stale) = quota
            .reserve(&path("/a"), 1, MemoryPartial::default(), |_| false)
            .unwrap();
        let error = quota
            .reserve(&path("/a"), 1, MemoryPartial::default(), |_| false)
            .unwrap_err();
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
        quota
            .reserve(&path("/a"), 1, MemoryPartial::default(), |_| false)
            .unwrap();
    }

    #[test]
    fn changes_are_checked_and_counted_even_when_they_fail_halfway() {
        let (_temp, db, quota) = ledger(Some(250));
        quota
            .change(|tally| {
                let cost = Footprint::node(tally.entry_cost());
                tally.check(cost, "/d1")?;
                tally.add(cost);
                tally.check(cost, "/d2")?;
                tally.add(cost);
                Ok(())
            })
            .unwrap();
        assert_eq!((used(&db), quota.entries()), (200, 2));
        let error = quota
            .change(|tally| tally.check(Footprint::node(100), "/d3"))
            .unwrap_err();
        assert!(matches!(error.kind, ErrorKind::QuotaExceeded { .. }));
        // A removal that fails after freeing part of its tree still frees it.
        let failed: RequestResult<()> = quota.change(|tally| {
            tally.remove(Footprint::node(100));
            Err(RequestError::new(ErrorKind::Internal, "disk error"))
        });
        assert!(failed.is_err());
        assert_eq!((used(&db), quota.entries()), (100, 1));
    }

    #[test]
    fn the_entry_limit_counts_everything() {
        let (_temp, _db, quota) = ledger(None);
        quota
            .change(|tally| {
                for _ in 0..LIMITS.max_entries {
                    tally.check(Footprint::file(0), "/f")?;
                    tally.add(Footprint::file(0));
                }
                Ok(())
            })
            .unwrap();
        let error = quota
            .change(|tally| tally.check(Footprint::file(0), "/one-more"))
            .unwrap_err();
        assert!(
            error.message.contains("limits.max_entries_per_user = 10"),
            "{}",
            error.message
        );
        let error = quota
            .reserve(&path("/upload"), 1, MemoryPartial::default(), |_| false)
            .unwrap_err();
        assert!(error.message.contains("max_entries_per_user"));
    }

    #[test]
    fn each_account_is_measured_once_per_process() {
        let temp = tempfile::tempdir().unwrap();
        let db = Arc::new(UserDb::open(&temp.path().join("users.db")).unwrap());
        db.add_user("alice", "hash", Some(100), None).unwrap();
        // A previous server process renamed a file into place and was
        // killed before charging it: the database says 10, the disk 40.
        db.set_used("alice", 10).unwrap();
        let book = QuotaBook::new(Arc::clone(&db), LIMITS);
        let record = db.user("alice").unwrap().unwrap();
        let quota = book.user(&record);
        quota.refresh(|| Ok(Footprint::file(40))).unwrap();
        assert_eq!((used(&db), quota.entries()), (40, 1));
        quota
            .refresh(|| panic!("measured only once per process"))
            .unwrap();
        // An admin's new quota is read at the next refresh.
        db.set_quota("alice", Some(20)).unwrap();
        quota.refresh(|| Ok(Footprint::ZERO)).unwrap();
        assert_eq!(quota.usage().unwrap().quota, Some(20));
        // The same name, deleted and added again, is another account.
        // (Password hashes are salted, so a new account's always differs.)
        db.delete_user("alice").unwrap();
        db.add_user("alice", "another salted hash", Some(100), None)
            .unwrap();
        let again = book.user(&db.user("alice").unwrap().unwrap());
        assert!(!again.is_measured());
        again.refresh(|| Ok(Footprint::ZERO)).unwrap();
        assert_eq!((used(&db), again.entries()), (0, 0));
        // A failed measurement refuses the login and is tried again later.
        let fresh =
            QuotaBook::new(Arc::clone(&db), LIMITS).user(&db.user("alice").unwrap().unwrap());
        assert!(
            fresh
                .refresh(|| Err(std::io::Error::other("unreadable")))
                .is_err()
        );
        fresh.refresh(|| Ok(Footprint::ZERO)).unwrap();
    }
}
