//! Where the sources of a `put` or `get` land: the rules of cp and rsync,
//! the same for both directions.
//!
//! - The destination is a directory, and every source lands inside it
//!   under its own name, when it exists as a directory or when it ends with
//!   `/`; a missing one is then created, with its parents.
//! - Several sources need such a directory: a missing destination without
//!   the trailing `/`, or an existing file, is an error.
//! - Otherwise the one source lands under the destination's own name, and
//!   the destination's parents are created when missing, for a file as for a
//!   directory copied with `-r`.
//!
//! This module decides only; it looks at nothing. [`super::plan`] finds out
//! what exists and carries the decision out.

/// What the destination is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// A directory.
    Directory,
    /// Something else: a file, a link, a special file.
    Other,
    /// Nothing.
    Missing,
}

/// Where the sources go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Each source under its own name inside the destination directory,
    /// which is to be created (with its parents) when `create` is set.
    Inside {
        /// Whether the destination directory does not exist yet.
        create: bool,
    },
    /// The one source under the destination's own name; the destination's
    /// parents are created when missing.
    As,
}

/// Why the sources cannot go to the destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// The destination ends with `/` (or several sources need a directory)
    /// but it is a file.
    #[error("not a directory")]
    NotADirectory,
    /// Several sources, and no directory of that name.
    #[error("no such directory (several sources need one; end it with / to create it)")]
    NoSuchDirectory,
}

/// Decides where `sources` sources go, given the destination as written
/// (`trailing_slash`: it ended with `/`) and what it is now.
pub fn place(
    sources: usize,
    trailing_slash: bool,
    existing: Existing,
) -> Result<Placement, PlacementError> {
    match existing {
        Existing::Directory => Ok(Placement::Inside { create: false }),
        Existing::Other if trailing_slash || sources > 1 => Err(PlacementError::NotADirectory),
        Existing::Missing if trailing_slash => Ok(Placement::Inside { create: true }),
        Existing::Missing if sources > 1 => Err(PlacementError::NoSuchDirectory),
        Existing::Other | Existing::Missing => Ok(Placement::As),
    }
}

/// Whether a destination as the user wrote it ends with a separator.
pub fn ends_with_slash(written: &str) -> bool {
    written.ends_with('/') || written.ends_with(std::path::MAIN_SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_names_a_directory_made_when_missing() {
        assert_eq!(
            place(1, true, Existing::Missing),
            Ok(Placement::Inside { create: true })
        );
        assert_eq!(
            place(1, true, Existing::Other),
            Err(PlacementError::NotADirectory)
        );
        assert_eq!(
            place(1, true, Existing::Directory),
            Ok(Placement::Inside { create: false })
        );
    }

    #[test]
    fn one_source_without_a_slash_takes_the_destination_name() {
        assert_eq!(place(1, false, Existing::Missing), Ok(Placement::As));
        assert_eq!(place(1, false, Existing::Other), Ok(Placement::As));
        assert_eq!(
            place(1, false, Existing::Directory),
            Ok(Placement::Inside { create: false })
        );
    }

    #[test]
    fn several_sources_need_a_directory() {
        assert_eq!(
            place(3, false, Existing::Missing),
            Err(PlacementError::NoSuchDirectory)
        );
        assert_eq!(
            place(3, false, Existing::Other),
            Err(PlacementError::NotADirectory)
        );
        assert_eq!(
            place(3, true, Existing::Missing),
            Ok(Placement::Inside { create: true })
        );
    }

    #[test]
    fn slashes_are_seen() {
        assert!(ends_with_slash("newdir/"));
        assert!(!ends_with_slash("newdir"));
    }
}
