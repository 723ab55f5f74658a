//! Group commit of flushes to disk, for both ends of a transfer.
//!
//! A stored file is durable once its data, and then the rename that gives
//! it its final name, have reached the disk. Paid one file at a time that
//! is two flushes per file (an fsync of the file, an fsync of its
//! directory), and on a tree of small files those flushes are nearly all
//! of the cost. Here the flushes of everyone storing files at the same time
//! on one file system are shared, as a database shares one log flush among
//! concurrent transactions:
//!
//! * a caller that is alone flushes just its own file or directory
//!   (`fsync`), so a single large file costs what it always did;
//! * when others are already waiting, the one whose turn it is flushes the
//!   whole file system once (`syncfs`), which covers every write made
//!   before it started, and all of them return together.
//!
//! Either way no caller returns before a flush that *started after its
//! call* has finished, so a return still means "what I wrote is durable".
//! A failed flush is nobody else's success: the waiters then flush again
//! themselves and each sees its own result.
//!
//! This module decides nothing about *what* must be flushed or in which
//! order (data before the rename, the rename before the answer): that is
//! the commit's, on the server and in the client's destination.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Shares flushes among the callers storing files on each file system.
#[derive(Debug, Default)]
pub struct FlushGroups {
    filesystems: Mutex<HashMap<u64, Arc<Group>>>,
    counts: Counts,
}

/// How many flushes were asked for and how many were run, of each kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushCounts {
    /// Calls of [`FlushGroups::flush`].
    pub requested: u64,
    /// Flushes of one file or directory (`fsync`), by a caller alone.
    pub own: u64,
    /// Flushes of a whole file system (`syncfs`), shared by a group.
    pub shared: u64,
}

#[derive(Debug, Default)]
struct Counts {
    requested: AtomicU64,
    own: AtomicU64,
    shared: AtomicU64,
}

#[derive(Debug, Default)]
struct Group {
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
    /// Callers currently using this group (it is dropped at zero).
    users: usize,
}

/// The flush a leader runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// `fsync` of the leader's own file: it covers the leader alone.
    Own,
    /// `syncfs` of its file system: it covers every ticket handed out so far.
    Shared,
}

impl FlushGroups {
    /// The groups every transfer of this process shares (the client's
    /// downloads); a server keeps its own in its state.
    pub fn process_wide() -> &'static FlushGroups {
        static GROUPS: OnceLock<FlushGroups> = OnceLock::new();
        GROUPS.get_or_init(FlushGroups::default)
    }

    /// Makes durable what was written through `file` before this call (a
    /// regular file's data and metadata, or a directory's entries): returns
    /// once a flush covering it, started after this call, has finished.
    pub fn flush(&self, file: &File) -> io::Result<()> {
        self.counts.requested.fetch_add(1, Ordering::Relaxed);
        let device = file.metadata()?.dev();
        let group = {
            let mut filesystems = self.filesystems.lock().expect("flush groups lock");
            let group = Arc::clone(filesystems.entry(device).or_default());
            group.progress.lock().expect("flush progress lock").users += 1;
            group
        };
        let result = group.flush(file, &self.counts);
        let mut filesystems = self.filesystems.lock().expect("flush groups lock");
        let mut progress = group.progress.lock().expect("flush progress lock");
        progress.users -= 1;
        if progress.users == 0 {
            filesystems.remove(&device);
        }
        result
    }

    /// The counts so far.
    pub fn counts(&self) -> FlushCounts {
        FlushCounts {
            requested: self.counts.requested.load(Ordering::Relaxed),
            own: self.counts.own.load(Ordering::Relaxed),
            shared: self.counts.shared.load(Ordering::Relaxed),
        }
    }
}

impl Group {
    fn flush(&self, file: &File, counts: &Counts) -> io::Result<()> {
        let mut progress = self.progress.lock().expect("flush progress lock");
        progress.requested += 1;
        let ticket = progress.requested;
        loop {
            if progress.synced >= ticket {
                return Ok(());
            }
            if !progress.flushing {
                // This caller leads. Alone (every earlier ticket is covered
                // and nobody came after), its own fsync is enough and
                // touches nothing else; with others waiting, one syncfs
                // covers them all.
                let kind = if progress.synced + 1 == ticket && progress.requested == ticket {
                    Flush::Own
                } else {
                    Flush::Shared
                };
                let covers = match kind {
                    Flush::Own => ticket,
                    Flush::Shared => progress.requested,
                };
                progress.flushing = true;
                drop(progress);
                let result = match kind {
                    Flush::Own => {
                        counts.own.fetch_add(1, Ordering::Relaxed);
                        file.sync_all()
                    }
                    Flush::Shared => {
                        counts.shared.fetch_add(1, Ordering::Relaxed);
                        rustix::fs::syncfs(file).map_err(io::Error::from)
                    }
                };
                progress = self.progress.lock().expect("flush progress lock");
                progress.flushing = false;
                if result.is_ok() {
                    progress.synced = progress.synced.max(covers);
                }
                self.flushed.notify_all();
                // On failure the waiters lead a flush of their own, so each
                // sees its own error rather than a borrowed success.
                return result;
            }
            progress = self.flushed.wait(progress).expect("flush progress lock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_caller_flushes_only_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let groups = FlushGroups::default();
        let path = dir.path().join("one");
        std::fs::write(&path, b"data").unwrap();
        let file = File::open(&path).unwrap();
        groups.flush(&file).unwrap();
        groups.flush(&File::open(dir.path()).unwrap()).unwrap();
        assert_eq!(
            groups.counts(),
            FlushCounts {
                requested: 2,
                own: 2,
                shared: 0
            }
        );
        assert!(groups.filesystems.lock().unwrap().is_empty());
    }

    #[test]
    fn concurrent_callers_share_flushes_and_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let groups = Arc::new(FlushGroups::default());
        let threads: Vec<_> = (0..16)
            .map(|thread| {
                let groups = Arc::clone(&groups);
                let path = dir.path().to_owned();
                std::thread::spawn(move || {
                    for round in 0..40 {
                        let name = path.join(format!("f{thread}-{round}"));
                        std::fs::write(&name, b"x").unwrap();
                        groups.flush(&File::open(&name).unwrap()).unwrap();
                        groups.flush(&File::open(&path).unwrap()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let counts = groups.counts();
        assert_eq!(counts.requested, 16 * 40 * 2);
        assert!(counts.own + counts.shared <= counts.requested);
        assert!(
            groups.filesystems.lock().unwrap().is_empty(),
            "groups are dropped when unused"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 16 * 40);
    }

    #[test]
    fn callers_waiting_behind_a_flush_share_one_syncfs() {
        let dir = tempfile::tempdir().unwrap();
        let groups = Arc::new(FlushGroups::default());
        let device = File::open(dir.path()).unwrap().metadata().unwrap().dev();
        // A flush is running: the callers below take tickets and wait.
        let group = Arc::clone(
            groups
                .filesystems
                .lock()
                .unwrap()
                .entry(device)
                .or_default(),
        );
        {
            let mut progress = group.progress.lock().unwrap();
            progress.requested = 1;
            progress.flushing = true;
            progress.users = 1;
        }
        let callers: Vec<_> = (0..3)
            .map(|caller| {
                let groups = Arc::clone(&groups);
                let path = dir.path().join(format!("f{caller}"));
                std::fs::write(&path, b"x").unwrap();
                std::thread::spawn(move || groups.flush(&File::open(&path).unwrap()))
            })
            .collect();
        let mut waiting = false;
        for _ in 0..2_000 {
            if group.progress.lock().unwrap().requested == 4 {
                waiting = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(waiting, "the three callers took their tickets");
        // The running flush ends, covering only its own ticket.
        {
            let mut progress = group.progress.lock().unwrap();
            progress.flushing = false;
            progress.synced = 1;
            progress.users -= 1;
        }
        group.flushed.notify_all();
        for caller in callers {
            caller.join().unwrap().unwrap();
        }
        // The first to wake led one syncfs, which covered the other two.
        assert_eq!(
            groups.counts(),
            FlushCounts {
                requested: 3,
                own: 0,
                shared: 1
            }
        );
        assert!(groups.filesystems.lock().unwrap().is_empty());
    }

    #[test]
    fn the_process_wide_groups_are_one() {
        assert!(std::ptr::eq(
            FlushGroups::process_wide(),
            FlushGroups::process_wide()
        ));
    }
}
