//! Quotas: refused before any byte moves, safe under parallel uploads.

use std::process::Stdio;

use crate::support::{TestClient, TestServer, text, write_random};

const MIB: usize = 1024 * 1024;

fn df(client: &TestClient) -> String {
    client.ok(&["df"]).trim().to_owned()
}

#[test]
fn an_upload_larger_than_the_quota_is_refused_up_front() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", Some("10MiB"));
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("big.bin");
    write_random(&source, 11 * MIB, 1);
    let error = client.fails(&["put", source.to_str().unwrap()]);
    assert!(
        error.contains("quota exceeded: needs 11 MiB, 10 MiB free"),
        "{error}"
    );
    // Nothing was written: no final file and no partial (the staging
    // directory, made at login, stays empty).
    let entries: Vec<_> = std::fs::read_dir(server.home("alice"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(entries, [".qftp-partials"]);
    let staged: Vec<_> = std::fs::read_dir(server.home("alice").join(".qftp-partials"))
        .unwrap()
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
    assert!(
        df(&client).starts_with("used 0 B of 10 MiB"),
        "{}",
        df(&client)
    );
}

#[test]
fn parallel_uploads_from_separate_connections_never_exceed_the_quota() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", Some("10MiB"));
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    let local = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..4)
        .map(|index| {
            let source = local.path().join(format!("part{index}.bin"));
            write_random(&source, 3 * MIB, index);
            client
                .command(&[
                    "put",
                    "--quiet",
                    "--limit-rate",
                    "6MiB",
                    source.to_str().unwrap(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let succeeded = outputs
        .iter()
        .filter(|output| output.status.success())
        .count();
    assert_eq!(succeeded, 3, "exactly three 3 MiB uploads fit in 10 MiB");
    let refused = outputs
        .iter()
        .find(|output| !output.status.success())
        .unwrap();
    assert!(
        text(&refused.stderr).contains("quota exceeded"),
        "{}",
        text(&refused.stderr)
    );
    assert!(
        df(&client).starts_with("used 9 MiB of 10 MiB"),
        "{}",
        df(&client)
    );
}

#[test]
fn overwrite_and_delete_update_the_usage() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", Some("10MiB"));
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    let local = tempfile::tempdir().unwrap();
    let first = local.path().join("first.bin");
    let second = local.path().join("second.bin");
    write_random(&first, 4 * MIB, 1);
    write_random(&second, 5 * MIB, 2);
    client.ok(&["put", "--quiet", first.to_str().unwrap(), "data.bin"]);
    assert!(
        df(&client).starts_with("used 4 MiB of 10 MiB"),
        "{}",
        df(&client)
    );
    // Replacing 4 MiB with 5 MiB: both copies are on disk until the
    // rename, so the new one needs room of its own (4 + 5 <= 10 MiB); the
    // old one is freed when it is replaced.
    client.ok(&["put", "--quiet", second.to_str().unwrap(), "data.bin"]);
    assert!(
        df(&client).starts_with("used 5 MiB of 10 MiB"),
        "{}",
        df(&client)
    );
    let third = local.path().join("third.bin");
    write_random(&third, 6 * MIB, 3);
    let refused = client.fails(&["put", "--quiet", third.to_str().unwrap(), "data.bin"]);
    assert!(
        refused.contains("quota exceeded: needs 6 MiB, 5 MiB free"),
        "{refused}"
    );
    client.ok(&["rm", "data.bin"]);
    assert!(
        df(&client).starts_with("used 0 B of 10 MiB"),
        "{}",
        df(&client)
    );

    // The ledger matches a rescan from disk.
    client.ok(&["put", "--quiet", first.to_str().unwrap(), "again.bin"]);
    let rescan = server.admin(&["user", "rescan", "alice"]).output().unwrap();
    assert!(rescan.status.success(), "{}", text(&rescan.stderr));
    assert!(
        df(&client).starts_with("used 4 MiB of 10 MiB"),
        "{}",
        df(&client)
    );
}
