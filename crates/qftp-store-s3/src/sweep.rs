//! The sweep: what crashes and abandoned uploads leave behind.
//!
//! 1. Uploads untouched for [`SweepRules::abandoned_after`] whose lease
//!    expired (or that were kept for a resume) are aborted: an expired
//!    reservation is released through the ledger's take-over (charging
//!    what its holder reported, as for any dead node), then in one
//!    transaction the upload's charge is credited and its row removed;
//!    after it, its multipart upload is aborted and its objects deleted.
//! 2. Objects under the blob and partial folders that no entry and no
//!    upload names, older than [`SweepRules::orphan_grace`], are deleted:
//!    what a crash between completing an object and the database commit
//!    leaves, or a removal whose deletes failed.
//!
//! A multipart upload created but never recorded (a crash right after its
//! creation) is invisible to a listing of objects; a bucket lifecycle rule
//! aborting incomplete multipart uploads after some days catches those.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use object_store::ObjectStore as _;
use object_store::path::Path;
use qftp_proto::path::RemotePath;
use qftp_store::{Change, FileError, Footprint, LedgerError, QuotaLedger as _, UploadKey};

use crate::bucket::ObjectKind;
use crate::error::{from_ledger, storage};
use crate::options::{SweepReport, SweepRules};
use crate::shared::Shared;
use crate::upload::discard_objects;

/// Objects looked up in the database at once.
const BATCH: usize = 500;

/// Runs both steps of the sweep.
pub(crate) async fn sweep(shared: &Shared, rules: SweepRules) -> Result<SweepReport, FileError> {
    let uploads_aborted = abort_abandoned(shared, rules.abandoned_after).await?;
    let mut orphans_deleted = 0;
    for kind in [ObjectKind::Blob, ObjectKind::Partial] {
        orphans_deleted += delete_orphans(shared, kind, rules.orphan_grace).await?;
    }
    Ok(SweepReport {
        uploads_aborted,
        orphans_deleted,
    })
}

/// Step 1: the abandoned uploads.
async fn abort_abandoned(shared: &Shared, abandoned_after: Duration) -> Result<u64, FileError> {
    let home = RemotePath::root();
    let candidates = {
        let client = shared.client(&home).await?;
        client
            .query(
                "SELECT user_name, path, blob FROM file_uploads
                  WHERE updated < now() - make_interval(secs => $1)
                    AND (lease IS NULL OR expires < now())",
                &[&abandoned_after.as_secs_f64()],
            )
            .await
            .map_err(|error| storage(&home, error))?
    };
    let mut aborted = 0;
    for row in candidates {
        let (user, stored_path, blob): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let path = RemotePath::parse(&stored_path).unwrap_or_default();
        let key = UploadKey {
            user: user.clone(),
            path: path.to_string(),
        };
        match shared.ledger.take_over(&key, Duration::ZERO).await {
            Ok(()) => {}
            // Renewed meanwhile: alive after all.
            Err(LedgerError::Busy) => continue,
            Err(error) => return Err(from_ledger(&path, error)),
        }
        let mut client = shared.client(&path).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| storage(&path, error))?;
        let Some(row) = transaction
            .query_opt(
                "DELETE FROM file_uploads
                  WHERE blob = $1 AND (lease IS NULL OR expires < now())
                  RETURNING multipart, charged_bytes, charged_entries, lease IS NOT NULL, reported",
                &[&blob],
            )
            .await
            .map_err(|error| storage(&path, error))?
        else {
            continue;
        };
        let multipart: Option<String> = row.get(0);
        let (bytes, entries, abandoned, reported): (i64, i64, bool, i64) =
            (row.get(1), row.get(2), row.get(3), row.get(4));
        let mut charged = Footprint {
            bytes: u64::try_from(bytes).unwrap_or(0),
            entries: u64::try_from(entries).unwrap_or(0),
        };
        if abandoned {
            charged.bytes += u64::try_from(reported).unwrap_or(0);
            charged.entries += u64::from(reported > 0);
        }
        shared
            .ledger
            .adjust_in(
                &*transaction,
                &user,
                Change {
                    added: Footprint::ZERO,
                    removed: charged,
                },
            )
            .await
            .map_err(|error| from_ledger(&path, error))?;
        transaction
            .commit()
            .await
            .map_err(|error| storage(&path, error))?;
        discard_objects(shared, &path, &blob, multipart.as_deref()).await;
        aborted += 1;
    }
    Ok(aborted)
}

/// Step 2: the objects of `kind` nothing names.
async fn delete_orphans(
    shared: &Shared,
    kind: ObjectKind,
    grace: Duration,
) -> Result<u64, FileError> {
    let home = RemotePath::root();
    let folder = shared.keys.folder(kind);
    let cutoff = SystemTime::now() - grace;
    let mut listing = shared.objects.list(Some(&folder));
    let mut deleted = 0;
    let mut batch: Vec<(String, Path)> = Vec::new();
    loop {
        let next = listing.next().await;
        let finished = next.is_none();
        if let Some(meta) = next {
            let meta = meta.map_err(|error| storage(&home, error))?;
            if SystemTime::from(meta.last_modified) < cutoff {
                if let Some(id) = meta.location.filename() {
                    batch.push((id.to_owned(), meta.location.clone()));
                }
            }
        }
        if batch.len() >= BATCH || (finished && !batch.is_empty()) {
            deleted += delete_unnamed(shared, std::mem::take(&mut batch)).await?;
        }
        if finished {
            return Ok(deleted);
        }
    }
}

/// Deletes those of `objects` (blob id, key) that no entry or upload names.
async fn delete_unnamed(shared: &Shared, objects: Vec<(String, Path)>) -> Result<u64, FileError> {
    let home = RemotePath::root();
    let ids: Vec<&str> = objects.iter().map(|(id, _)| id.as_str()).collect();
    let named: HashSet<String> = {
        let client = shared.client(&home).await?;
        client
            .query(
                "SELECT blob FROM file_entries WHERE blob = ANY($1)
                 UNION SELECT blob FROM file_uploads WHERE blob = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(|error| storage(&home, error))?
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let orphans: Vec<Path> = objects
        .into_iter()
        .filter(|(id, _)| !named.contains(id))
        .map(|(_, object)| object)
        .collect();
    shared.delete_objects(&home, &orphans).await?;
    Ok(orphans.len() as u64)
}
