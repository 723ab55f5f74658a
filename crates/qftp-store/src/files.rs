//! [`FileStore`]: the files of every home; [`HomeFiles`]: one home;
//! [`OpenUpload`]: one upload in progress.
//!
//! Paths are [`RemotePath`]s, already normalized and free of reserved names
//! (`..` cannot leave the home lexically); an implementation still refuses
//! anything that would lead outside the home in its own terms (symlinks for
//! a directory tree) with [`ErrorKind::OutsideHome`]. Errors name paths as
//! the user wrote them ([`RemotePath`]'s display), never a server path or
//! key.
//!
//! **Quota.** A file store is built on a [`crate::QuotaLedger`] and charges
//! every namespace change to it itself: a change that takes room is checked
//! (refused with [`ErrorKind::QuotaExceeded`]) before it happens, what it
//! frees is credited after, and an upload reserves its growth in
//! [`HomeFiles::begin_upload`] before any byte is accepted. The embedded
//! store does each change and its charge under the user's lock.
//!
//! **Uploads.** An upload writes a partial that no request can see, and
//! [`OpenUpload::commit`] makes it the file in one visible step (a rename;
//! an object store's completion of a multipart upload), only with a
//! [`VerifiedHash`]. A partial kept after an interruption is offered for a
//! resume by [`OpenUpload::resume_point`] and [`OpenUpload::prefix_hash`]:
//! an object store writing fixed parts (8 MiB) and keeping each part's
//! BLAKE3 chaining value answers for whole parts without reading them
//! back, and loses its lease if another node took the upload over, which
//! [`OpenUpload::commit`] reports as [`FileError::LeaseLost`].

use std::time::{Duration, SystemTime};

#[cfg(doc)]
use qftp_proto::ErrorKind;
use qftp_proto::path::RemotePath;
use qftp_proto::{EntryInfo, VerifiedHash};
use tokio::sync::watch;

use crate::error::FileError;
use crate::future::BoxFuture;
use crate::ledger::Footprint;
use crate::users::UserRecord;

/// The files of every home.
pub trait FileStore: Send + Sync + std::fmt::Debug {
    /// The home of `user`, created if it does not exist yet. Cheap to call
    /// per connection; the handle may be kept for the connection's life.
    fn home<'a>(
        &'a self,
        user: &'a UserRecord,
    ) -> BoxFuture<'a, Result<std::sync::Arc<dyn HomeFiles>, FileError>>;
}

/// Pages of entries: a directory listing or a walk.
pub trait EntryPages: Send + std::fmt::Debug {
    /// The next page of at most an implementation-chosen bounded number of
    /// entries, or `None` once all were given. A listing gives names; a walk
    /// gives paths relative to the walked directory with `/` separators,
    /// each directory before what it holds.
    fn next_page(&mut self) -> BoxFuture<'_, Result<Option<Vec<EntryInfo>>, FileError>>;
}

/// What [`HomeFiles::begin_upload`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStart {
    /// The final path.
    pub path: RemotePath,
    /// The declared size of the whole file.
    pub size: u64,
    /// Whether a partial kept from an earlier attempt may be offered for a
    /// resume (else it is started over).
    pub resume: bool,
    /// How long the upload's reservation is leased before it must be
    /// renewed (an embedded store, whose leases end with the process, may
    /// ignore it).
    pub lease: Duration,
}

/// One user's home.
pub trait HomeFiles: Send + Sync + std::fmt::Debug {
    /// What `path` is (a symlink is described, not followed).
    /// [`ErrorKind::NotFound`] if nothing is there.
    fn stat<'a>(&'a self, path: &'a RemotePath) -> BoxFuture<'a, Result<EntryInfo, FileError>>;

    /// The entries of the directory `path`, page by page, in no promised
    /// order. [`ErrorKind::NotADirectory`] if it is not one.
    fn list<'a>(
        &'a self,
        path: &'a RemotePath,
    ) -> BoxFuture<'a, Result<Box<dyn EntryPages>, FileError>>;

    /// Everything beneath the directory `path`, any depth, page by page,
    /// with each regular file's BLAKE3 when `hashes`.
    fn walk<'a>(
        &'a self,
        path: &'a RemotePath,
        hashes: bool,
    ) -> BoxFuture<'a, Result<Box<dyn EntryPages>, FileError>>;

    /// Makes the directory `path`; with `parents`, also the missing ones
    /// above it and no error if it exists. Charged to the ledger.
    fn mkdir<'a>(
        &'a self,
        path: &'a RemotePath,
        parents: bool,
    ) -> BoxFuture<'a, Result<(), FileError>>;

    /// Makes a symlink at `path` to the canonical relative `target`, which
    /// must stay inside the home from where the link is (else
    /// [`ErrorKind::OutsideHome`]). Charged to the ledger.
    fn link<'a>(
        &'a self,
        path: &'a RemotePath,
        target: &'a str,
    ) -> BoxFuture<'a, Result<(), FileError>>;

    /// Removes the entry at `path`; a directory only if empty, unless
    /// `recursive`. The home itself cannot be removed. What it frees is
    /// credited to the ledger. [`ErrorKind::NotFound`] if nothing is there.
    fn remove<'a>(
        &'a self,
        path: &'a RemotePath,
        recursive: bool,
    ) -> BoxFuture<'a, Result<(), FileError>>;

    /// Moves `from` to `to`, replacing a file at `to` (whose cost is
    /// credited) but never a directory; a directory cannot move beneath
    /// itself.
    fn rename<'a>(
        &'a self,
        from: &'a RemotePath,
        to: &'a RemotePath,
    ) -> BoxFuture<'a, Result<(), FileError>>;

    /// Up to `max` bytes of the regular file `path` from `offset` (fewer
    /// only at its end; none at or past it).
    fn read_at<'a>(
        &'a self,
        path: &'a RemotePath,
        offset: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, FileError>>;

    /// What the whole home holds, as the ledger charges it (partials
    /// included), for [`crate::QuotaLedger::recount`].
    fn measure(&self) -> BoxFuture<'_, Result<Footprint, FileError>>;

    /// Opens an upload of `start.path`: reserves its growth in the ledger
    /// (refused with [`ErrorKind::QuotaExceeded`], or [`ErrorKind::Busy`]
    /// while another upload of the path is in flight), and finds or makes
    /// its partial. The target's parent must be a directory.
    fn begin_upload<'a>(
        &'a self,
        start: UploadStart,
    ) -> BoxFuture<'a, Result<Box<dyn OpenUpload>, FileError>>;
}

/// An upload in progress. It ends exactly once, by [`OpenUpload::commit`]
/// or [`OpenUpload::abort`]; dropped without either, it is abandoned as by
/// `abort(keep: true)`.
pub trait OpenUpload: Send + std::fmt::Debug {
    /// The largest length from which this upload can continue: what a kept
    /// partial holds (an object store: rounded down to its whole parts);
    /// 0 for a new one or when `resume` was not asked for.
    fn resume_point(&self) -> u64;

    /// The BLAKE3 of the partial's first `length` bytes, for
    /// `length <= resume_point()` (else [`ErrorKind::Protocol`]).
    fn prefix_hash(&mut self, length: u64) -> BoxFuture<'_, Result<[u8; 32], FileError>>;

    /// Continues the partial from `offset` (at most `resume_point()`;
    /// anything after it is dropped): later [`OpenUpload::append`]s write
    /// from there.
    fn continue_at(&mut self, offset: u64) -> BoxFuture<'_, Result<(), FileError>>;

    /// Appends `data`; the partial never grows past the declared size
    /// ([`ErrorKind::IntegrityMismatch`] if it would).
    fn append<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<(), FileError>>;

    /// A subscription that turns `true` when another upload of the same path
    /// asks this one to give way (or its lease was lost): stop and abort
    /// with `keep: true`.
    fn give_way(&self) -> watch::Receiver<bool>;

    /// Makes the partial, exactly the declared size and whose whole BLAKE3
    /// is `hash`, the file at the final path with modification time
    /// `mtime`, durable before this returns, and charges it in the ledger
    /// (what it replaced credited). [`FileError::LeaseLost`] if the lease
    /// was lost (nothing visible changes); [`ErrorKind::IntegrityMismatch`]
    /// if the partial is not the declared size.
    fn commit(
        self: Box<Self>,
        hash: VerifiedHash,
        mtime: SystemTime,
    ) -> BoxFuture<'static, Result<(), FileError>>;

    /// Ends without a commit: with `keep`, the partial stays for a resume
    /// and is charged for what it holds; without, it is removed and nothing
    /// stays charged.
    fn abort(self: Box<Self>, keep: bool) -> BoxFuture<'static, Result<(), FileError>>;
}
