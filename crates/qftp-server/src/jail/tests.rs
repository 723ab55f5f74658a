//! Tests of the jail: confinement, links, listings, walks, changes and
//! measurement, on real directories.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use qftp_proto::path::RemotePath;
use qftp_proto::{EntryInfo, EntryKind, ErrorKind, LIST_CHUNK_ENTRIES, partial_name};

use super::{Jail, JailLimits};
use crate::footprint::Footprint;
use crate::quota::Tally;

fn tally() -> Tally {
    Tally::unlimited(4096)
}

fn removed(jail: &Jail, at: &str, recursive: bool) -> Footprint {
    let mut tally = tally();
    jail.remove(&path(at), recursive, &mut tally).unwrap();
    assert_eq!(tally.added(), Footprint::ZERO);
    tally.removed()
}

fn renamed(jail: &Jail, from: &str, to: &str) -> Footprint {
    let mut tally = tally();
    jail.rename(&path(from), &path(to), &mut tally).unwrap();
    tally.removed()
}

/// Two homes side by side, a file outside both, and a jail on alice's.
struct Homes {
    top: tempfile::TempDir,
    alice: PathBuf,
    bob: PathBuf,
    jail: Jail,
}

impl Homes {
    fn new() -> Homes {
        let top = tempfile::tempdir().unwrap();
        let alice = top.path().join("homes/alice");
        let bob = top.path().join("homes/bob");
        fs::create_dir_all(alice.join("docs")).unwrap();
        fs::create_dir_all(&bob).unwrap();
        fs::write(alice.join("docs/a.txt"), "hello").unwrap();
        fs::write(bob.join("secret.txt"), "bob's secret").unwrap();
        fs::write(top.path().join("outside.txt"), "outside").unwrap();
        let jail = Jail::open(&alice, "alice", JailLimits::default()).unwrap();
        Homes {
            top,
            alice,
            bob,
            jail,
        }
    }

    /// Adds the escaping links: to /etc, to bob's home by absolute path
    /// and by `../bob`, to bob's secret and to the file outside.
    fn with_escapes(self) -> Homes {
        symlink("/etc", self.alice.join("etc_link")).unwrap();
        symlink(&self.bob, self.alice.join("bob_abs")).unwrap();
        symlink("../bob", self.alice.join("bob_rel")).unwrap();
        symlink(self.bob.join("secret.txt"), self.alice.join("secret_abs")).unwrap();
        symlink("../../outside.txt", self.alice.join("outside_rel")).unwrap();
        self
    }

    fn bob_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.bob)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// No error message may reveal where the homes live on the server.
    fn assert_private(&self, message: &str) {
        let server_path = self.top.path().to_string_lossy().into_owned();
        assert!(
            !message.contains(&server_path),
            "leaks a server path: {message}"
        );
    }
}

fn path(text: &str) -> RemotePath {
    RemotePath::parse(text).unwrap()
}

fn names(entries: &[EntryInfo]) -> Vec<&str> {
    entries.iter().map(|entry| entry.name.as_str()).collect()
}

const ESCAPES: [&str; 3] = ["/etc_link", "/bob_abs", "/bob_rel"];

#[test]
fn open_requires_an_existing_directory() {
    let homes = Homes::new();
    assert!(
        Jail::open(
            &homes.alice.join("docs/a.txt"),
            "alice",
            JailLimits::default()
        )
        .is_err()
    );
    assert!(Jail::open(&homes.alice.join("missing"), "alice", JailLimits::default()).is_err());
}

#[test]
fn dot_dot_and_absolute_paths_stay_inside() {
    let homes = Homes::new();
    let up = path("../../..");
    assert!(up.is_root());
    assert_eq!(names(&homes.jail.list(&up).unwrap()), ["docs"]);
    assert_eq!(homes.jail.stat(&up).unwrap().name, "/");

    let etc = path("/../../etc");
    assert_eq!(etc.to_string(), "/etc");
    let error = homes.jail.stat(&etc).unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert_eq!(error.message, "/etc: no such file or directory");

    let bob = path("../bob/secret.txt");
    assert_eq!(bob.to_string(), "/bob/secret.txt");
    assert_eq!(
        homes.jail.open_read(&bob).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn cap_std_escape_error_maps_to_outside_home() {
    let homes = Homes::new().with_escapes();
    let error = homes.jail.root.metadata("bob_abs").unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
    assert_eq!(error.to_string(), "a path led outside of the filesystem");
    let mapped = crate::error::RequestError::from_io(&error, "/bob_abs");
    assert_eq!(mapped.kind, ErrorKind::OutsideHome);
    assert_eq!(mapped.message, "/bob_abs: outside your home");
}

#[test]
fn escaping_symlinks_are_refused() {
    let homes = Homes::new().with_escapes();
    let jail = &homes.jail;
    for link in ESCAPES {
        let refusals = [
            jail.stat(&path(link)).unwrap_err(),
            jail.is_dir(&path(link)).unwrap_err(),
            jail.list(&path(link)).unwrap_err(),
            jail.walk(&path(link), true, &mut |_| panic!("walked outside"))
                .unwrap_err(),
            jail.open_read(&path(&format!("{link}/secret.txt")))
                .unwrap_err(),
            jail.open_read(&path(&format!("{link}/passwd")))
                .unwrap_err(),
            jail.mkdir(&path(&format!("{link}/planted")), false, &mut tally())
                .unwrap_err(),
            jail.mkdir(&path(&format!("{link}/planted/deeper")), true, &mut tally())
                .unwrap_err(),
            jail.open_parent(&path(&format!("{link}/upload.txt")))
                .unwrap_err(),
            jail.remove(&path(&format!("{link}/secret.txt")), false, &mut tally())
                .unwrap_err(),
        ];
        for error in refusals {
            assert_eq!(error.kind, ErrorKind::OutsideHome, "{link}: {error:?}");
            assert!(error.message.starts_with(link), "{}", error.message);
            homes.assert_private(&error.message);
        }
    }
    for file in ["/secret_abs", "/outside_rel"] {
        assert_eq!(
            jail.stat(&path(file)).unwrap_err().kind,
            ErrorKind::OutsideHome
        );
        assert_eq!(
            jail.open_read(&path(file)).unwrap_err().kind,
            ErrorKind::OutsideHome
        );
    }
    assert_eq!(homes.bob_names(), ["secret.txt"]);
    assert!(!PathBuf::from("/etc/planted").exists());
    assert_eq!(
        fs::read_to_string(homes.bob.join("secret.txt")).unwrap(),
        "bob's secret"
    );
}

#[test]
fn listing_shows_links_without_following() {
    let homes = Homes::new().with_escapes();
    let entries = homes.jail.list(&RemotePath::root()).unwrap();
    assert_eq!(
        names(&entries),
        [
            "bob_abs",
            "bob_rel",
            "docs",
            "etc_link",
            "outside_rel",
            "secret_abs"
        ]
    );
    let bob_abs = homes.bob.to_string_lossy().into_owned();
    for entry in &entries {
        let expected = match entry.name.as_str() {
            "docs" => None,
            "etc_link" => Some("/etc"),
            "bob_abs" => Some(bob_abs.as_str()),
            "bob_rel" => Some("../bob"),
            "outside_rel" => Some("../../outside.txt"),
            _ => continue,
        };
        let kind = if expected.is_some() {
            EntryKind::Symlink
        } else {
            EntryKind::Directory
        };
        assert_eq!(entry.kind, kind, "{}", entry.name);
        assert_eq!(entry.link_target.as_deref(), expected);
    }
    // Listing a link to a file names the link itself, not its target.
    let single = homes.jail.list(&path("/secret_abs")).unwrap_err();
    assert_eq!(single.kind, ErrorKind::OutsideHome);
}

#[test]
fn symlinks_inside_the_home_work() {
    let homes = Homes::new();
    symlink("docs", homes.alice.join("docs_link")).unwrap();
    symlink("docs/a.txt", homes.alice.join("a_link")).unwrap();
    symlink("../docs", homes.alice.join("docs/loop")).unwrap();
    let jail = &homes.jail;

    assert_eq!(
        jail.stat(&path("/docs_link")).unwrap().kind,
        EntryKind::Directory
    );
    assert!(jail.is_dir(&path("/docs_link")).unwrap());
    assert!(!jail.is_dir(&path("/a_link")).unwrap());
    assert!(!jail.is_dir(&path("/missing")).unwrap());
    assert_eq!(
        names(&jail.list(&path("/docs_link")).unwrap()),
        ["a.txt", "loop"]
    );
    // A relative link that goes up and comes back down stays inside.
    assert_eq!(
        names(&jail.list(&path("/docs/loop/loop")).unwrap()),
        ["a.txt", "loop"]
    );

    let (mut file, info) = jail.open_read(&path("/a_link")).unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(&mut file, &mut content).unwrap();
    assert_eq!(content, "hello");
    assert_eq!(
        (info.name.as_str(), info.kind, info.size),
        ("a_link", EntryKind::File, 5)
    );

    let single = jail.list(&path("/a_link")).unwrap();
    assert_eq!(single.len(), 1);
    assert_eq!(single[0].kind, EntryKind::Symlink);
    assert_eq!(single[0].link_target.as_deref(), Some("docs/a.txt"));

    let target = jail.open_parent(&path("/docs_link/new.txt")).unwrap();
    assert_eq!(target.name(), "new.txt");
    assert_eq!(
        target
            .existing_footprint("/docs_link/new.txt", 4096)
            .unwrap(),
        Footprint::ZERO
    );
    target.dir().write(target.name(), "uploaded").unwrap();
    assert_eq!(
        target
            .existing_footprint("/docs_link/new.txt", 4096)
            .unwrap(),
        Footprint::file(8)
    );
    assert_eq!(
        fs::read_to_string(homes.alice.join("docs/new.txt")).unwrap(),
        "uploaded"
    );

    jail.mkdir(&path("/docs_link/sub"), false, &mut tally())
        .unwrap();
    assert!(homes.alice.join("docs/sub").is_dir());
}

#[test]
fn renaming_through_escaping_links_is_refused() {
    let homes = Homes::new().with_escapes();
    let jail = &homes.jail;
    let source = path("/docs/a.txt");
    for target in [
        "/bob_abs/stolen.txt",
        "/bob_rel/stolen.txt",
        "/etc_link/stolen.txt",
    ] {
        let error = jail
            .rename(&source, &path(target), &mut tally())
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::OutsideHome, "{target}: {error:?}");
    }
    // An existing link to a directory outside is not a directory to move into.
    for target in ESCAPES {
        let error = jail
            .rename(&source, &path(target), &mut tally())
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::OutsideHome, "{target}: {error:?}");
    }
    // Nor can bob's files be pulled in through a link.
    let error = jail
        .rename(
            &path("/bob_abs/secret.txt"),
            &path("/mine.txt"),
            &mut tally(),
        )
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::OutsideHome);
    assert_eq!(homes.bob_names(), ["secret.txt"]);
    assert!(homes.alice.join("docs/a.txt").is_file());
    assert!(!homes.alice.join("mine.txt").exists());
}

#[test]
fn removing_links_leaves_their_targets_alone() {
    let homes = Homes::new().with_escapes();
    let trash = homes.alice.join("trash");
    fs::create_dir_all(trash.join("inner")).unwrap();
    fs::write(trash.join("ten.bytes"), "0123456789").unwrap();
    symlink(&homes.bob, trash.join("bob_abs")).unwrap();
    symlink("../../../bob", trash.join("inner/bob_rel")).unwrap();
    symlink(homes.bob.join("secret.txt"), trash.join("inner/secret")).unwrap();

    // The file, two directories and three links.
    assert_eq!(
        removed(&homes.jail, "/trash", true),
        Footprint {
            bytes: 10 + 5 * 4096,
            entries: 6
        }
    );
    assert!(!trash.exists());
    assert_eq!(
        removed(&homes.jail, "/bob_abs", false),
        Footprint::node(4096)
    );
    assert_eq!(
        removed(&homes.jail, "/bob_rel", true),
        Footprint::node(4096)
    );
    assert!(fs::symlink_metadata(homes.alice.join("bob_abs")).is_err());
    assert!(fs::symlink_metadata(homes.alice.join("bob_rel")).is_err());
    assert_eq!(homes.bob_names(), ["secret.txt"]);
    assert_eq!(
        fs::read_to_string(homes.bob.join("secret.txt")).unwrap(),
        "bob's secret"
    );
}

#[test]
fn swapping_a_directory_for_a_link_never_reaches_outside() {
    const ROUNDS: usize = 2000;
    let homes = Homes::new();
    let target = homes.alice.join("target");
    let parked_dir = homes.alice.join("parked_dir");
    let parked_link = homes.alice.join("parked_link");
    fs::create_dir(&target).unwrap();
    symlink(&homes.bob, &parked_link).unwrap();

    let swapper = std::thread::spawn({
        let (target, parked_dir, parked_link) =
            (target.clone(), parked_dir.clone(), parked_link.clone());
        move || {
            for _ in 0..ROUNDS {
                fs::rename(&target, &parked_dir).unwrap();
                fs::rename(&parked_link, &target).unwrap();
                fs::rename(&target, &parked_link).unwrap();
                fs::rename(&parked_dir, &target).unwrap();
            }
        }
    });
    let mut created = 0;
    for round in 0..ROUNDS {
        let upload = path(&format!("/target/upload-{round}.txt"));
        let uploaded = homes
            .jail
            .open_parent(&upload)
            .is_ok_and(|target| target.dir().write(target.name(), "x").is_ok());
        if uploaded {
            created += 1;
        }
        // Without `parents`: with them, a missing `target` would be
        // recreated as a fresh directory, which is correct but ends the
        // dance.
        if homes
            .jail
            .mkdir(&path(&format!("/target/dir-{round}")), false, &mut tally())
            .is_ok()
        {
            created += 1;
        }
        if let Ok(entries) = homes.jail.list(&path("/target")) {
            assert!(entries.iter().all(|entry| entry.name != "secret.txt"));
        }
    }
    swapper.join().unwrap();

    assert_eq!(homes.bob_names(), ["secret.txt"]);
    // Everything that was created landed in alice's directory.
    assert_eq!(fs::read_dir(&target).unwrap().count(), created);
}

#[test]
fn walk_emits_sorted_relative_paths_in_chunks() {
    let homes = Homes::new().with_escapes();
    let tree = homes.alice.join("tree");
    fs::create_dir_all(tree.join("a/deep")).unwrap();
    fs::create_dir_all(tree.join("many")).unwrap();
    fs::write(tree.join("b.txt"), "bee").unwrap();
    fs::write(tree.join("a/x.txt"), "ex").unwrap();
    fs::write(tree.join("a/deep/z.txt"), "zed").unwrap();
    fs::write(tree.join("a").join(partial_name("y.txt")), "partial").unwrap();
    symlink("a", tree.join("link")).unwrap();
    symlink(&homes.bob, tree.join("out")).unwrap();
    let many = LIST_CHUNK_ENTRIES + 88;
    for index in 0..many {
        fs::write(tree.join(format!("many/f{index:04}")), index.to_string()).unwrap();
    }

    let mut chunks = Vec::new();
    homes
        .jail
        .walk(&path("/tree"), true, &mut |chunk| {
            chunks.push(chunk);
            true
        })
        .unwrap();
    assert!(
        chunks
            .iter()
            .all(|chunk| !chunk.is_empty() && chunk.len() <= LIST_CHUNK_ENTRIES)
    );
    assert_eq!(chunks[0].len(), LIST_CHUNK_ENTRIES);
    let entries: Vec<EntryInfo> = chunks.into_iter().flatten().collect();
    let mut expected = vec![
        "a",
        "a/deep",
        "a/deep/z.txt",
        "a/x.txt",
        "b.txt",
        "link",
        "many",
    ];
    let files: Vec<String> = (0..many).map(|index| format!("many/f{index:04}")).collect();
    expected.extend(files.iter().map(String::as_str));
    expected.push("out");
    assert_eq!(names(&entries), expected);

    for entry in &entries {
        match entry.kind {
            EntryKind::File => {
                let content = fs::read(tree.join(&entry.name)).unwrap();
                assert_eq!(
                    entry.hash,
                    Some(*blake3::hash(&content).as_bytes()),
                    "{}",
                    entry.name
                );
                assert_eq!(entry.size, content.len() as u64);
            }
            EntryKind::Directory => assert_eq!((entry.size, entry.hash), (0, None)),
            EntryKind::Symlink => assert!(entry.link_target.is_some() && entry.hash.is_none()),
            EntryKind::Other => panic!("unexpected {entry:?}"),
        }
    }

    let mut calls = 0;
    homes
        .jail
        .walk(&path("/tree"), false, &mut |chunk| {
            calls += 1;
            assert!(chunk.iter().all(|entry| entry.hash.is_none()));
            false
        })
        .unwrap();
    assert_eq!(calls, 1);

    let mut empty_calls = 0;
    let error = homes
        .jail
        .walk(&path("/tree/a/deep/z.txt"), false, &mut |_| {
            empty_calls += 1;
            true
        })
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotADirectory);
    homes
        .jail
        .mkdir(&path("/empty"), false, &mut tally())
        .unwrap();
    homes
        .jail
        .walk(&path("/empty"), true, &mut |_| {
            empty_calls += 1;
            true
        })
        .unwrap();
    assert_eq!(empty_calls, 0);
}

#[test]
fn listing_hides_partials_and_sorts() {
    let homes = Homes::new();
    fs::write(homes.alice.join("docs/b.txt"), "b").unwrap();
    fs::write(homes.alice.join("docs").join(partial_name("c.txt")), "c").unwrap();
    let entries = homes.jail.list(&path("/docs")).unwrap();
    assert_eq!(names(&entries), ["a.txt", "b.txt"]);
    assert_eq!((entries[0].kind, entries[0].size), (EntryKind::File, 5));
    let single = homes.jail.list(&path("/docs/a.txt")).unwrap();
    assert_eq!(names(&single), ["a.txt"]);
    let missing = homes.jail.list(&path("/docs/nope")).unwrap_err();
    assert_eq!(missing.message, "/docs/nope: no such file or directory");
}

#[test]
fn remove_reports_freed_bytes() {
    let homes = Homes::new();
    let jail = &homes.jail;
    assert_eq!(removed(jail, "/docs/a.txt", false), Footprint::file(5));
    fs::write(homes.alice.join("docs/b.txt"), "1234567").unwrap();
    fs::write(homes.alice.join("docs").join(partial_name("c.txt")), "123").unwrap();
    fs::create_dir_all(homes.alice.join("docs/sub/subsub")).unwrap();
    fs::write(homes.alice.join("docs/sub/subsub/d.txt"), "12").unwrap();

    let error = jail
        .remove(&path("/docs"), false, &mut tally())
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::DirectoryNotEmpty);
    assert_eq!(error.message, "/docs: directory not empty");
    // Old-style partials are charged like any file, and so freed.
    assert_eq!(
        removed(jail, "/docs", true),
        Footprint {
            bytes: 7 + 3 + 2 + 3 * 4096,
            entries: 6
        }
    );
    assert!(!homes.alice.join("docs").exists());

    let error = jail
        .remove(&RemotePath::root(), true, &mut tally())
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::PermissionDenied);
    assert_eq!(error.message, "cannot remove your home directory");
    assert_eq!(
        jail.remove(&path("/docs"), true, &mut tally())
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert!(homes.alice.is_dir());
}

#[test]
fn rename_follows_mv_semantics() {
    let homes = Homes::new();
    let jail = &homes.jail;
    fs::write(homes.alice.join("big.txt"), "twelve bytes").unwrap();

    // Replacing a file frees its size.
    assert_eq!(renamed(jail, "/big.txt", "/docs/a.txt"), Footprint::file(5));
    assert_eq!(
        fs::read_to_string(homes.alice.join("docs/a.txt")).unwrap(),
        "twelve bytes"
    );
    // Into an existing directory, under its own name; the home counts.
    jail.mkdir(&path("/archive"), false, &mut tally()).unwrap();
    assert_eq!(renamed(jail, "/docs/a.txt", "/archive"), Footprint::ZERO);
    assert!(homes.alice.join("archive/a.txt").is_file());
    assert_eq!(renamed(jail, "/archive/a.txt", "/"), Footprint::ZERO);
    assert!(homes.alice.join("a.txt").is_file());
    // Onto itself: nothing happens.
    assert_eq!(renamed(jail, "/a.txt", "/a.txt"), Footprint::ZERO);
    assert!(homes.alice.join("a.txt").is_file());
    // Plain rename to a new name, and a directory into another.
    assert_eq!(
        renamed(jail, "/a.txt", "/docs/renamed.txt"),
        Footprint::ZERO
    );
    assert_eq!(renamed(jail, "/archive", "/docs"), Footprint::ZERO);
    assert!(homes.alice.join("docs/archive").is_dir());

    let refused = [
        (
            jail.rename(&RemotePath::root(), &path("/x"), &mut tally()),
            ErrorKind::PermissionDenied,
        ),
        (
            jail.rename(&path("/docs"), &path("/docs/archive/deeper"), &mut tally()),
            ErrorKind::InvalidPath,
        ),
        (
            jail.rename(&path("/docs"), &path("/docs/archive"), &mut tally()),
            ErrorKind::InvalidPath,
        ),
        (
            jail.rename(&path("/missing"), &path("/x"), &mut tally()),
            ErrorKind::NotFound,
        ),
    ];
    for (result, kind) in refused {
        assert_eq!(result.unwrap_err().kind, kind);
    }
    // Through a link, the kernel's own check catches what the lexical one cannot.
    symlink("docs/archive", homes.alice.join("archive_link")).unwrap();
    let error = jail
        .rename(&path("/docs"), &path("/archive_link/inner"), &mut tally())
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidPath);
    assert!(homes.alice.join("docs/renamed.txt").is_file());
}

#[test]
fn mkdir_with_and_without_parents() {
    let homes = Homes::new();
    let jail = &homes.jail;
    assert_eq!(
        jail.mkdir(&RemotePath::root(), false, &mut tally())
            .unwrap_err()
            .kind,
        ErrorKind::AlreadyExists
    );
    jail.mkdir(&RemotePath::root(), true, &mut tally()).unwrap();

    jail.mkdir(&path("/a/b/c"), true, &mut tally()).unwrap();
    assert!(homes.alice.join("a/b/c").is_dir());
    jail.mkdir(&path("/a/b/c"), true, &mut tally()).unwrap();
    let error = jail
        .mkdir(&path("/a/b/c"), false, &mut tally())
        .unwrap_err();
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::AlreadyExists, "/a/b/c: already exists")
    );
    assert_eq!(
        jail.mkdir(&path("/x/y"), false, &mut tally())
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );

    let error = jail
        .mkdir(&path("/docs/a.txt/sub"), true, &mut tally())
        .unwrap_err();
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::NotADirectory, "/docs/a.txt: not a directory")
    );
    let error = jail
        .mkdir(&path("/docs/a.txt"), true, &mut tally())
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::AlreadyExists);
    // Reserved names cannot even be spelled in a path.
    assert!(RemotePath::parse(&format!("/{}", partial_name("d"))).is_err());
}

#[test]
fn open_parent_and_open_read_refuse_what_they_must() {
    let homes = Homes::new();
    let jail = &homes.jail;
    let error = jail.open_parent(&RemotePath::root()).unwrap_err();
    assert_eq!(error.kind, ErrorKind::IsADirectory);
    assert!(RemotePath::parse(&format!("/docs/{}", partial_name("a.txt"))).is_err());
    let error = jail.open_parent(&path("/missing/a.txt")).unwrap_err();
    assert_eq!(error.message, "/missing: no such file or directory");
    let error = jail.open_parent(&path("/docs/a.txt/b")).unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotADirectory);

    assert_eq!(
        jail.open_read(&path("/docs")).unwrap_err().kind,
        ErrorKind::IsADirectory
    );
    assert_eq!(
        jail.open_read(&RemotePath::root()).unwrap_err().kind,
        ErrorKind::IsADirectory
    );
    let (_, info) = jail.open_read(&path("/docs/a.txt")).unwrap();
    let stat = jail.stat(&path("/docs/a.txt")).unwrap();
    assert_eq!(info, stat);
    assert_eq!(
        (info.kind, info.size, info.mode & 0o400),
        (EntryKind::File, 5, 0o400)
    );
}

#[test]
fn disk_usage_charges_every_entry_but_follows_no_link() {
    let homes = Homes::new().with_escapes();
    fs::create_dir_all(homes.alice.join("docs/sub")).unwrap();
    fs::write(homes.alice.join("docs/sub/b.bin"), [7u8; 1000]).unwrap();
    fs::write(homes.alice.join("docs").join(partial_name("c")), "abc").unwrap();
    symlink("docs", homes.alice.join("docs_again")).unwrap();
    let before = homes.jail.disk_usage().unwrap();
    // The staging directory costs nothing; what it holds does.
    let staging = homes.jail.open_staging().unwrap();
    let partial = staging.partial(&path("/x"));
    let file = crate::quota::PartialFile::open(&partial, 0).unwrap();
    std::io::Write::write_all(&mut &file, b"12").unwrap();
    let after = homes.jail.disk_usage().unwrap();
    assert_eq!(after, before.saturating_add(Footprint::file(2)));
    // Count by hand: every entry, links as links.
    let mut expected = Footprint::ZERO;
    let mut pending = vec![homes.alice.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let metadata = fs::symlink_metadata(entry.path()).unwrap();
            if entry.file_name() == crate::partials::STAGING_DIR && dir == homes.alice {
                pending.push(entry.path());
                continue;
            }
            if metadata.is_file() {
                expected += Footprint::file(metadata.len());
            } else {
                expected += Footprint::node(4096);
                if metadata.is_dir() {
                    pending.push(entry.path());
                }
            }
        }
    }
    assert_eq!(after, expected);
    assert!(after.bytes >= 5 + 1000 + 3 + 2);
}

#[test]
fn a_move_through_a_link_counts_the_real_depth() {
    let homes = Homes::new();
    fs::create_dir_all(homes.alice.join("a/b/c/d")).unwrap();
    fs::create_dir_all(homes.alice.join("x/y/z")).unwrap();
    symlink("a/b/c/d", homes.alice.join("s")).unwrap();
    let limits = JailLimits {
        max_depth: 6,
        ..JailLimits::default()
    };
    let jail = Jail::open(&homes.alice, "alice", limits).unwrap();
    // /s/x reads as two names but lies at a/b/c/d/x: five, and z at seven.
    let error = jail
        .rename(&path("/x"), &path("/s/x"), &mut tally())
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::LimitReached);
    assert!(error.message.contains("max_depth = 6"), "{}", error.message);
    fs::remove_dir(homes.alice.join("x/y/z")).unwrap();
    jail.rename(&path("/x"), &path("/s/x"), &mut tally())
        .unwrap();
    assert!(homes.alice.join("a/b/c/d/x/y").is_dir());
}

#[test]
fn deep_trees_are_measured_walked_and_removed() {
    const DEPTH: usize = 2000;
    let homes = Homes::new();
    let mut deep = homes.alice.join("deep");
    fs::create_dir(&deep).unwrap();
    for _ in 0..DEPTH {
        deep.push("d");
        fs::create_dir(&deep).unwrap();
    }
    fs::write(deep.join("leaf.txt"), "leaf").unwrap();
    let cost = JailLimits::default().entry_cost;
    let expected = Footprint {
        bytes: 5 + 4 + (2 + DEPTH as u64) * cost,
        entries: 4 + DEPTH as u64,
    };
    assert_eq!(homes.jail.disk_usage().unwrap(), expected);

    // A walk refuses what no request could name.
    let error = homes
        .jail
        .walk(&path("/deep"), false, &mut |_| true)
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::LimitReached);
    assert!(error.message.contains("max_depth"), "{}", error.message);
    // /deep, 2,000 levels of d and leaf.txt: 2,002 names.
    let roomy = JailLimits {
        max_depth: DEPTH + 2,
        max_path_bytes: 3 * DEPTH,
        ..JailLimits::default()
    };
    let jail = Jail::open(&homes.alice, "alice", roomy).unwrap();
    let mut walked = 0;
    jail.walk(&path("/deep"), true, &mut |chunk| {
        walked += chunk.len();
        true
    })
    .unwrap();
    assert_eq!(walked, DEPTH + 1);

    // A move that would make the tree deeper still is refused; one that
    // keeps it within the bound is not.
    let error = jail
        .rename(&path("/deep"), &path("/docs"), &mut tally())
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::LimitReached);
    assert!(homes.alice.join("deep").is_dir());
    jail.rename(&path("/deep"), &path("/moved"), &mut tally())
        .unwrap();

    let removed = removed(&jail, "/moved", true).bytes;
    assert_eq!(removed, 4 + (1 + DEPTH as u64) * cost);
    assert!(!homes.alice.join("moved").exists());
    assert_eq!(
        jail.disk_usage().unwrap(),
        Footprint {
            bytes: 5 + cost,
            entries: 2
        }
    );
}

#[test]
fn symlinks_are_made_only_when_they_stay_inside() {
    let homes = Homes::new();
    let jail = &homes.jail;
    jail.mkdir(&path("/links"), false, &mut tally()).unwrap();
    jail.symlink(&path("/links/to-docs"), "../docs").unwrap();
    assert_eq!(
        fs::read_link(homes.alice.join("links/to-docs")).unwrap(),
        std::path::Path::new("../docs")
    );
    for target in ["/etc", "../../bob", "../docs/../../x", ""] {
        let error = jail.symlink(&path("/links/bad"), target).unwrap_err();
        assert!(
            matches!(error.kind, ErrorKind::OutsideHome | ErrorKind::InvalidPath),
            "{target}: {error:?}"
        );
    }
    assert!(fs::symlink_metadata(homes.alice.join("links/bad")).is_err());
}
