//! The planner: a pure function from the source and destination trees to
//! the actions that make the destination match ([`SyncPlan`]). It touches
//! no disk and no network.

use std::collections::BTreeSet;

use qftp_proto::EntryKind;
use qftp_proto::size::format_size;

use super::links::canonical_link_target;
use super::tree::{Node, Tree, under_any};

/// What [`plan`] compares.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Remove destination entries the source lacks.
    pub delete: bool,
    /// Compare BLAKE3 hashes instead of size and mtime.
    pub checksum: bool,
    /// Recreate symlinks instead of skipping them.
    pub links: bool,
}

/// The actions that bring the destination in line with the source.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// Destination entries to remove (the topmost of each removed subtree).
    pub deletes: Vec<String>,
    /// Directories to create, parents first.
    pub directories: Vec<String>,
    /// Files to transfer, with their sizes.
    pub transfers: Vec<(String, u64)>,
    /// Symlinks to create: path and target.
    pub links: Vec<(String, String)>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Entries left alone, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl SyncPlan {
    /// Bytes the transfers will move.
    pub fn bytes(&self) -> u64 {
        self.transfers.iter().map(|(_, size)| size).sum()
    }

    /// The plan, one action a line, as `--dry-run` prints it.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for path in &self.deletes {
            text.push_str(&format!("delete {path}\n"));
        }
        for path in &self.directories {
            text.push_str(&format!("mkdir  {path}/\n"));
        }
        for (path, size) in &self.transfers {
            text.push_str(&format!("send   {path} ({})\n", format_size(*size)));
        }
        for (path, target) in &self.links {
            text.push_str(&format!("link   {path} -> {target}\n"));
        }
        for (path, reason) in &self.skipped {
            text.push_str(&format!("skip   {path}: {reason}\n"));
        }
        text
    }
}

/// Compares `source` with `destination`.
pub fn plan(source: &Tree, destination: &Tree, options: PlanOptions) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let mut blocked = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for (path, node) in source {
        if under_any(path, &blocked) {
            continue;
        }
        let existing = destination.get(path);
        match node.kind {
            EntryKind::Directory => match existing.map(|existing| existing.kind) {
                Some(EntryKind::Directory) => {}
                Some(_) if options.delete => {
                    delete(path, &mut plan, &mut deleted);
                    plan.directories.push(path.clone());
                }
                Some(_) => {
                    plan.skipped.push((
                        path.clone(),
                        "something else is in the way of this directory (use --delete)".into(),
                    ));
                    blocked.insert(path.clone());
                }
                None => plan.directories.push(path.clone()),
            },
            EntryKind::File => match existing {
                Some(existing) if existing.kind == EntryKind::Directory => {
                    if options.delete {
                        delete(path, &mut plan, &mut deleted);
                        plan.transfers.push((path.clone(), node.size));
                    } else {
                        plan.skipped.push((
                            path.clone(),
                            "a directory is in the way of this file (use --delete)".into(),
                        ));
                    }
                }
                Some(existing)
                    if existing.kind == EntryKind::File
                        && same_content(node, existing, options.checksum) =>
                {
                    plan.unchanged += 1;
                }
                _ => plan.transfers.push((path.clone(), node.size)),
            },
            EntryKind::Symlink if !options.links => plan
                .skipped
                .push((path.clone(), "symlink (use --links to recreate it)".into())),
            EntryKind::Symlink => {
                let raw = node.link_target.as_deref().unwrap_or_default();
                match canonical_link_target(path, raw, source) {
                    Err(reason) => plan.skipped.push((path.clone(), reason)),
                    Ok(target) => match existing {
                        Some(existing)
                            if existing.kind == EntryKind::Symlink
                                && existing.link_target.as_deref() == Some(target.as_str()) =>
                        {
                            plan.unchanged += 1;
                        }
                        Some(_) if options.delete => {
                            delete(path, &mut plan, &mut deleted);
                            plan.links.push((path.clone(), target));
                        }
                        Some(_) => plan.skipped.push((
                            path.clone(),
                            "something else is in the way of this link (use --delete)".into(),
                        )),
                        None => plan.links.push((path.clone(), target)),
                    },
                }
            }
            EntryKind::Other => plan
                .skipped
                .push((path.clone(), "not a regular file".into())),
        }
    }
    if options.delete {
        for path in destination.keys() {
            if !source.contains_key(path) {
                delete(path, &mut plan, &mut deleted);
            }
        }
    }
    plan
}

/// Plans the removal of `path` unless an ancestor is already removed.
fn delete(path: &str, plan: &mut SyncPlan, deleted: &mut BTreeSet<String>) {
    if !under_any(path, deleted) && deleted.insert(path.to_owned()) {
        plan.deletes.push(path.to_owned());
    }
}

fn same_content(source: &Node, destination: &Node, checksum: bool) -> bool {
    if source.size != destination.size {
        return false;
    }
    if checksum {
        matches!((source.hash, destination.hash), (Some(a), Some(b)) if a == b)
    } else {
        source.mtime == destination.mtime
    }
}

/// Files on both sides with the same size: the ones whose hashes matter.
pub(crate) fn hash_candidates(source: &Tree, destination: &Tree) -> BTreeSet<String> {
    source
        .iter()
        .filter(|(path, node)| {
            node.kind == EntryKind::File
                && destination
                    .get(*path)
                    .is_some_and(|other| other.kind == EntryKind::File && other.size == node.size)
        })
        .map(|(path, _)| path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tree::fixtures::{directory, file, link, tree};
    use super::*;

    #[test]
    fn changed_new_and_removed_files_are_planned() {
        let source = tree(&[
            ("a", directory()),
            ("a/same.txt", file(10, 100)),
            ("a/resized.txt", file(11, 100)),
            ("a/touched.txt", file(10, 200)),
            ("new", directory()),
            ("new/file.txt", file(5, 1)),
        ]);
        let destination = tree(&[
            ("a", directory()),
            ("a/same.txt", file(10, 100)),
            ("a/resized.txt", file(10, 100)),
            ("a/touched.txt", file(10, 100)),
            ("old", directory()),
            ("old/inner.txt", file(1, 1)),
            ("a-stale.txt", file(1, 1)),
        ]);
        let plan = plan(
            &source,
            &destination,
            PlanOptions {
                delete: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(plan.directories, ["new"]);
        let sent: Vec<_> = plan
            .transfers
            .iter()
            .map(|(path, _)| path.as_str())
            .collect();
        assert_eq!(sent, ["a/resized.txt", "a/touched.txt", "new/file.txt"]);
        assert_eq!(plan.unchanged, 1);
        // Only the topmost entry of a removed subtree is deleted.
        assert_eq!(plan.deletes, ["a-stale.txt", "old"]);
    }
    #[test]
    fn without_delete_nothing_is_removed_and_conflicts_are_skipped() {
        let source = tree(&[("x", file(1, 1)), ("d", directory()), ("d/f", file(1, 1))]);
        let destination = tree(&[("x", directory()), ("d", file(3, 3)), ("extra", file(1, 1))]);
        let plan = plan(&source, &destination, PlanOptions::default());
        assert!(plan.deletes.is_empty());
        assert!(plan.transfers.is_empty(), "{plan:?}");
        let skipped: Vec<_> = plan.skipped.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(skipped, ["d", "x"]);
    }
    #[test]
    fn checksum_compares_hashes_not_times() {
        let mut source_file = file(4, 1);
        source_file.hash = Some([1; 32]);
        let mut destination_file = file(4, 1);
        destination_file.hash = Some([2; 32]);
        let source = tree(&[("f", source_file.clone())]);
        let destination = tree(&[("f", destination_file)]);
        assert_eq!(
            plan(&source, &destination, PlanOptions::default()).unchanged,
            1
        );
        let checked = plan(
            &source,
            &destination,
            PlanOptions {
                checksum: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(checked.transfers, [("f".to_string(), 4)]);
        let mut touched = source_file;
        touched.mtime.secs = 99;
        let same_content = tree(&[("f", touched)]);
        let destination = tree(&[("f", {
            let mut node = file(4, 1);
            node.hash = Some([1; 32]);
            node
        })]);
        assert_eq!(
            plan(
                &same_content,
                &destination,
                PlanOptions {
                    checksum: true,
                    ..PlanOptions::default()
                }
            )
            .unchanged,
            1
        );
    }
    #[test]
    fn symlinks_are_skipped_unless_asked_and_never_lead_outside() {
        let source = tree(&[
            ("d", directory()),
            ("d/inside", link("../f")),
            ("d/outside", link("../../x")),
            ("abs", link("/etc")),
        ]);
        let plan_without = plan(&source, &Tree::new(), PlanOptions::default());
        assert!(plan_without.links.is_empty());
        assert_eq!(plan_without.skipped.len(), 3);
        let plan_with = plan(
            &source,
            &Tree::new(),
            PlanOptions {
                links: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(
            plan_with.links,
            [("d/inside".to_string(), "../f".to_string())]
        );
        assert_eq!(plan_with.skipped.len(), 2);
    }
    #[test]
    fn link_targets_are_sent_in_canonical_form_or_skipped() {
        let source = tree(&[
            ("a", directory()),
            ("a/real", directory()),
            ("a/s", link("../q")),
            ("a/f", file(1, 1)),
            ("q", directory()),
        ]);
        let canonical = |path: &str, target: &str| canonical_link_target(path, target, &source);
        assert_eq!(canonical("a/l", "../q/x"), Ok("../q/x".into()));
        assert_eq!(canonical("a/l", "./real//x/"), Ok("real/x".into()));
        assert_eq!(canonical("a/l", "real/../f"), Ok("f".into()));
        assert_eq!(canonical("a/l", "../a/real"), Ok("real".into()));
        assert_eq!(canonical("a/l", "."), Ok("../a".into()));
        assert_eq!(canonical("top", "a/real/../../q"), Ok("q".into()));
        // `s` is a link: `..` after it climbs from wherever it leads.
        assert!(canonical("a/l", "s/../../z").is_err());
        assert!(canonical("a/l", "f/../real").is_err());
        assert!(canonical("a/l", "missing/../real").is_err());
        assert!(
            canonical("a/l", "../../x")
                .unwrap_err()
                .contains("leads outside the tree")
        );
        assert!(
            canonical("a/l", "/etc")
                .unwrap_err()
                .contains("leads outside the tree")
        );
        assert!(canonical("top", ".").is_err());
        assert!(canonical("top", "").is_err());

        let plan = plan(
            &tree(&[
                ("a", directory()),
                ("a/tidy", link("./b//c")),
                ("a/escape", link("b/../../../x")),
            ]),
            &tree(&[("a", directory()), ("a/tidy", link("b/c"))]),
            PlanOptions {
                links: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!((plan.unchanged, plan.links.len()), (1, 0));
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.skipped[0].0, "a/escape");
    }
}
