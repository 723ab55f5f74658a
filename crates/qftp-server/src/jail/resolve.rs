//! Resolving a client path beneath the home: metadata (`stat`), the parent
//! directory and final name an upload lands in ([`JailedTarget`]), and the
//! regular file a download reads.
//!
//! This module lists, creates, moves and removes nothing.

use std::io;

use cap_std::fs::Dir;
use qftp_proto::path::RemotePath;
use qftp_proto::{EntryInfo, ErrorKind};

use super::home::{Jail, check_regular, display_name, local_path, reserved_name, user_error};
use super::listing::entry_info;
use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;

/// Where a file of the home is to land: the opened directory that holds
/// it, resolved beneath the home, and its final name there (never a name
/// reserved for partial files).
///
/// Only the jail's own resolution of a [`RemotePath`] makes one
/// ([`Jail::open_parent`]); there is no constructor from a directory handle
/// and a name, so whatever asks for a `JailedTarget` (the atomic commit of
/// an upload) cannot be given a place outside a home.
#[derive(Debug)]
pub struct JailedTarget {
    dir: Dir,
    name: String,
}

impl JailedTarget {
    /// The directory that holds the target.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The target's name in [`JailedTarget::dir`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the entry now under the target's name costs (nothing when there
    /// is none); a directory in the way is an error, `shown` naming it.
    pub fn existing_footprint(&self, shown: &str, entry_cost: u64) -> RequestResult<Footprint> {
        match self.dir.symlink_metadata(&self.name) {
            Ok(metadata) if metadata.is_dir() => Err(RequestError::new(
                ErrorKind::IsADirectory,
                format!("{shown}: is a directory"),
            )),
            Ok(metadata) => Ok(Footprint::of(&metadata, entry_cost)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Footprint::ZERO),
            Err(error) => Err(RequestError::from_io(&error, shown)),
        }
    }
}

impl Jail {
    /// Metadata of `path`, following symlinks that stay inside the home. The
    /// entry is named by its last name, or `/` for the home itself.
    pub fn stat(&self, path: &RemotePath) -> RequestResult<EntryInfo> {
        let metadata = self
            .root
            .metadata(local_path(path))
            .map_err(|error| user_error(&error, path))?;
        Ok(entry_info(display_name(path), &metadata))
    }

    /// Whether `path` names an existing directory (following symlinks that
    /// stay inside). A missing path, or one running through a file, is
    /// `Ok(false)`; a path leading outside the home is an error.
    pub fn is_dir(&self, path: &RemotePath) -> RequestResult<bool> {
        match self.root.metadata(local_path(path)) {
            Ok(metadata) => Ok(metadata.is_dir()),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(user_error(&error, path)),
        }
    }

    /// For transfers: the handle of `path`'s parent directory, which must
    /// exist and be a directory inside the home, and the final name.
    ///
    /// The home itself is refused (it is a directory), and so is a final name
    /// reserved for partial files.
    pub fn open_parent(&self, path: &RemotePath) -> RequestResult<JailedTarget> {
        let Some(name) = path.file_name() else {
            return Err(RequestError::new(
                ErrorKind::IsADirectory,
                "/: is a directory",
            ));
        };
        if qftp_proto::is_partial_name(name) {
            return Err(reserved_name(path));
        }
        let dir = self.open_dir_at(&path.parent())?;
        Ok(JailedTarget {
            dir,
            name: name.to_owned(),
        })
    }

    /// Opens the regular file `path` for reading, with its metadata taken
    /// from the opened handle.
    pub fn open_read(&self, path: &RemotePath) -> RequestResult<(std::fs::File, EntryInfo)> {
        // Look before opening so that a FIFO or device is never opened.
        let metadata = self
            .root
            .metadata(local_path(path))
            .map_err(|error| user_error(&error, path))?;
        check_regular(&metadata, path)?;
        let file = self
            .root
            .open(local_path(path))
            .map_err(|error| user_error(&error, path))?;
        let metadata = file.metadata().map_err(|error| user_error(&error, path))?;
        check_regular(&metadata, path)?;
        Ok((file.into_std(), entry_info(display_name(path), &metadata)))
    }

    /// Opens the directory `path` (following symlinks that stay inside).
    pub(super) fn open_dir_at(&self, path: &RemotePath) -> RequestResult<Dir> {
        self.root
            .open_dir(local_path(path))
            .map_err(|error| user_error(&error, path))
    }

    /// The entry for `path` itself, without following a final symlink.
    pub(super) fn link_entry(&self, path: &RemotePath) -> RequestResult<EntryInfo> {
        let metadata = self
            .root
            .symlink_metadata(local_path(path))
            .map_err(|error| user_error(&error, path))?;
        let mut info = entry_info(display_name(path), &metadata);
        if metadata.is_symlink() {
            info.link_target = self
                .root
                .read_link_contents(local_path(path))
                .ok()
                .map(|target| target.to_string_lossy().into_owned());
        }
        Ok(info)
    }
}
