//! The metrics listener: `/metrics` parses as Prometheus text and counts
//! what happened (logins, bytes of an upload, quota refusals), `/healthz`
//! answers 200 while the server serves, and a taken address is a clear
//! startup error.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::{TestClient, TestServer, binary, text, write_random};

/// One HTTP/1.1 GET over a plain TCP stream: the status code and the body.
fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connecting to the metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("sending the request");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("reading the answer");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {answer:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_owned())
}

/// `/metrics`, parsed by a Prometheus text parser.
fn scrape(server: &TestServer) -> prometheus_parse::Scrape {
    let address = server.metrics.expect("a metrics listener");
    let (status, body) = http_get(address, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("/metrics as Prometheus text")
}

/// The sum of the samples called `name` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, wanted)| sample.labels.get(key) == Some(*wanted))
        })
        .map(|sample| match sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => value,
            ref other => panic!("{name} is not a plain sample: {other:?}"),
        })
        .collect();
    assert!(
        !matching.is_empty(),
        "no sample {name} {labels:?} in {:?}",
        scrape.samples
    );
    matching.iter().sum()
}

const RECEIVED: &str = "qftp_received_bytes_total";
const LOGINS: &str = "qftp_logins_total";

#[test]
fn metrics_count_logins_and_the_bytes_of_an_upload() {
    let server = TestServer::start_with_config("metrics_listen = \"127.0.0.1:0\"");
    let address = server
        .metrics
        .expect("the listening line names the metrics address");
    assert_eq!(http_get(address, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(http_get(address, "/nothing-here").0, 404);
    server.add_user("alice", "alice-pw-1", None);
    server.add_user("bob", "bob-pw-12", Some("100KiB"));

    let before = scrape(&server);
    assert_eq!(value(&before, RECEIVED, &[]), 0.0);
    assert_eq!(value(&before, "qftp_connections", &[]), 0.0);
    let client = TestClient::new();
    client.login(&server, "alice", "alice-pw-1");
    let wrong = TestClient::new().try_login(&server, "alice", "not-the-password");
    assert!(!wrong.status.success(), "{}", text(&wrong.stdout));
    let local = tempfile::tempdir().unwrap();
    let source = local.path().join("upload.bin");
    let size = 3 * 1024 * 1024 + 17;
    write_random(&source, size, 15);
    client.ok(&["put", source.to_str().unwrap(), "/upload.bin"]);

    let after = scrape(&server);
    let received = value(&after, RECEIVED, &[]) - value(&before, RECEIVED, &[]);
    assert!(
        received >= size as f64,
        "received {received} bytes, uploaded {size}"
    );
    let ok = [("method", "password"), ("result", "ok")];
    assert_eq!(value(&after, LOGINS, &ok), 1.0);
    let failed = [("method", "password"), ("result", "failed")];
    assert_eq!(value(&after, LOGINS, &failed), 1.0);
    let upload = [("direction", "upload"), ("result", "ok")];
    assert_eq!(
        value(&after, "qftp_transfer_duration_seconds_count", &upload),
        1.0
    );
    assert!(value(&after, "qftp_path_sent_packets_total", &[]) > 0.0);
    assert_eq!(value(&after, "qftp_transfers_active", &[]), 0.0);

    // A refused upload counts as a quota refusal.
    let bob = TestClient::new();
    bob.login(&server, "bob", "bob-pw-12");
    let refused = bob.fails(&["put", source.to_str().unwrap(), "/too-big.bin"]);
    assert!(refused.contains("quota exceeded"), "{refused}");
    let last = scrape(&server);
    assert_eq!(value(&last, "qftp_quota_refusals_total", &[]), 1.0);
    assert_eq!(value(&last, RECEIVED, &[]), value(&after, RECEIVED, &[]));

    // Neither a password nor a user name appears in what is exported.
    let (_, body) = http_get(address, "/metrics");
    for secret in ["alice-pw-1", "not-the-password", "alice", "bob"] {
        assert!(!body.contains(secret), "{secret} in\n{body}");
    }
}

#[test]
fn a_taken_metrics_address_stops_the_server_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let address = taken.local_addr().expect("its address");
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("root");
    let server = |arguments: &[&str]| {
        let mut command = std::process::Command::new(binary("qftp-server"));
        command.arg("--root").arg(&root).args(arguments);
        command
    };
    let init = server(&["init"]).output().expect("running init");
    assert!(init.status.success(), "{}", text(&init.stderr));
    let config = root.join("config.toml");
    let existing = std::fs::read_to_string(&config).expect("reading config.toml");
    std::fs::write(
        &config,
        format!("metrics_listen = \"{address}\"\n{existing}"),
    )
    .expect("writing config.toml");
    let mut child = server(&["serve", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting qftp-server");
    let status = crate::support::wait_bounded(&mut child, Duration::from_secs(30))
        .expect("the server exits by itself");
    let output = child.wait_with_output().expect("its output");
    assert!(!status.success());
    let error = text(&output.stderr);
    assert!(
        error.contains(&format!("cannot listen for metrics on {address}")),
        "{error}"
    );
    assert!(!text(&output.stdout).contains("listening on"));
    drop(taken);
}
