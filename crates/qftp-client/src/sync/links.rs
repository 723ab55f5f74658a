//! Which symlinks a sync may recreate: the canonical form of a link's
//! target (`..` first, then names; see [`qftp_proto::path::LinkTarget`])
//! and whether it stays inside the tree. Pure functions over a [`Tree`];
//! creating links is the executors' business.

use qftp_proto::EntryKind;

use super::tree::{Tree, parent_of};

/// Whether `target`, read from the directory of `path`, stays inside the
/// tree: it must be in canonical form and climb no higher than the top.
pub fn link_stays_inside(path: &str, target: &str) -> bool {
    qftp_proto::path::link_target_stays_inside(path.matches('/').count(), target)
}

/// The canonical form of the link `path -> target` of `tree`, or why it
/// cannot be recreated safely.
///
/// Only rewrites that cannot change where the link leads are made: `.` and
/// empty names are dropped, and `name/..` is cancelled when `name` is a
/// real directory of the tree (the tree is walked without following links,
/// so its directories are real). A `..` after a link or a file is refused,
/// because it climbs from wherever that name leads.
pub fn canonical_link_target(path: &str, target: &str, tree: &Tree) -> Result<String, String> {
    if target.is_empty() || target.contains('\0') {
        return Err("symlink with an empty or invalid target".into());
    }
    let outside = || format!("symlink to {target} leads outside the tree");
    if target.starts_with('/') {
        return Err(outside());
    }
    let parent: Vec<&str> =
        parent_of(path).map_or_else(Vec::new, |parent| parent.split('/').collect());
    let mut position = parent.clone();
    // Whether every name of `position` is a real directory of the tree.
    let mut real = true;
    for name in target.split('/') {
        match name {
            "" | "." => {}
            ".." if !real => {
                return Err(format!(
                    "symlink to {target} climbs back out of a link or file, which may lead anywhere"
                ));
            }
            ".." => {
                if position.pop().is_none() {
                    return Err(outside());
                }
            }
            name => {
                position.push(name);
                real = tree
                    .get(&position.join("/"))
                    .is_some_and(|node| node.kind == EntryKind::Directory);
            }
        }
    }
    let common = parent
        .iter()
        .zip(&position)
        .take_while(|(left, right)| left == right)
        .count();
    let mut names = vec![".."; parent.len() - common];
    names.extend(&position[common..]);
    if names.is_empty() {
        // The link's own directory: `..` and its name again.
        match parent.last() {
            Some(last) => names = vec!["..", last],
            None => return Err(format!("symlink to {target} points at the top of the tree")),
        }
    }
    let canonical = names.join("/");
    if link_stays_inside(path, &canonical) {
        Ok(canonical)
    } else {
        Err(format!(
            "symlink to {target} cannot be written in canonical form"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_containment_is_checked_lexically() {
        assert!(link_stays_inside("a/b", "../c"));
        assert!(link_stays_inside("a/b", "c/d"));
        assert!(!link_stays_inside("a/b", "../../c"));
        assert!(!link_stays_inside("b", "/etc/passwd"));
        assert!(!link_stays_inside("a/b", "x/../../../y"));
        assert!(!link_stays_inside("a/b", "x/../y"));
    }
}
