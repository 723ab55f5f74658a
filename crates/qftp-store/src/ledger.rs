//! [`QuotaLedger`]: what each user has on disk, and what uploads in flight
//! have reserved.
//!
//! # The model
//!
//! Per user the ledger holds `used` (bytes and entries stored, partial
//! uploads included), `reserved` (bytes promised to uploads in flight) and
//! the quota (from the [`crate::UserStore`]). An upload is keyed by user and
//! path ([`UploadKey`]); before its first byte is accepted it
//! [`reserve`](QuotaLedger::reserve)s the growth of its partial, in one step
//! that checks `used + reserved + growth <= quota` and records the
//! reservation, so uploads racing on any number of connections and nodes
//! never overshoot together. A PostgreSQL ledger does this in ONE
//! conditional statement:
//!
//! ```sql
//! WITH charged AS (
//!   UPDATE ledger SET reserved = reserved + $growth
//!    WHERE user_name = $user AND used + reserved + $growth <= coalesce(quota, 'Infinity')
//!   RETURNING user_name)
//! INSERT INTO reservations (user_name, path, lease_id, bytes, held, holder, expires)
//! SELECT user_name, $path, $lease, $growth, $held, $node, now() + $lease_time FROM charged;
//! ```
//!
//! with a unique index on `(user_name, path)` (a second upload of the same
//! path is [`LedgerError::Busy`]).
//!
//! Every reservation has a **lease** ([`Reservation::lease`], until
//! [`Reservation::expires`]): its holder [`renew`](QuotaLedger::renew)s it
//! while the upload runs, reporting the bytes its partial holds. A node
//! that crashed stops renewing; once the lease expired,
//! [`take_over`](QuotaLedger::take_over) by another upload of the same key
//! releases it (charging the partial as last reported, so that it is paid
//! for until resumed or swept) and the new upload reserves afresh. A holder
//! whose lease was lost gets [`LedgerError::LeaseLost`] from every further
//! call and must not make its file visible.
//!
//! # Ending an upload
//!
//! Every reservation ends exactly once, by [`commit`](QuotaLedger::commit)
//! (the file became visible: `used` gains the file and loses what it
//! replaced and what its partial was charged before) or
//! [`release`](QuotaLedger::release) (abandoned: the partial stays charged
//! for what it holds; discarded: nothing stays).
//!
//! The order of the file becoming visible and its charge: the embedded
//! ledger renames and charges inside one critical section of the user, so
//! no other change of that user sees one without the other. A ledger in
//! another system than the files (PostgreSQL beside an object store) makes
//! the file visible only while holding a live lease, then commits; a crash
//! between the two leaves the ledger charging the partial instead of the
//! file, which [`recount`](QuotaLedger::recount) (run when a home is first
//! used after a start) repairs.
//!
//! Namespace changes other than uploads (mkdir, link, rename, remove, the
//! sweep of old partials) go through [`adjust`](QuotaLedger::adjust).

use std::ops::{Add, AddAssign};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::error::LedgerError;
use crate::future::BoxFuture;

/// Bytes and entries, as charged to a user: a file costs its length and one
/// entry, a directory or a link a fixed number of bytes and one entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes charged to the byte quota.
    pub bytes: u64,
    /// Entries charged to the entry limit.
    pub entries: u64,
}

impl Footprint {
    /// Nothing.
    pub const ZERO: Footprint = Footprint {
        bytes: 0,
        entries: 0,
    };

    /// A regular file of `length` bytes.
    pub fn file(length: u64) -> Footprint {
        Footprint {
            bytes: length,
            entries: 1,
        }
    }
}

impl Add for Footprint {
    type Output = Footprint;

    fn add(self, other: Footprint) -> Footprint {
        Footprint {
            bytes: self.bytes.saturating_add(other.bytes),
            entries: self.entries.saturating_add(other.entries),
        }
    }
}

impl AddAssign for Footprint {
    fn add_assign(&mut self, other: Footprint) {
        *self = *self + other;
    }
}

/// What a change did to a home: `added` now exists, `removed` is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Change {
    /// What the change created.
    pub added: Footprint,
    /// What the change removed.
    pub removed: Footprint,
}

/// One upload: its user and the path it writes (as the protocol spells a
/// normalized [`qftp_proto::path::RemotePath`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadKey {
    /// The user whose quota pays.
    pub user: String,
    /// The target path in their home.
    pub path: String,
}

/// Identifies one holding of a reservation; a take-over makes a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub u128);

/// A live reservation, held by the upload that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The upload it pays for.
    pub key: UploadKey,
    /// This holding.
    pub lease: LeaseId,
    /// Bytes reserved (the growth of the partial to the declared size).
    pub bytes: u64,
    /// When the lease ends unless renewed.
    pub expires: SystemTime,
}

/// A user's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerUsage {
    /// Bytes and entries stored, partials included.
    pub used: Footprint,
    /// Bytes promised to uploads in flight.
    pub reserved: u64,
    /// The byte quota; `None` is unlimited.
    pub quota: Option<u64>,
    /// Whether the home was measured ([`QuotaLedger::recount`]) since this
    /// node started using the ledger for this account.
    pub measured: bool,
}

impl LedgerUsage {
    /// Bytes still free for new reservations, or `None` when unlimited.
    pub fn free(&self) -> Option<u64> {
        self.quota
            .map(|quota| quota.saturating_sub(self.used.bytes.saturating_add(self.reserved)))
    }
}

/// The quota ledger: the one truth of what each user has on disk.
pub trait QuotaLedger: Send + Sync + std::fmt::Debug {
    /// A user's figures; a quota set in the [`crate::UserStore`] shows here
    /// within a second.
    fn usage<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>>;

    /// Reserves `bytes` for the upload `key`, with a lease of `lease`
    /// (renew it before it ends). In one step: refuses with
    /// [`LedgerError::Busy`] if a live reservation holds `key`, with
    /// [`LedgerError::QuotaExceeded`] unless `used + reserved + bytes <=
    /// quota` (and [`LedgerError::TooManyEntries`] if one more entry would
    /// pass the entry limit), else records the reservation. Concurrent
    /// calls never together reserve past the quota.
    fn reserve<'a>(
        &'a self,
        key: &'a UploadKey,
        bytes: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Reservation, LedgerError>>;

    /// Extends the lease of `reservation` by `lease` from now and records
    /// that its partial holds `held` bytes (what a take-over after a crash
    /// charges). [`LedgerError::LeaseLost`] if it expired or was taken over.
    fn renew<'a>(
        &'a self,
        reservation: &'a Reservation,
        held: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Reservation, LedgerError>>;

    /// Ends `reservation` with its file visible: the reservation goes and
    /// `used` becomes `used + change.added - change.removed` (`added`: the
    /// file; `removed`: what it replaced plus what its partial was charged
    /// before). [`LedgerError::LeaseLost`] (nothing applied) if the lease
    /// was lost; see the module docs for the order of visibility and
    /// charge.
    fn commit(
        &self,
        reservation: Reservation,
        change: Change,
    ) -> BoxFuture<'_, Result<LedgerUsage, LedgerError>>;

    /// Ends `reservation` without a commit: the reservation goes and `used`
    /// takes `change` (abandoned: `added` is what the partial holds beyond
    /// what it was charged before; discarded: `removed` is what it was
    /// charged before). Releasing a reservation whose lease was lost is a
    /// no-op returning [`LedgerError::LeaseLost`].
    fn release(
        &self,
        reservation: Reservation,
        change: Change,
    ) -> BoxFuture<'_, Result<(), LedgerError>>;

    /// Makes way for a new upload of `key`: if a live reservation holds it,
    /// asks its holder to give way ([`QuotaLedger::give_way`]) and waits up
    /// to `patience` for it to end; a reservation whose lease expired (its
    /// node crashed) is released, its partial charged as last renewed.
    /// `Ok` once no live reservation holds `key`; [`LedgerError::Busy`] if
    /// one still does after `patience`.
    fn take_over<'a>(
        &'a self,
        key: &'a UploadKey,
        patience: Duration,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;

    /// A subscription that turns `true` once another upload of the same key
    /// asks `reservation`'s holder to give way, or its lease is lost; the
    /// holder then stops, keeps its partial, and releases.
    fn give_way(&self, reservation: &Reservation) -> watch::Receiver<bool>;

    /// Applies a namespace change other than an upload's end (mkdir, link,
    /// rename, remove, sweep) in one step; a change that adds more than it
    /// removes is refused (nothing applied) with
    /// [`LedgerError::QuotaExceeded`] or [`LedgerError::TooManyEntries`]
    /// unless it fits beside what is used and reserved.
    fn adjust<'a>(
        &'a self,
        user: &'a str,
        change: Change,
    ) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>>;

    /// Replaces `used` with `measured`, what the home holds now (partials
    /// included), and marks the account measured. Reservations in flight
    /// stay. Called at the first use of a home after a start, and by an
    /// administrator's rescan.
    fn recount<'a>(
        &'a self,
        user: &'a str,
        measured: Footprint,
    ) -> BoxFuture<'a, Result<LedgerUsage, LedgerError>>;
}
