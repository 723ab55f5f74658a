//! Group commit of directory syncs.
//!
//! Every stored file ends with a rename into its directory and an fsync of
//! that directory, so the new name survives a power cut. Many small files
//! landing in one directory at once would each pay that flush. Here, the
//! first upload to ask becomes the leader and flushes the directory; uploads
//! that renamed their files meanwhile wait for the next flush and share it,
//! as a database shares one log flush among concurrent transactions. No
//! upload is answered before a flush that started after its rename has
//! finished, so each acknowledgement still means "durable".

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::sync::{Arc, Condvar, Mutex};

/// Shares directory fsyncs among the uploads that need them.
#[derive(Debug, Default)]
pub struct DirSyncer {
    dirs: Mutex<HashMap<(u64, u64), Arc<Directory>>>,
}

#[derive(Debug, Default)]
struct Directory {
    progress: Mutex<Progress>,
    flushed: Condvar,
}

#[derive(Debug, Default)]
struct Progress {
    /// Callers so far; each takes the next number as its ticket.
    requested: u64,
    /// Every ticket up to this one is covered by a finished flush.
    synced: u64,
    /// A flush is running.
    flushing: bool,
    /// Callers currently using this entry (it is dropped at zero).
    users: usize,
}

impl DirSyncer {
    /// Makes every rename done in `dir` before this call durable: returns
    /// once a flush of the directory that started after the call has
    /// finished, running that flush itself when no other caller is.
    pub fn sync(&self, dir: &File) -> io::Result<()> {
        let metadata = dir.metadata()?;
        let key = (metadata.dev(), metadata.ino());
        let directory = {
            let mut dirs = self.dirs.lock().expect("directory sync lock");
            let directory = Arc::clone(dirs.entry(key).or_default());
            directory
                .progress
                .lock()
                .expect("directory progress lock")
                .users += 1;
            directory
        };
        let result = directory.sync(dir);
        let mut dirs = self.dirs.lock().expect("directory sync lock");
        let mut progress = directory.progress.lock().expect("directory progress lock");
        progress.users -= 1;
        if progress.users == 0 {
            dirs.remove(&key);
        }
        result
    }
}

impl Directory {
    fn sync(&self, dir: &File) -> io::Result<()> {
        let mut progress = self.progress.lock().expect("directory progress lock");
        progress.requested += 1;
        let ticket = progress.requested;
        loop {
            if progress.synced >= ticket {
                return Ok(());
            }
            if !progress.flushing {
                // Lead: this flush covers every ticket handed out so far.
                progress.flushing = true;
                let covers = progress.requested;
                drop(progress);
                let result = dir.sync_all();
                progress = self.progress.lock().expect("directory progress lock");
                progress.flushing = false;
                if result.is_ok() {
                    progress.synced = progress.synced.max(covers);
                }
                self.flushed.notify_all();
                // On failure the waiters lead a flush of their own, so each
                // sees its own error rather than a borrowed success.
                return result;
            }
            progress = self
                .flushed
                .wait(progress)
                .expect("directory progress lock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_callers_share_flushes_and_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Arc::new(DirSyncer::default());
        let threads: Vec<_> = (0..16)
            .map(|thread| {
                let syncer = Arc::clone(&syncer);
                let path = dir.path().to_owned();
                std::thread::spawn(move || {
                    for round in 0..50 {
                        let name = path.join(format!("f{thread}-{round}"));
                        std::fs::write(&name, b"x").unwrap();
                        let handle = File::open(&path).unwrap();
                        syncer.sync(&handle).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(
            syncer.dirs.lock().unwrap().is_empty(),
            "entries are dropped when unused"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 16 * 50);
    }

    #[test]
    fn a_lone_caller_flushes_itself() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = DirSyncer::default();
        let handle = File::open(dir.path()).unwrap();
        syncer.sync(&handle).unwrap();
        syncer.sync(&handle).unwrap();
    }
}
