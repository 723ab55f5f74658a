//! Resources one user could exhaust for everyone: open uploads, directory
//! depth and the handles a traversal holds, and the memory of unread
//! listings. Each test attacks a real server with small limits and checks
//! that the bound holds and that everyone else is still served.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qftp_client::connection::quic_client_config;
use qftp_client::{Client, ClientError, ConnectOptions, Trust};
use qftp_proto::{
    ClientFrame, ClientHello, ErrorKind, PROTOCOL_VERSION, Request, Response, Timestamp, frame,
};
use qftp_transport::tuning::PathProfile;

use crate::support::{TestClient, TestServer, file_hash, text, wait_until, write_random};

/// A server whose `[limits]` table holds `settings` (lines `key = value`).
fn start_with_limits(settings: &str) -> TestServer {
    TestServer::start_with_config(&format!("[limits]\n{settings}"))
}

fn options(server: &TestServer) -> ConnectOptions {
    let fingerprint = server.fingerprint.parse().expect("server fingerprint");
    ConnectOptions::new(server.host(), Trust::Pinned(fingerprint))
}

async fn login(server: &TestServer, user: &str, password: &str) -> Client {
    let client = Client::connect(&options(server))
        .await
        .expect("connecting to the server");
    client.login(user, password).await.expect("logging in");
    client
}

/// The file descriptors the process `pid` holds.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading the server's descriptors")
        .count()
}

/// A `VmRSS`-style line of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in the server's status"))
}

/// Sends a `PutOpen` of `path` and returns its first answer.
async fn put_open(client: &Client, path: &str) -> Result<Response, ClientError> {
    client
        .request(Request::PutOpen {
            transfer_id: client.next_transfer_id(),
            path: path.to_owned(),
            size: 1000,
            mtime: Timestamp::now(),
            resume: false,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_opened_and_never_fed_are_bounded_per_user() {
    const LIMIT: usize = 8;
    const ATTEMPTS: usize = 48;
    let server = start_with_limits(&format!("max_open_uploads_per_user = {LIMIT}"));
    server.add_user("alice", "alice-pw-1", Some("1MiB"));
    server.add_user("bob", "bob-pw-1", None);
    let attackers = [
        login(&server, "alice", "alice-pw-1").await,
        login(&server, "alice", "alice-pw-1").await,
    ];
    let before = open_descriptors(server.pid());

    // Over two connections at once; none of them ever sends a byte.
    let mut opens = Vec::new();
    for index in 0..ATTEMPTS {
        let client = attackers[index % 2].clone();
        opens.push(tokio::spawn(async move {
            put_open(&client, &format!("/held-{index}.bin")).await
        }));
    }
    let (mut ready, mut refused) = (0, 0);
    for open in opens {
        match open.await.unwrap() {
            Ok(Response::PutReady { .. }) => ready += 1,
            Err(ClientError::Server(reply)) => {
                assert_eq!(reply.kind, ErrorKind::LimitReached, "{reply:?}");
                assert!(
                    reply.message.contains("max_open_uploads_per_user"),
                    "{}",
                    reply.message
                );
                refused += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ready, refused), (LIMIT, ATTEMPTS - LIMIT));
    // Each open upload holds its partial file and its directory.
    let held = open_descriptors(server.pid());
    assert!(
        held <= before + 2 * LIMIT + 8,
        "{before} descriptors before, {held} with the uploads held"
    );

    // Everyone else is served meanwhile: login, put and ls.
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("report.bin");
    write_random(&source, 200_000, 7);
    tokio::task::block_in_place(|| {
        let bob = TestClient::new();
        bob.login(&server, "bob", "bob-pw-1");
        bob.ok(&["put", "--quiet", source.to_str().unwrap()]);
        assert!(bob.ok(&["ls"]).contains("report.bin"));
    });
    assert_eq!(
        file_hash(&server.home("bob").join("report.bin")),
        file_hash(&source)
    );

    // Once the attacker's connections are gone, their uploads are released.
    for attacker in &attackers {
        attacker.close().await;
    }
    drop(attackers);
    let fresh = login(&server, "alice", "alice-pw-1").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match put_open(&fresh, "/after.bin").await {
            Ok(Response::PutReady { .. }) => break,
            Err(ClientError::Server(reply)) if reply.kind == ErrorKind::LimitReached => {
                assert!(Instant::now() < deadline, "uploads were never released");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

#[test]
fn a_tree_deeper_than_max_depth_cannot_be_built_with_mkdir_and_mv() {
    let server = start_with_limits("max_depth = 16");
    server.add_user("alice", "alice-pw-1", None);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    let names = |count: usize| -> String {
        (0..count)
            .map(|index| format!("/l{index}"))
            .collect::<String>()
    };

    let error = client.fails(&["mkdir", "-p", &names(17)]);
    assert!(error.contains("max_depth = 16"), "{error}");
    assert!(!server.home("alice").join("l0").exists());
    client.ok(&["mkdir", "-p", &names(16)]);

    // /x holds four levels below it; moved under twelve names it would
    // reach seventeen.
    client.ok(&["mkdir", "-p", "/x/1/2/3/4"]);
    let error = client.fails(&["mv", "/x", &names(12)]);
    assert!(error.contains("max_depth = 16"), "{error}");
    assert!(server.home("alice").join("x/1/2/3/4").is_dir());
    client.ok(&["mv", "/x", &names(11)]);

    // The deepest entry on disk has sixteen names.
    assert_eq!(deepest(&server.home("alice")), 16);
}

/// The most names of any entry below `top`.
fn deepest(top: &Path) -> usize {
    let mut most = 0;
    let mut pending = vec![(top.to_owned(), 0)];
    while let Some((directory, depth)) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let entry = entry.unwrap();
            most = most.max(depth + 1);
            if entry.file_type().unwrap().is_dir() {
                pending.push((entry.path(), depth + 1));
            }
        }
    }
    most
}

/// Builds `top/d/d/…`, `depth` directories deep, with a file of 10 bytes
/// every 100 levels, through `/proc/self/fd` so that no path is ever longer
/// than a few names (the tree is far deeper than PATH_MAX allows to name).
/// Returns the footprint the server should count: bytes and entries.
fn build_deep_tree(top: &Path, depth: usize, entry_cost: u64) -> (u64, u64) {
    let (mut bytes, mut entries) = (0, 0);
    let mut current = File::open(top).expect("opening the top");
    for level in 0..depth {
        let here = format!("/proc/self/fd/{}", current.as_raw_fd());
        if level % 100 == 0 {
            std::fs::write(format!("{here}/f{level}"), b"0123456789").unwrap();
            bytes += 10;
            entries += 1;
        }
        std::fs::create_dir(format!("{here}/d")).unwrap();
        bytes += entry_cost;
        entries += 1;
        current = File::open(format!("{here}/d")).expect("opening a level");
    }
    (bytes, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_tree_on_disk_is_counted_rescanned_and_removed() {
    const DEPTH: usize = 3000;
    // Far fewer descriptors than levels, so that a traversal holding one
    // handle per level fails where a bounded one does not.
    const DESCRIPTORS: usize = 256;
    let mut server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let client = TestClient::new();
    tokio::task::block_in_place(|| client.login(&server, "alice", "alice-pw-1"));

    // Made by "an older version or an admin" while the server is down.
    server.kill();
    let home = server.home("alice");
    let (bytes, _entries) = build_deep_tree(&home, DEPTH, 4096);
    server.restart();
    let pid = server.pid().to_string();
    let limit = format!("--nofile={DESCRIPTORS}:{DESCRIPTORS}");
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status()
        .expect("running prlimit");
    assert!(status.success());
    assert!(open_descriptors(server.pid()) < DESCRIPTORS / 2);

    // The first login after the start recounts the home: it works, and it
    // counts every level.
    let raw = login(&server, "alice", "alice-pw-1").await;
    assert_eq!(raw.disk_usage().await.unwrap().used, bytes);
    tokio::task::block_in_place(|| {
        assert!(client.ok(&["df"]).starts_with("used "));

        // An admin's rescan, with as few descriptors.
        let mut rescan = server.admin(&["user", "rescan", "alice"]);
        let program = rescan.get_program().to_owned();
        let arguments: Vec<_> = rescan.get_args().map(ToOwned::to_owned).collect();
        rescan = Command::new("prlimit");
        rescan.arg(&limit).arg(program).args(arguments);
        let output = rescan.output().expect("running the rescan");
        assert!(output.status.success(), "{}", text(&output.stderr));

        client.ok(&["rm", "-r", "/d"]);
    });
    assert!(std::fs::read_dir(&home).unwrap().all(|entry| {
        let name = entry.unwrap().file_name();
        name.to_string_lossy().starts_with('f') || name == ".qftp-partials"
    }));
    assert_eq!(raw.disk_usage().await.unwrap().used, 10);
}

/// Opens a raw connection, logs in and sends `count` List requests of
/// `path` on the control stream, and never reads an answer. The returned
/// connection must be kept alive by the caller.
async fn unread_listings(
    server: &TestServer,
    user: &str,
    password: &str,
    path: &str,
    count: u64,
) -> (quinn::Endpoint, quinn::Connection) {
    let config = quic_client_config(
        &Trust::FirstUse,
        Arc::new(Mutex::new(None)),
        Duration::from_secs(30),
        PathProfile::Loopback,
    )
    .unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let connection = endpoint
        .connect(server.address, "localhost")
        .unwrap()
        .await
        .unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let limit = qftp_proto::DEFAULT_MAX_FRAME;
    let hello = ClientHello {
        version: PROTOCOL_VERSION,
        client: "unread listings".into(),
    };
    let mut bytes = frame::encode(&hello, limit).unwrap();
    let login = ClientFrame {
        id: 0,
        request: Request::Login {
            user: user.to_owned(),
            password: password.to_owned(),
        },
    };
    bytes.extend(frame::encode(&login, limit).unwrap());
    for id in 1..=count {
        let list = ClientFrame {
            id,
            request: Request::List {
                path: path.to_owned(),
            },
        };
        bytes.extend(frame::encode(&list, limit).unwrap());
    }
    send.write_all(&bytes).await.unwrap();
    // `_recv` is dropped unread; the stream stays open for reading on the
    // server's side until the connection closes.
    std::mem::forget(send);
    (endpoint, connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_listings_of_a_big_directory_keep_memory_bounded() {
    const FILES: usize = 30_000;
    const UNREAD: u64 = 16;
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let big = server.home("alice").join("big");
    std::fs::create_dir_all(&big).unwrap();
    for index in 0..FILES {
        std::fs::write(big.join(format!("{index:0>200}")), b"").unwrap();
    }
    // The baseline includes one whole listing read by a well-behaved client.
    let reader = login(&server, "alice", "alice-pw-1").await;
    assert_eq!(reader.list("/big").await.unwrap().len(), FILES);
    let pid = server.pid();
    let before = status_kib(pid, "VmHWM:");

    let (endpoint, connection) =
        unread_listings(&server, "alice", "alice-pw-1", "/big", UNREAD).await;
    // While those are stuck, the same user (and so everyone) is still
    // served, listing the same directory in full twice.
    for _ in 0..2 {
        assert_eq!(reader.list("/big").await.unwrap().len(), FILES);
    }
    let grown = wait_until(Duration::from_secs(2), || {
        status_kib(pid, "VmHWM:") > before + 200 * 1024
    });
    let after = status_kib(pid, "VmHWM:");
    eprintln!("peak RSS {before} KiB -> {after} KiB");
    connection.close(0u32.into(), b"");
    endpoint.close(0u32.into(), b"");
    // Whole answers held for 16 listings would be well over 100 MiB; the
    // bound leaves 4 listings' names, the reply channel and the transport's
    // buffers.
    assert!(
        !grown && after < before + 80 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}
