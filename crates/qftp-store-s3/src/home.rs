//! [`S3Home`]: one user's home, its namespace in `file_entries`.
//!
//! Every change is one database transaction that also charges the ledger
//! ([`qftp_store_pg::PgStore::adjust_in`]), so a change and its charge
//! commit together or not at all. Blobs are immutable: a rename moves rows
//! and never an object; a removal deletes its blobs only after its
//! transaction committed, so a crash in between leaves an orphan for the
//! sweep and never a visible file without its content.

use std::sync::Arc;
use std::time::SystemTime;

use object_store::ObjectStore as _;
use qftp_proto::path::{RemotePath, link_target_stays_inside};
use qftp_proto::{EntryInfo, ErrorKind};
use qftp_store::{
    BoxFuture, Change, EntryPages, FileError, Footprint, HomeFiles, OpenUpload, UploadStart,
};
use tokio_postgres::GenericClient;

use crate::bucket::ObjectKind;
use crate::entry::{
    COLUMNS, DIRECTORY, Entry, FILE, SYMLINK, delete_entry, key, lookup, require_directory,
};
use crate::error::{from_ledger, refused, storage};
use crate::pages::{Pages, Scope};
use crate::shared::Shared;
use crate::upload;

/// Whether `error` is PostgreSQL's unique violation.
fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// One user's home in a [`crate::S3Store`].
#[derive(Debug)]
pub(crate) struct S3Home {
    pub(crate) shared: Arc<Shared>,
    pub(crate) user: String,
}

impl S3Home {
    /// What a directory or symlink costs.
    fn node(&self) -> Footprint {
        Footprint {
            bytes: self.shared.options.entry_cost,
            entries: 1,
        }
    }

    /// Inserts a directory or symlink at `path` through `client`, charged.
    async fn insert_node(
        &self,
        client: &impl GenericClient,
        path: &RemotePath,
        kind: i16,
        target: Option<&str>,
    ) -> Result<(), FileError> {
        self.shared
            .ledger
            .adjust_in(
                client,
                &self.user,
                Change {
                    added: self.node(),
                    removed: Footprint::ZERO,
                },
            )
            .await
            .map_err(|error| from_ledger(path, error))?;
        let parent = key(&path.parent());
        let name = path.file_name().unwrap_or_default();
        client
            .execute(
                "INSERT INTO file_entries (user_name, path, parent, name, kind, mtime, target)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &self.user,
                    &key(path),
                    &parent,
                    &name,
                    &kind,
                    &SystemTime::now(),
                    &target,
                ],
            )
            .await
            .map_err(|error| {
                if is_unique_violation(&error) {
                    refused(ErrorKind::AlreadyExists, path, "already exists")
                } else {
                    storage(path, error)
                }
            })?;
        Ok(())
    }

    async fn make_directory(&self, path: &RemotePath, parents: bool) -> Result<(), FileError> {
        if path.is_root() {
            return if parents {
                Ok(())
            } else {
                Err(refused(ErrorKind::AlreadyExists, path, "already exists"))
            };
        }
        let mut client = self.shared.client(path).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| storage(path, error))?;
        if parents {
            let names = path.components();
            for depth in 1..=names.len() {
                let step = RemotePath::parse(&names[..depth].join("/"))
                    .map_err(|error| refused(ErrorKind::InvalidPath, path, &error.to_string()))?;
                match lookup(&*transaction, &self.user, &step, false).await? {
                    Some(entry) if entry.kind == DIRECTORY => {}
                    Some(_) if depth == names.len() => {
                        return Err(refused(
                            ErrorKind::AlreadyExists,
                            &step,
                            "exists and is not a directory",
                        ));
                    }
                    Some(_) => {
                        return Err(refused(ErrorKind::NotADirectory, &step, "not a directory"));
                    }
                    None => {
                        self.insert_node(&*transaction, &step, DIRECTORY, None)
                            .await?
                    }
                }
            }
        } else {
            require_directory(&*transaction, &self.user, &path.parent()).await?;
            if lookup(&*transaction, &self.user, path, false)
                .await?
                .is_some()
            {
                return Err(refused(ErrorKind::AlreadyExists, path, "already exists"));
            }
            self.insert_node(&*transaction, path, DIRECTORY, None)
                .await?;
        }
        transaction
            .commit()
            .await
            .map_err(|error| storage(path, error))
    }

    async fn make_link(&self, path: &RemotePath, target: &str) -> Result<(), FileError> {
        if path.is_root() {
            return Err(refused(ErrorKind::AlreadyExists, path, "already exists"));
        }
        let depth = path.components().len() - 1;
        if !link_target_stays_inside(depth, target) {
            return Err(refused(
                ErrorKind::OutsideHome,
                path,
                "the link's target leads outside the home",
            ));
        }
        let mut client = self.shared.client(path).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| storage(path, error))?;
        require_directory(&*transaction, &self.user, &path.parent()).await?;
        if lookup(&*transaction, &self.user, path, false)
            .await?
            .is_some()
        {
            return Err(refused(ErrorKind::AlreadyExists, path, "already exists"));
        }
        self.insert_node(&*transaction, path, SYMLINK, Some(target))
            .await?;
        transaction
            .commit()
            .await
            .map_err(|error| storage(path, error))
    }

    async fn remove_entry(&self, path: &RemotePath, recursive: bool) -> Result<(), FileError> {
        if path.is_root() {
            return Err(refused(
                ErrorKind::PermissionDenied,
                path,
                "the home itself cannot be removed",
            ));
        }
        let mut client = self.shared.client(path).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| storage(path, error))?;
        let entry = lookup(&*transaction, &self.user, path, true)
            .await?
            .ok_or_else(|| refused(ErrorKind::NotFound, path, "no such file or directory"))?;
        let mut freed = entry.footprint(self.shared.options.entry_cost);
        let mut blobs: Vec<String> = entry.blob.iter().cloned().collect();
        if entry.kind == DIRECTORY {
            let below = format!("{}/", key(path));
            if !recursive {
                let child = transaction
                    .query_opt(
                        "SELECT 1 FROM file_entries WHERE user_name = $1 AND parent = $2 LIMIT 1",
                        &[&self.user, &key(path)],
                    )
                    .await
                    .map_err(|error| storage(path, error))?;
                if child.is_some() {
                    return Err(refused(
                        ErrorKind::DirectoryNotEmpty,
                        path,
                        "directory not empty",
                    ));
                }
            }
            let removed = transaction
                .query(
                    &format!(
                        "DELETE FROM file_entries WHERE user_name = $1 AND starts_with(path, $2)
                         RETURNING {COLUMNS}"
                    ),
                    &[&self.user, &below],
                )
                .await
                .map_err(|error| storage(path, error))?;
            for row in &removed {
                let inner = Entry::from_row(row, 0);
                freed += inner.footprint(self.shared.options.entry_cost);
                blobs.extend(inner.blob);
            }
        }
        delete_entry(&*transaction, &self.user, path).await?;
        self.shared
            .ledger
            .adjust_in(
                &*transaction,
                &self.user,
                Change {
                    added: Footprint::ZERO,
                    removed: freed,
                },
            )
            .await
            .map_err(|error| from_ledger(path, error))?;
        transaction
            .commit()
            .await
            .map_err(|error| storage(path, error))?;
        let objects: Vec<_> = blobs
            .iter()
            .map(|blob| self.shared.keys.object(ObjectKind::Blob, blob))
            .collect();
        self.shared.delete_objects(path, &objects).await
    }

    async fn move_entry(&self, from: &RemotePath, to: &RemotePath) -> Result<(), FileError> {
        if from.is_root() || to.is_root() {
            return Err(refused(
                ErrorKind::PermissionDenied,
                from,
                "the home itself cannot be moved or replaced",
            ));
        }
        let mut client = self.shared.client(from).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|error| storage(from, error))?;
        let entry = lookup(&*transaction, &self.user, from, true)
            .await?
            .ok_or_else(|| refused(ErrorKind::NotFound, from, "no such file or directory"))?;
        if from == to {
            return Ok(());
        }
        if entry.kind == DIRECTORY && to.components().starts_with(from.components()) {
            return Err(refused(
                ErrorKind::InvalidPath,
                to,
                "a directory cannot move beneath itself",
            ));
        }
        require_directory(&*transaction, &self.user, &to.parent()).await?;
        let mut replaced_blob = None;
        if let Some(replaced) = lookup(&*transaction, &self.user, to, true).await? {
            if replaced.kind == DIRECTORY {
                return Err(refused(
                    ErrorKind::IsADirectory,
                    to,
                    "a rename never replaces a directory",
                ));
            }
            delete_entry(&*transaction, &self.user, to).await?;
            self.shared
                .ledger
                .adjust_in(
                    &*transaction,
                    &self.user,
                    Change {
                        added: Footprint::ZERO,
                        removed: replaced.footprint(self.shared.options.entry_cost),
                    },
                )
                .await
                .map_err(|error| from_ledger(to, error))?;
            replaced_blob = replaced.blob;
        }
        let (old, new) = (key(from), key(to));
        transaction
            .execute(
                "UPDATE file_entries SET path = $3, parent = $4, name = $5
                  WHERE user_name = $1 AND path = $2",
                &[
                    &self.user,
                    &old,
                    &new,
                    &key(&to.parent()),
                    &to.file_name().unwrap_or_default(),
                ],
            )
            .await
            .map_err(|error| storage(from, error))?;
        if entry.kind == DIRECTORY {
            transaction
                .execute(
                    "UPDATE file_entries
                        SET path = $3 || substr(path, length($2) + 1),
                            parent = $3 || substr(parent, length($2) + 1)
                      WHERE user_name = $1 AND starts_with(path, $2 || '/')",
                    &[&self.user, &old, &new],
                )
                .await
                .map_err(|error| storage(from, error))?;
        }
        transaction
            .commit()
            .await
            .map_err(|error| storage(from, error))?;
        if let Some(blob) = replaced_blob {
            self.shared
                .delete_objects(to, &[self.shared.keys.object(ObjectKind::Blob, &blob)])
                .await?;
        }
        Ok(())
    }

    async fn read_range(
        &self,
        path: &RemotePath,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, FileError> {
        let client = self.shared.client(path).await?;
        let entry = lookup(&**client, &self.user, path, false)
            .await?
            .ok_or_else(|| refused(ErrorKind::NotFound, path, "no such file"))?;
        drop(client);
        match entry.kind {
            FILE => {}
            DIRECTORY => return Err(refused(ErrorKind::IsADirectory, path, "is a directory")),
            _ => return Err(refused(ErrorKind::InvalidPath, path, "is a symlink")),
        }
        let end = offset.saturating_add(max as u64).min(entry.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let blob = entry.blob.unwrap_or_default();
        let bytes = self
            .shared
            .objects
            .get_range(
                &self.shared.keys.object(ObjectKind::Blob, &blob),
                offset..end,
            )
            .await
            .map_err(|error| storage(path, error))?;
        Ok(bytes.to_vec())
    }

    async fn measure_home(&self) -> Result<Footprint, FileError> {
        let home = RemotePath::root();
        let client = self.shared.client(&home).await?;
        let cost = i64::try_from(self.shared.options.entry_cost).unwrap_or(i64::MAX);
        let row = client
            .query_one(
                "SELECT
                   (SELECT coalesce(sum(CASE WHEN kind = 0 THEN size ELSE $2 END), 0)::bigint
                      FROM file_entries WHERE user_name = $1),
                   (SELECT count(*) FROM file_entries WHERE user_name = $1),
                   (SELECT coalesce(sum(charged_bytes), 0)::bigint FROM file_uploads WHERE user_name = $1),
                   (SELECT coalesce(sum(charged_entries), 0)::bigint FROM file_uploads WHERE user_name = $1)",
                &[&self.user, &cost],
            )
            .await
            .map_err(|error| storage(&home, error))?;
        let count = |index: usize| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0);
        Ok(Footprint {
            bytes: count(0) + count(2),
            entries: count(1) + count(3),
        })
    }
}

impl HomeFiles for S3Home {
    fn stat<'a>(&'a self, path: &'a RemotePath) -> BoxFuture<'a, Result<EntryInfo, FileError>> {
        Box::pin(async move {
            if path.is_root() {
                return Ok(Entry {
                    kind: DIRECTORY,
                    size: 0,
                    mtime: SystemTime::UNIX_EPOCH,
                    hash: None,
                    blob: None,
                    target: None,
                }
                .info(".".to_owned(), false));
            }
            let client = self.shared.client(path).await?;
            let entry = lookup(&**client, &self.user, path, false)
                .await?
                .ok_or_else(|| refused(ErrorKind::NotFound, path, "no such file or directory"))?;
            Ok(entry.info(path.file_name().unwrap_or_default().to_owned(), true))
        })
    }

    fn list<'a>(
        &'a self,
        path: &'a RemotePath,
    ) -> BoxFuture<'a, Result<Box<dyn EntryPages>, FileError>> {
        Box::pin(async move {
            let client = self.shared.client(path).await?;
            require_directory(&**client, &self.user, path).await?;
            let pages = Pages::new(
                Arc::clone(&self.shared),
                self.user.clone(),
                path.clone(),
                Scope::Listing,
            );
            Ok(Box::new(pages) as Box<dyn EntryPages>)
        })
    }

    fn walk<'a>(
        &'a self,
        path: &'a RemotePath,
        hashes: bool,
    ) -> BoxFuture<'a, Result<Box<dyn EntryPages>, FileError>> {
        Box::pin(async move {
            let client = self.shared.client(path).await?;
            require_directory(&**client, &self.user, path).await?;
            let pages = Pages::new(
                Arc::clone(&self.shared),
                self.user.clone(),
                path.clone(),
                Scope::Walk { hashes },
            );
            Ok(Box::new(pages) as Box<dyn EntryPages>)
        })
    }

    fn mkdir<'a>(
        &'a self,
        path: &'a RemotePath,
        parents: bool,
    ) -> BoxFuture<'a, Result<(), FileError>> {
        Box::pin(self.make_directory(path, parents))
    }

    fn link<'a>(
        &'a self,
        path: &'a RemotePath,
        target: &'a str,
    ) -> BoxFuture<'a, Result<(), FileError>> {
        Box::pin(self.make_link(path, target))
    }

    fn remove<'a>(
        &'a self,
        path: &'a RemotePath,
        recursive: bool,
    ) -> BoxFuture<'a, Result<(), FileError>> {
        Box::pin(self.remove_entry(path, recursive))
    }

    fn rename<'a>(
        &'a self,
        from: &'a RemotePath,
        to: &'a RemotePath,
    ) -> BoxFuture<'a, Result<(), FileError>> {
        Box::pin(self.move_entry(from, to))
    }

    fn read_at<'a>(
        &'a self,
        path: &'a RemotePath,
        offset: u64,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, FileError>> {
        Box::pin(self.read_range(path, offset, max))
    }

    fn measure(&self) -> BoxFuture<'_, Result<Footprint, FileError>> {
        Box::pin(self.measure_home())
    }

    fn begin_upload<'a>(
        &'a self,
        start: UploadStart,
    ) -> BoxFuture<'a, Result<Box<dyn OpenUpload>, FileError>> {
        Box::pin(async move {
            let upload = upload::begin(Arc::clone(&self.shared), self.user.clone(), start).await?;
            Ok(Box::new(upload) as Box<dyn OpenUpload>)
        })
    }
}
