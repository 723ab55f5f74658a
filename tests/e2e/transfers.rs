//! put and get: round trips, many files, resume after crashes, tampering.

use std::path::Path;
use std::time::Duration;

use filetime::FileTime;

use crate::support::{TestClient, TestServer, file_hash, text, wait_until, write_random};

fn alice() -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    (server, client)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 test path")
}

fn mtime(path: &Path) -> FileTime {
    FileTime::from_last_modification_time(&std::fs::metadata(path).unwrap())
}

#[test]
fn put_then_get_round_trips_bytes_and_mtime() {
    let (server, client) = alice();
    let local = tempfile::tempdir().unwrap();
    let upload_dir = local.path().join("up");
    let download_dir = local.path().join("down");
    std::fs::create_dir_all(&download_dir).unwrap();
    let files: [(&str, usize); 4] = [
        ("empty", 0),
        ("one-byte", 1),
        ("random.bin", 10 * 1024 * 1024),
        ("照片 和 文件 final.txt", 4321),
    ];
    let old = FileTime::from_unix_time(1_000_000_000, 123_000_000);
    for (index, (name, size)) in files.iter().enumerate() {
        let path = upload_dir.join(name);
        write_random(&path, *size, index as u64);
        filetime::set_file_mtime(&path, old).unwrap();
    }
    for (name, _) in &files {
        let source = upload_dir.join(name);
        client.ok(&["put", "--quiet", path_str(&source)]);
        let stored = server.home("alice").join(name);
        assert_eq!(
            file_hash(&stored),
            file_hash(&source),
            "{name} on the server"
        );
        assert_eq!(mtime(&stored), old, "{name} mtime on the server");
        let target = download_dir.join(name);
        client.ok(&["get", "--quiet", name, path_str(&target)]);
        assert_eq!(
            std::fs::read(&target).unwrap(),
            std::fs::read(&source).unwrap(),
            "{name} round trip"
        );
        assert_eq!(mtime(&target), old, "{name} mtime after download");
    }
    // No partial files are left on either side.
    let leftovers: Vec<_> = std::fs::read_dir(server.home("alice").join(".qftp-partials"))
        .unwrap()
        .chain(std::fs::read_dir(server.home("alice")).unwrap())
        .chain(std::fs::read_dir(&download_dir).unwrap())
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".qftp-part") || name.len() == 32)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn two_hundred_files_in_parallel_over_one_connection() {
    let (server, client) = alice();
    let local = tempfile::tempdir().unwrap();
    let tree = local.path().join("many");
    for index in 0..200 {
        write_random(
            &tree.join(format!("dir{}/file{index:03}.dat", index % 7)),
            1000 + index * 37,
            index as u64,
        );
    }
    let output = client.run(&["put", "-r", "-j", "16", path_str(&tree), "/"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("200 files transferred"),
        "{}",
        text(&output.stderr)
    );
    for index in 0..200 {
        let relative = format!("dir{}/file{index:03}.dat", index % 7);
        assert_eq!(
            file_hash(&server.home("alice").join("many").join(&relative)),
            file_hash(&tree.join(&relative))
        );
    }
    let back = local.path().join("back");
    std::fs::create_dir(&back).unwrap();
    client.ok(&["get", "-r", "-j", "16", "--quiet", "many", path_str(&back)]);
    for index in 0..200 {
        let relative = format!("dir{}/file{index:03}.dat", index % 7);
        assert_eq!(
            file_hash(&back.join("many").join(&relative)),
            file_hash(&tree.join(&relative))
        );
    }
}

/// Waits until `partial` holds at least `at_least` bytes.
fn wait_for_partial(partial: &Path, at_least: u64) {
    let grew = wait_until(Duration::from_secs(30), || {
        std::fs::metadata(partial).is_ok_and(|metadata| metadata.len() >= at_least)
    });
    assert!(grew, "{} never reached {at_least} bytes", partial.display());
}

/// The resumed amount in the summary line, e.g. "4 MiB resumed".
fn resumed_part(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|line| line.contains("resumed"))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let before = line.split(" resumed").next().unwrap();
    before.rsplit(", ").next().unwrap().to_owned()
}

#[test]
fn an_upload_killed_halfway_resumes_from_its_partial() {
    let (server, client) = alice();
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("big.bin");
    write_random(&source, 8 * 1024 * 1024, 42);
    let mut child = client.spawn(&["put", "--quiet", "--limit-rate", "4MiB", path_str(&source)]);
    wait_for_partial(
        &crate::support::server_partial(&server.home("alice"), "/big.bin"),
        2 * 1024 * 1024,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!server.home("alice").join("big.bin").exists());

    let output = client.run(&["put", path_str(&source)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let resumed = resumed_part(&text(&output.stderr));
    assert_ne!(resumed, "0 B", "{}", text(&output.stderr));
    assert_eq!(
        file_hash(&server.home("alice").join("big.bin")),
        file_hash(&source)
    );
}

#[test]
fn a_download_killed_halfway_resumes_from_its_partial() {
    let (server, client) = alice();
    let local = tempfile::tempdir().unwrap();
    write_random(&server.home("alice").join("big.bin"), 8 * 1024 * 1024, 7);
    let target = local.path().join("big.bin");
    let mut child = client.spawn(&[
        "get",
        "--quiet",
        "--limit-rate",
        "4MiB",
        "big.bin",
        path_str(&target),
    ]);
    wait_for_partial(&local.path().join(".big.bin.qftp-part"), 2 * 1024 * 1024);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!target.exists());

    let output = client.run(&["get", "big.bin", path_str(&target)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_ne!(
        resumed_part(&text(&output.stderr)),
        "0 B",
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        file_hash(&target),
        file_hash(&server.home("alice").join("big.bin"))
    );
}

#[test]
fn an_upload_survives_a_server_crash_and_restart() {
    let (mut server, client) = alice();
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("big.bin");
    write_random(&source, 8 * 1024 * 1024, 9);
    let mut child = client.spawn(&["put", "--quiet", "--limit-rate", "4MiB", path_str(&source)]);
    wait_for_partial(
        &crate::support::server_partial(&server.home("alice"), "/big.bin"),
        2 * 1024 * 1024,
    );
    server.kill();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the upload cannot succeed without its server"
    );
    server.restart();

    let output = client.run(&["put", path_str(&source)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_ne!(
        resumed_part(&text(&output.stderr)),
        "0 B",
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        file_hash(&server.home("alice").join("big.bin")),
        file_hash(&source)
    );
}

#[test]
fn a_partial_with_other_content_is_not_trusted() {
    let (server, client) = alice();
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("data.bin");
    write_random(&source, 3 * 1024 * 1024, 1);
    // A stale partial on the server whose bytes differ from the source.
    std::fs::create_dir_all(server.home("alice").join(".qftp-partials")).unwrap();
    write_random(
        &crate::support::server_partial(&server.home("alice"), "/data.bin"),
        1024 * 1024,
        2,
    );
    let output = client.run(&["put", path_str(&source)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(resumed_part(&text(&output.stderr)), "0 B");
    assert_eq!(
        file_hash(&server.home("alice").join("data.bin")),
        file_hash(&source)
    );

    // The same for a download with a stale local partial.
    let target = local.path().join("copy.bin");
    write_random(&local.path().join(".copy.bin.qftp-part"), 1024 * 1024, 3);
    let output = client.run(&["get", "data.bin", path_str(&target)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(resumed_part(&text(&output.stderr)), "0 B");
    assert_eq!(file_hash(&target), file_hash(&source));
    assert!(!local.path().join(".copy.bin.qftp-part").exists());
}

#[test]
fn no_resume_starts_over() {
    let (server, client) = alice();
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("data.bin");
    write_random(&source, 2 * 1024 * 1024, 5);
    let bytes = std::fs::read(&source).unwrap();
    std::fs::create_dir_all(server.home("alice").join(".qftp-partials")).unwrap();
    std::fs::write(
        crate::support::server_partial(&server.home("alice"), "/data.bin"),
        &bytes[..1024 * 1024],
    )
    .unwrap();
    let output = client.run(&["put", "--no-resume", path_str(&source)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(resumed_part(&text(&output.stderr)), "0 B");
    assert_eq!(
        file_hash(&server.home("alice").join("data.bin")),
        file_hash(&source)
    );
}

#[test]
fn transfers_complete_over_a_slow_lossy_path() {
    use crate::relay::{Impairment, Relay};
    let (server, client) = alice();
    let relay = Relay::start(
        server.address,
        Impairment {
            delay: Duration::from_millis(25),
            loss: 0.01,
            ..Default::default()
        }
        .losing_within(60),
    );
    let lossy = TestClient::new();
    let login = lossy.try_login_at(
        &relay.address.to_string(),
        &server.fingerprint,
        "alice",
        "alice-pw-1",
    );
    assert!(login.status.success(), "{}", text(&login.stderr));
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("across.bin");
    write_random(&source, 4 * 1024 * 1024, 77);
    lossy.ok(&["put", "--quiet", path_str(&source)]);
    assert_eq!(
        file_hash(&server.home("alice").join("across.bin")),
        file_hash(&source)
    );
    let back = local.path().join("back.bin");
    lossy.ok(&["get", "--quiet", "across.bin", path_str(&back)]);
    assert_eq!(file_hash(&back), file_hash(&source));
    assert!(
        relay.dropped.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the path really lost datagrams"
    );
    drop(client);
}
