//! `--exclude` patterns: which relative paths a sync leaves out on both
//! sides. Only matching; the walks that consult it are elsewhere.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::ClientError;

/// `--exclude` patterns: a pattern with a `/` matches the relative path, one
/// without matches the name at any depth. An excluded directory excludes
/// everything below it.
#[derive(Debug, Clone)]
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
}

impl Excludes {
    /// Compiles `patterns`.
    pub fn new(patterns: &[String]) -> Result<Self, ClientError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = Glob::new(pattern.trim_start_matches('/')).map_err(|error| {
                ClientError::Usage(format!("invalid --exclude pattern {pattern:?}: {error}"))
            })?;
            if pattern.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |builder: GlobSetBuilder| {
            builder
                .build()
                .map_err(|error| ClientError::Usage(format!("invalid --exclude pattern: {error}")))
        };
        Ok(Self {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    /// Whether `relative` itself matches a pattern.
    pub(crate) fn matches(&self, relative: &str) -> bool {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        self.names.is_match(name) || self.paths.is_match(relative)
    }

    /// Whether `relative` or any of its ancestors matches a pattern.
    pub fn excludes(&self, relative: &str) -> bool {
        relative
            .match_indices('/')
            .map(|(index, _)| &relative[..index])
            .chain(std::iter::once(relative))
            .any(|prefix| self.matches(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_match_names_paths_and_subtrees() {
        let excludes =
            Excludes::new(&["*.tmp".into(), "build/cache".into(), "target".into()]).unwrap();
        assert!(excludes.excludes("a/b/x.tmp"));
        assert!(excludes.excludes("target"));
        assert!(excludes.excludes("src/target/debug/app"));
        assert!(excludes.excludes("build/cache/objects/1"));
        assert!(!excludes.excludes("build/output"));
        assert!(!excludes.excludes("notes.txt"));
        assert!(Excludes::new(&["[".into()]).is_err());
    }
}
