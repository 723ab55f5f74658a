//! Running `qftp-server` as a service: its logs and audit trail.

use std::path::Path;

use std::time::Duration;

use crate::support::{TestClient, TestServer, wait_bounded, write_random};

const PASSWORD: &str = "alice-pw-1";

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 test path")
}

/// A server at INFO with its log in `log`, serving with `arguments`, and
/// alice logged in.
fn logged_server(log: &Path, arguments: &[&str]) -> (TestServer, TestClient) {
    let server = TestServer::start_serving("", &[("RUST_LOG", "info")], arguments, Some(log));
    server.add_user("alice", PASSWORD, None);
    let client = TestClient::new();
    client.login(&server, "alice", PASSWORD);
    (server, client)
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
    server.add_user("alice", PASSWORD, None);
    let client = TestClient::new();
    client.login(&server, "alice", PASSWORD);
    assert_eq!(client.ok(&["ls"]), "");
}
