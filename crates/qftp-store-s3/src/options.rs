//! [`S3Options`]: how a store behaves beyond what it stores.

use std::time::Duration;

use crate::danger::BeforeDatabaseCommit;

/// How a store behaves beyond what the database and the bucket hold.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Bytes a directory or a symlink costs (a file costs its length).
    pub entry_cost: u64,
    /// How long [`qftp_store::HomeFiles::begin_upload`] waits for another
    /// upload of the same path to give way.
    pub take_over_patience: Duration,
    /// A pause between completing an upload's object and the database
    /// transaction that makes it visible (see [`crate::danger`]); `None`
    /// in any real use.
    pub before_database_commit: Option<BeforeDatabaseCommit>,
}

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options {
            entry_cost: 4096,
            take_over_patience: Duration::from_secs(10),
            before_database_commit: None,
        }
    }
}

/// What [`crate::S3Store::sweep`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRules {
    /// An upload untouched this long, whose lease expired (or that was kept
    /// for a resume), is aborted and its partial freed.
    pub abandoned_after: Duration,
    /// An object in the bucket that no file and no upload names, older
    /// than this, is deleted (younger ones may belong to an upload being
    /// recorded).
    pub orphan_grace: Duration,
}

impl Default for SweepRules {
    fn default() -> SweepRules {
        SweepRules {
            abandoned_after: Duration::from_secs(7 * 24 * 3600),
            orphan_grace: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Abandoned uploads aborted.
    pub uploads_aborted: u64,
    /// Orphan objects deleted.
    pub orphans_deleted: u64,
}
