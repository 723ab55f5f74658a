//! The lock that lets one server at a time serve a root.
//!
//! Two servers on one root would each keep their own quota reservations and
//! sweep each other's partial uploads. [`RootLock::acquire`] takes an
//! exclusive `flock` on `ROOT/qftp-server.lock` and writes the holder's
//! process id into it; a second server finds the lock taken and refuses to
//! start with a message naming the file and that process. The kernel drops
//! the lock when the process ends however it ends, so a crash leaves no
//! stale lock behind (the file itself stays, unlocked).
//!
//! The administrative commands (`user add` and the others) take no lock:
//! they are meant to run beside a serving server.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The lock file could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "another qftp-server is serving this root: {} is locked{}",
        path.display(),
        holder.map(|pid| format!(" by process {pid}")).unwrap_or_default()
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The process id written in it, if it could be read.
        holder: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The held lock of a server root; released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct RootLock {
    _file: File,
    path: PathBuf,
}

impl RootLock {
    /// The lock file's name in the root.
    pub const FILE_NAME: &'static str = "qftp-server.lock";

    /// Takes the lock of the root at `root`, or says who holds it.
    pub fn acquire(root: &Path) -> Result<Self, LockError> {
        let path = root.join(Self::FILE_NAME);
        let failed = |source: io::Error| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(LockError::Held {
                    holder: read_holder(&mut file),
                    path,
                });
            }
            Err(error) => return Err(failed(error.into())),
        }
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The process id a holder wrote into the lock file.
fn read_holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_names_the_file_and_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = RootLock::acquire(dir.path()).unwrap();
        assert_eq!(held.path(), dir.path().join(RootLock::FILE_NAME));
        let error = RootLock::acquire(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("qftp-server.lock"), "{message}");
        assert!(
            message.contains(&format!("by process {}", std::process::id())),
            "{message}"
        );
        drop(held);
        RootLock::acquire(dir.path()).expect("free again once dropped");
    }
}
