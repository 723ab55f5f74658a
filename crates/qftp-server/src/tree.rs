//! Traversals of directory trees of any depth that hold a bounded number of
//! open directory handles.
//!
//! A [`Descent`] is the branch from a top directory down to the directory
//! being visited. Each level remembers its name in its parent and its
//! identity (device and inode), but only the top and the deepest levels keep
//! their handle open: at most [`MAX_HANDLES`] in all (one more for a moment
//! while going up). Going down opens a child only if it is still the
//! directory that was examined, so a directory swapped for a symlink is never
//! entered. Going back up to a level whose handle was dropped opens `..` of
//! the level below and accepts it only when it has that level's identity;
//! if it does not (the tree was moved meanwhile), the level is opened again
//! from the top, name by name, with the same check at every step, and a tree
//! that changed under the traversal ends it with an error rather than
//! letting it continue somewhere else. A tree 30,000 levels deep costs the
//! same handles as one 30 levels deep, and each level is opened about twice.
//!
//! [`taller_than`] is the one traversal that lives here: whether a subtree
//! has entries more than a given number of levels below its top.
//!
//! What it does not do: it reads no directory for its callers and decides
//! nothing about entries (the jail does), it takes no locks, and it never
//! follows a symlink.

use std::ffi::{OsStr, OsString};
use std::io;

use cap_std::fs::{Dir, Metadata, MetadataExt};
use rustix::fs::{Mode, OFlags};

/// The most directory handles one traversal keeps open.
///
/// Walks run on several connections of one user at once (at most
/// `max_listings_per_connection` each), so this bounds their descriptors
/// to `max_connections_per_user` × `max_listings_per_connection` ×
/// (`MAX_HANDLES` + 1). Deeper levels cost one `..` open each on the way up.
pub const MAX_HANDLES: usize = 16;

/// Which directory a handle is: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    device: u64,
    inode: u64,
}

impl Identity {
    /// The identity of the entry `metadata` describes.
    pub fn of(metadata: &Metadata) -> Identity {
        Identity {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }

    /// The identity of the open directory `dir`.
    pub fn of_dir(dir: &Dir) -> io::Result<Identity> {
        Ok(Identity::of(&dir.dir_metadata()?))
    }
}

/// One directory on the branch.
#[derive(Debug)]
struct Level<T> {
    dir: Option<Dir>,
    name: OsString,
    identity: Identity,
    state: T,
}

/// The branch from a top directory to the one being visited, with the
/// caller's state `T` for every level.
#[derive(Debug)]
pub struct Descent<T> {
    levels: Vec<Level<T>>,
    max_handles: usize,
    /// Levels `1..held_from` have dropped their handles; the top and levels
    /// `held_from..` hold theirs.
    held_from: usize,
}

impl<T> Descent<T> {
    /// A descent standing at `top`, holding at most [`MAX_HANDLES`] handles.
    pub fn new(top: Dir, state: T) -> io::Result<Descent<T>> {
        Descent::with_max_handles(top, state, MAX_HANDLES)
    }

    /// Like [`Descent::new`] with another bound (at least 2).
    pub fn with_max_handles(top: Dir, state: T, max_handles: usize) -> io::Result<Descent<T>> {
        let identity = Identity::of_dir(&top)?;
        Ok(Descent {
            levels: vec![Level {
                dir: Some(top),
                name: OsString::new(),
                identity,
                state,
            }],
            max_handles: max_handles.max(2),
            held_from: 1,
        })
    }

    /// How many levels below the top the current directory is.
    pub fn depth(&self) -> usize {
        self.levels.len() - 1
    }

    /// The current (deepest) directory.
    pub fn dir(&self) -> &Dir {
        self.deepest()
            .dir
            .as_ref()
            .expect("the deepest level always holds its handle")
    }

    /// The current directory and its state.
    pub fn current(&mut self) -> (&Dir, &mut T) {
        let level = self.levels.last_mut().expect("a descent is never empty");
        (
            level
                .dir
                .as_ref()
                .expect("the deepest level always holds its handle"),
            &mut level.state,
        )
    }

    /// The handles held right now.
    pub fn open_handles(&self) -> usize {
        self.levels
            .iter()
            .filter(|level| level.dir.is_some())
            .count()
    }

    /// Enters the directory `name` of the current directory, if it is still
    /// the directory `seen` was taken from; `Ok(false)` when it was replaced
    /// (by a symlink, say) and nothing was entered.
    pub fn enter(&mut self, name: &OsStr, seen: Identity, state: T) -> io::Result<bool> {
        let Some(dir) = open_same_dir(self.dir(), name, seen)? else {
            return Ok(false);
        };
        self.levels.push(Level {
            dir: Some(dir),
            name: name.to_owned(),
            identity: seen,
            state,
        });
        if self.open_handles_bound() > self.max_handles {
            self.levels[self.held_from].dir = None;
            self.held_from += 1;
        }
        Ok(true)
    }

    /// Goes back up to the parent of the current directory and returns the
    /// name and state of the level left; `None` at the top, which is never
    /// left.
    pub fn leave(&mut self) -> io::Result<Option<(OsString, T)>> {
        if self.levels.len() == 1 {
            return Ok(None);
        }
        let left = self.levels.pop().expect("more than the top");
        let parent = self.levels.len() - 1;
        if self.levels[parent].dir.is_none() {
            let child = left
                .dir
                .as_ref()
                .expect("the deepest level held its handle");
            let dir = match open_parent_of(child, self.levels[parent].identity)? {
                Some(dir) => dir,
                None => self.reopen_from_top()?,
            };
            self.levels[parent].dir = Some(dir);
            self.held_from = parent;
        }
        if self.held_from > parent {
            self.held_from = parent.max(1);
        }
        Ok(Some((left.name, left.state)))
    }

    fn deepest(&self) -> &Level<T> {
        self.levels.last().expect("a descent is never empty")
    }

    /// The handles held if the levels from `held_from` on all hold theirs.
    fn open_handles_bound(&self) -> usize {
        1 + self.levels.len() - self.held_from
    }

    /// Opens the deepest level again from the top, name by name, checking
    /// each level's identity, and returns its handle. Levels on the way keep
    /// none: they are re-opened through `..` when needed.
    fn reopen_from_top(&self) -> io::Result<Dir> {
        let top = self.levels[0]
            .dir
            .as_ref()
            .expect("the top holds its handle");
        let mut current: Option<Dir> = None;
        for level in &self.levels[1..] {
            let parent = current.as_ref().unwrap_or(top);
            match open_same_dir(parent, &level.name, level.identity)? {
                Some(dir) => current = Some(dir),
                None => return Err(changed()),
            }
        }
        current.ok_or_else(changed)
    }
}

/// What a visit of one directory asks [`visit_dirs`] to do next.
#[derive(Debug)]
pub enum Visit {
    /// Enter these subdirectories (by name, with the identity they were
    /// seen with), then go on.
    Enter(Vec<(OsString, Identity)>),
    /// Stop the whole traversal.
    Stop,
}

/// Visits `top` and every directory below it that `visit` asks to enter,
/// depth first, calling `visit` once per directory with its handle and its
/// depth below `top`; returns `true` when `visit` stopped the traversal.
///
/// Built on a [`Descent`], so it holds at most [`MAX_HANDLES`] directory
/// handles at any depth and never enters a directory swapped for another
/// (or for a link) since it was seen. A subdirectory gone by the time it is
/// entered is skipped.
pub fn visit_dirs(
    top: Dir,
    mut visit: impl FnMut(&Dir, usize) -> io::Result<Visit>,
) -> io::Result<bool> {
    // Each level's subdirectories still to enter; `None` until it is read.
    let mut descent: Descent<Option<Vec<(OsString, Identity)>>> = Descent::new(top, None)?;
    loop {
        let depth = descent.depth();
        let (dir, pending) = descent.current();
        let pending = match pending {
            Some(pending) => pending,
            None => match visit(dir, depth)? {
                Visit::Enter(subdirectories) => pending.insert(subdirectories),
                Visit::Stop => return Ok(true),
            },
        };
        match pending.pop() {
            Some((name, identity)) => match descent.enter(&name, identity, None) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            },
            None => {
                if descent.leave()?.is_none() {
                    return Ok(false);
                }
            }
        }
    }
}

/// Whether the directory `top` has an entry more than `bound` names below
/// it, so that moving `top` to a path of `n` names would put an entry deeper
/// than `n + bound` (an empty directory has nothing below it).
///
/// Directories at depth `bound` are only checked for being empty, never
/// entered, and the search stops at the first entry too deep, so it reads
/// no more than the levels down to `bound`.
pub fn taller_than(top: Dir, bound: usize) -> io::Result<bool> {
    visit_dirs(top, |dir, depth| {
        if depth < bound {
            return Ok(Visit::Enter(subdirectories(dir)?));
        }
        Ok(if dir.entries()?.next().is_some() {
            Visit::Stop
        } else {
            Visit::Enter(Vec::new())
        })
    })
}

/// How many levels below the directory `top` the directory `dir` lies, found
/// by climbing `..` from `dir` until `top` is reached; `None` when it is not
/// reached within `bound` levels.
///
/// A path named through symlinks can be lexically short and physically
/// deep; this measures where the directory really is.
pub fn depth_below(top: &Dir, dir: &Dir, bound: usize) -> io::Result<Option<usize>> {
    let top = Identity::of_dir(top)?;
    let mut current = dir.try_clone()?;
    for depth in 0..=bound {
        if Identity::of_dir(&current)? == top {
            return Ok(Some(depth));
        }
        let fd = rustix::fs::openat(
            &current,
            "..",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        current = Dir::from_std_file(std::fs::File::from(fd));
    }
    Ok(None)
}

/// The subdirectories of `dir` with their identities, links not followed.
fn subdirectories(dir: &Dir) -> io::Result<Vec<(OsString, Identity)>> {
    let mut found = Vec::new();
    for entry in dir.entries()? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => {
                found.push((entry.file_name(), Identity::of(&metadata)));
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(found)
}

/// Opens the directory `name` in `parent` if it is still the directory with
/// identity `seen`; `None` when it was replaced (by a symlink, say).
pub fn open_same_dir(parent: &Dir, name: &OsStr, seen: Identity) -> io::Result<Option<Dir>> {
    let dir = match parent.open_dir(name) {
        Ok(dir) => dir,
        // Replaced by something that is not a directory, or by a link out.
        Err(error)
            if error.kind() == io::ErrorKind::NotADirectory
                || error.kind() == io::ErrorKind::PermissionDenied
                    && error.to_string().contains("outside of the filesystem") =>
        {
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    Ok((Identity::of_dir(&dir)? == seen).then_some(dir))
}

/// The parent directory of `child` (its `..`), if it is the directory with
/// identity `expected`.
///
/// `..` of a directory inside a home is inside the home too (or the home
/// itself), and it is accepted only when it is the very directory the
/// traversal came from, so this never leads anywhere the traversal had not
/// already been.
fn open_parent_of(child: &Dir, expected: Identity) -> io::Result<Option<Dir>> {
    let fd = match rustix::fs::openat(
        child,
        "..",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // The child was removed meanwhile; the caller tries from the top.
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let dir = Dir::from_std_file(std::fs::File::from(fd));
    Ok((Identity::of_dir(&dir)? == expected).then_some(dir))
}

fn changed() -> io::Error {
    io::Error::other("the directory tree changed while it was being read")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn open(path: &Path) -> Dir {
        Dir::open_ambient_dir(path, cap_std::ambient_authority()).unwrap()
    }

    /// A chain `top/d/d/…` of `depth` directories below `top`; returns the
    /// deepest.
    fn chain(top: &Path, depth: usize) -> PathBuf {
        let mut path = top.to_owned();
        for _ in 0..depth {
            path.push("d");
            std::fs::create_dir(&path).unwrap();
        }
        path
    }

    #[test]
    fn a_deep_chain_is_walked_with_bounded_handles() {
        let temp = tempfile::tempdir().unwrap();
        chain(temp.path(), 500);
        let mut descent = Descent::with_max_handles(open(temp.path()), 0usize, 4).unwrap();
        let mut most = 0;
        while let Ok(metadata) = descent.dir().symlink_metadata("d") {
            let identity = Identity::of(&metadata);
            assert!(
                descent
                    .enter(OsStr::new("d"), identity, descent.depth() + 1)
                    .unwrap()
            );
            most = most.max(descent.open_handles());
        }
        assert_eq!(descent.depth(), 500);
        let mut seen = Vec::new();
        while let Some((name, state)) = descent.leave().unwrap() {
            assert_eq!(name, "d");
            seen.push(state);
            most = most.max(descent.open_handles());
            // The handle is the right directory: its child is the one left.
            if descent.depth() > 0 {
                assert!(descent.dir().symlink_metadata("d").unwrap().is_dir());
            }
        }
        assert_eq!(seen, (1..=500).rev().collect::<Vec<_>>());
        assert!(most <= 4, "held {most} handles");
    }

    /// A descent six levels down a fresh chain, holding two handles.
    fn six_down(top: &Path) -> Descent<()> {
        chain(top, 6);
        let mut descent = Descent::with_max_handles(open(top), (), 2).unwrap();
        for _ in 0..6 {
            let identity = Identity::of(&descent.dir().symlink_metadata("d").unwrap());
            assert!(descent.enter(OsStr::new("d"), identity, ()).unwrap());
        }
        descent
    }

    #[test]
    fn a_moved_branch_is_found_again_or_refused() {
        // The deepest level moved away: its `..` is no longer the level
        // above, which is found again from the top by its names.
        let temp = tempfile::tempdir().unwrap();
        let mut descent = six_down(temp.path());
        std::fs::rename(temp.path().join("d/d/d/d/d/d"), temp.path().join("moved")).unwrap();
        descent.leave().unwrap();
        assert_eq!(descent.depth(), 5);
        assert_eq!(
            Identity::of_dir(descent.dir()).unwrap(),
            Identity::of_dir(&open(&temp.path().join("d/d/d/d/d"))).unwrap()
        );

        // And when the way from the top leads elsewhere too, the descent
        // ends with an error instead of carrying on in another directory.
        let temp = tempfile::tempdir().unwrap();
        let mut descent = six_down(temp.path());
        std::fs::rename(temp.path().join("d/d/d/d/d/d"), temp.path().join("moved")).unwrap();
        std::fs::rename(temp.path().join("d"), temp.path().join("old")).unwrap();
        chain(temp.path(), 5);
        let error = descent.leave().unwrap_err();
        assert!(error.to_string().contains("changed"), "{error}");
    }

    #[test]
    fn a_directory_swapped_for_a_link_is_not_entered() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::create_dir(temp.path().join("a")).unwrap();
        std::fs::create_dir(temp.path().join("b")).unwrap();
        let top = open(temp.path());
        let seen = Identity::of(&top.symlink_metadata("a").unwrap());
        std::fs::remove_dir(temp.path().join("a")).unwrap();
        std::os::unix::fs::symlink("b", temp.path().join("a")).unwrap();
        let mut descent = Descent::new(top, ()).unwrap();
        assert!(!descent.enter(OsStr::new("a"), seen, ()).unwrap());
        assert_eq!(descent.depth(), 0);
    }

    #[test]
    fn depth_is_measured_where_the_directory_really_is() {
        let temp = tempfile::tempdir().unwrap();
        let deepest = chain(temp.path(), 10);
        std::os::unix::fs::symlink("d/d/d/d/d/d/d/d/d/d", temp.path().join("short")).unwrap();
        let top = open(temp.path());
        let through_link = top.open_dir("short").unwrap();
        assert_eq!(depth_below(&top, &through_link, 10).unwrap(), Some(10));
        assert_eq!(depth_below(&top, &through_link, 9).unwrap(), None);
        assert_eq!(depth_below(&top, &top, 0).unwrap(), Some(0));
        assert_eq!(
            depth_below(&open(&deepest.join("..")), &open(&deepest), 3).unwrap(),
            Some(1)
        );
    }

    #[test]
    fn heights_are_measured_down_to_the_bound_only() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::create_dir(temp.path().join("empty")).unwrap();
        assert!(!taller_than(open(&temp.path().join("empty")), 0).unwrap());
        let wide = temp.path().join("wide");
        std::fs::create_dir(&wide).unwrap();
        for index in 0..20 {
            std::fs::create_dir(wide.join(index.to_string())).unwrap();
        }
        chain(&wide.join("7"), 3);
        std::os::unix::fs::symlink(temp.path(), wide.join("loop")).unwrap();
        std::fs::write(wide.join("3/file"), "x").unwrap();
        let with_file = temp.path().join("with_file");
        std::fs::create_dir(&with_file).unwrap();
        std::fs::write(with_file.join("file"), "x").unwrap();
        assert!(taller_than(open(&with_file), 0).unwrap());
        assert!(!taller_than(open(&with_file), 1).unwrap());
        // wide/7/d/d/d: height 4.
        assert!(taller_than(open(&wide), 3).unwrap());
        assert!(!taller_than(open(&wide), 4).unwrap());
        assert!(taller_than(open(&wide), 0).unwrap());
        let deep = temp.path().join("deep");
        std::fs::create_dir(&deep).unwrap();
        chain(&deep, 1500);
        assert!(taller_than(open(&deep), 1499).unwrap());
        assert!(!taller_than(open(&deep), 1500).unwrap());
    }
}
