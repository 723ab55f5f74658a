//! Measuring a home: everything below it charged as the quota ledger
//! charges it (files their length, directories and links one entry cost),
//! no link followed.
//!
//! This module keeps no figures: the ledger in [`crate::quota`] does.

use std::ffi::OsString;
use std::io;

use cap_std::fs::Dir;

use super::home::Jail;
use crate::footprint::Footprint;
use crate::tree::Identity;

impl Jail {
    /// What the home holds: the sum of [`Footprint::of`] over every entry
    /// below it (the home and the staging directory itself excluded),
    /// symlinks not followed, partial files counted like everything else.
    ///
    /// Any depth is measured with a bounded number of open directory handles
    /// (see [`crate::tree`]).
    pub fn disk_usage(&self) -> io::Result<Footprint> {
        let cost = self.limits.entry_cost;
        let mut total = Footprint::ZERO;
        crate::tree::visit_dirs(self.root.try_clone()?, |dir, _| {
            measure_dir(dir, cost, &mut total).map(crate::tree::Visit::Enter)
        })?;
        // The staging directory itself is the server's and costs nothing;
        // the partials in it were counted like any file.
        if self
            .root
            .symlink_metadata(crate::partials::STAGING_DIR)
            .is_ok_and(|metadata| metadata.is_dir())
        {
            total = total.saturating_sub(Footprint::node(cost));
        }
        Ok(total)
    }
}

/// Adds the footprint of every entry of `dir` to `total` and returns its
/// subdirectories (links not followed) with their identities.
pub(super) fn measure_dir(
    dir: &Dir,
    entry_cost: u64,
    total: &mut Footprint,
) -> io::Result<Vec<(OsString, Identity)>> {
    let mut subdirectories = Vec::new();
    for entry in dir.entries()? {
        let entry = entry?;
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        *total += Footprint::of(&metadata, entry_cost);
        if metadata.is_dir() {
            subdirectories.push((entry.file_name(), Identity::of(&metadata)));
        }
    }
    Ok(subdirectories)
}
