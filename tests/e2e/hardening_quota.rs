//! Attacks on the quota ledger by a user with a normal account: disk the
//! quota does not see (abandoned partials, directories, empty files,
//! partials left by a failed commit) and accounting races (two uploads
//! meeting in one directory after a rename, a rename racing a removal).
//!
//! Each test ends by comparing the ledger with the home on disk, measured
//! here by hand with the same rule the server uses: files their length,
//! directories and links one `entry_cost` each, the staging directory
//! itself nothing.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use qftp_client::{Client, ClientError, ConnectOptions, Trust};
use qftp_proto::{ErrorKind, Request, Response, Timestamp, Usage};

use crate::support::{TestClient, TestServer, text, wait_until};

/// The default `limits.entry_cost`.
const ENTRY_COST: u64 = 4096;
const STAGING_DIR: &str = ".qftp-partials";

async fn login(server: &TestServer, user: &str, password: &str) -> Client {
    let fingerprint = server.fingerprint.parse().expect("server fingerprint");
    let options = ConnectOptions::new(server.host(), Trust::Pinned(fingerprint));
    let client = Client::connect(&options).await.expect("connecting");
    client.login(user, password).await.expect("logging in");
    client
}

fn kind<T: std::fmt::Debug>(result: &Result<T, ClientError>) -> Option<ErrorKind> {
    result.as_ref().err().and_then(ClientError::server_kind)
}

/// What the home holds by the server's rule, and how many entries.
fn footprint_on_disk(home: &Path) -> (u64, u64) {
    let (mut bytes, mut entries) = (0, 0);
    let mut pending = vec![home.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading a directory") {
            let entry = entry.expect("a directory entry");
            let metadata = std::fs::symlink_metadata(entry.path()).expect("metadata");
            let staging = dir == home && entry.file_name() == STAGING_DIR;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            if staging {
                continue;
            }
            entries += 1;
            bytes += if metadata.is_file() {
                metadata.len()
            } else {
                ENTRY_COST
            };
        }
    }
    (bytes, entries)
}

/// The lengths of the partial files in the home's staging directory.
fn staged_lengths(home: &Path) -> Vec<u64> {
    match std::fs::read_dir(home.join(STAGING_DIR)) {
        Ok(entries) => entries
            .map(|entry| entry.unwrap().metadata().unwrap().len())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The user's figures once no upload holds a reservation any more.
async fn settled(client: &Client) -> Usage {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let usage = client.disk_usage().await.expect("disk usage");
        if usage.reserved == 0 || Instant::now() > deadline {
            return usage;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens an upload of `size` bytes to `path`, streams `data` (a prefix of
/// the file) and returns the open data stream and the transfer id.
async fn start_upload(
    client: &Client,
    path: &str,
    size: u64,
    data: &[u8],
    mtime: Timestamp,
) -> Result<(quinn::SendStream, u64), ClientError> {
    let transfer_id = client.next_transfer_id();
    let ready = client
        .request(Request::PutOpen {
            transfer_id,
            path: path.into(),
            size,
            mtime,
            resume: false,
        })
        .await?;
    assert!(
        matches!(ready, Response::PutReady { offset: 0, .. }),
        "{ready:?}"
    );
    let mut stream = client.open_data_stream(transfer_id, 0).await?;
    stream.write_all(data).await.expect("writing data");
    Ok((stream, transfer_id))
}

/// Asserts that the ledger and the disk agree and that the disk holds no
/// more than the quota.
async fn assert_ledger_matches_disk(client: &Client, home: &Path, quota: u64) {
    let usage = settled(client).await;
    let (bytes, _) = footprint_on_disk(home);
    assert_eq!(usage.used, bytes, "the ledger must equal the disk");
    assert!(
        bytes <= quota,
        "{bytes} bytes on disk under a {quota}-byte quota"
    );
}

// ---------------------------------------------------------------------------
// 1. Disk that the quota does not see
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_partials_are_charged_and_unreachable() {
    let server = TestServer::start();
    server.add_user("mallory", "pw-mallory", Some("1MiB"));
    let home = server.home("mallory");
    let quota = 1024 * 1024;
    let data = vec![7u8; 600_000];

    // Three uploads of 900 kB, each abandoned after 600 kB by a client
    // that vanishes: before, the partials held 1.8 MB under a 1 MiB quota.
    let mut opened = 0;
    for round in 0..3 {
        let client = login(&server, "mallory", "pw-mallory").await;
        let started = start_upload(
            &client,
            &format!("/p{round}"),
            900_000,
            &data,
            Timestamp::now(),
        )
        .await;
        match started {
            Ok((stream, _)) => {
                opened += 1;
                // Vanish only once the server has written what was sent.
                let arrived = wait_until(Duration::from_secs(30), || {
                    staged_lengths(&home) == [600_000]
                });
                assert!(arrived, "{:?}", staged_lengths(&home));
                drop(stream);
                client.close().await;
            }
            Err(error) => {
                assert_eq!(
                    error.server_kind(),
                    Some(ErrorKind::QuotaExceeded {
                        needed: 900_000,
                        free: quota - 600_000
                    }),
                    "round {round}: {error}"
                );
            }
        }
        let watcher = login(&server, "mallory", "pw-mallory").await;
        assert_ledger_matches_disk(&watcher, &home, quota).await;
    }
    assert_eq!(
        opened, 1,
        "the abandoned partial counts against the next upload"
    );
    let watcher = login(&server, "mallory", "pw-mallory").await;
    assert_eq!(settled(&watcher).await.used, 600_000);

    // The partial is nobody's path: not by its staging name, not by the
    // old-style name, not in a listing.
    let user = TestClient::new();
    user.login(&server, "mallory", "pw-mallory");
    let scratch = tempfile::tempdir().unwrap();
    let staged: Vec<String> = std::fs::read_dir(home.join(STAGING_DIR))
        .expect("the staging directory")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(staged.len(), 1);
    let local = scratch.path().join("stolen");
    for remote in [
        format!("/{STAGING_DIR}/{}", staged[0]),
        format!("/{STAGING_DIR}"),
        "/.p0.qftp-part".to_owned(),
    ] {
        let refused = user.fails(&["get", &remote, local.to_str().unwrap()]);
        assert!(refused.contains("reserved name"), "get {remote}: {refused}");
        // The server refuses it too, to a client that does not check.
        let raw = watcher
            .request(Request::GetOpen {
                transfer_id: watcher.next_transfer_id(),
                path: remote.clone(),
                resume: None,
            })
            .await;
        assert_eq!(kind(&raw), Some(ErrorKind::InvalidPath), "{raw:?}");
    }
    assert!(!local.exists());
    // Nor through a link: no link may name a reserved name.
    for target in [
        STAGING_DIR.to_owned(),
        format!("{STAGING_DIR}/{}", staged[0]),
    ] {
        let refused = watcher.symlink("/way-in", &target).await;
        assert_eq!(
            kind(&refused),
            Some(ErrorKind::InvalidPath),
            "{target}: {refused:?}"
        );
    }
    let listing = user.ok(&["ls", "/"]);
    assert!(!listing.contains(STAGING_DIR), "{listing}");

    // Resuming the upload (the honest way) reuses the charged bytes.
    let full: Vec<u8> = vec![7u8; 900_000];
    std::fs::write(scratch.path().join("p0"), &full).unwrap();
    user.ok(&[
        "put",
        "--quiet",
        scratch.path().join("p0").to_str().unwrap(),
        "/p0",
    ]);
    assert_eq!(std::fs::read(home.join("p0")).unwrap(), full);
    assert_ledger_matches_disk(&watcher, &home, quota).await;
    assert_eq!(settled(&watcher).await.used, 900_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_and_empty_files_are_charged() {
    let server = TestServer::start_with_config("[limits]\nmax_entries_per_user = 40");
    server.add_user("mallory", "pw-mallory", Some("64KiB"));
    let home = server.home("mallory");
    let user = TestClient::new();
    user.login(&server, "mallory", "pw-mallory");
    let scratch = tempfile::tempdir().unwrap();

    // Deep `mkdir -p` calls: each directory costs a block, so a 64 KiB
    // quota holds 16 of them, not thousands.
    let deep = (0..40)
        .map(|level| format!("d{level}"))
        .collect::<Vec<_>>()
        .join("/");
    let refused = user.fails(&["mkdir", "-p", &format!("/{deep}")]);
    assert!(refused.contains("quota exceeded"), "{refused}");
    let refused = user.fails(&["mkdir", "-p", "/other/a/b"]);
    assert!(refused.contains("quota exceeded"), "{refused}");
    let client = login(&server, "mallory", "pw-mallory").await;
    assert_ledger_matches_disk(&client, &home, 64 * 1024).await;
    assert_eq!(footprint_on_disk(&home), (16 * ENTRY_COST, 16));

    // Empty files cost no bytes but an entry each: the entry limit bounds
    // them.
    user.ok(&["rm", "-r", "/d0"]);
    let empty = scratch.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for index in 0..60 {
        std::fs::write(empty.join(format!("e{index:02}")), b"").unwrap();
    }
    let output = user.run(&["put", "-r", "--quiet", empty.to_str().unwrap(), "/"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("max_entries_per_user"),
        "{}",
        text(&output.stderr)
    );
    let (_, entries) = footprint_on_disk(&home);
    assert!(entries <= 40, "{entries} entries under a limit of 40");
    assert_ledger_matches_disk(&client, &home, 64 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_left_by_a_failed_commit_is_charged_and_swept() {
    let mut server = TestServer::start_with_config("partial_max_age_secs = 1");
    server.add_user("mallory", "pw-mallory", Some("1MiB"));
    let home = server.home("mallory");
    let client = login(&server, "mallory", "pw-mallory").await;
    let data = vec![3u8; 200_000];
    // The year 2300: an age-based sweep by mtime would keep this forever.
    let far_future = Timestamp {
        secs: 10_476_000_000,
        nanos: 0,
    };
    let (mut stream, transfer_id) = start_upload(&client, "/f", 200_000, &data, far_future)
        .await
        .expect("opening the upload");
    stream.finish().expect("finishing the stream");
    // The commit fails after the mtime is set: the target became a directory.
    client.mkdir("/f", false).await.expect("mkdir in the way");
    let commit = client
        .request(Request::PutCommit {
            transfer_id,
            hash: *blake3::hash(&data).as_bytes(),
        })
        .await;
    assert_eq!(kind(&commit), Some(ErrorKind::IsADirectory), "{commit:?}");
    // The partial stays for a resume, charged to its owner.
    let usage = settled(&client).await;
    assert_eq!(usage.used, 200_000 + ENTRY_COST);
    assert_ledger_matches_disk(&client, &home, 1024 * 1024).await;
    client.close().await;

    // The sweep runs at each start; ages come from the server's clock.
    let staged = || std::fs::read_dir(home.join(STAGING_DIR)).unwrap().count();
    assert_eq!(staged(), 1);
    let changed = std::fs::read_dir(home.join(STAGING_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().ctime())
        .next()
        .unwrap();
    let old_enough = wait_until(Duration::from_secs(30), || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        now >= changed + 2
    });
    assert!(old_enough);
    server.restart();
    let swept = wait_until(Duration::from_secs(30), || staged() == 0);
    assert!(swept, "the partial was never swept");
    let client = login(&server, "mallory", "pw-mallory").await;
    assert_eq!(settled(&client).await.used, ENTRY_COST);
    assert_ledger_matches_disk(&client, &home, 1024 * 1024).await;
}

// ---------------------------------------------------------------------------
// 2. Quota accounting races
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_uploads_never_share_a_partial_after_a_rename() {
    let server = TestServer::start();
    server.add_user("mallory", "pw-mallory", Some("1MiB"));
    let home = server.home("mallory");
    let slow = login(&server, "mallory", "pw-mallory").await;
    let quick = TestClient::new();
    quick.login(&server, "mallory", "pw-mallory");
    let scratch = tempfile::tempdir().unwrap();
    let small = scratch.path().join("small");
    std::fs::write(&small, vec![9u8; 10_000]).unwrap();
    for round in 0..3 {
        let (d, e) = (format!("/d{round}"), format!("/e{round}"));
        slow.mkdir(&d, false).await.unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|index| (index % 251) as u8).collect();
        let (mut stream, transfer_id) = start_upload(
            &slow,
            &format!("{d}/f"),
            big.len() as u64,
            &big[..100_000],
            Timestamp::now(),
        )
        .await
        .expect("the slow upload");
        slow.rename(&d, &e).await.unwrap();
        quick.ok(&["put", "--quiet", small.to_str().unwrap(), &format!("{e}/f")]);
        stream.write_all(&big[100_000..]).await.unwrap();
        stream.finish().unwrap();
        let commit = slow
            .request(Request::PutCommit {
                transfer_id,
                hash: *blake3::hash(&big).as_bytes(),
            })
            .await;
        // Whichever landed last, the file is exactly one of the uploads.
        let stored = std::fs::read(home.join(format!("e{round}/f"))).unwrap();
        assert!(
            stored == big || stored == std::fs::read(&small).unwrap(),
            "round {round}: a mix of two uploads ({} bytes), commit {commit:?}",
            stored.len()
        );
        assert!(commit.is_ok(), "{commit:?}");
        assert_eq!(stored, big);
        assert_ledger_matches_disk(&slow, &home, 1024 * 1024).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_racing_a_removal_frees_a_file_once() {
    let server = TestServer::start();
    server.add_user("mallory", "pw-mallory", Some("1MiB"));
    let home = server.home("mallory");
    let first = login(&server, "mallory", "pw-mallory").await;
    let second = login(&server, "mallory", "pw-mallory").await;
    let user = TestClient::new();
    user.login(&server, "mallory", "pw-mallory");
    let scratch = tempfile::tempdir().unwrap();
    let local = scratch.path().join("file");
    std::fs::write(&local, vec![5u8; 300_000]).unwrap();
    for round in 0..20 {
        user.ok(&["put", "--quiet", local.to_str().unwrap(), "/x"]);
        let (renamed, removed) = tokio::join!(first.rename("/x", "/y"), second.remove("/x", false));
        assert!(renamed.is_ok() || removed.is_ok(), "round {round}");
        let _ = first.remove("/y", false).await;
        let usage = settled(&first).await;
        assert_eq!(usage.used, footprint_on_disk(&home).0, "round {round}");
    }
    // After the races the whole quota is usable, and no more.
    std::fs::write(&local, vec![5u8; 1024 * 1024]).unwrap();
    user.ok(&["put", "--quiet", local.to_str().unwrap(), "/full"]);
    assert_ledger_matches_disk(&first, &home, 1024 * 1024).await;
}

// ---------------------------------------------------------------------------
// The weaker findings: an admin's quota, a re-created account
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_quota_reaches_open_connections() {
    let server = TestServer::start();
    server.add_user("alice", "pw-alice", Some("10MiB"));
    let client = login(&server, "alice", "pw-alice").await;
    assert_eq!(
        client.disk_usage().await.unwrap().quota,
        Some(10 * 1024 * 1024)
    );
    let output = server
        .admin(&["user", "quota", "alice", "100KiB"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = client.disk_usage().await.unwrap().quota;
        if seen == Some(100 * 1024) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        Some(100 * 1024),
        "the open connection sees the new quota"
    );
    let refused = start_upload(&client, "/big", 200 * 1024, b"", Timestamp::now()).await;
    assert!(matches!(
        kind(&refused),
        Some(ErrorKind::QuotaExceeded { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_account_is_measured_afresh() {
    let server = TestServer::start();
    server.add_user("alice", "pw-alice", Some("10MiB"));
    let home = server.home("alice");
    let client = login(&server, "alice", "pw-alice").await;
    std::fs::write(home.join("left-behind"), vec![1u8; 50_000]).unwrap();
    client.close().await;
    let output = server.admin(&["user", "del", "alice"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    server.add_user("alice", "pw-alice-2", Some("10MiB"));
    let client = login(&server, "alice", "pw-alice-2").await;
    assert_eq!(settled(&client).await.used, footprint_on_disk(&home).0);
    assert!(footprint_on_disk(&home).0 >= 50_000);
}
