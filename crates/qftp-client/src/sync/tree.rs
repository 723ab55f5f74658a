//! The model both sides of a sync are listed into: a [`Tree`] maps
//! relative paths (with `/`) to [`Node`]s. It says nothing about where a
//! tree came from or what to do with it.

use std::collections::{BTreeMap, BTreeSet};

use qftp_proto::{EntryKind, HashBytes, Timestamp};

/// One entry of a tree, keyed by its relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// BLAKE3 of a file, when computed.
    pub hash: Option<HashBytes>,
    /// A symlink's target.
    pub link_target: Option<String>,
}

/// A tree: relative paths (with `/`) to entries.
pub type Tree = BTreeMap<String, Node>;

pub(crate) fn parent_of(path: &str) -> Option<&str> {
    path.rfind('/').map(|index| &path[..index])
}

/// Whether any ancestor of `path` is in `set`.
pub(crate) fn under_any(path: &str, set: &BTreeSet<String>) -> bool {
    let mut current = path;
    while let Some(parent) = parent_of(current) {
        if set.contains(parent) {
            return true;
        }
        current = parent;
    }
    false
}

/// Small trees for the unit tests of the planner.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn file(size: u64, secs: i64) -> Node {
        Node {
            kind: EntryKind::File,
            size,
            mtime: Timestamp { secs, nanos: 0 },
            hash: None,
            link_target: None,
        }
    }

    pub(crate) fn directory() -> Node {
        Node {
            kind: EntryKind::Directory,
            size: 0,
            mtime: Timestamp::default(),
            hash: None,
            link_target: None,
        }
    }

    pub(crate) fn link(target: &str) -> Node {
        Node {
            kind: EntryKind::Symlink,
            size: 0,
            mtime: Timestamp::default(),
            hash: None,
            link_target: Some(target.into()),
        }
    }

    pub(crate) fn tree(entries: &[(&str, Node)]) -> Tree {
        entries
            .iter()
            .map(|(path, node)| (path.to_string(), node.clone()))
            .collect()
    }
}
