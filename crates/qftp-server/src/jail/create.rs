//! Making directories and symlinks in a home, each checked against the
//! user's tally before it is made and reported once it exists; a link only
//! under the rule of [`crate::links`].
//!
//! This module removes and moves nothing.

use std::io;
use std::path::PathBuf;

use qftp_proto::ErrorKind;
use qftp_proto::path::RemotePath;

use super::home::{Jail, local_path, reserved_name, user_error};
use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;
use crate::quota::Tally;

impl Jail {
    /// Creates a symbolic link at `path` pointing to `target`.
    ///
    /// Only links that stay inside the home, by whatever program resolves
    /// them, are made: the target must be in canonical form and climb no
    /// higher than the link's real directory is deep (the rule of
    /// [`crate::links`]). The link is made relative to the handle whose
    /// depth was measured.
    pub fn symlink(&self, path: &RemotePath, target: &str) -> RequestResult<()> {
        let place = self.open_parent(path)?;
        crate::links::check_new_link(&self.root, place.dir(), path, target, &self.links)?;
        place
            .dir()
            .symlink(target, place.name())
            .map_err(|error| user_error(&error, path))
    }

    /// Creates the directory `path`. With `parents`, missing ancestors are
    /// created too and an existing directory is accepted (the home included).
    /// Each directory is checked against `tally` before it is made and
    /// reported once it exists.
    pub fn mkdir(&self, path: &RemotePath, parents: bool, tally: &mut Tally) -> RequestResult<()> {
        let cost = Footprint::node(tally.entry_cost());
        let Some(name) = path.file_name() else {
            return if parents {
                Ok(())
            } else {
                Err(RequestError::new(
                    ErrorKind::AlreadyExists,
                    "/: already exists",
                ))
            };
        };
        if qftp_proto::is_partial_name(name) {
            return Err(reserved_name(path));
        }
        if !parents {
            tally.check(cost, &path.to_string())?;
            self.root
                .create_dir(local_path(path))
                .map_err(|error| user_error(&error, path))?;
            tally.add(cost);
            return Ok(());
        }
        let components = path.components();
        for depth in 1..=components.len() {
            let prefix: PathBuf = components[..depth].iter().collect();
            let shown = format!("/{}", components[..depth].join("/"));
            let exists = match self.root.symlink_metadata(&prefix) {
                Ok(_) => true,
                Err(error) if error.kind() == io::ErrorKind::NotFound => false,
                Err(error) => return Err(RequestError::from_io(&error, &shown)),
            };
            if !exists {
                tally.check(cost, &shown)?;
            }
            match self.root.create_dir(&prefix) {
                Ok(()) => tally.add(cost),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    match self.root.metadata(&prefix) {
                        Ok(metadata) if metadata.is_dir() => {}
                        Ok(_) if depth == components.len() => {
                            return Err(RequestError::new(
                                ErrorKind::AlreadyExists,
                                format!("{shown}: already exists"),
                            ));
                        }
                        Ok(_) => {
                            return Err(RequestError::new(
                                ErrorKind::NotADirectory,
                                format!("{shown}: not a directory"),
                            ));
                        }
                        Err(error) => return Err(RequestError::from_io(&error, &shown)),
                    }
                }
                Err(error) => return Err(RequestError::from_io(&error, &shown)),
            }
        }
        Ok(())
    }
}
