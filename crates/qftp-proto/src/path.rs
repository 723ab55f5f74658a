//! Lexical normalization of the paths users type.
//!
//! A remote path is always seen from the user's home: `/` is the home
//! directory. [`RemotePath`] is the normalized form: no `.`, no `..`, no
//! empty components, no NUL. `..` above the root stays at the root, the way
//! `cd ..` behaves in `/`. This is the first half of the jail; the server's
//! second half makes sure symlinks cannot lead out either.
//!
//! Symlink targets have a stricter, canonical form ([`LinkTarget`]) that
//! the server accepts only when the target climbs no higher than the link's
//! real directory is deep ([`link_target_stays_inside`]). This module only
//! reads text: measuring that depth on disk is the server's business.

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
///
/// serde sees it as its printed form (`/a/b`) and reads it back through
/// [`RemotePath::parse`], so a deserialized path is normalized and checked
/// like any other input: no encoding can smuggle in a `..`, an empty name, a
/// NUL, a `/` inside a name or a reserved name. A path longer than
/// [`MAX_PATH_BYTES`] when printed (one built by joining) does not read back.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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

impl TryFrom<String> for RemotePath {
    type Error = PathError;

    fn try_from(path: String) -> Result<Self, Self::Error> {
        Self::parse(&path)
    }
}

impl From<RemotePath> for String {
    fn from(path: RemotePath) -> Self {
        path.to_string()
    }
}

/// Why a symlink target is not in canonical form (see [`LinkTarget`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkTargetError {
    /// The target is empty.
    #[error("the link target is empty")]
    Empty,
    /// The target starts with `/`.
    #[error("the link target is absolute")]
    Absolute,
    /// The target contains a NUL byte.
    #[error("the link target contains a NUL byte")]
    Nul,
    /// The target is longer than [`MAX_PATH_BYTES`].
    #[error("the link target is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// A name in the target is longer than [`MAX_NAME_BYTES`].
    #[error("a name in the link target is longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    /// The target has a `.` or an empty name (`a/./b`, `a//b`, `a/`).
    #[error("the link target has a `.` or an empty name")]
    Dot,
    /// The target has a `..` after a name (`a/../b`).
    #[error("the link target has `..` after a name")]
    UpAfterName,
    /// A name in the target is reserved for partial uploads (see
    /// [`crate::is_reserved_name`]): no link may lead to a partial.
    #[error("the link target names {0}, which is reserved (partial uploads)")]
    Reserved(String),
}

/// A symlink target in canonical form: relative, a run of `..` followed
/// only by plain names, with no `.`, no empty name, no NUL and a bounded
/// length.
///
/// Only this form lets a server tell where a link leads without looking at
/// the disk: the kernel resolves the leading `..` from the real directory
/// that holds the link, and every later name only goes down. A `..` after a
/// name would climb from wherever that name physically leads (a symlinked
/// name may lead anywhere), so it is refused rather than guessed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    ups: usize,
    names: usize,
}

impl LinkTarget {
    /// Checks that `target` is in canonical form.
    pub fn parse(target: &str) -> Result<Self, LinkTargetError> {
        if target.is_empty() {
            return Err(LinkTargetError::Empty);
        }
        if target.len() > MAX_PATH_BYTES {
            return Err(LinkTargetError::TooLong);
        }
        if target.contains('\0') {
            return Err(LinkTargetError::Nul);
        }
        if target.starts_with('/') {
            return Err(LinkTargetError::Absolute);
        }
        let mut ups = 0usize;
        let mut names = 0usize;
        for name in target.split('/') {
            match name {
                "" | "." => return Err(LinkTargetError::Dot),
                ".." if names > 0 => return Err(LinkTargetError::UpAfterName),
                ".." => ups += 1,
                name if name.len() > MAX_NAME_BYTES => return Err(LinkTargetError::NameTooLong),
                name if crate::is_reserved_name(name) => {
                    return Err(LinkTargetError::Reserved(name.to_owned()));
                }
                _ => names += 1,
            }
        }
        Ok(Self { ups, names })
    }

    /// How many `..` the target starts with: how far above the link's own
    /// directory it climbs.
    pub fn ups(&self) -> usize {
        self.ups
    }

    /// How many plain names follow the `..`.
    pub fn names(&self) -> usize {
        self.names
    }

    /// Whether the target, read from a real directory `depth` levels below
    /// the top of a tree, stays inside the tree.
    pub fn stays_inside(&self, depth: usize) -> bool {
        self.ups <= depth
    }
}

/// Whether a symlink `target`, read from a directory `depth` levels below
/// the top of a tree, stays inside that tree: it must be in canonical form
/// ([`LinkTarget`]) and climb at most `depth` levels.
///
/// `depth` must be the physical depth of the link's directory (the number of
/// real directories between it and the top, no symlink among them); then
/// every resolution of the link stays inside, provided every other link in
/// the tree obeys the same rule.
pub fn link_target_stays_inside(depth: usize, target: &str) -> bool {
    LinkTarget::parse(target).is_ok_and(|target| target.stays_inside(depth))
}

/// `target` with the rewrites that never change where a link leads: `.`
/// names and empty names (doubled or trailing slashes) are dropped. Nothing
/// else is touched; `a/../b` stays as it is, because `a` may be a link.
///
/// A trailing slash is the one small difference: `dir/` only resolves when
/// `dir` is a directory, `dir` also when it is a file.
pub fn tidy_link_target(target: &str) -> String {
    let absolute = target.starts_with('/');
    let names: Vec<&str> = target
        .split('/')
        .filter(|name| !name.is_empty() && *name != ".")
        .collect();
    let joined = names.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
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
    fn links_cannot_lead_to_reserved_names() {
        for target in [".qftp-partials", "../.qftp-partials/x", "a/.b.qftp-part"] {
            assert!(
                matches!(LinkTarget::parse(target), Err(LinkTargetError::Reserved(_))),
                "{target}"
            );
        }
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
    fn link_targets_must_be_canonical_and_climb_no_higher_than_their_directory() {
        assert!(link_target_stays_inside(1, "../c"));
        assert!(link_target_stays_inside(0, "c/d"));
        assert!(link_target_stays_inside(2, "../.."));
        assert!(link_target_stays_inside(3, "../../x/y"));
        assert!(!link_target_stays_inside(1, "../../c"));
        assert!(!link_target_stays_inside(0, "/etc/passwd"));
        assert!(!link_target_stays_inside(1, "x/../../../y"));
        assert!(!link_target_stays_inside(3, ""));
        // Lexically `/z` from `/a`, but `s` may be a link to `../q`: the
        // kernel climbs from where `s` leads, so `..` after a name is refused.
        assert!(!link_target_stays_inside(1, "s/../../z"));
        assert!(!link_target_stays_inside(9, "a/../b"));
        assert!(!link_target_stays_inside(9, "./a"));
        assert!(!link_target_stays_inside(9, "a//b"));
        assert!(!link_target_stays_inside(9, "a/"));
        assert!(!link_target_stays_inside(9, "."));
    }

    #[test]
    fn link_target_errors_say_what_is_wrong() {
        let parse = LinkTarget::parse;
        assert_eq!(parse(""), Err(LinkTargetError::Empty));
        assert_eq!(parse("/x"), Err(LinkTargetError::Absolute));
        assert_eq!(parse("a\0b"), Err(LinkTargetError::Nul));
        assert_eq!(parse("a/./b"), Err(LinkTargetError::Dot));
        assert_eq!(parse("a/../b"), Err(LinkTargetError::UpAfterName));
        assert_eq!(parse(&"x".repeat(300)), Err(LinkTargetError::NameTooLong));
        assert_eq!(parse(&"../".repeat(2000)), Err(LinkTargetError::TooLong));
        let target = parse("../../a/b/c").unwrap();
        assert_eq!((target.ups(), target.names()), (2, 3));
        assert!(target.stays_inside(2) && !target.stays_inside(1));
    }

    #[test]
    fn link_targets_from_huge_depths_neither_wrap_nor_overflow() {
        // Found by fuzz/ (target `paths`): depths at or above 2^63 turned
        // negative as an i64, and i64::MAX overflowed on the next name.
        assert!(link_target_stays_inside(
            0xff2e_2eff_0000_ffff_u64 as usize,
            "\u{c}"
        ));
        assert!(link_target_stays_inside(usize::MAX, "../.."));
        assert!(link_target_stays_inside(usize::MAX / 2, "a/b"));
        assert!(link_target_stays_inside(usize::MAX / 2 + 1, "../x"));
        assert!(!link_target_stays_inside(usize::MAX, "/etc"));
    }

    #[test]
    fn tidying_drops_only_dots_and_empty_names() {
        assert_eq!(tidy_link_target("./a//b/."), "a/b");
        assert_eq!(tidy_link_target("../x/"), "../x");
        assert_eq!(tidy_link_target("a/../b"), "a/../b");
        assert_eq!(tidy_link_target("//etc/./passwd"), "/etc/passwd");
        assert_eq!(tidy_link_target("."), "");
    }

    /// Whether every name of `path` is one that normalization can produce.
    fn is_normal(path: &RemotePath) -> bool {
        path.components().iter().all(|name| {
            !name.is_empty()
                && name != "."
                && name != ".."
                && !name.contains('/')
                && !name.contains('\0')
                && name.len() <= MAX_NAME_BYTES
                && !crate::is_reserved_name(name)
        })
    }

    #[test]
    fn serde_reads_paths_through_normalization() {
        for path in ["/", "/a/b", "docs/2024/x", "/照片/my file.txt"] {
            let parsed = RemotePath::parse(path).unwrap();
            let wire = crate::codec::to_bytes(&parsed).unwrap();
            assert_eq!(
                crate::codec::from_bytes::<RemotePath>(&wire).unwrap(),
                parsed
            );
        }
        // Hostile strings are normalized or refused, never taken as they are.
        let decode = |text: &str| {
            crate::codec::from_bytes::<RemotePath>(&crate::codec::to_bytes(&text).unwrap())
        };
        for (text, expected) in [
            ("..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("a/../../..//b/./c", "/b/c"),
        ] {
            let decoded = decode(text).unwrap();
            assert!(is_normal(&decoded), "{decoded:?}");
            assert_eq!(decoded.to_string(), expected);
        }
        for text in [
            "/.qftp-partials/x",
            "/docs/.report.pdf.qftp-part",
            "a\0b",
            &"x".repeat(300),
            &"a/".repeat(3000),
        ] {
            assert!(decode(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn serde_cannot_build_names_that_normalization_never_makes() {
        // The shape the type had when serde saw its fields: a list of names.
        #[derive(Serialize)]
        struct Fields {
            components: Vec<String>,
        }
        for names in [
            vec![".."],
            vec!["..", "..", "etc"],
            vec!["a/b"],
            vec![""],
            vec!["x\0y"],
            vec![".qftp-partials", "0123"],
        ] {
            let fields = Fields {
                components: names.iter().map(|name| (*name).to_owned()).collect(),
            };
            let wire = crate::codec::to_bytes(&fields).unwrap();
            if let Ok(path) = crate::codec::from_bytes::<RemotePath>(&wire) {
                assert!(is_normal(&path), "{names:?} became {path:?}");
                assert_ne!(path.components(), fields.components.as_slice(), "{names:?}");
            }
        }
    }

    #[test]
    fn unicode_and_spaces_survive() {
        let path = RemotePath::parse("/照片/my file.txt").unwrap();
        assert_eq!(path.file_name(), Some("my file.txt"));
        assert_eq!(path.relative(), "照片/my file.txt");
    }
}
