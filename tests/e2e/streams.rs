//! Transfers that do not start or end in a named local file, and the
//! checks around them: `-` for standard input and output, and the room a
//! download needs on the local file system.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestClient, TestServer, text, write_random};

/// A server with `alice` logged in.
fn logged_in() -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.add_user("alice", "alice-password", None);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-password");
    (server, client)
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A tmpfs of a few MiB mounted on a temp dir, unmounted when dropped. The
/// tests run as root; a mount that fails is a failed test, never a skip.
struct SmallFileSystem {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFileSystem {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            output.status.success(),
            "mounting a {size} tmpfs on {} failed (these tests need root): {}",
            dir.path().display(),
            text(&output.stderr)
        );
        Self {
            mount_point: dir.path().to_owned(),
            _dir: dir,
        }
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount_point).output();
    }
}

#[test]
fn get_refuses_a_download_larger_than_the_free_space_before_writing() {
    let (server, client) = logged_in();
    let local = tempfile::tempdir().expect("temp dir");
    let big = local.path().join("big.bin");
    write_random(&big, 10 << 20, 14);
    client.ok(&["put", path_text(&big), "big.bin"]);

    let small = SmallFileSystem::mount("4m");
    let destination = format!("{}/", path_text(&small.mount_point));
    let stderr = client.fails(&["get", "big.bin", &destination]);
    assert!(stderr.contains("needs 10 MiB"), "{stderr}");
    assert!(stderr.contains("free on"), "{stderr}");
    assert!(
        stderr.contains(path_text(&small.mount_point)),
        "the message names the destination: {stderr}"
    );
    assert!(!stderr.contains("os error"), "{stderr}");
    // Nothing was written, not even a hidden partial.
    let left: Vec<_> = std::fs::read_dir(&small.mount_point)
        .expect("reading the mount point")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // What fits still arrives.
    let fits = local.path().join("fits.bin");
    write_random(&fits, 1 << 20, 15);
    client.ok(&["put", path_text(&fits), "fits.bin"]);
    client.ok(&["get", "fits.bin", &destination]);
    assert_eq!(
        std::fs::read(small.mount_point.join("fits.bin")).expect("the fetched file"),
        std::fs::read(&fits).expect("the original")
    );
    drop(server);
}
