//! The jail of one home: its directory handle, its limits, how it is
//! opened, and the small path and metadata functions every operation shares.
//!
//! The operations themselves live beside this file, one concept each; this
//! file resolves no client path and changes nothing on disk.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, Metadata, MetadataExt};
use qftp_proto::ErrorKind;
use qftp_proto::path::RemotePath;

use crate::config::ResourceLimits;
use crate::error::{RequestError, RequestResult};
use crate::links::LinkBounds;
use crate::tree::Identity;

/// A user's home directory, opened once; every operation resolves beneath
/// this handle.
#[derive(Debug)]
pub struct Jail {
    pub(super) root: Dir,
    pub(super) links: LinkBounds,
    pub(super) owner: String,
    pub(super) limits: JailLimits,
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

    /// What a directory or a symlink costs in this home (`limits.entry_cost`).
    pub fn entry_cost(&self) -> u64 {
        self.limits.entry_cost
    }

    /// The home's staging directory for partial uploads, created if missing.
    pub fn open_staging(&self) -> io::Result<crate::partials::Staging> {
        crate::partials::Staging::open(&self.root)
    }
}

/// `path` as a path relative to the home handle (`.` for the home).
pub(super) fn local_path(path: &RemotePath) -> PathBuf {
    if path.is_root() {
        PathBuf::from(".")
    } else {
        path.components().iter().collect()
    }
}

/// The name an entry for `path` carries: its last name, `/` for the home.
pub(super) fn display_name(path: &RemotePath) -> String {
    path.file_name().unwrap_or("/").to_owned()
}

/// How the user sees `relative` below `base`.
pub(super) fn child_display(base: &RemotePath, relative: &str) -> String {
    if base.is_root() {
        format!("/{relative}")
    } else {
        format!("{base}/{relative}")
    }
}

/// An I/O error on `path`, named as the user sees it.
pub(super) fn user_error(error: &io::Error, path: &RemotePath) -> RequestError {
    RequestError::from_io(error, &path.to_string())
}

pub(super) fn reserved_name(path: &RemotePath) -> RequestError {
    RequestError::new(ErrorKind::InvalidPath, format!("{path}: reserved name"))
}

/// Refuses anything but a regular file for reading.
pub(super) fn check_regular(metadata: &Metadata, path: &RemotePath) -> RequestResult<()> {
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
pub(super) fn is_partial(name: &OsStr) -> bool {
    name.to_str().is_some_and(qftp_proto::is_reserved_name)
}

/// Whether two metadata describe the same file (device and inode).
pub(super) fn same_file(left: &Metadata, right: &Metadata) -> bool {
    left.dev() == right.dev() && left.ino() == right.ino()
}

/// A symlink's stored target, as text.
pub(super) fn link_target(dir: &Dir, name: &OsStr) -> Option<String> {
    dir.read_link_contents(name)
        .ok()
        .map(|target| target.to_string_lossy().into_owned())
}

/// The names in `dir`, partial files left out, sorted.
pub(super) fn sorted_names(dir: &Dir) -> io::Result<Vec<OsString>> {
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
pub(super) fn open_same_dir(
    parent: &Dir,
    name: &OsStr,
    seen: &Metadata,
) -> io::Result<Option<Dir>> {
    crate::tree::open_same_dir(parent, name, Identity::of(seen))
}
