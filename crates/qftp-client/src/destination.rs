//! Where pulled entries land: the local directory the user named, opened
//! once, and every write beneath it.
//!
//! A server chooses the names of what a pull writes (`get -r`,
//! `sync --pull`), so a hostile or compromised one must not be able to
//! write or link outside the destination (the scp bug class,
//! CVE-2019-6111). Two layers keep it inside:
//!
//! * [`LocalName::parse`] refuses, lexically, a name that is empty,
//!   absolute, has an empty, `.` or `..` part, a NUL byte, or a reserved
//!   part (a partial file's name or the server's staging directory).
//! * [`Destination`] holds a [`cap_std::fs::Dir`] of the destination,
//!   opened with ambient authority once ([`Destination::open`]); everything
//!   else is resolved beneath it, one directory at a time, and a part that
//!   is a symlink is refused rather than followed. So a link made earlier
//!   in the pull (or planted by anyone) never carries a later write
//!   elsewhere, and since the directory holding a new link is reached
//!   through real directories only, its depth is its name's depth:
//!   [`Destination::symlink`] accepts only canonical targets that climb
//!   no higher than that, so every link made here resolves inside.
//!
//! A refusal is a [`Refusal`] inside [`ClientError::Refused`]; the caller
//! reports it and goes on with the other entries. This module knows
//! nothing about the network; the download itself is [`crate::transfer`].

use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, MetadataExt as _, OpenOptions};
use qftp_proto::hash::VerifiedHash;
use qftp_transport::durable::FlushGroups;

use crate::error::ClientError;
use crate::refusal::Refusal;

/// A relative name from the server that passed the lexical checks: plain
/// parts separated by `/`, none of them empty, `.`, `..`, reserved or
/// holding a NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalName {
    text: String,
}

impl LocalName {
    /// Checks `relative`, a name the server sent (or a user's file name).
    pub fn parse(relative: &str) -> Result<Self, Refusal> {
        if relative.contains('\0') {
            return Err(Refusal::Nul);
        }
        if relative.starts_with('/') {
            return Err(Refusal::Absolute);
        }
        for part in relative.split('/') {
            match part {
                "" => return Err(Refusal::Empty),
                "." | ".." => return Err(Refusal::Climbs),
                part if qftp_proto::is_reserved_name(part) => {
                    return Err(Refusal::Reserved {
                        part: part.to_owned(),
                    });
                }
                _ => {}
            }
        }
        Ok(Self {
            text: relative.to_owned(),
        })
    }

    /// The name as text, parts separated by `/`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The directory parts and the last part.
    fn split_last(&self) -> (&str, &str) {
        match self.text.rsplit_once('/') {
            Some((parent, last)) => (parent, last),
            None => ("", &self.text),
        }
    }

    /// How many directories lie between the destination and this entry.
    fn depth(&self) -> usize {
        self.text.matches('/').count()
    }

    /// `child` below this name.
    pub fn join(&self, child: &LocalName) -> LocalName {
        LocalName {
            text: format!("{}/{}", self.text, child.text),
        }
    }

    fn refused(&self, reason: Refusal) -> ClientError {
        ClientError::Refused {
            name: self.text.clone(),
            reason,
        }
    }
}

impl std::fmt::Display for LocalName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// The local directory a pull writes beneath.
#[derive(Debug)]
pub struct Destination {
    root: Dir,
    path: PathBuf,
}

impl Destination {
    /// Opens the directory `path` the user named, creating it (and its
    /// parents) first when `create`. This is the only use of ambient
    /// authority; everything else is resolved beneath the handle.
    pub fn open(path: &Path, create: bool) -> Result<Self, ClientError> {
        if create {
            std::fs::create_dir_all(path).map_err(|error| ClientError::local(path, error))?;
        }
        let root = Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .map_err(|error| ClientError::local(path, error))?;
        Ok(Self {
            root,
            path: path.to_owned(),
        })
    }

    /// The directory as the user named it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses a pull of `needed` bytes when the file system holding the
    /// destination has less room ([`crate::free_space`]).
    pub fn check_free_space(&self, needed: u64) -> Result<(), ClientError> {
        crate::free_space::check_free_space(&self.root, &self.path, needed)
    }

    /// Where `name` is, for messages.
    pub fn display_path(&self, name: &LocalName) -> PathBuf {
        self.path.join(name.as_str())
    }

    /// Opens the directory `parts` (a `/`-separated run of parts of `name`,
    /// empty for the destination itself), creating missing ones when
    /// `create`, refusing any part that is a symlink or not a directory.
    fn open_directory(
        &self,
        name: &LocalName,
        parts: &str,
        create: bool,
    ) -> Result<Dir, ClientError> {
        let mut directory = self
            .root
            .try_clone()
            .map_err(|error| ClientError::local(&self.path, error))?;
        if parts.is_empty() {
            return Ok(directory);
        }
        let mut reached = String::new();
        for part in parts.split('/') {
            if !reached.is_empty() {
                reached.push('/');
            }
            reached.push_str(part);
            let local = |error| ClientError::local(self.path.join(&reached), error);
            let before = match directory.symlink_metadata(part) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound && create => {
                    match directory.create_dir(part) {
                        Ok(()) => {}
                        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(error) => return Err(local(error)),
                    }
                    directory.symlink_metadata(part).map_err(local)?
                }
                Err(error) => return Err(local(error)),
            };
            if before.file_type().is_symlink() {
                return Err(name.refused(Refusal::ThroughLink { at: reached }));
            }
            if !before.is_dir() {
                return Err(name.refused(Refusal::NotADirectory { at: reached }));
            }
            // cap-std keeps this beneath `directory` whatever happens; the
            // comparison refuses a part swapped for a link in between.
            let next = directory.open_dir(part).map_err(local)?;
            let after = next.dir_metadata().map_err(local)?;
            if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
                return Err(name.refused(Refusal::Swapped { at: reached }));
            }
            directory = next;
        }
        Ok(directory)
    }

    /// Creates the directory `name` and any missing directories above it.
    pub fn create_dir_all(&self, name: &LocalName) -> Result<(), ClientError> {
        self.open_directory(name, name.as_str(), true).map(drop)
    }

    /// Removes `name`: a directory with everything in it, or a file or link
    /// (never what a link points at).
    pub fn remove(&self, name: &LocalName) -> Result<(), ClientError> {
        let (parent, last) = name.split_last();
        let directory = self.open_directory(name, parent, false)?;
        let local = |error| ClientError::local(self.display_path(name), error);
        let metadata = directory.symlink_metadata(last).map_err(local)?;
        if metadata.is_dir() {
            directory.remove_dir_all(last).map_err(local)
        } else {
            directory.remove_file(last).map_err(local)
        }
    }

    /// Creates the symlink `name -> target`; `target` must be canonical
    /// ([`qftp_proto::path::LinkTarget`]) and climb no higher than the
    /// destination.
    pub fn symlink(&self, name: &LocalName, target: &str) -> Result<(), ClientError> {
        if !qftp_proto::path::link_target_stays_inside(name.depth(), target) {
            return Err(name.refused(Refusal::LinkOutside {
                target: target.to_owned(),
            }));
        }
        let (parent, last) = name.split_last();
        let directory = self.open_directory(name, parent, false)?;
        directory
            .symlink(target, last)
            .map_err(|error| ClientError::local(self.display_path(name), error))
    }

    /// Opens (or creates) the partial file of a download of `name`, in the
    /// directory that will hold `name`, which must exist already.
    pub fn open_partial(&self, name: &LocalName) -> Result<PartialFile, ClientError> {
        let (parent, last) = name.split_last();
        let directory = self.open_directory(name, parent, false)?;
        let partial = qftp_proto::partial_name(last);
        let shown = self.display_path(name).with_file_name(&partial);
        let local = |error| ClientError::local(&shown, error);
        let before = match directory.symlink_metadata(&partial) {
            Ok(metadata) if !metadata.is_file() => {
                return Err(ClientError::Usage(format!(
                    "{}: exists and is not a regular file",
                    shown.display()
                )));
            }
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(local(error)),
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        let file = directory
            .open_with(&partial, &options)
            .map_err(local)?
            .into_std();
        // The name must still be the regular file just opened, not a link
        // planted in between.
        let opened = file.metadata().map_err(local)?;
        let now = directory.symlink_metadata(&partial).map_err(local)?;
        let same = |dev: u64, ino: u64| {
            std::os::unix::fs::MetadataExt::dev(&opened) == dev
                && std::os::unix::fs::MetadataExt::ino(&opened) == ino
        };
        if !now.is_file()
            || !same(now.dev(), now.ino())
            || before.is_some_and(|before| !same(before.dev(), before.ino()))
        {
            return Err(ClientError::Usage(format!(
                "{}: changed while it was being opened",
                shown.display()
            )));
        }
        Ok(PartialFile {
            directory,
            partial,
            last: last.to_owned(),
            shown: self.display_path(name),
            file,
        })
    }
}

/// A download's partial file, open, beside the final name it will take.
#[derive(Debug)]
pub struct PartialFile {
    directory: Dir,
    partial: String,
    last: String,
    shown: PathBuf,
    /// The open partial file.
    pub file: std::fs::File,
}

impl PartialFile {
    /// Where the final file will be, for messages.
    pub fn final_path(&self) -> &Path {
        &self.shown
    }

    /// Where the partial file is, for messages.
    pub fn partial_path(&self) -> PathBuf {
        self.shown.with_file_name(&self.partial)
    }

    /// Removes the partial file (a mismatch, or nothing came).
    pub fn discard(self) {
        let _ = self.directory.remove_file(&self.partial);
    }

    /// Makes the verified download final: sets its mtime, flushes it,
    /// renames it over the final name and flushes the directory (each flush
    /// shared with the downloads finishing at the same time, see
    /// [`FlushGroups`]). Only a
    /// [`VerifiedHash`], which only a successful comparison makes, opens
    /// the way.
    pub fn commit(
        self,
        verified: VerifiedHash,
        mtime: Option<std::time::SystemTime>,
    ) -> Result<(), ClientError> {
        tracing::trace!(path = %self.shown.display(), hash = %verified, "download verified");
        let partial_path = self.partial_path();
        let at_partial = |error| ClientError::local(&partial_path, error);
        if let Some(mtime) = mtime {
            filetime::set_file_handle_times(
                &self.file,
                None,
                Some(filetime::FileTime::from_system_time(mtime)),
            )
            .map_err(at_partial)?;
        }
        let flushes = FlushGroups::process_wide();
        flushes.flush(&self.file).map_err(at_partial)?;
        if self
            .directory
            .symlink_metadata(&self.last)
            .is_ok_and(|metadata| metadata.is_dir())
        {
            return Err(ClientError::Usage(format!(
                "{}: is a directory",
                self.shown.display()
            )));
        }
        let at_final = |error| ClientError::local(&self.shown, error);
        self.directory
            .rename(&self.partial, &self.directory, &self.last)
            .map_err(at_final)?;
        let directory = self.directory.try_clone().map_err(at_final)?;
        let _ = flushes.flush(&directory.into_std_file());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> LocalName {
        LocalName::parse(text).unwrap()
    }

    fn refusal(result: Result<impl std::fmt::Debug, ClientError>) -> Refusal {
        match result {
            Err(ClientError::Refused { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn hostile_names_are_refused_lexically() {
        assert_eq!(name("a/b.txt").as_str(), "a/b.txt");
        assert_eq!(LocalName::parse("../x"), Err(Refusal::Climbs));
        assert_eq!(LocalName::parse("a/../../x"), Err(Refusal::Climbs));
        assert_eq!(LocalName::parse("a/./x"), Err(Refusal::Climbs));
        assert_eq!(LocalName::parse("/etc/passwd"), Err(Refusal::Absolute));
        assert_eq!(LocalName::parse("a//b"), Err(Refusal::Empty));
        assert_eq!(LocalName::parse(""), Err(Refusal::Empty));
        assert_eq!(LocalName::parse("a/"), Err(Refusal::Empty));
        assert_eq!(LocalName::parse("a\0b"), Err(Refusal::Nul));
        assert!(matches!(
            LocalName::parse("d/.f.qftp-part"),
            Err(Refusal::Reserved { .. })
        ));
        assert!(matches!(
            LocalName::parse(".qftp-partials/x"),
            Err(Refusal::Reserved { .. })
        ));
    }

    #[test]
    fn writes_never_pass_through_a_link() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("dest");
        let outside = temp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let destination = Destination::open(&root, true).unwrap();
        destination.create_dir_all(&name("sub/deeper")).unwrap();
        assert!(root.join("sub/deeper").is_dir());
        // A link that stays inside is made; one that leads out is not.
        destination.symlink(&name("l1"), "sub").unwrap();
        destination.symlink(&name("sub/up"), "..").unwrap();
        assert!(matches!(
            refusal(destination.symlink(&name("sub/l2"), "../..")),
            Refusal::LinkOutside { .. }
        ));
        assert!(matches!(
            refusal(destination.symlink(&name("a"), "/etc")),
            Refusal::LinkOutside { .. }
        ));
        // A link planted by anyone to the outside, then entries through it.
        std::os::unix::fs::symlink(&outside, root.join("planted")).unwrap();
        for through in ["planted/x", "l1/deeper/x", "sub/up/sub/x"] {
            let target = name(through);
            assert!(
                matches!(
                    refusal(destination.open_partial(&target)),
                    Refusal::ThroughLink { .. }
                ),
                "{through}"
            );
            assert!(matches!(
                refusal(destination.create_dir_all(&target)),
                Refusal::ThroughLink { .. }
            ));
            assert!(matches!(
                refusal(destination.symlink(&target, "y")),
                Refusal::ThroughLink { .. }
            ));
        }
        assert!(matches!(
            refusal(destination.remove(&name("planted/anything"))),
            Refusal::ThroughLink { .. }
        ));
        // Removing the link removes the link, not what it points at.
        std::fs::write(outside.join("kept"), b"kept").unwrap();
        destination.remove(&name("planted")).unwrap();
        assert!(outside.join("kept").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn a_download_commits_atomically_beneath_the_destination() {
        let temp = tempfile::tempdir().unwrap();
        let destination = Destination::open(temp.path(), false).unwrap();
        destination.create_dir_all(&name("d")).unwrap();
        let target = name("d/file.txt");
        let mut partial = destination.open_partial(&target).unwrap();
        std::io::Write::write_all(&mut partial.file, b"hello").unwrap();
        assert!(temp.path().join("d/.file.txt.qftp-part").is_file());
        assert!(!temp.path().join("d/file.txt").exists());
        let verified = qftp_proto::hash::verify(&[7; 32], &[7; 32]).unwrap();
        partial.commit(verified, None).unwrap();
        assert_eq!(
            std::fs::read(temp.path().join("d/file.txt")).unwrap(),
            b"hello"
        );
        assert!(!temp.path().join("d/.file.txt.qftp-part").exists());
        // A partial kept from before is reopened with its bytes (resume).
        let partial = destination.open_partial(&name("d/next")).unwrap();
        std::io::Write::write_all(&mut &partial.file, b"abc").unwrap();
        drop(partial);
        let again = destination.open_partial(&name("d/next")).unwrap();
        assert_eq!(again.file.metadata().unwrap().len(), 3);
        again.discard();
        assert!(!temp.path().join("d/.next.qftp-part").exists());
        // A partial name that is a link is not written through.
        std::os::unix::fs::symlink("/etc/passwd", temp.path().join("d/.x.qftp-part")).unwrap();
        assert!(destination.open_partial(&name("d/x")).is_err());
    }
}
