//! Partial upload files: opening them safely and sweeping abandoned ones.
//!
//! An upload of `name` is written to `.name.qftp-part` in the same directory
//! and renamed over `name` only once verified (see [`crate::transfer`]).
//! Partials are hidden from listings, their names are reserved, and they
//! are not charged to the quota: an upload's reservation covers its partial
//! while it runs, and partials left behind are removed once older than the
//! configured `partial_max_age`.

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The directory at the top of every home that holds its partial uploads,
/// one file per upload. No user path can name it: the jail refuses a path
/// whose first name is this one, and hides it from listings.
pub const STAGING_DIR: &str = ".qftp-partials";

use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt as _, OpenOptions};

/// Opens (creating it if needed) the partial file `partial` in `dir` for
/// reading and writing, without truncating it, and returns it with its
/// current length.
///
/// The opened file must be a regular file with exactly one name: a symlink
/// or a hard link planted under the partial's name is replaced by a fresh
/// file instead of being written through, so an upload can only ever write
/// bytes that belong to nobody else.
pub fn open_partial(dir: &Dir, partial: &str) -> io::Result<(std::fs::File, u64)> {
    for _ in 0..2 {
        if let Ok(metadata) = dir.symlink_metadata(partial)
            && (!metadata.is_file() || metadata.nlink() != 1)
        {
            if metadata.is_dir() {
                dir.remove_dir_all(partial)?;
            } else {
                dir.remove_file(partial)?;
            }
        }
        let file = dir
            .open_with(
                partial,
                OpenOptions::new().read(true).write(true).create(true),
            )?
            .into_std();
        let metadata = file.metadata()?;
        if metadata.is_file() && metadata.nlink() == 1 {
            return Ok((file, metadata.len()));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the partial file is not a plain file",
    ))
}

/// Removes partial files older than `max_age` below `home`, never leaving
/// it and never following symlinks. Returns how many were removed.
pub fn sweep(home: &Path, max_age: Duration) -> io::Result<usize> {
    let cutoff = SystemTime::now()
        .checked_sub(max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    let mut pending = vec![Dir::open_ambient_dir(home, ambient_authority())?];
    while let Some(dir) = pending.pop() {
        for entry in dir.entries()? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if file_type.is_dir() {
                if let Ok(child) = dir.open_dir(name) {
                    pending.push(child);
                }
            } else if file_type.is_file() && qftp_proto::is_partial_name(name) {
                let modified = entry.metadata()?.modified()?.into_std();
                if modified < cutoff {
                    dir.remove_file(name)?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_hard_link_is_not_written_through() {
        let temp = tempfile::tempdir().unwrap();
        let outside = temp.path().join("outside.txt");
        std::fs::write(&outside, b"keep me").unwrap();
        let home = temp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::hard_link(&outside, home.join(".x.qftp-part")).unwrap();
        let dir = Dir::open_ambient_dir(&home, ambient_authority()).unwrap();
        let (mut file, length) = open_partial(&dir, ".x.qftp-part").unwrap();
        assert_eq!(length, 0, "the planted content is not adopted");
        std::io::Write::write_all(&mut file, b"upload").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
        assert_eq!(std::fs::read(home.join(".x.qftp-part")).unwrap(), b"upload");
    }

    #[test]
    fn a_planted_symlink_is_not_written_through() {
        let temp = tempfile::tempdir().unwrap();
        let home = temp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::write(home.join("victim"), b"keep me").unwrap();
        std::os::unix::fs::symlink("victim", home.join(".x.qftp-part")).unwrap();
        let dir = Dir::open_ambient_dir(&home, ambient_authority()).unwrap();
        let (mut file, length) = open_partial(&dir, ".x.qftp-part").unwrap();
        assert_eq!(length, 0, "the planted content is not adopted");
        std::io::Write::write_all(&mut file, b"upload").unwrap();
        assert_eq!(std::fs::read(home.join("victim")).unwrap(), b"keep me");
    }

    #[test]
    fn sweep_removes_only_old_partials() {
        let temp = tempfile::tempdir().unwrap();
        let home = temp.path();
        std::fs::create_dir(home.join("sub")).unwrap();
        std::fs::write(home.join("sub/.old.qftp-part"), b"x").unwrap();
        std::fs::write(home.join(".new.qftp-part"), b"x").unwrap();
        std::fs::write(home.join("sub/keep.txt"), b"x").unwrap();
        let old = filetime::FileTime::from_unix_time(1_000_000, 0);
        filetime::set_file_mtime(home.join("sub/.old.qftp-part"), old).unwrap();
        filetime::set_file_mtime(home.join("sub/keep.txt"), old).unwrap();
        assert_eq!(sweep(home, Duration::from_secs(3600)).unwrap(), 1);
        assert!(!home.join("sub/.old.qftp-part").exists());
        assert!(home.join(".new.qftp-part").exists());
        assert!(home.join("sub/keep.txt").exists());
    }
}
