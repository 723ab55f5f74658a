//! [`S3Upload`]: one upload in progress, as a single PUT (small files) or
//! a multipart upload of [`PART_SIZE`] parts (larger ones).
//!
//! State in the database, row `file_uploads` of the user and path: the
//! blob id the file will have, the multipart upload's id, the bytes kept
//! (`held`), what the ledger charges for them (`charged_*`), and the lease
//! of the holder with what it last reported to the ledger (`reported`).
//! Each part, once the object store has it, gets a `file_parts` row with
//! its ETag and BLAKE3 chaining value in the same transaction that renews
//! the lease ([`qftp_store_pg::PgStore::renew_in`]) with the growth, so
//! any node can resume the upload from its whole parts and prove their
//! prefix hash without reading them back ([`crate::tree`]).
//!
//! A small upload is buffered (at most [`PART_SIZE`] bytes) and PUT once at
//! commit with `If-None-Match: *`; interrupted and kept, its bytes go to a
//! partial object with their hash, read back (bounded) when resumed.
//!
//! Commit: the last part, the whole hash merged from the parts' values and
//! compared with the [`VerifiedHash`], the multipart upload completed (the
//! object now exists, named by nothing), then ONE transaction: the lease
//! checked and ended with the charge ([`qftp_store_pg::PgStore::settle_in`]),
//! the entry written, the upload row gone. A crash before that transaction
//! leaves an object no entry names: the sweep deletes it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use object_store::multipart::{MultipartStore as _, PartId};
use object_store::path::Path;
use object_store::{MultipartId, ObjectStore as _, PutMode, PutOptions, PutPayload};
use qftp_proto::path::RemotePath;
use qftp_proto::{ErrorKind, VerifiedHash};
use qftp_store::{
    BoxFuture, Change, FileError, Footprint, LedgerError, OpenUpload, QuotaLedger as _,
    Reservation, UploadKey, UploadStart,
};
use tokio::sync::watch;

use crate::bucket::{ObjectKind, new_blob_id};
use crate::entry::{DIRECTORY, FILE, delete_entry, key, lookup, require_directory};
use crate::error::{from_ledger, refused, storage};
use crate::shared::Shared;
use crate::tree::{PART_SIZE, PartHash, chaining_value, root_hash};

/// A lease as the namespace stores it: 16 big-endian bytes.
fn lease_bytes(reservation: &Reservation) -> Vec<u8> {
    reservation.lease.0.to_be_bytes().to_vec()
}

/// A count as PostgreSQL's `bigint`.
fn bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored `bigint` as a count.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// What a partial holding `held` bytes costs.
fn partial_footprint(held: u64) -> Footprint {
    if held == 0 {
        Footprint::ZERO
    } else {
        Footprint::file(held)
    }
}

/// One stored part.
#[derive(Debug, Clone)]
struct Part {
    etag: String,
    hash: PartHash,
}

/// How the bytes travel to the bucket.
#[derive(Debug)]
enum Layout {
    /// One PUT at commit; `kept` bytes of an earlier attempt are in the
    /// partial object, hashing as `kept_hash`.
    Small {
        kept: u64,
        kept_hash: Option<[u8; 32]>,
        /// Whether [`OpenUpload::continue_at`] loaded the kept bytes into
        /// the buffer (else they stay as they are).
        continued: bool,
    },
    /// A multipart upload with its stored parts, in order.
    Multipart { id: MultipartId, parts: Vec<Part> },
}

/// The earlier upload of a path, as found at a new begin.
#[derive(Debug)]
struct Kept {
    blob: String,
    multipart: Option<String>,
    held: u64,
    kept_hash: Option<[u8; 32]>,
    charged: Footprint,
}

/// An upload while it is open.
#[derive(Debug)]
struct Upload {
    shared: Arc<Shared>,
    user: String,
    path: RemotePath,
    reservation: Reservation,
    lease_time: Duration,
    renewed: Instant,
    blob: String,
    size: u64,
    layout: Layout,
    /// What the ledger charged for this upload's partial before this
    /// holding began.
    charged: Footprint,
    resume_point: u64,
    /// Bytes accepted so far, stored parts and buffer together.
    written: u64,
    buffer: Vec<u8>,
    give_way: watch::Receiver<bool>,
}

/// An upload in progress; dropped while open, it is kept for a resume.
#[derive(Debug)]
pub(crate) struct S3Upload {
    state: Option<Upload>,
}

/// Opens an upload of `start.path` for `user` (see
/// [`qftp_store::HomeFiles::begin_upload`]).
pub(crate) async fn begin(
    shared: Arc<Shared>,
    user: String,
    start: UploadStart,
) -> Result<S3Upload, FileError> {
    let path = start.path.clone();
    if path.is_root() {
        return Err(refused(ErrorKind::IsADirectory, &path, "is a directory"));
    }
    {
        let client = shared.client(&path).await?;
        require_directory(&**client, &user, &path.parent()).await?;
        if lookup(&**client, &user, &path, false)
            .await?
            .is_some_and(|entry| entry.kind == DIRECTORY)
        {
            return Err(refused(ErrorKind::IsADirectory, &path, "is a directory"));
        }
    }
    let upload_key = UploadKey {
        user: user.clone(),
        path: path.to_string(),
    };
    shared
        .ledger
        .take_over(&upload_key, shared.options.take_over_patience)
        .await
        .map_err(|error| from_ledger(&path, error))?;
    let kept = settle_earlier(&shared, &user, &start).await?;
    let charged = kept.as_ref().map_or(Footprint::ZERO, |kept| kept.charged);
    let reservation = shared
        .ledger
        .reserve(
            &upload_key,
            start.size.saturating_sub(charged.bytes),
            start.lease,
        )
        .await
        .map_err(|error| from_ledger(&path, error))?;
    let opened = match kept {
        Some(kept) => resume_kept(&shared, &user, &start, &reservation, kept).await,
        None => open_new(&shared, &user, &start, &reservation).await,
    };
    let (blob, layout, resume_point) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            // Best effort: an unreleased reservation expires with its lease.
            let _ = shared.ledger.release(reservation, Change::default()).await;
            return Err(error);
        }
    };
    let give_way = shared.ledger.give_way(&reservation);
    Ok(S3Upload {
        state: Some(Upload {
            shared,
            user,
            path,
            reservation,
            lease_time: start.lease,
            renewed: Instant::now(),
            blob,
            size: start.size,
            layout,
            charged,
            resume_point,
            written: 0,
            buffer: Vec::new(),
            give_way,
        }),
    })
}

/// Brings the earlier upload of the path to rest: charges what a holder
/// that died reported (as the ledger's take-over did), then keeps it if it
/// may be resumed (same size, resume asked) or discards it.
async fn settle_earlier(
    shared: &Shared,
    user: &str,
    start: &UploadStart,
) -> Result<Option<Kept>, FileError> {
    let path = &start.path;
    let mut client = shared.client(path).await?;
    let transaction = client
        .transaction()
        .await
        .map_err(|error| storage(path, error))?;
    let row = transaction
        .query_opt(
            "SELECT blob, multipart, size, held, kept_hash, charged_bytes, charged_entries,
                    lease IS NOT NULL, reported
               FROM file_uploads WHERE user_name = $1 AND path = $2 FOR UPDATE",
            &[&user, &key(path)],
        )
        .await
        .map_err(|error| storage(path, error))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let kept_hash: Option<Vec<u8>> = row.get(4);
    let mut kept = Kept {
        blob: row.get(0),
        multipart: row.get(1),
        held: count(row.get(3)),
        kept_hash: kept_hash.and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok()),
        charged: Footprint {
            bytes: count(row.get(5)),
            entries: count(row.get(6)),
        },
    };
    let declared = count(row.get(2));
    let (abandoned, reported): (bool, i64) = (row.get(7), row.get(8));
    if abandoned {
        kept.charged.bytes += count(reported);
        kept.charged.entries += u64::from(reported > 0);
    }
    if start.resume && declared == start.size {
        transaction
            .execute(
                "UPDATE file_uploads SET lease = NULL, reported = 0, expires = NULL,
                        charged_bytes = $2, charged_entries = $3
                  WHERE blob = $1",
                &[
                    &kept.blob,
                    &bigint(kept.charged.bytes),
                    &bigint(kept.charged.entries),
                ],
            )
            .await
            .map_err(|error| storage(path, error))?;
        transaction
            .commit()
            .await
            .map_err(|error| storage(path, error))?;
        return Ok(Some(kept));
    }
    transaction
        .execute("DELETE FROM file_uploads WHERE blob = $1", &[&kept.blob])
        .await
        .map_err(|error| storage(path, error))?;
    shared
        .ledger
        .adjust_in(
            &*transaction,
            user,
            Change {
                added: Footprint::ZERO,
                removed: kept.charged,
            },
        )
        .await
        .map_err(|error| from_ledger(path, error))?;
    transaction
        .commit()
        .await
        .map_err(|error| storage(path, error))?;
    discard_objects(shared, path, &kept.blob, kept.multipart.as_deref()).await;
    Ok(None)
}

/// Removes what an upload put in the bucket: its multipart upload, its
/// partial object and its blob (if it was completed). Failures are left to
/// the sweep: nothing names these objects any more.
pub(crate) async fn discard_objects(
    shared: &Shared,
    path: &RemotePath,
    blob: &str,
    multipart: Option<&str>,
) {
    let object = shared.keys.object(ObjectKind::Blob, blob);
    if let Some(id) = multipart {
        let _ = shared
            .objects
            .abort_multipart(&object, &id.to_owned())
            .await;
    }
    let _ = shared
        .delete_objects(
            path,
            &[object, shared.keys.object(ObjectKind::Partial, blob)],
        )
        .await;
}

/// Takes up a kept upload under `reservation`: the blob, layout and resume
/// point.
async fn resume_kept(
    shared: &Shared,
    user: &str,
    start: &UploadStart,
    reservation: &Reservation,
    kept: Kept,
) -> Result<(String, Layout, u64), FileError> {
    let path = &start.path;
    let client = shared.client(path).await?;
    let updated = client
        .execute(
            "UPDATE file_uploads SET lease = $3, expires = $4, reported = 0, updated = now()
              WHERE user_name = $1 AND blob = $2 AND lease IS NULL",
            &[
                &user,
                &kept.blob,
                &lease_bytes(reservation),
                &reservation.expires,
            ],
        )
        .await
        .map_err(|error| storage(path, error))?;
    if updated == 0 {
        return Err(refused(
            ErrorKind::Busy,
            path,
            "another upload of this path is in flight",
        ));
    }
    match kept.multipart {
        None => Ok((
            kept.blob,
            Layout::Small {
                kept: kept.held,
                kept_hash: kept.kept_hash,
                continued: false,
            },
            kept.held,
        )),
        Some(id) => {
            let rows = client
                .query(
                    "SELECT index, etag, chaining, whole FROM file_parts WHERE blob = $1 ORDER BY index",
                    &[&kept.blob],
                )
                .await
                .map_err(|error| storage(path, error))?;
            let mut parts = Vec::new();
            for row in rows {
                let index: i32 = row.get(0);
                let chaining: Vec<u8> = row.get(2);
                let whole: Option<Vec<u8>> = row.get(3);
                let Ok(chaining) = <[u8; 32]>::try_from(chaining.as_slice()) else {
                    break;
                };
                if usize::try_from(index).ok() != Some(parts.len()) {
                    break;
                }
                parts.push(Part {
                    etag: row.get(1),
                    hash: PartHash {
                        chaining,
                        whole: whole.and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok()),
                    },
                });
            }
            // Only whole parts the kept bytes vouch for.
            let whole_parts = usize::try_from(kept.held / PART_SIZE).unwrap_or(usize::MAX);
            parts.truncate(whole_parts);
            let resume_point = parts.len() as u64 * PART_SIZE;
            Ok((kept.blob, Layout::Multipart { id, parts }, resume_point))
        }
    }
}

/// Starts a fresh upload under `reservation`.
async fn open_new(
    shared: &Shared,
    user: &str,
    start: &UploadStart,
    reservation: &Reservation,
) -> Result<(String, Layout, u64), FileError> {
    let path = &start.path;
    let blob = new_blob_id().map_err(|error| storage(path, error))?;
    let multipart = if start.size > PART_SIZE {
        let object = shared.keys.object(ObjectKind::Blob, &blob);
        Some(
            shared
                .objects
                .create_multipart(&object)
                .await
                .map_err(|error| storage(path, error))?,
        )
    } else {
        None
    };
    let client = shared.client(path).await?;
    let inserted = client
        .execute(
            "INSERT INTO file_uploads (user_name, path, blob, multipart, size, lease, expires)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &user,
                &key(path),
                &blob,
                &multipart,
                &bigint(start.size),
                &lease_bytes(reservation),
                &reservation.expires,
            ],
        )
        .await;
    if let Err(error) = inserted {
        discard_objects(shared, path, &blob, multipart.as_deref()).await;
        return Err(storage(path, error));
    }
    let layout = match multipart {
        Some(id) => Layout::Multipart {
            id,
            parts: Vec::new(),
        },
        None => Layout::Small {
            kept: 0,
            kept_hash: None,
            continued: true,
        },
    };
    Ok((blob, layout, 0))
}

impl Upload {
    fn blob_object(&self) -> Path {
        self.shared.keys.object(ObjectKind::Blob, &self.blob)
    }

    fn partial_object(&self) -> Path {
        self.shared.keys.object(ObjectKind::Partial, &self.blob)
    }

    fn lease_lost(&self) -> FileError {
        FileError::LeaseLost {
            path: self.path.to_string(),
        }
    }

    /// The bytes stored durably so far (whole parts; a small upload keeps
    /// nothing until it ends).
    fn stored(&self) -> u64 {
        match &self.layout {
            Layout::Multipart { parts, .. } => parts.len() as u64 * PART_SIZE,
            Layout::Small { .. } => 0,
        }
    }

    /// Renews the lease, reporting `reported` bytes beyond the charge.
    async fn renew(&mut self, reported: u64) -> Result<(), FileError> {
        let client = self.shared.client(&self.path).await?;
        self.reservation = match self
            .shared
            .ledger
            .renew_in(&**client, &self.reservation, reported, self.lease_time)
            .await
        {
            Ok(renewed) => renewed,
            Err(LedgerError::LeaseLost) => return Err(self.lease_lost()),
            Err(error) => return Err(from_ledger(&self.path, error)),
        };
        self.renewed = Instant::now();
        Ok(())
    }

    async fn prefix_hash(&self, length: u64) -> Result<[u8; 32], FileError> {
        if length > self.resume_point {
            return Err(refused(
                ErrorKind::Protocol,
                &self.path,
                "no prefix hash past the resume point",
            ));
        }
        if length == 0 {
            return Ok(*blake3::hash(&[]).as_bytes());
        }
        match &self.layout {
            Layout::Multipart { parts, .. } => {
                if length % PART_SIZE != 0 {
                    return Err(refused(
                        ErrorKind::Protocol,
                        &self.path,
                        "a prefix of a large upload ends at a part boundary",
                    ));
                }
                let hashes: Vec<PartHash> = parts[..(length / PART_SIZE) as usize]
                    .iter()
                    .map(|part| part.hash)
                    .collect();
                root_hash(PART_SIZE, &hashes, length).ok_or_else(|| {
                    refused(
                        ErrorKind::Internal,
                        &self.path,
                        "the stored part hashes are incomplete",
                    )
                })
            }
            Layout::Small {
                kept,
                kept_hash: Some(hash),
                ..
            } if *kept == length => Ok(*hash),
            Layout::Small { .. } => {
                let bytes = self
                    .shared
                    .objects
                    .get_range(&self.partial_object(), 0..length)
                    .await
                    .map_err(|error| storage(&self.path, error))?;
                Ok(*blake3::hash(&bytes).as_bytes())
            }
        }
    }

    async fn continue_at(&mut self, offset: u64) -> Result<(), FileError> {
        if offset > self.resume_point {
            return Err(refused(
                ErrorKind::Protocol,
                &self.path,
                "cannot continue past the resume point",
            ));
        }
        self.buffer.clear();
        match &mut self.layout {
            Layout::Multipart { parts, .. } => {
                if offset % PART_SIZE != 0 {
                    return Err(refused(
                        ErrorKind::Protocol,
                        &self.path,
                        "a large upload continues at a part boundary",
                    ));
                }
                let whole = offset / PART_SIZE;
                parts.truncate(whole as usize);
                let client = self.shared.client(&self.path).await?;
                client
                    .execute(
                        "DELETE FROM file_parts WHERE blob = $1 AND index >= $2",
                        &[&self.blob, &i32::try_from(whole).unwrap_or(i32::MAX)],
                    )
                    .await
                    .map_err(|error| storage(&self.path, error))?;
            }
            Layout::Small { continued, .. } => {
                if offset > 0 {
                    let bytes = self
                        .shared
                        .objects
                        .get_range(
                            &self.shared.keys.object(ObjectKind::Partial, &self.blob),
                            0..offset,
                        )
                        .await
                        .map_err(|error| storage(&self.path, error))?;
                    self.buffer.extend_from_slice(&bytes);
                }
                *continued = true;
            }
        }
        self.written = offset;
        Ok(())
    }

    async fn append(&mut self, data: &[u8]) -> Result<(), FileError> {
        if self.written.saturating_add(data.len() as u64) > self.size {
            return Err(refused(
                ErrorKind::IntegrityMismatch,
                &self.path,
                "more bytes than the declared size",
            ));
        }
        if *self.give_way.borrow() {
            return Err(self.lease_lost());
        }
        self.buffer.extend_from_slice(data);
        self.written += data.len() as u64;
        match self.layout {
            Layout::Multipart { .. } => {
                while self.buffer.len() as u64 >= PART_SIZE {
                    let rest = self.buffer.split_off(PART_SIZE as usize);
                    let part = std::mem::replace(&mut self.buffer, rest);
                    self.store_part(part).await?;
                }
            }
            Layout::Small { .. } => {
                if self.renewed.elapsed() > self.lease_time / 2 {
                    self.renew(0).await?;
                }
            }
        }
        Ok(())
    }

    /// Uploads `data` as the next part and records it with the lease's
    /// renewal, in one transaction that only a live holder completes.
    async fn store_part(&mut self, data: Vec<u8>) -> Result<(), FileError> {
        let Layout::Multipart { id, parts } = &mut self.layout else {
            return Err(refused(
                ErrorKind::Internal,
                &self.path,
                "a part of a small upload",
            ));
        };
        let index = parts.len();
        let hash = chaining_value(PART_SIZE, index as u64, &data);
        let object = self.shared.keys.object(ObjectKind::Blob, &self.blob);
        let PartId { content_id: etag } = self
            .shared
            .objects
            .put_part(&object, id, index, PutPayload::from(data))
            .await
            .map_err(|error| storage(&self.path, error))?;
        let held = (index as u64 + 1) * PART_SIZE;
        let reported = held.saturating_sub(self.charged.bytes);
        let mut client = self.shared.client(&self.path).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| storage(&self.path, error))?;
        let renewed = match self
            .shared
            .ledger
            .renew_in(&*transaction, &self.reservation, reported, self.lease_time)
            .await
        {
            Ok(renewed) => renewed,
            Err(LedgerError::LeaseLost) => return Err(self.lease_lost()),
            Err(error) => return Err(from_ledger(&self.path, error)),
        };
        let index_value = i32::try_from(index).unwrap_or(i32::MAX);
        transaction
            .execute(
                "INSERT INTO file_parts (blob, index, etag, chaining, whole) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (blob, index) DO UPDATE
                   SET etag = excluded.etag, chaining = excluded.chaining, whole = excluded.whole",
                &[&self.blob, &index_value, &etag, &hash.chaining.to_vec(), &hash.whole.map(|whole| whole.to_vec())],
            )
            .await
            .map_err(|error| storage(&self.path, error))?;
        transaction
            .execute(
                "UPDATE file_uploads SET held = $2, reported = $3, expires = $4, updated = now()
                  WHERE blob = $1",
                &[
                    &self.blob,
                    &bigint(held),
                    &bigint(reported),
                    &renewed.expires,
                ],
            )
            .await
            .map_err(|error| storage(&self.path, error))?;
        transaction
            .commit()
            .await
            .map_err(|error| storage(&self.path, error))?;
        parts.push(Part { etag, hash });
        self.reservation = renewed;
        self.renewed = Instant::now();
        Ok(())
    }

    async fn commit(mut self, hash: VerifiedHash, mtime: SystemTime) -> Result<(), FileError> {
        if self.written != self.size {
            let failure = FileError::refused(
                ErrorKind::IntegrityMismatch,
                format!(
                    "{}: the upload holds {} of its {} declared bytes",
                    self.path, self.written, self.size
                ),
            );
            let _ = self.end(true).await;
            return Err(failure);
        }
        let computed = match &self.layout {
            Layout::Multipart { .. } => {
                if !self.buffer.is_empty() {
                    let last = std::mem::take(&mut self.buffer);
                    self.store_part(last).await?;
                }
                let Layout::Multipart { parts, .. } = &self.layout else {
                    unreachable!("the layout does not change");
                };
                let hashes: Vec<PartHash> = parts.iter().map(|part| part.hash).collect();
                root_hash(PART_SIZE, &hashes, self.size)
            }
            Layout::Small { .. } => Some(*blake3::hash(&self.buffer).as_bytes()),
        };
        if computed.as_ref() != Some(hash.as_bytes()) {
            let failure = refused(
                ErrorKind::IntegrityMismatch,
                &self.path,
                "the stored bytes do not hash as verified",
            );
            let _ = self.end(false).await;
            return Err(failure);
        }
        // A holder whose lease was taken over shares the blob id with the
        // new holder: it must not complete the object. Renewing checks the
        // lease and keeps it for the completion.
        self.renew(self.stored().saturating_sub(self.charged.bytes))
            .await?;
        // The object comes to exist here, named by nothing yet.
        let completed = match &self.layout {
            Layout::Multipart { id, parts } => {
                let ids = parts
                    .iter()
                    .map(|part| PartId {
                        content_id: part.etag.clone(),
                    })
                    .collect();
                self.shared
                    .objects
                    .complete_multipart(&self.blob_object(), id, ids)
                    .await
                    .map(|_| ())
            }
            Layout::Small { .. } => {
                let payload = PutPayload::from(std::mem::take(&mut self.buffer));
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                self.shared
                    .objects
                    .put_opts(&self.blob_object(), payload, options)
                    .await
                    .map(|_| ())
            }
        };
        if let Err(error) = completed {
            let failure = storage(&self.path, error);
            let _ = self.end(true).await;
            return Err(failure);
        }
        if let Some(pause) = &self.shared.options.before_database_commit {
            (pause.0)().await;
        }
        match self.make_visible(hash, mtime).await {
            Ok(replaced) => {
                self.shared.ledger.forget_reservation(&self.reservation);
                let mut stale = vec![self.partial_object()];
                stale.extend(replaced.map(|blob| self.shared.keys.object(ObjectKind::Blob, &blob)));
                self.shared.delete_objects(&self.path, &stale).await
            }
            // Another node holds the upload now (its lease ran out during
            // the completion): the object is its business.
            Err(error @ FileError::LeaseLost { .. }) => Err(error),
            Err(error) => {
                // The object is named by nothing: delete it now (else the
                // sweep will) and end the upload.
                let _ = self
                    .shared
                    .delete_objects(&self.path, &[self.blob_object()])
                    .await;
                let _ = self.end(false).await;
                Err(error)
            }
        }
    }

    /// The one transaction that makes the completed object the file and
    /// charges it; the blob of the file it replaced, to delete after.
    async fn make_visible(
        &self,
        hash: VerifiedHash,
        mtime: SystemTime,
    ) -> Result<Option<String>, FileError> {
        let path = &self.path;
        let mut client = self.shared.client(path).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| storage(path, error))?;
        let held = transaction
            .query_opt(
                "SELECT 1 FROM file_uploads WHERE blob = $1 AND lease = $2 FOR UPDATE",
                &[&self.blob, &lease_bytes(&self.reservation)],
            )
            .await
            .map_err(|error| storage(path, error))?;
        if held.is_none() {
            return Err(self.lease_lost());
        }
        require_directory(&*transaction, &self.user, &path.parent()).await?;
        let replaced = lookup(&*transaction, &self.user, path, true).await?;
        let mut removed = self.charged;
        if let Some(replaced) = &replaced {
            if replaced.kind == DIRECTORY {
                return Err(refused(ErrorKind::IsADirectory, path, "is a directory"));
            }
            removed += replaced.footprint(self.shared.options.entry_cost);
            delete_entry(&*transaction, &self.user, path).await?;
        }
        match self
            .shared
            .ledger
            .settle_in(
                &*transaction,
                &self.reservation,
                Change {
                    added: Footprint::file(self.size),
                    removed,
                },
            )
            .await
        {
            Ok(_) => {}
            Err(LedgerError::LeaseLost) => return Err(self.lease_lost()),
            Err(error) => return Err(from_ledger(path, error)),
        }
        transaction
            .execute("DELETE FROM file_uploads WHERE blob = $1", &[&self.blob])
            .await
            .map_err(|error| storage(path, error))?;
        transaction
            .execute(
                "INSERT INTO file_entries (user_name, path, parent, name, kind, size, mtime, hash, blob)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &self.user,
                    &key(path),
                    &key(&path.parent()),
                    &path.file_name().unwrap_or_default(),
                    &FILE,
                    &bigint(self.size),
                    &mtime,
                    &hash.as_bytes().to_vec(),
                    &self.blob,
                ],
            )
            .await
            .map_err(|error| storage(path, error))?;
        transaction
            .commit()
            .await
            .map_err(|error| storage(path, error))?;
        Ok(replaced.and_then(|replaced| replaced.blob))
    }

    /// Ends the upload without a commit: kept (charged for what it holds)
    /// or discarded (nothing stays).
    async fn end(mut self, keep: bool) -> Result<(), FileError> {
        let mut kept_hash = None;
        let held = match &self.layout {
            Layout::Multipart { parts, .. } => parts.len() as u64 * PART_SIZE,
            Layout::Small {
                kept,
                kept_hash: hash,
                continued,
            } => {
                if !*continued {
                    kept_hash = *hash;
                    *kept
                } else if keep && !self.buffer.is_empty() {
                    let bytes = std::mem::take(&mut self.buffer);
                    kept_hash = Some(*blake3::hash(&bytes).as_bytes());
                    let length = bytes.len() as u64;
                    self.shared
                        .objects
                        .put(&self.partial_object(), PutPayload::from(bytes))
                        .await
                        .map_err(|error| storage(&self.path, error))?;
                    length
                } else {
                    0
                }
            }
        };
        let stays = if keep {
            partial_footprint(held)
        } else {
            Footprint::ZERO
        };
        let path = self.path.clone();
        let mut client = self.shared.client(&path).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| storage(&path, error))?;
        match self
            .shared
            .ledger
            .settle_in(
                &*transaction,
                &self.reservation,
                Change {
                    added: stays,
                    removed: self.charged,
                },
            )
            .await
        {
            Ok(_) => {}
            Err(LedgerError::LeaseLost) => return Err(self.lease_lost()),
            Err(error) => return Err(from_ledger(&path, error)),
        }
        if keep {
            transaction
                .execute(
                    "UPDATE file_uploads SET held = $2, kept_hash = $3, charged_bytes = $4,
                            charged_entries = $5, lease = NULL, reported = 0, expires = NULL,
                            updated = now()
                      WHERE blob = $1",
                    &[
                        &self.blob,
                        &bigint(held),
                        &kept_hash.map(|hash| hash.to_vec()),
                        &bigint(stays.bytes),
                        &bigint(stays.entries),
                    ],
                )
                .await
                .map_err(|error| storage(&path, error))?;
        } else {
            transaction
                .execute("DELETE FROM file_uploads WHERE blob = $1", &[&self.blob])
                .await
                .map_err(|error| storage(&path, error))?;
        }
        transaction
            .commit()
            .await
            .map_err(|error| storage(&path, error))?;
        self.shared.ledger.forget_reservation(&self.reservation);
        if !keep {
            let multipart = match &self.layout {
                Layout::Multipart { id, .. } => Some(id.as_str()),
                Layout::Small { .. } => None,
            };
            discard_objects(&self.shared, &path, &self.blob, multipart).await;
        }
        Ok(())
    }
}

impl S3Upload {
    fn open(&mut self) -> &mut Upload {
        self.state
            .as_mut()
            .expect("an upload is open until it ends")
    }
}

impl OpenUpload for S3Upload {
    fn resume_point(&self) -> u64 {
        self.state.as_ref().map_or(0, |upload| upload.resume_point)
    }

    fn prefix_hash(&mut self, length: u64) -> BoxFuture<'_, Result<[u8; 32], FileError>> {
        Box::pin(async move { self.open().prefix_hash(length).await })
    }

    fn continue_at(&mut self, offset: u64) -> BoxFuture<'_, Result<(), FileError>> {
        Box::pin(async move { self.open().continue_at(offset).await })
    }

    fn append<'a>(&'a mut self, data: &'a [u8]) -> BoxFuture<'a, Result<(), FileError>> {
        Box::pin(async move { self.open().append(data).await })
    }

    fn give_way(&self) -> watch::Receiver<bool> {
        match &self.state {
            Some(upload) => upload.give_way.clone(),
            None => watch::channel(true).1,
        }
    }

    fn commit(
        mut self: Box<Self>,
        hash: VerifiedHash,
        mtime: SystemTime,
    ) -> BoxFuture<'static, Result<(), FileError>> {
        let upload = self.state.take().expect("an upload is open until it ends");
        Box::pin(upload.commit(hash, mtime))
    }

    fn abort(mut self: Box<Self>, keep: bool) -> BoxFuture<'static, Result<(), FileError>> {
        let upload = self.state.take().expect("an upload is open until it ends");
        Box::pin(upload.end(keep))
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        // Dropped while open: kept for a resume, as the contract says. A
        // commit dropped midway owns its state and leaves it to the lease
        // and the sweep, like a crash.
        let Some(upload) = self.state.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = upload.end(true).await;
            });
        }
    }
}
