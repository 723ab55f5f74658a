//! Every file-system operation of one user, confined to their home directory.
//!
//! A [`Jail`] is opened once per session on the user's home and answers the
//! navigation requests (stat, list, walk, mkdir, remove, rename, disk usage)
//! and hands out the handles that uploads and downloads work with.
//!
//! # What it guarantees
//!
//! Confinement comes in two layers:
//!
//! 1. **Lexical normalization** by [`RemotePath`]: every path arrives with no
//!    `.`, no `..` and no empty names, read from the home (`/` is the home,
//!    `..` at the root stays at the root). A user cannot even spell a path
//!    above their home.
//! 2. **Resolution beneath the home's directory handle** by `cap-std`: the
//!    home is opened once as a [`cap_std::fs::Dir`] and every path is
//!    resolved relative to that handle, never through an absolute server
//!    path. On Linux 5.6 and later this is `openat2` with `RESOLVE_BENEATH`;
//!    elsewhere cap-std walks the path one name at a time. A symlink whose
//!    target is absolute or climbs above the home is refused with
//!    [`ErrorKind::OutsideHome`] instead of being followed, and because each
//!    step is taken from an open handle, renaming directories or swapping
//!    them for symlinks while a request runs cannot redirect it outside.
//!
//! Symlinks that stay inside the home are followed when they are part of a
//! path the user names (stat, open for reading, the parent of an upload, the
//! directory to list or walk). Listings and walks report symlink entries as
//! [`EntryKind::Symlink`] without following them; removal deletes the link,
//! never its target; walks, recursive removal and disk usage never descend
//! into a link, and they check that a directory they open is the one they
//! examined (same device and inode), so a directory swapped for a link
//! between the look and the open is not entered either.
//!
//! Links a user makes ([`Jail::symlink`]) or moves ([`Jail::rename`]) keep
//! resolving inside the home for every program that follows them, not only
//! for qftp: the rule and its checks live in [`crate::links`].
//!
//! The names a server keeps for itself (the staging directory of partial
//! uploads, old-style partial files; see [`qftp_proto::is_reserved_name`])
//! cannot be spelled in a [`RemotePath`] and are hidden from listings and
//! walks, but count in disk usage and in what a removal frees.
//!
//! # What it does not do
//!
//! * It keeps no quota: [`crate::quota`] decides whether bytes fit, this
//!   module only reports the bytes it frees and finds.
//! * It takes no locks: two transfers on the same path are kept apart by the
//!   transfer code, not here.
//! * Absolute symlinks are always refused, even when they point into the
//!   home: cap-std cannot tell, and the user cannot see server paths anyway.
//! * Hard links and mount points that an administrator places inside a home
//!   are ordinary entries to it; users cannot create either through qftp.
//! * Only regular files are opened for reading. The check happens before
//!   the open, so a regular file replaced by a FIFO in between could block a
//!   read; users cannot create FIFOs through qftp.
//! * Names that are not UTF-8 are reported lossily (with U+FFFD), so such
//!   entries are visible but cannot be named in a request.
//! * Directory handles given out by [`Jail::open_parent`] are sandboxes of
//!   their own: a symlink resolved relative to such a handle cannot climb
//!   above that directory, even where it would stay inside the home.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, Metadata, MetadataExt};
use qftp_proto::path::RemotePath;
use qftp_proto::{EntryInfo, EntryKind, ErrorKind, HashBytes, LIST_CHUNK_ENTRIES, Timestamp};

use crate::config::ResourceLimits;
use crate::error::{RequestError, RequestResult};
use crate::footprint::Footprint;
use crate::limits::Refusal;
use crate::links::LinkBounds;
use crate::quota::Tally;
use crate::tree::{Descent, Identity};

/// A user's home directory, opened once; every operation resolves beneath
/// this handle.
#[derive(Debug)]
pub struct Jail {
    root: Dir,
    links: LinkBounds,
    owner: String,
    limits: JailLimits,
}

/// The limits of `[limits]` that the jail applies itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailLimits {
    /// What a directory or a symlink costs, in bytes (`limits.entry_cost`).
    pub entry_cost: u64,
    /// The most names in a path (`limits.max_depth`): no rename may make a
    /// tree deeper, and walks refuse to report deeper entries.
    pub max_depth: usize,
    /// The longest path in bytes (`limits.max_path_bytes`) a walk reports.
    pub max_path_bytes: usize,
}

impl JailLimits {
    /// The jail's part of the configured limits.
    pub fn from_config(limits: &ResourceLimits) -> Result<JailLimits, String> {
        Ok(JailLimits {
            entry_cost: limits.entry_cost()?,
            max_depth: limits.max_depth,
            max_path_bytes: limits.max_path_bytes,
        })
    }
}

impl Default for JailLimits {
    fn default() -> JailLimits {
        JailLimits::from_config(&ResourceLimits::default()).expect("the default limits are valid")
    }
}

impl Jail {
    /// Opens the home directory at `home` of the user `owner` (named in
    /// refusals), which must exist and be a directory. This is the only
    /// place that uses an absolute server path.
    pub fn open(home: &Path, owner: &str, limits: JailLimits) -> io::Result<Jail> {
        let root = Dir::open_ambient_dir(home, cap_std::ambient_authority())?;
        let links = LinkBounds {
            max_depth: limits.max_depth,
            user: owner.to_owned(),
        };
        Ok(Jail {
            root,
            links,
            owner: owner.to_owned(),
            limits,
        })
    }

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

    /// The entries of the directory `path`, sorted by name, partial files
    /// hidden, all at once (see [`Jail::lister`], which the server uses).
    pub fn list(&self, path: &RemotePath) -> RequestResult<Vec<EntryInfo>> {
        let mut lister = self.lister(path)?;
        let mut entries = Vec::new();
        loop {
            let (chunk, done) = lister.next_chunk()?;
            entries.extend(chunk);
            if done {
                return Ok(entries);
            }
        }
    }

    /// A listing of the directory `path`, to be read chunk by chunk: entries
    /// sorted by name, partial files hidden. Symlink entries are reported as
    /// links with their target and not followed. When `path` is not a
    /// directory the answer is that one entry (a symlink to a file is
    /// reported as the link).
    ///
    /// Only the names are read at once (to sort them); each entry's metadata
    /// is read when its chunk is, so memory grows with the names in the
    /// directory, not with the answer.
    pub fn lister(&self, path: &RemotePath) -> RequestResult<Lister> {
        let dir = match self.root.open_dir(local_path(path)) {
            Ok(dir) => dir,
            Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
                return Ok(Lister {
                    base: path.clone(),
                    source: ListSource::Single(Some(self.link_entry(path)?)),
                });
            }
            Err(error) => return Err(user_error(&error, path)),
        };
        let names = sorted_names(&dir).map_err(|error| user_error(&error, path))?;
        Ok(Lister {
            base: path.clone(),
            source: ListSource::Directory {
                dir,
                names: names.into_iter(),
            },
        })
    }

    /// Every entry below the directory `path` (not `path` itself), handed to
    /// `emit` in chunks of at most [`LIST_CHUNK_ENTRIES`] (see
    /// [`Jail::walker`]). `emit` is never called with an empty chunk; when it
    /// returns `false` the walk stops and returns `Ok`.
    pub fn walk(
        &self,
        path: &RemotePath,
        hashes: bool,
        emit: &mut dyn FnMut(Vec<EntryInfo>) -> bool,
    ) -> RequestResult<()> {
        let mut walker = self.walker(path, hashes)?;
        while let Some(chunk) = walker.next_chunk()? {
            if !emit(chunk) {
                break;
            }
        }
        Ok(())
    }

    /// A walk of every entry below the directory `path`, to be read chunk by
    /// chunk (at most [`LIST_CHUNK_ENTRIES`] entries, never an empty one).
    ///
    /// Names are paths relative to `path` with `/` separators; parents come
    /// before their children and siblings are sorted by name. Partial files
    /// are hidden; symlinks are reported and never descended into. With
    /// `hashes`, each regular file carries the BLAKE3 of its content, and its
    /// size and time are taken from the handle that was hashed. Entries that
    /// vanish during the walk are skipped.
    ///
    /// The walk holds at most [`crate::tree::MAX_HANDLES`] directory handles
    /// whatever the depth. An entry deeper than `max_depth` names or longer
    /// than `max_path_bytes` (counted from the home) ends it with a refusal:
    /// no request could name it. Memory grows with the depth of the tree and
    /// the width of the directories on the current branch, not with the
    /// number of entries.
    pub fn walker(&self, path: &RemotePath, hashes: bool) -> RequestResult<Walker> {
        let top = self
            .root
            .open_dir(local_path(path))
            .map_err(|error| user_error(&error, path))?;
        let names = sorted_names(&top).map_err(|error| user_error(&error, path))?;
        let level = WalkLevel {
            names: names.into_iter(),
            prefix: 0,
        };
        let descent = Descent::new(top, level).map_err(|error| user_error(&error, path))?;
        Ok(Walker {
            base: path.clone(),
            hashes,
            descent: Some(descent),
            relative: String::new(),
            owner: self.owner.clone(),
            limits: self.limits.clone(),
        })
    }

    /// Creates a symbolic link at `path` pointing to `target`.
    ///
    /// Only links that stay inside the home, by whatever program resolves
    /// them, are made: the target must be in canonical form and climb no
    /// higher than the link's real directory is deep (the rule of
    /// [`crate::links`]). The link is made relative to the handle whose
    /// depth was measured.
    pub fn symlink(&self, path: &RemotePath, target: &str) -> RequestResult<()> {
        let (parent, name) = self.open_parent(path)?;
        crate::links::check_new_link(&self.root, &parent, path, target, &self.links)?;
        parent
            .symlink(target, &name)
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
    fn check_moved_depth(
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

    /// For transfers: the handle of `path`'s parent directory, which must
    /// exist and be a directory inside the home, and the final name.
    ///
    /// The home itself is refused (it is a directory), and so is a final name
    /// reserved for partial files.
    pub fn open_parent(&self, path: &RemotePath) -> RequestResult<(Dir, String)> {
        let Some(name) = path.file_name() else {
            return Err(RequestError::new(
                ErrorKind::IsADirectory,
                "/: is a directory",
            ));
        };
        if qftp_proto::is_partial_name(name) {
            return Err(reserved_name(path));
        }
        let parent = self.open_dir_at(&path.parent())?;
        Ok((parent, name.to_owned()))
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

    /// What a directory or a symlink costs in this home (`limits.entry_cost`).
    pub fn entry_cost(&self) -> u64 {
        self.limits.entry_cost
    }

    /// The home's staging directory for partial uploads, created if missing.
    pub fn open_staging(&self) -> io::Result<crate::partials::Staging> {
        crate::partials::Staging::open(&self.root)
    }

    /// Opens the directory `path` (following symlinks that stay inside).
    fn open_dir_at(&self, path: &RemotePath) -> RequestResult<Dir> {
        self.root
            .open_dir(local_path(path))
            .map_err(|error| user_error(&error, path))
    }

    /// The entry for `path` itself, without following a final symlink.
    fn link_entry(&self, path: &RemotePath) -> RequestResult<EntryInfo> {
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

/// Metadata in wire form: kind, size (0 for directories), modification time,
/// permission bits and the given name. No hash and no link target.
pub fn entry_info(name: String, metadata: &Metadata) -> EntryInfo {
    let file_type = metadata.file_type();
    let kind = if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    let mtime = metadata
        .modified()
        .map(|time| Timestamp::from(time.into_std()))
        .unwrap_or_default();
    EntryInfo {
        name,
        kind,
        size: if kind == EntryKind::Directory {
            0
        } else {
            metadata.len()
        },
        mtime,
        mode: metadata.mode() & 0o7777,
        hash: None,
        link_target: None,
    }
}

/// A directory listing being read chunk by chunk (see [`Jail::lister`]).
#[derive(Debug)]
pub struct Lister {
    base: RemotePath,
    source: ListSource,
}

#[derive(Debug)]
enum ListSource {
    /// `path` is not a directory: its one entry, until taken.
    Single(Option<EntryInfo>),
    /// The directory and its sorted names still to report.
    Directory {
        dir: Dir,
        names: std::vec::IntoIter<OsString>,
    },
}

impl Lister {
    /// The next entries (at most [`LIST_CHUNK_ENTRIES`], possibly none when
    /// entries vanished) and whether they are the last.
    pub fn next_chunk(&mut self) -> RequestResult<(Vec<EntryInfo>, bool)> {
        let (dir, names) = match &mut self.source {
            ListSource::Single(entry) => return Ok((entry.take().into_iter().collect(), true)),
            ListSource::Directory { dir, names } => (dir, names),
        };
        let mut chunk = Vec::new();
        while chunk.len() < LIST_CHUNK_ENTRIES {
            let Some(name) = names.next() else { break };
            let shown = name.to_string_lossy().into_owned();
            let metadata = match dir.symlink_metadata(&name) {
                Ok(metadata) => metadata,
                // Removed between reading the directory and looking at it.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => {
                    return Err(RequestError::from_io(
                        &error,
                        &child_display(&self.base, &shown),
                    ));
                }
            };
            let mut info = entry_info(shown, &metadata);
            if metadata.is_symlink() {
                info.link_target = link_target(dir, &name);
            }
            chunk.push(info);
        }
        Ok((chunk, names.len() == 0))
    }
}

/// A walk being read chunk by chunk (see [`Jail::walker`]).
#[derive(Debug)]
pub struct Walker {
    base: RemotePath,
    hashes: bool,
    /// `None` once the walk is over.
    descent: Option<Descent<WalkLevel>>,
    /// The relative path of the entry last reported.
    relative: String,
    owner: String,
    limits: JailLimits,
}

/// One directory of a walk: the length of its entries' relative prefix and
/// the names still to visit.
#[derive(Debug)]
struct WalkLevel {
    names: std::vec::IntoIter<OsString>,
    prefix: usize,
}

impl Walker {
    /// The next entries, at most [`LIST_CHUNK_ENTRIES`] and at least one;
    /// `None` when the walk is over.
    pub fn next_chunk(&mut self) -> RequestResult<Option<Vec<EntryInfo>>> {
        let mut chunk = Vec::new();
        while chunk.len() < LIST_CHUNK_ENTRIES {
            let Some(descent) = self.descent.as_mut() else {
                break;
            };
            let below = descent.depth() + 1;
            let (dir, level) = descent.current();
            let prefix = level.prefix;
            let Some(name) = level.names.next() else {
                match descent.leave() {
                    Ok(Some(_)) => {}
                    Ok(None) => self.descent = None,
                    Err(error) => {
                        self.descent = None;
                        return Err(RequestError::from_io(&error, &self.base.to_string()));
                    }
                }
                continue;
            };
            self.relative.truncate(prefix);
            self.relative.push_str(&name.to_string_lossy());
            let shown = child_display(&self.base, &self.relative);
            let depth = self.base.components().len() + below;
            if depth > self.limits.max_depth || shown.len() > self.limits.max_path_bytes {
                self.descent = None;
                let (setting, value) = if depth > self.limits.max_depth {
                    ("max_depth", self.limits.max_depth)
                } else {
                    ("max_path_bytes", self.limits.max_path_bytes)
                };
                return Err(Refusal {
                    setting,
                    value: &value.to_string(),
                    who: &self.owner,
                }
                .refuse(format!("{}: the tree is too deep to walk", self.base)));
            }
            let failed = |error: io::Error| RequestError::from_io(&error, &shown);
            let metadata = match dir.symlink_metadata(&name) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(failed(error)),
            };
            let mut info = entry_info(self.relative.clone(), &metadata);
            if metadata.is_symlink() {
                info.link_target = link_target(dir, &name);
            } else if metadata.is_file() && self.hashes {
                match hash_file(dir, &name, &metadata) {
                    Ok(Some((opened, hash))) => {
                        info = entry_info(self.relative.clone(), &opened);
                        info.hash = Some(hash);
                    }
                    Ok(None) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(failed(error)),
                }
            } else if metadata.is_dir() {
                let level = WalkLevel {
                    names: Vec::new().into_iter(),
                    prefix: self.relative.len() + 1,
                };
                match descent.enter(&name, Identity::of(&metadata), level) {
                    Ok(true) => {
                        let names = sorted_names(descent.dir()).map_err(failed)?;
                        descent.current().1.names = names.into_iter();
                        self.relative.push('/');
                    }
                    // Replaced by a link since the look: reported as it
                    // was seen, not entered.
                    Ok(false) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(failed(error)),
                }
            }
            chunk.push(info);
        }
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// Adds the footprint of every entry of `dir` to `total` and returns its
/// subdirectories (links not followed) with their identities.
fn measure_dir(
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

/// `path` as a path relative to the home handle (`.` for the home).
fn local_path(path: &RemotePath) -> PathBuf {
    if path.is_root() {
        PathBuf::from(".")
    } else {
        path.components().iter().collect()
    }
}

/// The name an entry for `path` carries: its last name, `/` for the home.
fn display_name(path: &RemotePath) -> String {
    path.file_name().unwrap_or("/").to_owned()
}

/// How the user sees `relative` below `base`.
fn child_display(base: &RemotePath, relative: &str) -> String {
    if base.is_root() {
        format!("/{relative}")
    } else {
        format!("{base}/{relative}")
    }
}

/// An I/O error on `path`, named as the user sees it.
fn user_error(error: &io::Error, path: &RemotePath) -> RequestError {
    RequestError::from_io(error, &path.to_string())
}

fn reserved_name(path: &RemotePath) -> RequestError {
    RequestError::new(ErrorKind::InvalidPath, format!("{path}: reserved name"))
}

fn into_itself(from: &RemotePath, to: &RemotePath) -> RequestError {
    RequestError::new(
        ErrorKind::InvalidPath,
        format!("cannot move {from} into itself ({to})"),
    )
}

/// Refuses anything but a regular file for reading.
fn check_regular(metadata: &Metadata, path: &RemotePath) -> RequestResult<()> {
    if metadata.is_dir() {
        Err(RequestError::new(
            ErrorKind::IsADirectory,
            format!("{path}: is a directory"),
        ))
    } else if !metadata.is_file() {
        Err(RequestError::new(
            ErrorKind::PermissionDenied,
            format!("{path}: not a regular file"),
        ))
    } else {
        Ok(())
    }
}

/// Whether `name` is the server's own (the staging directory, an old-style
/// partial file): hidden from listings and walks.
fn is_partial(name: &OsStr) -> bool {
    name.to_str().is_some_and(qftp_proto::is_reserved_name)
}

/// Whether two metadata describe the same file (device and inode).
fn same_file(left: &Metadata, right: &Metadata) -> bool {
    left.dev() == right.dev() && left.ino() == right.ino()
}

/// A symlink's stored target, as text.
fn link_target(dir: &Dir, name: &OsStr) -> Option<String> {
    dir.read_link_contents(name)
        .ok()
        .map(|target| target.to_string_lossy().into_owned())
}

/// The names in `dir`, partial files left out, sorted.
fn sorted_names(dir: &Dir) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in dir.entries()? {
        let name = entry?.file_name();
        if !is_partial(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Opens the directory `name` in `parent` if it is still the directory that
/// `seen` describes; `None` when it was replaced (by a symlink, say).
fn open_same_dir(parent: &Dir, name: &OsStr, seen: &Metadata) -> io::Result<Option<Dir>> {
    crate::tree::open_same_dir(parent, name, Identity::of(seen))
}

/// The BLAKE3 of the regular file `name` in `dir` and the metadata of the
/// handle that was hashed, or `None` when `name` is no longer the file that
/// `seen` describes.
fn hash_file(
    dir: &Dir,
    name: &OsStr,
    seen: &Metadata,
) -> io::Result<Option<(Metadata, HashBytes)>> {
    let file = dir.open(name)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() || !same_file(&metadata, seen) {
        return Ok(None);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file.into_std())?;
    Ok(Some((metadata, *hasher.finalize().as_bytes())))
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
fn remove_tree(parent: &Dir, dir: Dir, name: OsString, entry_cost: u64) -> io::Result<Footprint> {
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    use qftp_proto::path::RemotePath;
    use qftp_proto::{EntryInfo, EntryKind, ErrorKind, LIST_CHUNK_ENTRIES, partial_name};

    use super::{Jail, JailLimits};
    use crate::footprint::Footprint;
    use crate::quota::Tally;

    fn tally() -> Tally {
        Tally::unlimited(4096)
    }

    fn removed(jail: &Jail, at: &str, recursive: bool) -> Footprint {
        let mut tally = tally();
        jail.remove(&path(at), recursive, &mut tally).unwrap();
        assert_eq!(tally.added(), Footprint::ZERO);
        tally.removed()
    }

    fn renamed(jail: &Jail, from: &str, to: &str) -> Footprint {
        let mut tally = tally();
        jail.rename(&path(from), &path(to), &mut tally).unwrap();
        tally.removed()
    }

    /// Two homes side by side, a file outside both, and a jail on alice's.
    struct Homes {
        top: tempfile::TempDir,
        alice: PathBuf,
        bob: PathBuf,
        jail: Jail,
    }

    impl Homes {
        fn new() -> Homes {
            let top = tempfile::tempdir().unwrap();
            let alice = top.path().join("homes/alice");
            let bob = top.path().join("homes/bob");
            fs::create_dir_all(alice.join("docs")).unwrap();
            fs::create_dir_all(&bob).unwrap();
            fs::write(alice.join("docs/a.txt"), "hello").unwrap();
            fs::write(bob.join("secret.txt"), "bob's secret").unwrap();
            fs::write(top.path().join("outside.txt"), "outside").unwrap();
            let jail = Jail::open(&alice, "alice", JailLimits::default()).unwrap();
            Homes {
                top,
                alice,
                bob,
                jail,
            }
        }

        /// Adds the escaping links: to /etc, to bob's home by absolute path
        /// and by `../bob`, to bob's secret and to the file outside.
        fn with_escapes(self) -> Homes {
            symlink("/etc", self.alice.join("etc_link")).unwrap();
            symlink(&self.bob, self.alice.join("bob_abs")).unwrap();
            symlink("../bob", self.alice.join("bob_rel")).unwrap();
            symlink(self.bob.join("secret.txt"), self.alice.join("secret_abs")).unwrap();
            symlink("../../outside.txt", self.alice.join("outside_rel")).unwrap();
            self
        }

        fn bob_names(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.bob)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }

        /// No error message may reveal where the homes live on the server.
        fn assert_private(&self, message: &str) {
            let server_path = self.top.path().to_string_lossy().into_owned();
            assert!(
                !message.contains(&server_path),
                "leaks a server path: {message}"
            );
        }
    }

    fn path(text: &str) -> RemotePath {
        RemotePath::parse(text).unwrap()
    }

    fn names(entries: &[EntryInfo]) -> Vec<&str> {
        entries.iter().map(|entry| entry.name.as_str()).collect()
    }

    const ESCAPES: [&str; 3] = ["/etc_link", "/bob_abs", "/bob_rel"];

    #[test]
    fn open_requires_an_existing_directory() {
        let homes = Homes::new();
        assert!(
            Jail::open(
                &homes.alice.join("docs/a.txt"),
                "alice",
                JailLimits::default()
            )
            .is_err()
        );
        assert!(Jail::open(&homes.alice.join("missing"), "alice", JailLimits::default()).is_err());
    }

    #[test]
    fn dot_dot_and_absolute_paths_stay_inside() {
        let homes = Homes::new();
        let up = path("../../..");
        assert!(up.is_root());
        assert_eq!(names(&homes.jail.list(&up).unwrap()), ["docs"]);
        assert_eq!(homes.jail.stat(&up).unwrap().name, "/");

        let etc = path("/../../etc");
        assert_eq!(etc.to_string(), "/etc");
        let error = homes.jail.stat(&etc).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert_eq!(error.message, "/etc: no such file or directory");

        let bob = path("../bob/secret.txt");
        assert_eq!(bob.to_string(), "/bob/secret.txt");
        assert_eq!(
            homes.jail.open_read(&bob).unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn cap_std_escape_error_maps_to_outside_home() {
        let homes = Homes::new().with_escapes();
        let error = homes.jail.root.metadata("bob_abs").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
        assert_eq!(error.to_string(), "a path led outside of the filesystem");
        let mapped = crate::error::RequestError::from_io(&error, "/bob_abs");
        assert_eq!(mapped.kind, ErrorKind::OutsideHome);
        assert_eq!(mapped.message, "/bob_abs: outside your home");
    }

    #[test]
    fn escaping_symlinks_are_refused() {
        let homes = Homes::new().with_escapes();
        let jail = &homes.jail;
        for link in ESCAPES {
            let refusals = [
                jail.stat(&path(link)).unwrap_err(),
                jail.is_dir(&path(link)).unwrap_err(),
                jail.list(&path(link)).unwrap_err(),
                jail.walk(&path(link), true, &mut |_| panic!("walked outside"))
                    .unwrap_err(),
                jail.open_read(&path(&format!("{link}/secret.txt")))
                    .unwrap_err(),
                jail.open_read(&path(&format!("{link}/passwd")))
                    .unwrap_err(),
                jail.mkdir(&path(&format!("{link}/planted")), false, &mut tally())
                    .unwrap_err(),
                jail.mkdir(&path(&format!("{link}/planted/deeper")), true, &mut tally())
                    .unwrap_err(),
                jail.open_parent(&path(&format!("{link}/upload.txt")))
                    .unwrap_err(),
                jail.remove(&path(&format!("{link}/secret.txt")), false, &mut tally())
                    .unwrap_err(),
            ];
            for error in refusals {
                assert_eq!(error.kind, ErrorKind::OutsideHome, "{link}: {error:?}");
                assert!(error.message.starts_with(link), "{}", error.message);
                homes.assert_private(&error.message);
            }
        }
        for file in ["/secret_abs", "/outside_rel"] {
            assert_eq!(
                jail.stat(&path(file)).unwrap_err().kind,
                ErrorKind::OutsideHome
            );
            assert_eq!(
                jail.open_read(&path(file)).unwrap_err().kind,
                ErrorKind::OutsideHome
            );
        }
        assert_eq!(homes.bob_names(), ["secret.txt"]);
        assert!(!PathBuf::from("/etc/planted").exists());
        assert_eq!(
            fs::read_to_string(homes.bob.join("secret.txt")).unwrap(),
            "bob's secret"
        );
    }

    #[test]
    fn listing_shows_links_without_following() {
        let homes = Homes::new().with_escapes();
        let entries = homes.jail.list(&RemotePath::root()).unwrap();
        assert_eq!(
            names(&entries),
            [
                "bob_abs",
                "bob_rel",
                "docs",
                "etc_link",
                "outside_rel",
                "secret_abs"
            ]
        );
        let bob_abs = homes.bob.to_string_lossy().into_owned();
        for entry in &entries {
            let expected = match entry.name.as_str() {
                "docs" => None,
                "etc_link" => Some("/etc"),
                "bob_abs" => Some(bob_abs.as_str()),
                "bob_rel" => Some("../bob"),
                "outside_rel" => Some("../../outside.txt"),
                _ => continue,
            };
            let kind = if expected.is_some() {
                EntryKind::Symlink
            } else {
                EntryKind::Directory
            };
            assert_eq!(entry.kind, kind, "{}", entry.name);
            assert_eq!(entry.link_target.as_deref(), expected);
        }
        // Listing a link to a file names the link itself, not its target.
        let single = homes.jail.list(&path("/secret_abs")).unwrap_err();
        assert_eq!(single.kind, ErrorKind::OutsideHome);
    }

    #[test]
    fn symlinks_inside_the_home_work() {
        let homes = Homes::new();
        symlink("docs", homes.alice.join("docs_link")).unwrap();
        symlink("docs/a.txt", homes.alice.join("a_link")).unwrap();
        symlink("../docs", homes.alice.join("docs/loop")).unwrap();
        let jail = &homes.jail;

        assert_eq!(
            jail.stat(&path("/docs_link")).unwrap().kind,
            EntryKind::Directory
        );
        assert!(jail.is_dir(&path("/docs_link")).unwrap());
        assert!(!jail.is_dir(&path("/a_link")).unwrap());
        assert!(!jail.is_dir(&path("/missing")).unwrap());
        assert_eq!(
            names(&jail.list(&path("/docs_link")).unwrap()),
            ["a.txt", "loop"]
        );
        // A relative link that goes up and comes back down stays inside.
        assert_eq!(
            names(&jail.list(&path("/docs/loop/loop")).unwrap()),
            ["a.txt", "loop"]
        );

        let (mut file, info) = jail.open_read(&path("/a_link")).unwrap();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut file, &mut content).unwrap();
        assert_eq!(content, "hello");
        assert_eq!(
            (info.name.as_str(), info.kind, info.size),
            ("a_link", EntryKind::File, 5)
        );

        let single = jail.list(&path("/a_link")).unwrap();
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].kind, EntryKind::Symlink);
        assert_eq!(single[0].link_target.as_deref(), Some("docs/a.txt"));

        let (dir, name) = jail.open_parent(&path("/docs_link/new.txt")).unwrap();
        assert_eq!(name, "new.txt");
        dir.write(&name, "uploaded").unwrap();
        assert_eq!(
            fs::read_to_string(homes.alice.join("docs/new.txt")).unwrap(),
            "uploaded"
        );

        jail.mkdir(&path("/docs_link/sub"), false, &mut tally())
            .unwrap();
        assert!(homes.alice.join("docs/sub").is_dir());
    }

    #[test]
    fn renaming_through_escaping_links_is_refused() {
        let homes = Homes::new().with_escapes();
        let jail = &homes.jail;
        let source = path("/docs/a.txt");
        for target in [
            "/bob_abs/stolen.txt",
            "/bob_rel/stolen.txt",
            "/etc_link/stolen.txt",
        ] {
            let error = jail
                .rename(&source, &path(target), &mut tally())
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::OutsideHome, "{target}: {error:?}");
        }
        // An existing link to a directory outside is not a directory to move into.
        for target in ESCAPES {
            let error = jail
                .rename(&source, &path(target), &mut tally())
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::OutsideHome, "{target}: {error:?}");
        }
        // Nor can bob's files be pulled in through a link.
        let error = jail
            .rename(
                &path("/bob_abs/secret.txt"),
                &path("/mine.txt"),
                &mut tally(),
            )
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::OutsideHome);
        assert_eq!(homes.bob_names(), ["secret.txt"]);
        assert!(homes.alice.join("docs/a.txt").is_file());
        assert!(!homes.alice.join("mine.txt").exists());
    }

    #[test]
    fn removing_links_leaves_their_targets_alone() {
        let homes = Homes::new().with_escapes();
        let trash = homes.alice.join("trash");
        fs::create_dir_all(trash.join("inner")).unwrap();
        fs::write(trash.join("ten.bytes"), "0123456789").unwrap();
        symlink(&homes.bob, trash.join("bob_abs")).unwrap();
        symlink("../../../bob", trash.join("inner/bob_rel")).unwrap();
        symlink(homes.bob.join("secret.txt"), trash.join("inner/secret")).unwrap();

        // The file, two directories and three links.
        assert_eq!(
            removed(&homes.jail, "/trash", true),
            Footprint {
                bytes: 10 + 5 * 4096,
                entries: 6
            }
        );
        assert!(!trash.exists());
        assert_eq!(
            removed(&homes.jail, "/bob_abs", false),
            Footprint::node(4096)
        );
        assert_eq!(
            removed(&homes.jail, "/bob_rel", true),
            Footprint::node(4096)
        );
        assert!(fs::symlink_metadata(homes.alice.join("bob_abs")).is_err());
        assert!(fs::symlink_metadata(homes.alice.join("bob_rel")).is_err());
        assert_eq!(homes.bob_names(), ["secret.txt"]);
        assert_eq!(
            fs::read_to_string(homes.bob.join("secret.txt")).unwrap(),
            "bob's secret"
        );
    }

    #[test]
    fn swapping_a_directory_for_a_link_never_reaches_outside() {
        const ROUNDS: usize = 2000;
        let homes = Homes::new();
        let target = homes.alice.join("target");
        let parked_dir = homes.alice.join("parked_dir");
        let parked_link = homes.alice.join("parked_link");
        fs::create_dir(&target).unwrap();
        symlink(&homes.bob, &parked_link).unwrap();

        let swapper = std::thread::spawn({
            let (target, parked_dir, parked_link) =
                (target.clone(), parked_dir.clone(), parked_link.clone());
            move || {
                for _ in 0..ROUNDS {
                    fs::rename(&target, &parked_dir).unwrap();
                    fs::rename(&parked_link, &target).unwrap();
                    fs::rename(&target, &parked_link).unwrap();
                    fs::rename(&parked_dir, &target).unwrap();
                }
            }
        });
        let mut created = 0;
        for round in 0..ROUNDS {
            let upload = path(&format!("/target/upload-{round}.txt"));
            let uploaded = homes
                .jail
                .open_parent(&upload)
                .is_ok_and(|(dir, name)| dir.write(&name, "x").is_ok());
            if uploaded {
                created += 1;
            }
            // Without `parents`: with them, a missing `target` would be
            // recreated as a fresh directory, which is correct but ends the
            // dance.
            if homes
                .jail
                .mkdir(&path(&format!("/target/dir-{round}")), false, &mut tally())
                .is_ok()
            {
                created += 1;
            }
            if let Ok(entries) = homes.jail.list(&path("/target")) {
                assert!(entries.iter().all(|entry| entry.name != "secret.txt"));
            }
        }
        swapper.join().unwrap();

        assert_eq!(homes.bob_names(), ["secret.txt"]);
        // Everything that was created landed in alice's directory.
        assert_eq!(fs::read_dir(&target).unwrap().count(), created);
    }

    #[test]
    fn walk_emits_sorted_relative_paths_in_chunks() {
        let homes = Homes::new().with_escapes();
        let tree = homes.alice.join("tree");
        fs::create_dir_all(tree.join("a/deep")).unwrap();
        fs::create_dir_all(tree.join("many")).unwrap();
        fs::write(tree.join("b.txt"), "bee").unwrap();
        fs::write(tree.join("a/x.txt"), "ex").unwrap();
        fs::write(tree.join("a/deep/z.txt"), "zed").unwrap();
        fs::write(tree.join("a").join(partial_name("y.txt")), "partial").unwrap();
        symlink("a", tree.join("link")).unwrap();
        symlink(&homes.bob, tree.join("out")).unwrap();
        let many = LIST_CHUNK_ENTRIES + 88;
        for index in 0..many {
            fs::write(tree.join(format!("many/f{index:04}")), index.to_string()).unwrap();
        }

        let mut chunks = Vec::new();
        homes
            .jail
            .walk(&path("/tree"), true, &mut |chunk| {
                chunks.push(chunk);
                true
            })
            .unwrap();
        assert!(
            chunks
                .iter()
                .all(|chunk| !chunk.is_empty() && chunk.len() <= LIST_CHUNK_ENTRIES)
        );
        assert_eq!(chunks[0].len(), LIST_CHUNK_ENTRIES);
        let entries: Vec<EntryInfo> = chunks.into_iter().flatten().collect();
        let mut expected = vec![
            "a",
            "a/deep",
            "a/deep/z.txt",
            "a/x.txt",
            "b.txt",
            "link",
            "many",
        ];
        let files: Vec<String> = (0..many).map(|index| format!("many/f{index:04}")).collect();
        expected.extend(files.iter().map(String::as_str));
        expected.push("out");
        assert_eq!(names(&entries), expected);

        for entry in &entries {
            match entry.kind {
                EntryKind::File => {
                    let content = fs::read(tree.join(&entry.name)).unwrap();
                    assert_eq!(
                        entry.hash,
                        Some(*blake3::hash(&content).as_bytes()),
                        "{}",
                        entry.name
                    );
                    assert_eq!(entry.size, content.len() as u64);
                }
                EntryKind::Directory => assert_eq!((entry.size, entry.hash), (0, None)),
                EntryKind::Symlink => assert!(entry.link_target.is_some() && entry.hash.is_none()),
                EntryKind::Other => panic!("unexpected {entry:?}"),
            }
        }

        let mut calls = 0;
        homes
            .jail
            .walk(&path("/tree"), false, &mut |chunk| {
                calls += 1;
                assert!(chunk.iter().all(|entry| entry.hash.is_none()));
                false
            })
            .unwrap();
        assert_eq!(calls, 1);

        let mut empty_calls = 0;
        let error = homes
            .jail
            .walk(&path("/tree/a/deep/z.txt"), false, &mut |_| {
                empty_calls += 1;
                true
            })
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotADirectory);
        homes
            .jail
            .mkdir(&path("/empty"), false, &mut tally())
            .unwrap();
        homes
            .jail
            .walk(&path("/empty"), true, &mut |_| {
                empty_calls += 1;
                true
            })
            .unwrap();
        assert_eq!(empty_calls, 0);
    }

    #[test]
    fn listing_hides_partials_and_sorts() {
        let homes = Homes::new();
        fs::write(homes.alice.join("docs/b.txt"), "b").unwrap();
        fs::write(homes.alice.join("docs").join(partial_name("c.txt")), "c").unwrap();
        let entries = homes.jail.list(&path("/docs")).unwrap();
        assert_eq!(names(&entries), ["a.txt", "b.txt"]);
        assert_eq!((entries[0].kind, entries[0].size), (EntryKind::File, 5));
        let single = homes.jail.list(&path("/docs/a.txt")).unwrap();
        assert_eq!(names(&single), ["a.txt"]);
        let missing = homes.jail.list(&path("/docs/nope")).unwrap_err();
        assert_eq!(missing.message, "/docs/nope: no such file or directory");
    }

    #[test]
    fn remove_reports_freed_bytes() {
        let homes = Homes::new();
        let jail = &homes.jail;
        assert_eq!(removed(jail, "/docs/a.txt", false), Footprint::file(5));
        fs::write(homes.alice.join("docs/b.txt"), "1234567").unwrap();
        fs::write(homes.alice.join("docs").join(partial_name("c.txt")), "123").unwrap();
        fs::create_dir_all(homes.alice.join("docs/sub/subsub")).unwrap();
        fs::write(homes.alice.join("docs/sub/subsub/d.txt"), "12").unwrap();

        let error = jail
            .remove(&path("/docs"), false, &mut tally())
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::DirectoryNotEmpty);
        assert_eq!(error.message, "/docs: directory not empty");
        // Old-style partials are charged like any file, and so freed.
        assert_eq!(
            removed(jail, "/docs", true),
            Footprint {
                bytes: 7 + 3 + 2 + 3 * 4096,
                entries: 6
            }
        );
        assert!(!homes.alice.join("docs").exists());

        let error = jail
            .remove(&RemotePath::root(), true, &mut tally())
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::PermissionDenied);
        assert_eq!(error.message, "cannot remove your home directory");
        assert_eq!(
            jail.remove(&path("/docs"), true, &mut tally())
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert!(homes.alice.is_dir());
    }

    #[test]
    fn rename_follows_mv_semantics() {
        let homes = Homes::new();
        let jail = &homes.jail;
        fs::write(homes.alice.join("big.txt"), "twelve bytes").unwrap();

        // Replacing a file frees its size.
        assert_eq!(renamed(jail, "/big.txt", "/docs/a.txt"), Footprint::file(5));
        assert_eq!(
            fs::read_to_string(homes.alice.join("docs/a.txt")).unwrap(),
            "twelve bytes"
        );
        // Into an existing directory, under its own name; the home counts.
        jail.mkdir(&path("/archive"), false, &mut tally()).unwrap();
        assert_eq!(renamed(jail, "/docs/a.txt", "/archive"), Footprint::ZERO);
        assert!(homes.alice.join("archive/a.txt").is_file());
        assert_eq!(renamed(jail, "/archive/a.txt", "/"), Footprint::ZERO);
        assert!(homes.alice.join("a.txt").is_file());
        // Onto itself: nothing happens.
        assert_eq!(renamed(jail, "/a.txt", "/a.txt"), Footprint::ZERO);
        assert!(homes.alice.join("a.txt").is_file());
        // Plain rename to a new name, and a directory into another.
        assert_eq!(
            renamed(jail, "/a.txt", "/docs/renamed.txt"),
            Footprint::ZERO
        );
        assert_eq!(renamed(jail, "/archive", "/docs"), Footprint::ZERO);
        assert!(homes.alice.join("docs/archive").is_dir());

        let refused = [
            (
                jail.rename(&RemotePath::root(), &path("/x"), &mut tally()),
                ErrorKind::PermissionDenied,
            ),
            (
                jail.rename(&path("/docs"), &path("/docs/archive/deeper"), &mut tally()),
                ErrorKind::InvalidPath,
            ),
            (
                jail.rename(&path("/docs"), &path("/docs/archive"), &mut tally()),
                ErrorKind::InvalidPath,
            ),
            (
                jail.rename(&path("/missing"), &path("/x"), &mut tally()),
                ErrorKind::NotFound,
            ),
        ];
        for (result, kind) in refused {
            assert_eq!(result.unwrap_err().kind, kind);
        }
        // Through a link, the kernel's own check catches what the lexical one cannot.
        symlink("docs/archive", homes.alice.join("archive_link")).unwrap();
        let error = jail
            .rename(&path("/docs"), &path("/archive_link/inner"), &mut tally())
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidPath);
        assert!(homes.alice.join("docs/renamed.txt").is_file());
    }

    #[test]
    fn mkdir_with_and_without_parents() {
        let homes = Homes::new();
        let jail = &homes.jail;
        assert_eq!(
            jail.mkdir(&RemotePath::root(), false, &mut tally())
                .unwrap_err()
                .kind,
            ErrorKind::AlreadyExists
        );
        jail.mkdir(&RemotePath::root(), true, &mut tally()).unwrap();

        jail.mkdir(&path("/a/b/c"), true, &mut tally()).unwrap();
        assert!(homes.alice.join("a/b/c").is_dir());
        jail.mkdir(&path("/a/b/c"), true, &mut tally()).unwrap();
        let error = jail
            .mkdir(&path("/a/b/c"), false, &mut tally())
            .unwrap_err();
        assert_eq!(
            (error.kind, error.message.as_str()),
            (ErrorKind::AlreadyExists, "/a/b/c: already exists")
        );
        assert_eq!(
            jail.mkdir(&path("/x/y"), false, &mut tally())
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );

        let error = jail
            .mkdir(&path("/docs/a.txt/sub"), true, &mut tally())
            .unwrap_err();
        assert_eq!(
            (error.kind, error.message.as_str()),
            (ErrorKind::NotADirectory, "/docs/a.txt: not a directory")
        );
        let error = jail
            .mkdir(&path("/docs/a.txt"), true, &mut tally())
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::AlreadyExists);
        // Reserved names cannot even be spelled in a path.
        assert!(RemotePath::parse(&format!("/{}", partial_name("d"))).is_err());
    }

    #[test]
    fn open_parent_and_open_read_refuse_what_they_must() {
        let homes = Homes::new();
        let jail = &homes.jail;
        let error = jail.open_parent(&RemotePath::root()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::IsADirectory);
        assert!(RemotePath::parse(&format!("/docs/{}", partial_name("a.txt"))).is_err());
        let error = jail.open_parent(&path("/missing/a.txt")).unwrap_err();
        assert_eq!(error.message, "/missing: no such file or directory");
        let error = jail.open_parent(&path("/docs/a.txt/b")).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotADirectory);

        assert_eq!(
            jail.open_read(&path("/docs")).unwrap_err().kind,
            ErrorKind::IsADirectory
        );
        assert_eq!(
            jail.open_read(&RemotePath::root()).unwrap_err().kind,
            ErrorKind::IsADirectory
        );
        let (_, info) = jail.open_read(&path("/docs/a.txt")).unwrap();
        let stat = jail.stat(&path("/docs/a.txt")).unwrap();
        assert_eq!(info, stat);
        assert_eq!(
            (info.kind, info.size, info.mode & 0o400),
            (EntryKind::File, 5, 0o400)
        );
    }

    #[test]
    fn disk_usage_charges_every_entry_but_follows_no_link() {
        let homes = Homes::new().with_escapes();
        fs::create_dir_all(homes.alice.join("docs/sub")).unwrap();
        fs::write(homes.alice.join("docs/sub/b.bin"), [7u8; 1000]).unwrap();
        fs::write(homes.alice.join("docs").join(partial_name("c")), "abc").unwrap();
        symlink("docs", homes.alice.join("docs_again")).unwrap();
        let before = homes.jail.disk_usage().unwrap();
        // The staging directory costs nothing; what it holds does.
        let staging = homes.jail.open_staging().unwrap();
        let partial = staging.partial(&path("/x"));
        let file = crate::quota::PartialFile::open(&partial, 0).unwrap();
        std::io::Write::write_all(&mut &file, b"12").unwrap();
        let after = homes.jail.disk_usage().unwrap();
        assert_eq!(after, before.saturating_add(Footprint::file(2)));
        // Count by hand: every entry, links as links.
        let mut expected = Footprint::ZERO;
        let mut pending = vec![homes.alice.clone()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let metadata = fs::symlink_metadata(entry.path()).unwrap();
                if entry.file_name() == crate::partials::STAGING_DIR && dir == homes.alice {
                    pending.push(entry.path());
                    continue;
                }
                if metadata.is_file() {
                    expected += Footprint::file(metadata.len());
                } else {
                    expected += Footprint::node(4096);
                    if metadata.is_dir() {
                        pending.push(entry.path());
                    }
                }
            }
        }
        assert_eq!(after, expected);
        assert!(after.bytes >= 5 + 1000 + 3 + 2);
    }

    #[test]
    fn a_move_through_a_link_counts_the_real_depth() {
        let homes = Homes::new();
        fs::create_dir_all(homes.alice.join("a/b/c/d")).unwrap();
        fs::create_dir_all(homes.alice.join("x/y/z")).unwrap();
        symlink("a/b/c/d", homes.alice.join("s")).unwrap();
        let limits = JailLimits {
            max_depth: 6,
            ..JailLimits::default()
        };
        let jail = Jail::open(&homes.alice, "alice", limits).unwrap();
        // /s/x reads as two names but lies at a/b/c/d/x: five, and z at seven.
        let error = jail
            .rename(&path("/x"), &path("/s/x"), &mut tally())
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::LimitReached);
        assert!(error.message.contains("max_depth = 6"), "{}", error.message);
        fs::remove_dir(homes.alice.join("x/y/z")).unwrap();
        jail.rename(&path("/x"), &path("/s/x"), &mut tally())
            .unwrap();
        assert!(homes.alice.join("a/b/c/d/x/y").is_dir());
    }

    #[test]
    fn deep_trees_are_measured_walked_and_removed() {
        const DEPTH: usize = 2000;
        let homes = Homes::new();
        let mut deep = homes.alice.join("deep");
        fs::create_dir(&deep).unwrap();
        for _ in 0..DEPTH {
            deep.push("d");
            fs::create_dir(&deep).unwrap();
        }
        fs::write(deep.join("leaf.txt"), "leaf").unwrap();
        let cost = JailLimits::default().entry_cost;
        let expected = Footprint {
            bytes: 5 + 4 + (2 + DEPTH as u64) * cost,
            entries: 4 + DEPTH as u64,
        };
        assert_eq!(homes.jail.disk_usage().unwrap(), expected);

        // A walk refuses what no request could name.
        let error = homes
            .jail
            .walk(&path("/deep"), false, &mut |_| true)
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::LimitReached);
        assert!(error.message.contains("max_depth"), "{}", error.message);
        // /deep, 2,000 levels of d and leaf.txt: 2,002 names.
        let roomy = JailLimits {
            max_depth: DEPTH + 2,
            max_path_bytes: 3 * DEPTH,
            ..JailLimits::default()
        };
        let jail = Jail::open(&homes.alice, "alice", roomy).unwrap();
        let mut walked = 0;
        jail.walk(&path("/deep"), true, &mut |chunk| {
            walked += chunk.len();
            true
        })
        .unwrap();
        assert_eq!(walked, DEPTH + 1);

        // A move that would make the tree deeper still is refused; one that
        // keeps it within the bound is not.
        let error = jail
            .rename(&path("/deep"), &path("/docs"), &mut tally())
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::LimitReached);
        assert!(homes.alice.join("deep").is_dir());
        jail.rename(&path("/deep"), &path("/moved"), &mut tally())
            .unwrap();

        let removed = removed(&jail, "/moved", true).bytes;
        assert_eq!(removed, 4 + (1 + DEPTH as u64) * cost);
        assert!(!homes.alice.join("moved").exists());
        assert_eq!(
            jail.disk_usage().unwrap(),
            Footprint {
                bytes: 5 + cost,
                entries: 2
            }
        );
    }

    #[test]
    fn symlinks_are_made_only_when_they_stay_inside() {
        let homes = Homes::new();
        let jail = &homes.jail;
        jail.mkdir(&path("/links"), false, &mut tally()).unwrap();
        jail.symlink(&path("/links/to-docs"), "../docs").unwrap();
        assert_eq!(
            fs::read_link(homes.alice.join("links/to-docs")).unwrap(),
            std::path::Path::new("../docs")
        );
        for target in ["/etc", "../../bob", "../docs/../../x", ""] {
            let error = jail.symlink(&path("/links/bad"), target).unwrap_err();
            assert!(
                matches!(error.kind, ErrorKind::OutsideHome | ErrorKind::InvalidPath),
                "{target}: {error:?}"
            );
        }
        assert!(fs::symlink_metadata(homes.alice.join("links/bad")).is_err());
    }
}
