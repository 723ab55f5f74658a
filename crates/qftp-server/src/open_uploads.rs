//! How many uploads each user has open, over all their connections.
//!
//! Every upload holds files open on the server (its partial file and its
//! directory) and memory (a small upload's body) from its request until it
//! ends. [`OpenUploads`] counts them per user name and refuses, at once and
//! through [`crate::limits::Refusal`], an upload beyond
//! `limits.max_open_uploads_per_user`; an [`OpenUpload`] counts one and is
//! released when dropped, however the upload ends.
//!
//! It does not queue refused uploads, and it knows nothing of files or
//! quotas: it only counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::RequestResult;
use crate::limits::Refusal;

/// The open uploads of every user.
#[derive(Debug)]
pub struct OpenUploads {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    limit: usize,
    shown_limit: String,
}

/// One open upload of one user; released on drop.
#[derive(Debug)]
pub struct OpenUpload {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl OpenUploads {
    /// A registry allowing each user `limit` uploads open at once.
    pub fn new(limit: usize) -> OpenUploads {
        OpenUploads {
            counts: Arc::new(Mutex::new(HashMap::new())),
            limit,
            shown_limit: limit.to_string(),
        }
    }

    /// Counts one more upload of `user`, to `path` (named in the refusal),
    /// or refuses it when `user` already has the limit open.
    pub fn open(&self, user: &str, path: &str) -> RequestResult<OpenUpload> {
        let mut counts = lock(&self.counts);
        let count = counts.entry(user.to_owned()).or_insert(0);
        if *count >= self.limit {
            if *count == 0 {
                counts.remove(user);
            }
            drop(counts);
            return Err(Refusal {
                setting: "max_open_uploads_per_user",
                value: &self.shown_limit,
                who: user,
            }
            .refuse(format!("{path}: too many uploads open at once")));
        }
        *count += 1;
        Ok(OpenUpload {
            counts: Arc::clone(&self.counts),
            user: user.to_owned(),
        })
    }

    /// The uploads `user` has open now.
    pub fn count(&self, user: &str) -> usize {
        lock(&self.counts).get(user).copied().unwrap_or(0)
    }
}

impl Drop for OpenUpload {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

/// The table, even after a panic elsewhere: a count is always consistent.
fn lock(
    counts: &Mutex<HashMap<String, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use qftp_proto::ErrorKind;

    use super::*;

    #[test]
    fn refuses_beyond_the_limit_per_user_and_releases_on_drop() {
        let uploads = OpenUploads::new(2);
        let first = uploads.open("alice", "/a").unwrap();
        let _second = uploads.open("alice", "/b").unwrap();
        let error = uploads.open("alice", "/c").unwrap_err();
        assert_eq!(error.kind, ErrorKind::LimitReached);
        assert!(
            error
                .message
                .starts_with("/c: too many uploads open at once")
        );
        assert!(error.message.contains("max_open_uploads_per_user = 2"));
        // Another user has their own allowance.
        let _bob = uploads.open("bob", "/a").unwrap();
        drop(first);
        assert_eq!(uploads.count("alice"), 1);
        let _third = uploads.open("alice", "/c").unwrap();
        assert_eq!(uploads.count("alice"), 2);
    }

    #[test]
    fn idle_users_leave_the_table() {
        let uploads = OpenUploads::new(1);
        drop(uploads.open("alice", "/a").unwrap());
        assert!(lock(&uploads.counts).is_empty());
        let none = OpenUploads::new(0);
        assert!(none.open("alice", "/a").is_err());
        assert!(lock(&none.counts).is_empty());
    }
}
