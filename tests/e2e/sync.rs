//! `qftp sync`: trees up and down, unchanged runs, deletes, checksums,
//! quota limits and interruption.

use std::path::Path;
use std::time::Duration;

use filetime::FileTime;

use crate::support::{TestClient, TestServer, snapshot, text, wait_until, write_random};

fn alice(quota: Option<&str>) -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", quota);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    (server, client)
}

fn make_tree(root: &Path) {
    write_random(&root.join("top.bin"), 300_000, 1);
    write_random(&root.join("docs/2024/report 最终版.pdf"), 70_000, 2);
    write_random(&root.join("docs/readme.md"), 1_000, 3);
    write_random(&root.join("photos/été/image-01.jpg"), 250_000, 4);
    for index in 0..20 {
        write_random(
            &root.join(format!("many/file-{index:02}.txt")),
            100 + index * 10,
            10 + index as u64,
        );
    }
    std::fs::write(root.join("docs/empty.txt"), b"").unwrap();
    std::fs::create_dir_all(root.join("empty-dir/nested-empty")).unwrap();
}

fn sync(client: &TestClient, arguments: &[&str]) -> String {
    let mut all = vec!["sync"];
    all.extend_from_slice(arguments);
    let output = client.run(&all);
    assert!(
        output.status.success(),
        "qftp {all:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout) + &text(&output.stderr)
}

#[test]
fn a_tree_syncs_up_and_back_down_identically_and_a_rerun_moves_nothing() {
    let (server, client) = alice(None);
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("source");
    make_tree(&source);
    let output = sync(&client, &[source.to_str().unwrap(), "/backup"]);
    assert!(
        output.contains("sync: 25 sent, 0 unchanged, 0 deleted, 0 failed"),
        "{output}"
    );
    assert_eq!(
        snapshot(&server.home("alice").join("backup")),
        snapshot(&source)
    );

    let output = sync(&client, &[source.to_str().unwrap(), "/backup"]);
    assert!(
        output.contains("sync: 0 sent, 25 unchanged, 0 deleted, 0 failed"),
        "{output}"
    );

    let restored = local.path().join("restored");
    let output = sync(&client, &["--pull", "/backup", restored.to_str().unwrap()]);
    assert!(output.contains("sync: 25 sent"), "{output}");
    assert_eq!(snapshot(&restored), snapshot(&source));
    let output = sync(&client, &["--pull", "/backup", restored.to_str().unwrap()]);
    assert!(output.contains("sync: 0 sent, 25 unchanged"), "{output}");
    // Times travel too, so a pulled tree is unchanged relative to the source.
    let original =
        FileTime::from_last_modification_time(&std::fs::metadata(source.join("top.bin")).unwrap());
    let pulled = FileTime::from_last_modification_time(
        &std::fs::metadata(restored.join("top.bin")).unwrap(),
    );
    assert_eq!(original, pulled);
}

#[test]
fn delete_transfers_exactly_the_changes_and_dry_run_only_prints_them() {
    let (server, client) = alice(None);
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("source");
    make_tree(&source);
    sync(&client, &[source.to_str().unwrap(), "/backup"]);

    // Change three files, add two, delete one.
    write_random(&source.join("top.bin"), 300_001, 91);
    write_random(&source.join("docs/readme.md"), 1_000, 92);
    filetime::set_file_mtime(
        source.join("docs/readme.md"),
        FileTime::from_unix_time(1_500_000_000, 0),
    )
    .unwrap();
    write_random(&source.join("many/file-05.txt"), 7, 93);
    write_random(&source.join("new-one.txt"), 10, 94);
    write_random(&source.join("empty-dir/new-two.txt"), 20, 95);
    std::fs::remove_file(source.join("many/file-07.txt")).unwrap();

    let before = snapshot(&server.home("alice").join("backup"));
    let plan = sync(
        &client,
        &["--dry-run", "--delete", source.to_str().unwrap(), "/backup"],
    );
    let sends: Vec<_> = plan
        .lines()
        .filter(|line| line.starts_with("send "))
        .collect();
    let deletes: Vec<_> = plan
        .lines()
        .filter(|line| line.starts_with("delete "))
        .collect();
    assert_eq!(sends.len(), 5, "{plan}");
    assert_eq!(deletes, ["delete many/file-07.txt"], "{plan}");
    assert!(plan.contains("dry run: would send 5 files"), "{plan}");
    assert_eq!(
        snapshot(&server.home("alice").join("backup")),
        before,
        "a dry run changes nothing"
    );

    let output = sync(&client, &["--delete", source.to_str().unwrap(), "/backup"]);
    assert!(
        output.contains("sync: 5 sent, 21 unchanged, 1 deleted, 0 failed"),
        "{output}"
    );
    assert_eq!(
        snapshot(&server.home("alice").join("backup")),
        snapshot(&source)
    );
}

#[test]
fn checksum_finds_content_changed_behind_the_same_size_and_mtime() {
    let (server, client) = alice(None);
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("source");
    make_tree(&source);
    sync(&client, &[source.to_str().unwrap(), "/backup"]);
    let path = source.join("docs/readme.md");
    let mtime = FileTime::from_last_modification_time(&std::fs::metadata(&path).unwrap());
    let mut content = std::fs::read(&path).unwrap();
    content[500] ^= 0xff;
    std::fs::write(&path, &content).unwrap();
    filetime::set_file_mtime(&path, mtime).unwrap();

    let output = sync(&client, &[source.to_str().unwrap(), "/backup"]);
    assert!(
        output.contains("sync: 0 sent"),
        "size and mtime alone see no change: {output}"
    );
    let output = sync(
        &client,
        &["--checksum", source.to_str().unwrap(), "/backup"],
    );
    assert!(output.contains("sync: 1 sent, 24 unchanged"), "{output}");
    assert_eq!(
        std::fs::read(server.home("alice").join("backup/docs/readme.md")).unwrap(),
        content
    );
}

#[test]
fn excludes_and_symlinks_follow_the_options() {
    let (server, client) = alice(None);
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("source");
    make_tree(&source);
    write_random(&source.join("cache/big.tmp"), 1000, 5);
    write_random(&source.join("docs/notes.tmp"), 1000, 6);
    std::os::unix::fs::symlink("docs/readme.md", source.join("readme-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", source.join("outside-link")).unwrap();
    let output = sync(
        &client,
        &[
            "--exclude",
            "*.tmp",
            "--exclude",
            "cache",
            source.to_str().unwrap(),
            "/b",
        ],
    );
    assert!(output.contains("skipped readme-link: symlink"), "{output}");
    let home = server.home("alice").join("b");
    assert!(!home.join("cache").exists() && !home.join("docs/notes.tmp").exists());
    assert!(std::fs::symlink_metadata(home.join("readme-link")).is_err());

    let output = sync(
        &client,
        &[
            "--links",
            "--exclude",
            "*.tmp",
            "--exclude",
            "cache",
            source.to_str().unwrap(),
            "/b",
        ],
    );
    assert!(
        output.contains("outside-link: symlink to /etc/passwd leads outside the tree"),
        "{output}"
    );
    assert_eq!(
        std::fs::read_link(home.join("readme-link")).unwrap(),
        Path::new("docs/readme.md")
    );
    assert!(std::fs::symlink_metadata(home.join("outside-link")).is_err());
}

#[test]
fn a_push_beyond_the_quota_lands_what_fits_and_lists_the_rest() {
    let (server, client) = alice(Some("1MiB"));
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("source");
    for index in 0..6 {
        write_random(&source.join(format!("part-{index}.bin")), 300 * 1024, index);
    }
    let output = client.run(&["sync", "-j", "1", source.to_str().unwrap(), "/q"]);
    assert!(
        !output.status.success(),
        "a sync with failures exits non-zero"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("sync: 3 sent"), "{stderr}");
    assert_eq!(stderr.matches("quota exceeded").count(), 3, "{stderr}");
    let stored: Vec<_> = std::fs::read_dir(server.home("alice").join("q"))
        .unwrap()
        .collect();
    assert_eq!(stored.len(), 3, "only whole files, no partials: {stored:?}");
    // Three files and the directory /q, which costs one 4 KiB block.
    let df = client.ok(&["df"]);
    assert!(df.starts_with("used 904 KiB of 1 MiB"), "{df}");
}

#[test]
fn a_sync_killed_halfway_completes_when_run_again() {
    let (server, client) = alice(None);
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("source");
    for index in 0..8 {
        write_random(
            &source.join(format!("chunk-{index}.bin")),
            1024 * 1024,
            index,
        );
    }
    let mut child = client.spawn(&[
        "sync",
        "--quiet",
        "-j",
        "2",
        "--limit-rate",
        "3MiB",
        source.to_str().unwrap(),
        "/s",
    ]);
    let destination = server.home("alice").join("s");
    let progressed = wait_until(Duration::from_secs(30), || {
        std::fs::read_dir(&destination).is_ok_and(|entries| entries.count() >= 3)
    });
    assert!(progressed, "the sync made no progress");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(
        snapshot(&destination),
        snapshot(&source),
        "the kill came too late to test anything"
    );

    let output = sync(&client, &[source.to_str().unwrap(), "/s"]);
    assert!(output.contains("0 failed"), "{output}");
    assert_eq!(snapshot(&destination), snapshot(&source));
}
