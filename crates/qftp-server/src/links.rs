//! No symlink in a home may resolve outside it: the rule, and the checks
//! that keep it true when a link is made and when a rename moves links.
//!
//! # The rule
//!
//! A link is made only when its target is in canonical form
//! ([`LinkTarget`]: relative, a run of `..` followed only by plain names)
//! and its number of leading `..` is at most the *physical* depth of the
//! directory that holds it: the number of real directories between it and
//! the home, measured by climbing `..` from the opened directory handle to
//! the home (see [`physical_depth`]), so a directory reached through an
//! in-home symlink is measured where it really is.
//!
//! By induction, every resolution of such a link stays in the home, by any
//! program (a backup, a web server, an administrator's shell), not only by
//! qftp: the kernel resolves the leading `..` from the real directory that
//! holds the link, climbing no higher than the home, and every later name
//! goes down; a link met on the way obeys the same rule from its own real
//! directory. A `..` after a name is refused because the kernel climbs from
//! wherever that name physically leads (`a/L -> s/../../z` with
//! `a/s -> ../q` ends above the home although it reads as `/z`).
//!
//! Only a rename changes the depth of an existing link. A rename that moves
//! a link must leave it obeying the rule at its new place
//! ([`check_links_after_move`]); a rename that moves a directory to a
//! smaller depth walks the directory, never following a link, and is
//! refused at the first link that would break the rule. Moving to the same
//! or a greater depth cannot break it and is not walked.
//!
//! # What it assumes and does not do
//!
//! * The caller holds the user's namespace lock (see `crate::quota`) around
//!   the check and the operation it guards, so that no other request of the
//!   same user moves a directory in between. Nothing else writes in homes.
//! * Walks and depth measurements are bounded by `limits.max_depth`;
//!   deeper trees are refused through [`crate::limits::Refusal`].
//! * Links made by an older version that break the rule are not repaired
//!   here; [`escaping_links`] finds them for `qftp-server user rescan`.
//! * It reads link targets as UTF-8; a target that is not UTF-8 is treated
//!   as breaking the rule (qftp never makes one).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use cap_std::fs::{Dir, Metadata};
use qftp_proto::ErrorKind;
use qftp_proto::path::{LinkTarget, RemotePath};
use rustix::fs::{Mode, OFlags};

use crate::error::{RequestError, RequestResult};
use crate::limits::Refusal;

/// What bounds the checks: the deepest directory they measure or walk, and
/// whose limit it is (for the refusal's WARN line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkBounds {
    /// `limits.max_depth`: the deepest directory, in names below the home.
    pub max_depth: usize,
    /// The user whose home it is.
    pub user: String,
}

impl LinkBounds {
    fn too_deep(&self, what: impl std::fmt::Display) -> RequestError {
        Refusal {
            setting: "max_depth",
            value: &self.max_depth.to_string(),
            who: &self.user,
        }
        .refuse(what)
    }
}

/// Checks a new link `path -> target` that is about to be made as an entry
/// of `parent`, a directory handle beneath `home`.
pub fn check_new_link(
    home: &Dir,
    parent: &Dir,
    path: &RemotePath,
    target: &str,
    bounds: &LinkBounds,
) -> RequestResult<()> {
    let rule = parse_target(path, target)?;
    let Some(depth) = physical_depth(home, parent, bounds.max_depth)
        .map_err(|error| RequestError::from_io(&error, &path.parent().to_string()))?
    else {
        return Err(bounds.too_deep(path.parent()));
    };
    if rule.stays_inside(depth) {
        Ok(())
    } else {
        Err(RequestError::new(
            ErrorKind::OutsideHome,
            format!("{path} -> {target}: the link would point outside your home"),
        ))
    }
}

/// Checks that moving the entry `from_name` of `from_parent` (the user's
/// `from`, whose metadata, links not followed, is `source`) into
/// `to_parent` leaves every link it moves obeying the rule.
///
/// Refused with [`ErrorKind::OutsideHome`] naming the first offending link
/// as it is called now. Call it before the rename, under the user's lock.
pub fn check_links_after_move(
    home: &Dir,
    from_parent: &Dir,
    from_name: &str,
    source: &Metadata,
    to_parent: &Dir,
    from: &RemotePath,
    bounds: &LinkBounds,
) -> RequestResult<()> {
    if !source.is_symlink() && !source.is_dir() {
        return Ok(());
    }
    let measure = |dir: &Dir, shown: &RemotePath| {
        physical_depth(home, dir, bounds.max_depth)
            .map_err(|error| RequestError::from_io(&error, &shown.to_string()))?
            .ok_or_else(|| bounds.too_deep(shown))
    };
    let to_depth = measure(to_parent, from)?;
    if source.is_symlink() {
        let target = read_target(from_parent, OsStr::new(from_name))
            .map_err(|error| RequestError::from_io(&error, &from.to_string()))?;
        return match LinkTarget::parse(&target) {
            Ok(rule) if rule.stays_inside(to_depth) => Ok(()),
            _ => Err(would_escape(&from.to_string(), &target)),
        };
    }
    if measure(from_parent, from)? <= to_depth {
        return Ok(());
    }
    let moved = open_dir_nofollow(from_parent, OsStr::new(from_name))
        .map_err(|error| RequestError::from_io(&error, &from.to_string()))?;
    match first_escaping_link(moved, to_depth + 1, bounds.max_depth)
        .map_err(|error| RequestError::from_io(&error, &from.to_string()))?
    {
        Walked::Clean => Ok(()),
        Walked::TooDeep => Err(bounds.too_deep(from)),
        Walked::Escaping { relative, target } => {
            Err(would_escape(&format!("{from}/{relative}"), &target))
        }
    }
}

/// Every link below the home that breaks the rule where it is now, as the
/// user's path and the target, for an administrator's rescan. Directories
/// deeper than `max_depth` are not entered.
pub fn escaping_links(home: &Dir, max_depth: usize) -> io::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut stack = vec![(home.try_clone()?, String::from("/"), 0usize)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        for name in names(&dir)? {
            let shown = format!("{prefix}{}", name.to_string_lossy());
            let Ok(metadata) = dir.symlink_metadata(&name) else {
                continue;
            };
            if metadata.is_symlink() {
                let Ok(target) = read_target(&dir, &name) else {
                    continue;
                };
                if !LinkTarget::parse(&target).is_ok_and(|rule| rule.stays_inside(depth)) {
                    found.push((shown, target));
                }
            } else if metadata.is_dir() && depth < max_depth {
                if let Ok(child) = open_dir_nofollow(&dir, &name) {
                    stack.push((child, format!("{shown}/"), depth + 1));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The number of real directories between `dir` and `home` (0 for the home
/// itself), found by climbing `..` from the handle; `None` when it is deeper
/// than `max_depth`.
///
/// Climbing `..` is what the kernel does when it resolves a link's leading
/// `..`, so this is the depth that matters, whatever path (through in-home
/// symlinks) led to `dir`.
pub fn physical_depth(home: &Dir, dir: &Dir, max_depth: usize) -> io::Result<Option<usize>> {
    let home_id = identity(home)?;
    let mut current_id = identity(dir)?;
    let mut current: Option<OwnedFd> = None;
    let mut depth = 0usize;
    while current_id != home_id {
        if depth >= max_depth {
            return Ok(None);
        }
        let parent = match &current {
            Some(fd) => open_parent_of(fd)?,
            None => open_parent_of(dir)?,
        };
        let parent_id = identity(&parent)?;
        if parent_id == current_id {
            // The file system's root, which is its own parent: `dir` was not
            // below the home at all.
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "a directory outside of the filesystem's home",
            ));
        }
        depth += 1;
        current_id = parent_id;
        current = Some(parent);
    }
    Ok(Some(depth))
}

/// The outcome of walking a moved directory.
#[derive(Debug, PartialEq, Eq)]
enum Walked {
    /// Every link obeys the rule at its new depth.
    Clean,
    /// A link, at `relative` below the moved directory, would break it.
    Escaping { relative: String, target: String },
    /// The directory goes deeper than `max_depth` would allow at its new place.
    TooDeep,
}

/// Walks `top`, which will be `top_depth` directories below the home after
/// the move, never following links; the first link that would climb above
/// the home from its new place, in name order.
///
/// One handle per level of the current branch, and the names of the
/// directories on it.
fn first_escaping_link(top: Dir, top_depth: usize, max_depth: usize) -> io::Result<Walked> {
    if top_depth > max_depth {
        return Ok(Walked::TooDeep);
    }
    let mut stack = vec![Level {
        names: names(&top)?.into_iter(),
        dir: top,
        prefix: String::new(),
        depth: top_depth,
    }];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.next() else {
            stack.pop();
            continue;
        };
        let relative = format!("{}{}", level.prefix, name.to_string_lossy());
        let metadata = match level.dir.symlink_metadata(&name) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if metadata.is_symlink() {
            let target = read_target(&level.dir, &name)?;
            if !LinkTarget::parse(&target).is_ok_and(|rule| rule.stays_inside(level.depth)) {
                return Ok(Walked::Escaping { relative, target });
            }
        } else if metadata.is_dir() {
            let depth = level.depth + 1;
            if depth > max_depth {
                return Ok(Walked::TooDeep);
            }
            let dir = open_dir_nofollow(&level.dir, &name)?;
            stack.push(Level {
                names: names(&dir)?.into_iter(),
                dir,
                prefix: format!("{relative}/"),
                depth,
            });
        }
    }
    Ok(Walked::Clean)
}

/// One directory of a walk.
struct Level {
    dir: Dir,
    names: std::vec::IntoIter<OsString>,
    prefix: String,
    depth: usize,
}

fn parse_target(path: &RemotePath, target: &str) -> RequestResult<LinkTarget> {
    LinkTarget::parse(target).map_err(|error| {
        let kind = match error {
            qftp_proto::path::LinkTargetError::Absolute => ErrorKind::OutsideHome,
            _ => ErrorKind::InvalidPath,
        };
        RequestError::new(
            kind,
            format!(
                "{path} -> {target}: {error} (a link must be relative: `..` first, then names)"
            ),
        )
    })
}

fn would_escape(link: &str, target: &str) -> RequestError {
    RequestError::new(
        ErrorKind::OutsideHome,
        format!("mv would make the link {link} (-> {target}) point outside your home"),
    )
}

/// The names in `dir`, sorted.
fn names(dir: &Dir) -> io::Result<Vec<OsString>> {
    let mut names = dir
        .entries()?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// A link's stored target as text. A target that is not UTF-8 gets a
/// leading NUL, so that it never passes as canonical.
fn read_target(dir: &Dir, name: &OsStr) -> io::Result<String> {
    let target = dir.read_link_contents(name)?.into_os_string();
    Ok(target
        .into_string()
        .unwrap_or_else(|target| format!("\0{}", target.to_string_lossy())))
}

/// Opens the directory `name` of `parent` without following a link there.
fn open_dir_nofollow(parent: &Dir, name: &OsStr) -> io::Result<Dir> {
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(Dir::from_std_file(File::from(fd)))
}

/// Opens the parent of the directory `fd`.
fn open_parent_of(fd: impl AsFd) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        fd,
        "..",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Device and inode of an open file.
fn identity(fd: impl AsFd) -> io::Result<(u64, u64)> {
    let stat = rustix::fs::fstat(fd)?;
    // The field types differ between platforms; on some they are u64 already.
    #[allow(clippy::useless_conversion)]
    Ok((u64::from(stat.st_dev), u64::from(stat.st_ino)))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    use cap_std::fs::Dir;
    use qftp_proto::ErrorKind;
    use qftp_proto::path::RemotePath;

    use super::{escaping_links, physical_depth};
    use crate::jail::Jail;

    /// A home with `bob/secret.txt` beside it, and a jail on it.
    struct Home {
        _top: tempfile::TempDir,
        path: PathBuf,
        jail: Jail,
    }

    impl Home {
        fn new(max_depth: usize) -> Home {
            let top = tempfile::tempdir().unwrap();
            let path = top.path().join("alice");
            fs::create_dir_all(&path).unwrap();
            fs::create_dir_all(top.path().join("bob")).unwrap();
            fs::write(top.path().join("bob/secret.txt"), "bob's secret").unwrap();
            let limits = crate::jail::JailLimits {
                max_depth,
                ..crate::jail::JailLimits::default()
            };
            let jail = Jail::open(&path, "alice", limits).unwrap();
            Home {
                _top: top,
                path,
                jail,
            }
        }

        fn dirs(self, paths: &[&str]) -> Home {
            for path in paths {
                fs::create_dir_all(self.path.join(path)).unwrap();
            }
            self
        }

        fn dir(&self, path: &str) -> Dir {
            Dir::open_ambient_dir(self.path.join(path), cap_std::ambient_authority()).unwrap()
        }

        fn root(&self) -> Dir {
            self.dir(".")
        }

        fn link(&self, path: &str, target: &str) -> Result<(), ErrorKind> {
            self.jail
                .symlink(&remote(path), target)
                .map_err(|error| error.kind)
        }

        fn is_link(&self, path: &str) -> bool {
            fs::symlink_metadata(self.path.join(path)).is_ok_and(|metadata| metadata.is_symlink())
        }
    }

    fn remote(path: &str) -> RemotePath {
        RemotePath::parse(path).unwrap()
    }

    /// Every link below `root` resolves inside it, or not at all.
    fn all_links_stay_inside(root: &Path) -> bool {
        let root = root.canonicalize().unwrap();
        let mut pending = vec![root.clone()];
        let mut visited = 0;
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let metadata = fs::symlink_metadata(&path).unwrap();
                visited += 1;
                assert!(visited < 10_000);
                if metadata.is_symlink() {
                    if let Ok(resolved) = path.canonicalize() {
                        if !resolved.starts_with(&root) {
                            return false;
                        }
                    }
                } else if metadata.is_dir() {
                    pending.push(path);
                }
            }
        }
        true
    }

    #[test]
    fn depth_is_measured_where_a_directory_really_is() {
        let home = Home::new(5).dirs(&["a/b/c/d/e/f"]);
        symlink("a/b/c", home.path.join("deep")).unwrap();
        let root = home.root();
        assert_eq!(physical_depth(&root, &root, 5).unwrap(), Some(0));
        assert_eq!(
            physical_depth(&root, &home.dir("a/b/c"), 5).unwrap(),
            Some(3)
        );
        let through_link = root.open_dir("deep").unwrap();
        assert_eq!(physical_depth(&root, &through_link, 5).unwrap(), Some(3));
        assert_eq!(
            physical_depth(&root, &home.dir("a/b/c/d/e"), 5).unwrap(),
            Some(5)
        );
        assert_eq!(
            physical_depth(&root, &home.dir("a/b/c/d/e/f"), 5).unwrap(),
            None
        );
        // A directory that is not below the home is an error, not a depth.
        let outside =
            Dir::open_ambient_dir(home.path.join(".."), cap_std::ambient_authority()).unwrap();
        assert!(physical_depth(&root, &outside, 100).is_err());
    }

    #[test]
    fn a_dot_dot_after_a_linked_name_is_refused() {
        let home = Home::new(128).dirs(&["a", "q"]);
        assert_eq!(home.link("/a/s", "../q"), Ok(()));
        // Lexically `/z`, physically `../z` from the home: refused unseen.
        assert_eq!(home.link("/a/L", "s/../../z"), Err(ErrorKind::InvalidPath));
        assert_eq!(home.link("/a/M", "./s"), Err(ErrorKind::InvalidPath));
        assert_eq!(home.link("/a/N", "/etc"), Err(ErrorKind::OutsideHome));
        assert_eq!(home.link("/a/O", "../../bob"), Err(ErrorKind::OutsideHome));
        assert_eq!(home.link("/a/P", ".."), Ok(()));
        assert!(home.is_link("a/s") && home.is_link("a/P"));
        assert!(!home.is_link("a/L") && !home.is_link("a/M"));
        assert!(all_links_stay_inside(&home.path));
    }

    #[test]
    fn a_link_made_through_a_link_is_measured_where_it_lands() {
        let home = Home::new(128).dirs(&["a/b/c"]);
        // `/a/b/c/top` leads back to the home: lexically depth 4, really 0.
        assert_eq!(home.link("/a/b/c/top", "../../.."), Ok(()));
        assert_eq!(
            home.link("/a/b/c/top/L", "../bob"),
            Err(ErrorKind::OutsideHome)
        );
        assert_eq!(home.link("/a/b/c/top/M", "a"), Ok(()));
        // `/deep` leads down: lexically depth 1, really 3.
        assert_eq!(home.link("/deep", "a/b/c"), Ok(()));
        assert_eq!(home.link("/deep/N", "../../../a"), Ok(()));
        assert_eq!(
            home.link("/deep/O", "../../../../bob"),
            Err(ErrorKind::OutsideHome)
        );
        assert!(home.is_link("M") && home.is_link("a/b/c/N"));
        assert!(all_links_stay_inside(&home.path));
    }

    #[test]
    fn moves_that_would_carry_a_link_out_are_refused() {
        let home = Home::new(128).dirs(&["tree/a/deep", "tree/bob", "other/deeper", "side"]);
        fs::write(home.path.join("tree/bob/secret.txt"), "tree's own").unwrap();
        assert_eq!(home.link("/tree/a/bob", "../bob/secret.txt"), Ok(()));
        assert_eq!(
            home.link("/tree/a/deep/bob", "../../bob/secret.txt"),
            Ok(())
        );
        let jail = &home.jail;

        let error = jail
            .rename(
                &remote("/tree/a/bob"),
                &remote("/bob-secret"),
                &mut crate::quota::Tally::unlimited(4096),
            )
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::OutsideHome);
        assert_eq!(
            error.message,
            "mv would make the link /tree/a/bob (-> ../bob/secret.txt) point outside your home"
        );
        let error = jail
            .rename(
                &remote("/tree/a/deep"),
                &RemotePath::root(),
                &mut crate::quota::Tally::unlimited(4096),
            )
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::OutsideHome);
        assert!(
            error.message.contains("/tree/a/deep/bob"),
            "{}",
            error.message
        );
        assert!(home.is_link("tree/a/bob") && home.is_link("tree/a/deep/bob"));

        // Sideways and down are fine, and so is a move up that still fits.
        jail.rename(
            &remote("/tree/a"),
            &remote("/side"),
            &mut crate::quota::Tally::unlimited(4096),
        )
        .unwrap();
        jail.rename(
            &remote("/side/a"),
            &remote("/other/deeper"),
            &mut crate::quota::Tally::unlimited(4096),
        )
        .unwrap();
        jail.rename(
            &remote("/other/deeper/a"),
            &remote("/other"),
            &mut crate::quota::Tally::unlimited(4096),
        )
        .unwrap();
        jail.rename(
            &remote("/other/a/bob"),
            &remote("/other/bob-link"),
            &mut crate::quota::Tally::unlimited(4096),
        )
        .unwrap();
        assert!(home.is_link("other/bob-link") && home.is_link("other/a/deep/bob"));
        // Through a link, the destination is measured where it really is.
        symlink("..", home.path.join("other/up")).unwrap();
        let error = jail
            .rename(
                &remote("/other/bob-link"),
                &remote("/other/up/x"),
                &mut crate::quota::Tally::unlimited(4096),
            )
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::OutsideHome);
        let error = jail
            .rename(
                &remote("/other/a/deep"),
                &remote("/other/up/deep"),
                &mut crate::quota::Tally::unlimited(4096),
            )
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::OutsideHome);
        assert!(all_links_stay_inside(&home.path));
    }

    #[test]
    fn walks_of_moved_trees_are_bounded_by_max_depth() {
        // `/y/a/b/c/d/e` is already deeper than allowed; moved up one level
        // it still is, and is refused rather than walked without end.
        let home = Home::new(4).dirs(&["x/a/b/c", "y/a/b/c/d/e"]);
        let error = home
            .jail
            .rename(
                &remote("/y/a"),
                &RemotePath::root(),
                &mut crate::quota::Tally::unlimited(4096),
            )
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::LimitReached);
        assert!(error.message.contains("max_depth = 4"), "{}", error.message);
        home.jail
            .rename(
                &remote("/x/a"),
                &RemotePath::root(),
                &mut crate::quota::Tally::unlimited(4096),
            )
            .unwrap();
    }

    #[test]
    fn a_rescan_finds_links_that_break_the_rule() {
        let home = Home::new(128).dirs(&["a/b"]);
        symlink("../../bob", home.path.join("a/out")).unwrap();
        symlink("x/../y", home.path.join("a/b/odd")).unwrap();
        symlink("../b", home.path.join("a/b/fine")).unwrap();
        symlink("/etc", home.path.join("abs")).unwrap();
        let found = escaping_links(&home.root(), 128).unwrap();
        let expected = [
            ("/a/b/odd", "x/../y"),
            ("/a/out", "../../bob"),
            ("/abs", "/etc"),
        ];
        assert_eq!(
            found,
            expected.map(|(path, target)| (path.to_owned(), target.to_owned()))
        );
    }
}
