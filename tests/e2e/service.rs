//! Running `qftp-server` as a service: its logs and audit trail.

use std::path::Path;

use std::process::{Child, Stdio};
use std::time::Duration;

use rustix::process::Signal;

use crate::support::{
    TestClient, TestServer, file_hash, server_partial, text, wait_bounded, wait_until, write_random,
};

const PASSWORD: &str = "alice-pw-1";

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 test path")
}

/// The size of the uploads the drain tests cut or let finish.
const BIG: usize = 200 * 1024 * 1024;

/// The audit lines of a JSON log.
fn audit_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["target"] == "qftp_server::audit")
        .map(|line| line["fields"].clone())
        .collect()
}

/// Starts `qftp put --limit-rate RATE big.bin` in the background, and waits
/// until the server has a good part of it.
fn start_slow_upload(server: &TestServer, client: &TestClient, big: &Path, rate: &str) -> Child {
    let child = client
        .command(&["put", "--quiet", "--limit-rate", rate, path_str(big)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partial = server_partial(&server.home("alice"), "/big.bin");
    assert!(
        wait_until(Duration::from_secs(60), || std::fs::metadata(&partial)
            .is_ok_and(|meta| meta.len() >= 8 << 20)),
        "the upload never got going"
    );
    child
}

/// Adds alice to `server` and logs a client in as her.
fn with_alice(server: TestServer) -> (TestServer, TestClient) {
    server.add_user("alice", PASSWORD, None);
    let client = TestClient::new();
    client.login(&server, "alice", PASSWORD);
    (server, client)
}

/// A big file in `scratch` and its slow upload by alice, going.
fn slow_upload_underway(
    server: &TestServer,
    client: &TestClient,
    scratch: &Path,
    rate: &str,
) -> (std::path::PathBuf, Child) {
    let big = scratch.join("big.bin");
    write_random(&big, BIG, rate.len() as u64);
    let put = start_slow_upload(server, client, &big, rate);
    (big, put)
}

/// Standard error of a finished child.
fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

/// A server at INFO with its log in `log`, serving with `arguments`, and
/// alice logged in.
fn logged_server(log: &Path, arguments: &[&str]) -> (TestServer, TestClient) {
    with_alice(TestServer::start_serving(
        "",
        &[("RUST_LOG", "info")],
        arguments,
        Some(log),
    ))
}

#[test]
fn log_to_a_file_is_plain_text_and_a_normal_ls_warns_of_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("stderr.log");
    let (_server, client) = logged_server(&log, &[]);
    client.ok(&["mkdir", "photos"]);
    assert_eq!(client.ok(&["ls"]), "photos/\n");
    let bytes = std::fs::read(&log).unwrap();
    assert!(!bytes.contains(&0x1b), "an escape code in the log");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains(" INFO "), "no INFO line in {text}");
    for line in text.lines() {
        assert!(
            !line.contains(" WARN ") && !line.contains(" ERROR "),
            "{line}"
        );
    }
}

#[test]
fn json_log_has_one_audit_line_per_operation() {
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("server.jsonl");
    let stderr = scratch.path().join("stderr.log");
    let (_server, client) = logged_server(
        &stderr,
        &["--log-format", "json", "--log-file", path_str(&log)],
    );
    let small = scratch.path().join("small.txt");
    let large = scratch.path().join("large.bin");
    write_random(&small, 1000, 1);
    write_random(&large, 3 * 1024 * 1024, 2);
    client.ok(&["put", "--quiet", path_str(&small)]);
    client.ok(&["put", "--quiet", path_str(&large)]);
    let fetched = scratch.path().join("fetched.bin");
    client.ok(&["get", "--quiet", "large.bin", path_str(&fetched)]);
    client.ok(&["mv", "large.bin", "moved.bin"]);
    client.ok(&["rm", "small.txt"]);

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    assert!(!lines.is_empty());
    let audit: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["target"] == "qftp_server::audit")
        .map(|line| &line["fields"])
        .collect();
    let count = |operation: &str, path: &str, bytes: u64| {
        audit
            .iter()
            .filter(|fields| {
                fields["operation"] == operation
                    && fields["path"] == path
                    && fields["bytes"] == bytes
                    && fields["user"] == "alice"
                    && fields["result"] == "ok"
                    && fields["remote"]
                        .as_str()
                        .is_some_and(|remote| remote.starts_with("127.0.0.1:"))
                    && fields["duration_ms"].is_u64()
            })
            .count()
    };
    assert_eq!(count("put", "/small.txt", 1000), 1, "{audit:#?}");
    assert_eq!(count("put", "/large.bin", 3 * 1024 * 1024), 1, "{audit:#?}");
    assert_eq!(count("get", "/large.bin", 3 * 1024 * 1024), 1, "{audit:#?}");
    assert_eq!(count("mv", "/large.bin", 0), 1, "{audit:#?}");
    assert_eq!(count("rm", "/small.txt", 0), 1, "{audit:#?}");
    assert!(
        audit
            .iter()
            .any(|fields| fields["operation"] == "mv" && fields["to"] == "/moved.bin"),
        "{audit:#?}"
    );
    let logins = audit
        .iter()
        .filter(|fields| fields["operation"] == "login" && fields["user"] == "alice")
        .count();
    assert!(logins >= 1, "{audit:#?}");
    assert_eq!(
        std::fs::metadata(&stderr).unwrap().len(),
        0,
        "lines went to standard error despite --log-file"
    );
}

#[test]
fn a_second_serve_on_the_same_root_is_refused_naming_the_lock() {
    let server = TestServer::start();
    let mut second = server
        .admin(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_bounded(&mut second, Duration::from_secs(30)).expect("refused at once");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    let lock = server.root.join("qftp-server.lock");
    assert!(
        stderr.contains(&lock.display().to_string()) && stderr.contains("another qftp-server"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("process {}", server.pid())),
        "{stderr}"
    );
    // The first server still serves.
    let (_server, client) = with_alice(server);
    assert_eq!(client.ok(&["ls"]), "");
}

#[test]
fn sigterm_refuses_new_connections_and_lets_the_upload_in_flight_finish() {
    let scratch = tempfile::tempdir().unwrap();
    let (mut server, client) =
        with_alice(TestServer::start_with_config("shutdown_grace_secs = 300"));
    let (big, mut put) = slow_upload_underway(&server, &client, scratch.path(), "25MiB");

    server.signal(Signal::TERM);
    let newcomer = TestClient::new();
    let refused = newcomer.command(&[
        "login",
        &format!("alice@{}", server.host()),
        "--password-stdin",
        "--fingerprint",
        &server.fingerprint,
        "--connect-timeout",
        "20",
    ]);
    let mut refused = refused;
    let output = crate::support::run_with_input(&mut refused, &format!("{PASSWORD}\n"));
    assert!(
        !output.status.success(),
        "a new connection was served while draining"
    );

    let status = wait_bounded(&mut put, Duration::from_secs(300)).expect("the upload ended");
    assert!(
        status.success(),
        "the upload in flight failed: {}",
        stderr_of(&mut put)
    );
    assert_eq!(
        file_hash(&server.home("alice").join("big.bin")),
        file_hash(&big)
    );
    let exit = server
        .wait_exit(Duration::from_secs(60))
        .expect("the server exits once drained");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn sigterm_past_the_grace_period_tells_the_client_and_a_rerun_resumes() {
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("server.jsonl");
    let (mut server, client) = with_alice(TestServer::start_serving(
        "shutdown_grace_secs = 1",
        &[("RUST_LOG", "info")],
        &["--log-format", "json", "--log-file", path_str(&log)],
        None,
    ));
    let (big, mut put) = slow_upload_underway(&server, &client, scratch.path(), "4MiB");

    server.signal(Signal::TERM);
    let status = wait_bounded(&mut put, Duration::from_secs(60)).expect("the upload was cut");
    assert!(!status.success());
    let stderr = stderr_of(&mut put);
    assert!(
        stderr.contains("server shutting down, rerun to resume"),
        "{stderr}"
    );
    let exit = server
        .wait_exit(Duration::from_secs(60))
        .expect("the server exits after its grace period");
    assert!(exit.success(), "{exit:?}");

    server.restart();
    let output = client.run(&["put", "--quiet", path_str(&big)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        file_hash(&server.home("alice").join("big.bin")),
        file_hash(&big)
    );
    let resumed = audit_lines(&log).into_iter().any(|fields| {
        fields["operation"] == "put"
            && fields["result"] == "ok"
            && fields["bytes"]
                .as_u64()
                .is_some_and(|bytes| bytes < BIG as u64)
    });
    assert!(resumed, "the rerun sent the whole file again");
}

#[test]
fn a_second_sigterm_stops_the_drain_at_once() {
    let scratch = tempfile::tempdir().unwrap();
    let (mut server, client) =
        with_alice(TestServer::start_with_config("shutdown_grace_secs = 3600"));
    let (_big, mut put) = slow_upload_underway(&server, &client, scratch.path(), "4MiB");
    server.signal(Signal::TERM);
    // The drain has begun once new connections are refused.
    let newcomer = TestClient::new();
    assert!(wait_until(Duration::from_secs(30), || {
        !newcomer
            .try_login(&server, "alice", PASSWORD)
            .status
            .success()
    }));
    server.signal(Signal::TERM);
    // Far inside the hour of grace.
    server
        .wait_exit(Duration::from_secs(30))
        .expect("the second signal stops the server at once");
    let status = wait_bounded(&mut put, Duration::from_secs(60)).expect("the upload was cut");
    assert!(!status.success());
    assert!(stderr_of(&mut put).contains("server shutting down, rerun to resume"));
}

#[test]
fn sessions_lists_a_connected_user_and_kick_ends_their_connection() {
    let scratch = tempfile::tempdir().unwrap();
    let (server, client) = with_alice(TestServer::start());
    let socket = server.root.join("admin.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (_big, mut put) = slow_upload_underway(&server, &client, scratch.path(), "4MiB");

    let output = server.admin(&["sessions"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listing = text(&output.stdout);
    let row = listing
        .lines()
        .find(|line| line.starts_with("alice "))
        .unwrap_or_else(|| panic!("alice is not listed: {listing}"));
    assert!(row.contains("127.0.0.1:"), "{row}");
    assert_eq!(
        row.split_whitespace().nth(4),
        Some("1"),
        "one transfer: {row}"
    );

    let output = server.admin(&["kick", "alice"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("ended 1 connection"),
        "{}",
        text(&output.stdout)
    );
    let status = wait_bounded(&mut put, Duration::from_secs(60)).expect("the upload was ended");
    assert!(!status.success());
    let stderr = stderr_of(&mut put);
    assert!(
        stderr.contains("administrator ended this connection"),
        "{stderr}"
    );
    // The server goes on serving.
    assert!(wait_until(Duration::from_secs(30), || {
        !text(&server.admin(&["sessions"]).output().unwrap().stdout).contains("alice ")
    }));
    assert_eq!(client.ok(&["ls"]), "");
}
