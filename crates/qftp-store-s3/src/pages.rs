//! [`Pages`]: a listing or a walk read from `file_entries` a page at a
//! time, resuming after the last name given (keyset pagination), so a
//! directory of any size never sits in memory whole.

use std::sync::Arc;

use qftp_proto::EntryInfo;
use qftp_proto::path::RemotePath;
use qftp_store::{BoxFuture, EntryPages, FileError};

use crate::entry::{COLUMNS, Entry, key};
use crate::error::storage;
use crate::shared::Shared;

/// Entries per page.
const PAGE: i64 = 500;

/// What is being paged through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The entries of one directory, by name.
    Listing,
    /// Everything beneath a directory, by path (a directory sorts before
    /// what it holds), with files' hashes when `hashes`.
    Walk { hashes: bool },
}

/// Pages of a listing or a walk.
#[derive(Debug)]
pub(crate) struct Pages {
    shared: Arc<Shared>,
    user: String,
    directory: RemotePath,
    scope: Scope,
    /// The sort key of the last entry given.
    after: String,
    done: bool,
}

impl Pages {
    pub(crate) fn new(
        shared: Arc<Shared>,
        user: String,
        directory: RemotePath,
        scope: Scope,
    ) -> Pages {
        Pages {
            shared,
            user,
            directory,
            scope,
            after: String::new(),
            done: false,
        }
    }

    async fn fetch(&mut self) -> Result<Option<Vec<EntryInfo>>, FileError> {
        if self.done {
            return Ok(None);
        }
        let client = self.shared.client(&self.directory).await?;
        let base = key(&self.directory);
        let rows = match self.scope {
            Scope::Listing => {
                client
                    .query(
                        &format!(
                            "SELECT name, {COLUMNS} FROM file_entries
                          WHERE user_name = $1 AND parent = $2 AND name COLLATE \"C\" > $3
                          ORDER BY name COLLATE \"C\" LIMIT $4"
                        ),
                        &[&self.user, &base, &self.after, &PAGE],
                    )
                    .await
            }
            Scope::Walk { .. } => {
                let prefix = if base.is_empty() {
                    String::new()
                } else {
                    format!("{base}/")
                };
                client
                    .query(
                        &format!(
                            "SELECT path, {COLUMNS} FROM file_entries
                              WHERE user_name = $1 AND starts_with(path, $2)
                                AND path COLLATE \"C\" > $3
                              ORDER BY path COLLATE \"C\" LIMIT $4"
                        ),
                        &[&self.user, &prefix, &self.after, &PAGE],
                    )
                    .await
            }
        }
        .map_err(|error| storage(&self.directory, error))?;
        if rows.len() < PAGE as usize {
            self.done = true;
        }
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = last.get(0);
        let skip = if base.is_empty() { 0 } else { base.len() + 1 };
        let entries = rows
            .iter()
            .map(|row| {
                let sort_key: String = row.get(0);
                let entry = Entry::from_row(row, 1);
                match self.scope {
                    Scope::Listing => entry.info(sort_key, false),
                    Scope::Walk { hashes } => entry.info(sort_key[skip..].to_owned(), hashes),
                }
            })
            .collect();
        Ok(Some(entries))
    }
}

impl EntryPages for Pages {
    fn next_page(&mut self) -> BoxFuture<'_, Result<Option<Vec<EntryInfo>>, FileError>> {
        Box::pin(self.fetch())
    }
}
