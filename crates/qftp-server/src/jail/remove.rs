//! Removing files, links and (recursively) directories, reporting what was
//! freed even when a removal fails halfway; a link is removed, never its
//! target, and a recursive removal never descends into a link.
//!
//! This module decides nothing about the quota: the caller's tally does.

use std::ffi::{OsStr, OsString};
use std::io;

use cap_std::fs::Dir;
use qftp_proto::ErrorKind;
use qftp_proto::path::RemotePath;

use super::home::{Jail, open_same_dir, user_error};
use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;
use crate::quota::Tally;
use crate::tree::{Descent, Identity};

impl Jail {
    /// Removes `path`, telling `tally` what it removed (by the rule of
    /// [`Footprint`]; on an error halfway through a recursive removal, only
    /// what was removed before the error is reported, so the caller
    /// recounts).
    ///
    /// A symlink is removed as a link. A directory must be empty unless
    /// `recursive`; recursive removal is iterative and never follows links.
    /// The home itself cannot be removed.
    pub fn remove(
        &self,
        path: &RemotePath,
        recursive: bool,
        tally: &mut Tally,
    ) -> RequestResult<()> {
        let Some(name) = path.file_name() else {
            return Err(RequestError::new(
                ErrorKind::PermissionDenied,
                "cannot remove your home directory",
            ));
        };
        let entry_cost = tally.entry_cost();
        let parent = self.open_dir_at(&path.parent())?;
        let metadata = parent
            .symlink_metadata(name)
            .map_err(|error| user_error(&error, path))?;
        if !metadata.is_dir() {
            parent
                .remove_file(name)
                .map_err(|error| user_error(&error, path))?;
            tally.remove(Footprint::of(&metadata, entry_cost));
            return Ok(());
        }
        if !recursive {
            parent
                .remove_dir(name)
                .map_err(|error| user_error(&error, path))?;
            tally.remove(Footprint::of(&metadata, entry_cost));
            return Ok(());
        }
        match open_same_dir(&parent, OsStr::new(name), &metadata) {
            Ok(Some(dir)) => {
                let removed = remove_tree(&parent, dir, OsString::from(name), entry_cost)
                    .map_err(|error| user_error(&error, path))?;
                tally.remove(removed);
                Ok(())
            }
            Ok(None) => Err(RequestError::new(
                ErrorKind::Busy,
                format!("{path}: changed while being removed"),
            )),
            Err(error) => Err(user_error(&error, path)),
        }
    }
}

/// Removes the directory `dir`, called `name` in `parent`, with everything
/// below it, and returns the footprint of all that was removed, the
/// directory itself included ([`Footprint::of`] of each entry).
///
/// Iterative, on a [`Descent`]: a bounded number of handles whatever the
/// depth. Each pass over a directory removes its non-directories and stops
/// at the first subdirectory, which is entered; once a directory is empty it
/// is removed from its parent and the parent is scanned again (only what is
/// left).
pub(super) fn remove_tree(
    parent: &Dir,
    dir: Dir,
    name: OsString,
    entry_cost: u64,
) -> io::Result<Footprint> {
    let mut freed = Footprint::ZERO;
    let mut descent = Descent::new(dir, ())?;
    loop {
        let mut descend = None;
        for entry in descent.dir().entries()? {
            let entry = entry?;
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            if metadata.is_dir() {
                descend = Some((entry.file_name(), Identity::of(&metadata)));
                break;
            }
            match entry.remove_file() {
                Ok(()) => freed += Footprint::of(&metadata, entry_cost),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        if let Some((child, identity)) = descend {
            // A directory replaced by a link since the look is rescanned:
            // the next pass sees the link and removes it as a link.
            match descent.enter(&child, identity, ()) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
            continue;
        }
        let Some((done, ())) = descent.leave()? else {
            break;
        };
        match descent.dir().remove_dir(&done) {
            Ok(()) => freed += Footprint::node(entry_cost),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    drop(descent);
    match parent.remove_dir(&name) {
        Ok(()) => freed += Footprint::node(entry_cost),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    Ok(freed)
}
