//! Partial uploads: where they live, how they are opened, and the sweep of
//! abandoned ones.
//!
//! Every home has a staging directory at its top, [`STAGING_DIR`], that
//! holds one file per upload in flight or abandoned, named by the
//! [`RemotePathKey`] of its target path. No user path can name it
//! ([`qftp_proto::is_reserved_name`] refuses the name in every path), so no
//! request can read, write, move or link a partial; an upload is renamed
//! from there over its final name only once verified (see
//! [`crate::transfer`]). Living in the home, partials are on the same file
//! system as their final names, so that rename is atomic.
//!
//! Partials are charged to their owner like any file (see [`crate::quota`]):
//! a running upload's growth through its reservation, an abandoned one for
//! what it holds, until it is resumed or swept. The sweep judges age by the
//! file's status-change time (`ctime`), which only the server's own clock
//! sets: an upload's modification time comes from the client and is never
//! trusted for this.
//!
//! Homes written by earlier releases may still hold partials beside their
//! final names (`.name.qftp-part`); they are equally
//! unreachable, charged, and swept by the same rule ([`sweep_legacy`]).

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, MetadataExt as _, OpenOptions};
use qftp_proto::path::RemotePath;

use crate::footprint::Footprint;
use crate::quota::{PartialFile, RemotePathKey};
use crate::tree::{Identity, Visit};

pub use qftp_proto::STAGING_DIR;

/// A home's staging directory, opened.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: Arc<Dir>,
}

impl Staging {
    /// Opens the staging directory of the home `home`, creating it if it is
    /// missing. Anything else under its name (left by an administrator or
    /// an old version) is replaced.
    pub fn open(home: &Dir) -> io::Result<Staging> {
        if let Some(staging) = Self::open_existing(home)? {
            return Ok(staging);
        }
        match home.symlink_metadata(STAGING_DIR) {
            Ok(metadata) if !metadata.is_dir() => home.remove_file(STAGING_DIR)?,
            _ => {}
        }
        match home.create_dir(STAGING_DIR) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        Self::open_existing(home)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the staging directory is not a plain directory",
            )
        })
    }

    /// Opens the staging directory if it exists as a real directory (not a
    /// link); `None` otherwise.
    pub fn open_existing(home: &Dir) -> io::Result<Option<Staging>> {
        let seen = match home.symlink_metadata(STAGING_DIR) {
            Ok(metadata) if metadata.is_dir() => metadata,
            Ok(_) => return Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let dir = home.open_dir(STAGING_DIR)?;
        let opened = dir.dir_metadata()?;
        if opened.dev() != seen.dev() || opened.ino() != seen.ino() {
            return Ok(None);
        }
        Ok(Some(Staging { dir: Arc::new(dir) }))
    }

    /// The partial file of an upload to `path`.
    pub fn partial(&self, path: &RemotePath) -> StagedPartial {
        StagedPartial {
            dir: Arc::clone(&self.dir),
            name: RemotePathKey::of(path).0,
        }
    }

    /// Every partial file in the directory, with its key.
    pub fn partials(&self) -> io::Result<Vec<(RemotePathKey, StagedPartial)>> {
        let mut partials = Vec::new();
        for entry in self.dir.entries()? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            partials.push((
                RemotePathKey(name.to_owned()),
                StagedPartial {
                    dir: Arc::clone(&self.dir),
                    name: name.to_owned(),
                },
            ));
        }
        Ok(partials)
    }
}

/// The partial file of one upload in a staging directory.
#[derive(Debug)]
pub struct StagedPartial {
    dir: Arc<Dir>,
    name: String,
}

impl StagedPartial {
    /// Renames the partial over `name` in `target`: the atomic step that
    /// makes an upload visible.
    pub fn rename_into(&self, target: &Dir, name: &str) -> io::Result<()> {
        self.dir.rename(&self.name, target, name)
    }

    /// Whether the partial's status last changed before `cutoff` by the
    /// server's clock. A missing file is not expired (there is nothing to
    /// sweep).
    pub fn changed_before(&self, cutoff: SystemTime) -> bool {
        match self.dir.symlink_metadata(&self.name) {
            Ok(metadata) => status_changed(&metadata) < cutoff,
            Err(_) => false,
        }
    }
}

impl PartialFile for StagedPartial {
    type Opened = std::fs::File;

    fn length(&self) -> io::Result<Option<u64>> {
        match self.dir.symlink_metadata(&self.name) {
            Ok(metadata) if metadata.is_file() && metadata.nlink() == 1 => Ok(Some(metadata.len())),
            // Not a plain file of its own (a link, a hard link planted by
            // someone with access to the disk): `open` replaces it, and
            // none of its data is ours to resume from.
            Ok(_) => Ok(Some(0)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn open(&self, keep: u64) -> io::Result<std::fs::File> {
        let (file, length) = open_partial(&self.dir, &self.name)?;
        if length != keep {
            file.set_len(keep)?;
        }
        Ok(file)
    }

    fn remove(&self) -> io::Result<()> {
        match self.dir.remove_file(&self.name) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// When `metadata`'s file last changed status, by the server's clock.
fn status_changed(metadata: &cap_std::fs::Metadata) -> SystemTime {
    let seconds = metadata.ctime();
    let nanos = metadata.ctime_nsec().clamp(0, 999_999_999) as u32;
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(seconds as u64, nanos)
    } else {
        SystemTime::UNIX_EPOCH
    }
}

/// The moment before which a partial counts as abandoned.
pub fn cutoff(max_age: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

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

/// Removes old-style partial files (`.name.qftp-part` beside their final
/// names) whose status changed before `cutoff`, below `home`, never leaving
/// it, never following symlinks and holding a bounded number of directory
/// handles whatever the tree's shape (see [`crate::tree::visit_dirs`]);
/// returns what they cost.
pub fn sweep_legacy(home: &Dir, cutoff: SystemTime) -> io::Result<Footprint> {
    let mut removed = Footprint::ZERO;
    crate::tree::visit_dirs(home.try_clone()?, |dir, depth| {
        let mut subdirectories = Vec::new();
        for entry in dir.entries()? {
            let entry = entry?;
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            let name = entry.file_name();
            if metadata.is_dir() {
                if !(depth == 0 && name == STAGING_DIR) {
                    subdirectories.push((name, Identity::of(&metadata)));
                }
            } else if metadata.is_file()
                && name.to_str().is_some_and(qftp_proto::is_partial_name)
                && status_changed(&metadata) < cutoff
            {
                dir.remove_file(&name)?;
                removed += Footprint::file(metadata.len());
            }
        }
        Ok(Visit::Enter(subdirectories))
    })?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use cap_std::ambient_authority;

    use super::*;

    #[test]
    fn a_planted_hard_link_is_not_written_through() {
        let temp = tempfile::tempdir().unwrap();
        let outside = temp.path().join("outside.txt");
        std::fs::write(&outside, b"keep me").unwrap();
        let home = temp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::hard_link(&outside, home.join("partial")).unwrap();
        let dir = Dir::open_ambient_dir(&home, ambient_authority()).unwrap();
        let (mut file, length) = open_partial(&dir, "partial").unwrap();
        assert_eq!(length, 0, "the planted content is not adopted");
        std::io::Write::write_all(&mut file, b"upload").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
        assert_eq!(std::fs::read(home.join("partial")).unwrap(), b"upload");
    }

    #[test]
    fn a_planted_symlink_is_not_written_through() {
        let temp = tempfile::tempdir().unwrap();
        let home = temp.path().join("home");
        std::fs::create_dir(&home).unwrap();
        std::fs::write(home.join("victim"), b"keep me").unwrap();
        std::os::unix::fs::symlink("victim", home.join("partial")).unwrap();
        let dir = Dir::open_ambient_dir(&home, ambient_authority()).unwrap();
        let (mut file, length) = open_partial(&dir, "partial").unwrap();
        assert_eq!(length, 0, "the planted content is not adopted");
        std::io::Write::write_all(&mut file, b"upload").unwrap();
        assert_eq!(std::fs::read(home.join("victim")).unwrap(), b"keep me");
    }

    #[test]
    fn staging_is_created_once_and_replaces_what_is_in_the_way() {
        let temp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", temp.path().join(STAGING_DIR)).unwrap();
        let home = Dir::open_ambient_dir(temp.path(), ambient_authority()).unwrap();
        let staging = Staging::open(&home).unwrap();
        assert!(temp.path().join(STAGING_DIR).is_dir());
        assert!(!temp.path().join(STAGING_DIR).is_symlink());
        let path = RemotePath::parse("/docs/a.txt").unwrap();
        let partial = staging.partial(&path);
        assert_eq!(partial.length().unwrap(), None);
        let file = partial.open(0).unwrap();
        std::io::Write::write_all(&mut &file, b"12345").unwrap();
        assert_eq!(partial.length().unwrap(), Some(5));
        // Keeping a prefix cuts the rest.
        drop(partial.open(2).unwrap());
        assert_eq!(partial.length().unwrap(), Some(2));
        // Another path never shares the file, even with the same name.
        let other = staging.partial(&RemotePath::parse("/moved/a.txt").unwrap());
        assert_eq!(other.length().unwrap(), None);
        assert_eq!(staging.partials().unwrap().len(), 1);
        // Opening again finds the same directory.
        let again = Staging::open(&home).unwrap();
        assert_eq!(again.partial(&path).length().unwrap(), Some(2));
    }

    #[test]
    fn age_is_judged_by_the_servers_clock_not_the_mtime() {
        let temp = tempfile::tempdir().unwrap();
        let home = Dir::open_ambient_dir(temp.path(), ambient_authority()).unwrap();
        let staging = Staging::open(&home).unwrap();
        let partial = staging.partial(&RemotePath::parse("/x").unwrap());
        let file = partial.open(0).unwrap();
        // A client-chosen mtime far in the future or the past changes nothing.
        let future = filetime::FileTime::from_unix_time(10_000_000_000, 0);
        filetime::set_file_handle_times(&file, None, Some(future)).unwrap();
        assert!(!partial.changed_before(cutoff(Duration::from_secs(3600))));
        assert!(partial.changed_before(SystemTime::now() + Duration::from_secs(3600)));
    }

    #[test]
    fn legacy_sweep_removes_only_old_partials() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/.old.qftp-part"), b"xy").unwrap();
        std::fs::write(root.join("sub/keep.txt"), b"x").unwrap();
        let home = Dir::open_ambient_dir(root, ambient_authority()).unwrap();
        // Nothing changed status before an hour ago.
        assert_eq!(
            sweep_legacy(&home, cutoff(Duration::from_secs(3600))).unwrap(),
            Footprint::ZERO
        );
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(sweep_legacy(&home, later).unwrap(), Footprint::file(2));
        assert!(!root.join("sub/.old.qftp-part").exists());
        assert!(root.join("sub/keep.txt").exists());
    }
}
