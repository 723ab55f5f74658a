//! Hardening: no sequence of operations may leave a symlink in a home that
//! resolves outside it, for any program that follows it (a backup, a web
//! server serving the home), not only for qftp.
//!
//! One test per way a link could be led out: moving a link (or the
//! directory holding it) up with `qftp mv` after `qftp sync --links` made
//! it, a `..` after a symlinked name (resolved physically by the kernel),
//! and a link made in (or moved into) a directory reached through a
//! symlink. After each, every link under the home on disk is resolved with
//! `std::fs::canonicalize` and must land inside the home or nowhere.
//! Requests with no CLI command go through `qftp_client::Client`.

use std::path::{Path, PathBuf};

use qftp_client::{Client, ClientError, ConnectOptions, Trust};
use qftp_proto::ErrorKind;

use crate::support::{TestClient, TestServer};

/// The most entries the final check looks at; the homes here are tiny.
const MAX_CHECKED_ENTRIES: usize = 10_000;

/// A server with alice and bob, bob holding a secret that alice's links
/// must never reach.
fn server_with_a_secret() -> TestServer {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    server.add_user("bob", "bob-pw-1", None);
    let bob = server.home("bob");
    std::fs::create_dir_all(&bob).unwrap();
    std::fs::write(bob.join("secret.txt"), "bob's secret").unwrap();
    server
}

async fn alice(server: &TestServer) -> Client {
    let fingerprint = server.fingerprint.parse().expect("server fingerprint");
    let options = ConnectOptions::new(server.host(), Trust::Pinned(fingerprint));
    let client = Client::connect(&options).await.expect("connecting");
    client
        .login("alice", "alice-pw-1")
        .await
        .expect("logging in");
    client
}

fn kind(result: &Result<(), ClientError>) -> Option<ErrorKind> {
    result.as_ref().err().and_then(ClientError::server_kind)
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_symlink())
}

/// Every symlink below `home` on disk resolves inside it or not at all;
/// returns how many links were looked at.
fn assert_every_link_stays_inside(home: &Path) -> usize {
    let home = home.canonicalize().expect("the home exists");
    let mut pending: Vec<PathBuf> = vec![home.clone()];
    let mut entries = 0;
    let mut links = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading a directory") {
            let path = entry.expect("a directory entry").path();
            entries += 1;
            assert!(entries < MAX_CHECKED_ENTRIES, "the home is far too big");
            let metadata = std::fs::symlink_metadata(&path).expect("metadata");
            if metadata.is_symlink() {
                links += 1;
                if let Ok(resolved) = path.canonicalize() {
                    assert!(
                        resolved.starts_with(&home),
                        "{} -> {} resolves outside the home, to {}",
                        path.display(),
                        std::fs::read_link(&path).unwrap().display(),
                        resolved.display()
                    );
                }
            } else if metadata.is_dir() {
                pending.push(path);
            }
        }
    }
    links
}

#[test]
fn links_made_by_sync_cannot_be_moved_up_and_out() {
    let server = server_with_a_secret();
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    let local = tempfile::tempdir().unwrap();
    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("a/deep")).unwrap();
    std::fs::create_dir_all(tree.join("bob")).unwrap();
    std::fs::write(tree.join("bob/secret.txt"), "the tree's own").unwrap();
    // Both stay inside the tree where they are.
    std::os::unix::fs::symlink("../bob/secret.txt", tree.join("a/bob")).unwrap();
    std::os::unix::fs::symlink("../../bob/secret.txt", tree.join("a/deep/bob")).unwrap();
    // Written loosely, but equivalent to `bob/secret.txt`.
    std::os::unix::fs::symlink("./a/..//bob/secret.txt", tree.join("tidy")).unwrap();
    // Neither may be recreated.
    std::os::unix::fs::symlink("../outside.txt", tree.join("escape")).unwrap();
    std::os::unix::fs::symlink("a/bob/../../x", tree.join("through-link")).unwrap();

    let output = client.run(&["sync", "--links", tree.to_str().unwrap(), "/tree"]);
    assert!(output.status.success(), "{output:?}");
    let home = server.home("alice");
    assert!(is_link(&home.join("tree/a/bob")) && is_link(&home.join("tree/a/deep/bob")));
    assert_eq!(
        std::fs::read_link(home.join("tree/tidy")).unwrap(),
        Path::new("bob/secret.txt")
    );
    assert!(!is_link(&home.join("tree/escape")) && !is_link(&home.join("tree/through-link")));

    // The example: the link itself to the top of the home, where
    // `../bob/secret.txt` would be bob's secret.
    client.fails(&["mv", "/tree/a/bob", "/bob-secret"]);
    // A directory holding a link that would climb out from the top.
    client.fails(&["mv", "/tree/a/deep", "/"]);
    assert!(is_link(&home.join("tree/a/bob")) && is_link(&home.join("tree/a/deep/bob")));
    assert!(!home.join("bob-secret").exists() && !home.join("deep").exists());
    // Moves that keep every link inside still work: `/a/bob` then leads to
    // `/bob/secret.txt` in alice's home (there is none: it resolves nowhere).
    client.ok(&["mv", "/tree/a", "/"]);
    assert!(is_link(&home.join("a/bob")) && is_link(&home.join("a/deep/bob")));
    client.fails(&["mv", "/a/bob", "/bob-secret"]);
    client.fails(&["mv", "/a/deep", "/"]);
    client.ok(&["mv", "/a/deep", "/tree"]);

    assert_eq!(assert_every_link_stays_inside(&home), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_dot_after_a_linked_name_is_refused() {
    let server = server_with_a_secret();
    let client = alice(&server).await;
    client.mkdir("/a", false).await.unwrap();
    client.mkdir("/q", false).await.unwrap();
    client.symlink("/a/s", "../q").await.unwrap();
    // Lexically `/z`; but the kernel resolves `s` to `/q` first, then climbs
    // twice from there: out of the home.
    let answer = client.symlink("/a/L", "s/../../z").await;
    assert_eq!(kind(&answer), Some(ErrorKind::InvalidPath), "{answer:?}");
    // The same climb spelled out is refused for what it is.
    let answer = client.symlink("/a/M", "../../bob/secret.txt").await;
    assert_eq!(kind(&answer), Some(ErrorKind::OutsideHome), "{answer:?}");
    let answer = client.symlink("/a/N", "/etc/passwd").await;
    assert_eq!(kind(&answer), Some(ErrorKind::OutsideHome), "{answer:?}");

    let home = server.home("alice");
    assert!(is_link(&home.join("a/s")));
    for refused in ["a/L", "a/M", "a/N"] {
        assert!(!is_link(&home.join(refused)), "{refused}");
    }
    assert_eq!(assert_every_link_stays_inside(&home), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_in_directories_reached_through_links_are_measured_where_they_land() {
    let server = server_with_a_secret();
    let client = alice(&server).await;
    client.mkdir("/a/b/c", true).await.unwrap();
    // `/a/b/c/top` is the home again: `/a/b/c/top/L` reads four levels deep
    // but really sits at the top, where `../bob` is bob's home.
    client.symlink("/a/b/c/top", "../../..").await.unwrap();
    let answer = client.symlink("/a/b/c/top/L", "../bob/secret.txt").await;
    assert_eq!(kind(&answer), Some(ErrorKind::OutsideHome), "{answer:?}");
    // `/deep` leads three levels down, where three `..` are fine.
    client.symlink("/deep", "a/b/c").await.unwrap();
    client.symlink("/deep/up", "../../../a").await.unwrap();
    let answer = client.symlink("/deep/out", "../../../../bob").await;
    assert_eq!(kind(&answer), Some(ErrorKind::OutsideHome), "{answer:?}");
    // Moving a fitting link into the home through `top` is a move up.
    client.symlink("/a/b/c/back", "../../../a").await.unwrap();
    let answer = client.rename("/a/b/c/back", "/a/b/c/top/back").await;
    assert_eq!(kind(&answer), Some(ErrorKind::OutsideHome), "{answer:?}");
    client
        .rename("/a/b/c/back", "/deep/back-again")
        .await
        .unwrap();

    let home = server.home("alice");
    assert!(!is_link(&home.join("L")) && !is_link(&home.join("a/b/c/out")));
    assert!(!is_link(&home.join("back")) && is_link(&home.join("a/b/c/back-again")));
    assert_eq!(assert_every_link_stays_inside(&home), 4);
}
