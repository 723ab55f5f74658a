//! Listings and walks: a directory's entries, or a whole tree's, read in
//! chunks ([`Lister`], [`Walker`]) so that a huge directory is never held
//! at once, with hashes on request; links are reported, never followed.
//!
//! This module changes nothing on disk.

use std::ffi::{OsStr, OsString};
use std::io;

use cap_std::fs::{Dir, Metadata, MetadataExt};
use qftp_proto::path::RemotePath;
use qftp_proto::{EntryInfo, EntryKind, HashBytes, LIST_CHUNK_ENTRIES, Timestamp};

use super::home::{
    Jail, JailLimits, child_display, link_target, local_path, same_file, sorted_names, user_error,
};
use crate::error::{RequestError, RequestResult};
use crate::limits::Refusal;
use crate::tree::{Descent, Identity};

impl Jail {
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

/// The BLAKE3 of the regular file `name` in `dir` and the metadata of the
/// handle that was hashed, or `None` when `name` is no longer the file that
/// `seen` describes.
pub(super) fn hash_file(
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
