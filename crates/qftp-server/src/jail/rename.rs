//! Renaming with `mv` semantics inside one home: the depth limit measured
//! where the destination really is, and links moved only where they keep
//! resolving inside the home.
//!
//! This module creates and removes nothing but the names it moves.

use std::ffi::OsStr;
use std::io;

use cap_std::fs::{Dir, Metadata};
use qftp_proto::ErrorKind;
use qftp_proto::path::RemotePath;

use super::home::{Jail, local_path, open_same_dir, reserved_name, same_file, user_error};
use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;
use crate::limits::Refusal;
use crate::quota::Tally;

impl Jail {
    /// Moves `from` to `to` with `mv` semantics, telling `tally` what the
    /// move replaced.
    ///
    /// When `to` is an existing directory (the home included), `from` moves
    /// into it under its own name. A file, link or empty directory at the
    /// destination is replaced (as rename(2) does). Refused: moving the home,
    /// replacing the home, moving a directory into itself or a descendant,
    /// and a destination whose final name is a partial file's name. Moving a
    /// path onto itself does nothing.
    pub fn rename(
        &self,
        from: &RemotePath,
        to: &RemotePath,
        tally: &mut Tally,
    ) -> RequestResult<()> {
        let Some(from_name) = from.file_name() else {
            return Err(RequestError::new(
                ErrorKind::PermissionDenied,
                "cannot move your home directory",
            ));
        };
        let destination = match self.root.metadata(local_path(to)) {
            Ok(metadata) if metadata.is_dir() => to
                .join(from_name)
                .map_err(|error| RequestError::new(ErrorKind::InvalidPath, error.to_string()))?,
            Ok(_) => to.clone(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => to.clone(),
            Err(error) => return Err(user_error(&error, to)),
        };
        let Some(destination_name) = destination.file_name() else {
            return Err(RequestError::new(
                ErrorKind::PermissionDenied,
                "cannot replace your home directory",
            ));
        };
        if destination == *from {
            return Ok(());
        }
        // Partial files are not charged to the quota, so one may neither be
        // renamed into a final name nor be created by a rename.
        if qftp_proto::is_partial_name(destination_name) {
            return Err(reserved_name(&destination));
        }
        if qftp_proto::is_partial_name(from_name) {
            return Err(reserved_name(from));
        }
        if destination.components().starts_with(from.components()) {
            return Err(into_itself(from, &destination));
        }
        let from_parent = self.open_dir_at(&from.parent())?;
        let to_parent = self.open_dir_at(&destination.parent())?;
        let source = from_parent
            .symlink_metadata(from_name)
            .map_err(|error| user_error(&error, from))?;
        // Hardening (resources): a directory moved here must not put an
        // entry deeper than `max_depth` names.
        if source.is_dir() {
            self.check_moved_depth(&from_parent, from, &source, &to_parent, &destination)?;
        }
        let replaced = match to_parent.symlink_metadata(destination_name) {
            Ok(existing) if !same_file(&existing, &source) => {
                Footprint::of(&existing, tally.entry_cost())
            }
            _ => Footprint::ZERO,
        };
        // Links (crate::links): a move may not leave a link it carries
        // pointing outside the home.
        crate::links::check_links_after_move(
            &self.root,
            &from_parent,
            from_name,
            &source,
            &to_parent,
            from,
            &self.links,
        )?;
        from_parent
            .rename(from_name, &to_parent, destination_name)
            .map_err(|error| match error.kind() {
                // rename(2) says EINVAL when a directory would move below
                // itself, which the lexical check misses through symlinks.
                io::ErrorKind::InvalidInput => into_itself(from, &destination),
                io::ErrorKind::NotFound => user_error(&error, from),
                _ => user_error(&error, &destination),
            })?;
        tally.remove(replaced);
        Ok(())
    }

    /// Refuses moving the directory `from` (in `parent`, as `seen`) to
    /// `destination` (in `to_parent`) when an entry below it would end up
    /// deeper than `max_depth` names. The destination's depth is where its
    /// parent really is, not what its path says (a symlink can make a deep
    /// directory look shallow), and only the levels of the subtree down to
    /// the bound are read (see [`crate::tree::taller_than`]).
    pub(super) fn check_moved_depth(
        &self,
        parent: &Dir,
        from: &RemotePath,
        seen: &Metadata,
        to_parent: &Dir,
        destination: &RemotePath,
    ) -> RequestResult<()> {
        let refuse = || {
            Refusal {
                setting: "max_depth",
                value: &self.limits.max_depth.to_string(),
                who: &self.owner,
            }
            .refuse(format!(
                "cannot move {from} to {destination}: the tree would be too deep"
            ))
        };
        let max_depth = self.limits.max_depth;
        let real = crate::tree::depth_below(&self.root, to_parent, max_depth)
            .map_err(|error| user_error(&error, destination))?;
        let Some(budget) = real
            .map(|depth| depth.max(destination.components().len() - 1) + 1)
            .and_then(|depth| max_depth.checked_sub(depth))
        else {
            return Err(refuse());
        };
        let name = OsStr::new(from.file_name().unwrap_or_default());
        let dir = match open_same_dir(parent, name, seen) {
            Ok(Some(dir)) => dir,
            Ok(None) => {
                return Err(RequestError::new(
                    ErrorKind::Busy,
                    format!("{from}: changed while being moved"),
                ));
            }
            Err(error) => return Err(user_error(&error, from)),
        };
        match crate::tree::taller_than(dir, budget) {
            Ok(true) => Err(refuse()),
            Ok(false) => Ok(()),
            Err(error) => Err(user_error(&error, from)),
        }
    }
}

pub(super) fn into_itself(from: &RemotePath, to: &RemotePath) -> RequestError {
    RequestError::new(
        ErrorKind::InvalidPath,
        format!("cannot move {from} into itself ({to})"),
    )
}
