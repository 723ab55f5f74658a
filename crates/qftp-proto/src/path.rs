//! Lexical normalization of the paths users type.
//!
//! A remote path is always seen from the user's home: `/` is the home
//! directory. [`RemotePath`] is the normalized form: no `.`, no `..`, no
//! empty components, no NUL. `..` above the root stays at the root, the way
//! `cd ..` behaves in `/`. This is the first half of the jail; the server's
//! second half makes sure symlinks cannot lead out either.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A path could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path contains a NUL byte.
    #[error("path contains a NUL byte")]
    Nul,
    /// The path is longer than [`MAX_PATH_BYTES`].
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// A component is longer than [`MAX_NAME_BYTES`].
    #[error("a name in the path is longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    /// A component is a name the server keeps for partial uploads (see
    /// [`crate::is_reserved_name`]).
    #[error("{0}: reserved name (partial uploads)")]
    Reserved(String),
}

/// The longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// The longest single name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// A normalized path inside a home, as a list of names.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RemotePath {
    components: Vec<String>,
}

impl RemotePath {
    /// The home directory itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// Normalizes `path`, read relative to `base` unless it starts with `/`.
    pub fn resolve(base: &RemotePath, path: &str) -> Result<Self, PathError> {
        if path.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        if path.contains('\0') {
            return Err(PathError::Nul);
        }
        let mut components = if path.starts_with('/') {
            Vec::new()
        } else {
            base.components.clone()
        };
        for name in path.split('/') {
            match name {
                "" | "." => {}
                ".." => {
                    components.pop();
                }
                name if name.len() > MAX_NAME_BYTES => return Err(PathError::NameTooLong),
                name if crate::is_reserved_name(name) => {
                    return Err(PathError::Reserved(name.to_owned()));
                }
                name => components.push(name.to_owned()),
            }
        }
        Ok(Self { components })
    }

    /// Normalizes `path` as seen from the home directory.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        Self::resolve(&Self::root(), path)
    }

    /// The names, from the home downwards.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// Whether this is the home directory itself.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The last name, or `None` for the home directory.
    pub fn file_name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// The containing directory (the root's parent is the root).
    pub fn parent(&self) -> Self {
        let mut components = self.components.clone();
        components.pop();
        Self { components }
    }

    /// This path with one more name appended (normalized like any input).
    pub fn join(&self, path: &str) -> Result<Self, PathError> {
        Self::resolve(self, path)
    }

    /// The path relative to the home, with `/` separators, `.` for the root.
    pub fn relative(&self) -> String {
        if self.components.is_empty() {
            ".".to_owned()
        } else {
            self.components.join("/")
        }
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.components.join("/"))
    }
}

/// Whether a symlink `target`, read from a directory `depth` levels below
/// the top of a tree, stays inside that tree: it must be relative and must
/// never climb above the top, at any point of its way.
pub fn link_target_stays_inside(depth: usize, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let mut depth = depth;
    for name in target.split('/') {
        match name {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            _ => depth = depth.saturating_add(1),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> String {
        RemotePath::parse(path).unwrap().to_string()
    }

    #[test]
    fn dot_dot_stops_at_the_home() {
        assert_eq!(parse(".."), "/");
        assert_eq!(parse("../../.."), "/");
        assert_eq!(parse("/../../etc"), "/etc");
        assert_eq!(parse("a/../../b"), "/b");
    }

    #[test]
    fn relative_paths_start_from_the_base() {
        let base = RemotePath::parse("/docs/2024").unwrap();
        assert_eq!(
            RemotePath::resolve(&base, "x").unwrap().to_string(),
            "/docs/2024/x"
        );
        assert_eq!(
            RemotePath::resolve(&base, "../x").unwrap().to_string(),
            "/docs/x"
        );
        assert_eq!(RemotePath::resolve(&base, "/x").unwrap().to_string(), "/x");
        assert_eq!(RemotePath::resolve(&base, "").unwrap(), base);
    }

    #[test]
    fn odd_input_is_refused() {
        assert_eq!(RemotePath::parse("a\0b"), Err(PathError::Nul));
        assert_eq!(
            RemotePath::parse(&"x".repeat(300)),
            Err(PathError::NameTooLong)
        );
        assert_eq!(
            RemotePath::parse(&"a/".repeat(3000)),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn reserved_names_cannot_be_spelled() {
        for path in [
            "/.qftp-partials",
            "/.qftp-partials/0123",
            "a/../.qftp-partials/x",
            "/docs/.report.pdf.qftp-part",
        ] {
            assert!(
                matches!(RemotePath::parse(path), Err(PathError::Reserved(_))),
                "{path}"
            );
        }
        let base = RemotePath::parse("/docs").unwrap();
        assert!(base.join(".x.qftp-part").is_err());
        assert!(RemotePath::parse("/docs/qftp-partials").is_ok());
        assert!(RemotePath::parse("/.qftp-part").is_ok());
    }

    #[test]
    fn link_targets_are_checked_lexically() {
        assert!(link_target_stays_inside(1, "../c"));
        assert!(link_target_stays_inside(0, "c/d"));
        assert!(!link_target_stays_inside(1, "../../c"));
        assert!(!link_target_stays_inside(0, "/etc/passwd"));
        assert!(!link_target_stays_inside(1, "x/../../../y"));
        assert!(!link_target_stays_inside(3, ""));
    }

    #[test]
    fn link_targets_from_huge_depths_neither_wrap_nor_overflow() {
        // Found by fuzz/ (target `paths`): depths at or above 2^63 turned
        // negative as an i64, and i64::MAX overflowed on the next name.
        assert!(link_target_stays_inside(
            0xff2e_2eff_0000_ffff_u64 as usize,
            "\u{c}/"
        ));
        assert!(link_target_stays_inside(usize::MAX, "a/../.."));
        assert!(link_target_stays_inside(usize::MAX / 2, "a/b"));
        assert!(link_target_stays_inside(usize::MAX / 2 + 1, "../x"));
        assert!(!link_target_stays_inside(usize::MAX, "/etc"));
    }

    #[test]
    fn unicode_and_spaces_survive() {
        let path = RemotePath::parse("/照片/my file.txt").unwrap();
        assert_eq!(path.file_name(), Some("my file.txt"));
        assert_eq!(path.relative(), "照片/my file.txt");
    }
}
