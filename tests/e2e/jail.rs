//! Users cannot leave their home: `..`, absolute paths, symlinks.

use crate::support::{TestClient, TestServer};

fn alice_and_bob() -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    server.add_user("bob", "bob-pw-1", None);
    std::fs::write(server.home("bob").join("secret.txt"), "bob's secret").unwrap();
    let alice = TestClient::new();
    alice.login(&server, "alice", "alice-pw-1");
    (server, alice)
}

/// Every file and directory under `root`, relative, sorted.
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            found.push(path.strip_prefix(root).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn dot_dot_and_absolute_paths_stay_in_the_home() {
    let (server, alice) = alice_and_bob();
    alice.ok(&["mkdir", "docs"]);
    alice.ok(&["cd", ".."]);
    assert_eq!(alice.ok(&["pwd"]).trim(), "/");
    assert_eq!(alice.ok(&["ls", "../../.."]), "docs/\n");
    let error = alice.fails(&["ls", "/../../etc"]);
    assert!(error.contains("/etc: no such file or directory"), "{error}");

    let before = tree(server.temp.path());
    alice.ok(&["mkdir", "../x"]);
    alice.ok(&["cd", "docs"]);
    alice.ok(&["mkdir", "../../../../y"]);
    alice.ok(&["mv", "../x", "../../../z"]);
    let after = tree(server.temp.path());
    let added: Vec<_> = after.iter().filter(|path| !before.contains(path)).collect();
    // Everything created landed inside alice's home.
    assert_eq!(added, ["root/homes/alice/y", "root/homes/alice/z"]);
}

#[test]
fn symlinks_that_point_outside_are_never_followed() {
    let (server, alice) = alice_and_bob();
    let home = server.home("alice");
    std::os::unix::fs::symlink("/etc", home.join("etc-link")).unwrap();
    std::os::unix::fs::symlink(server.home("bob"), home.join("bob-link")).unwrap();
    std::os::unix::fs::symlink("../bob", home.join("bob-relative")).unwrap();
    std::fs::write(home.join("file.txt"), "mine").unwrap();
    let before = tree(server.temp.path());

    for link in ["etc-link", "bob-link", "bob-relative"] {
        let error = alice.fails(&["cd", link]);
        assert!(error.contains("outside your home"), "cd {link}: {error}");
        let error = alice.fails(&["ls", &format!("{link}/")]);
        assert!(error.contains("outside your home"), "ls {link}: {error}");
        let error = alice.fails(&["mkdir", &format!("{link}/new")]);
        assert!(error.contains("outside your home"), "mkdir {link}: {error}");
        let error = alice.fails(&["mv", "file.txt", &format!("{link}/stolen.txt")]);
        assert!(
            error.contains("outside your home"),
            "mv into {link}: {error}"
        );
    }
    let error = alice.fails(&[
        "get",
        "bob-link/secret.txt",
        alice.config.path().join("x").to_str().unwrap(),
    ]);
    assert!(error.contains("outside your home"), "{error}");
    assert!(!alice.config.path().join("x").exists());
    assert_eq!(tree(server.temp.path()), before);
    assert_eq!(
        std::fs::read_to_string(server.home("bob").join("secret.txt")).unwrap(),
        "bob's secret"
    );
    // The links themselves are visible, as links.
    let listing = alice.ok(&["ls", "-l"]);
    assert!(listing.contains("etc-link -> /etc"), "{listing}");
}
