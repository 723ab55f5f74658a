//! Connection migration: an upload in flight carries on, on the same
//! connection and without a resume, when the client moves to a new local
//! port (`qftp` on SIGUSR1, as on a change of network) and when a NAT in
//! the path gives it a new source port; and when the kernel reports a
//! change of the local network (in a network namespace the test makes, so
//! the change touches nothing outside it).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::relay::{Impairment, Relay};
use crate::support::{
    TestClient, TestServer, file_hash, server_partial, text, wait_bounded, wait_until,
};

/// Big enough that the upload is still in flight when the path moves.
const SIZE: usize = 32 * 1024 * 1024;
/// The relay's rate: about four seconds for the file.
const RATE: u64 = 8 * 1024 * 1024;

/// A network namespace of the test's own with only its loopback up,
/// deleted when dropped.
struct Namespace {
    name: String,
}

impl Namespace {
    fn new() -> Self {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "qftp-e2e-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let namespace = Self { name };
        namespace.ip(&["link", "set", "lo", "up"]);
        namespace
    }

    /// `ip netns exec NAME`: what runs a program inside.
    fn launcher(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    /// `ip -n NAME ARGUMENTS`.
    fn ip(&self, arguments: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(arguments);
        ip(&all);
    }

    /// A new network appears, as when a laptop joins a network: a link
    /// comes up and gets an address. The link is one end of a veth pair
    /// made inside the namespace (the kernel may have no dummy links).
    fn join_a_network(&self) {
        self.ip(&[
            "link", "add", "qftp0", "type", "veth", "peer", "name", "qftp1",
        ]);
        self.ip(&["link", "set", "qftp0", "up"]);
        self.ip(&["link", "set", "qftp1", "up"]);
        self.ip(&["address", "add", "10.213.0.1/24", "dev", "qftp0"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

fn ip(arguments: &[&str]) {
    let output = Command::new("ip")
        .args(arguments)
        .output()
        .expect("running ip (iproute2)");
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        arguments.join(" "),
        text(&output.stderr)
    );
}

struct Setup {
    server: TestServer,
    /// The rate-limiting relay the client reaches the server through, or
    /// `None` when the client limits its own rate.
    relay: Option<Relay>,
    client: TestClient,
    local: tempfile::TempDir,
    /// Where server and client run, when not in the test's namespace;
    /// dropped last, after both stopped.
    namespace: Option<Namespace>,
}

impl Setup {
    /// Server and client in the test's namespace, through a relay.
    fn new() -> Self {
        let server = TestServer::start_logged("");
        let relay = Relay::start(
            server.address,
            Impairment {
                rate: Some(RATE),
                ..Impairment::default()
            },
        );
        let address = relay.address;
        Self::logged_in(server, address, Some(relay), TestClient::new(), None)
    }

    /// Server and client in a namespace of their own, directly.
    fn in_namespace() -> Self {
        let namespace = Namespace::new();
        let server = TestServer::start_logged_through(&namespace.launcher());
        let client = TestClient::through(&namespace.launcher());
        let address = server.address;
        Self::logged_in(server, address, None, client, Some(namespace))
    }

    fn logged_in(
        server: TestServer,
        address: std::net::SocketAddr,
        relay: Option<Relay>,
        client: TestClient,
        namespace: Option<Namespace>,
    ) -> Self {
        server.add_user("alice", "alice-pw-1", None);
        let login = client.try_login_at(
            &address.to_string(),
            &server.fingerprint,
            "alice",
            "alice-pw-1",
        );
        assert!(login.status.success(), "login: {}", text(&login.stderr));
        let local = tempfile::tempdir().expect("temp dir");
        crate::support::write_random(&local.path().join("big"), SIZE, 61);
        Self {
            server,
            relay,
            client,
            local,
            namespace,
        }
    }

    /// Starts `qftp put big /big` with its stderr in a file, limited to
    /// [`RATE`] by the client when there is no relay to limit it.
    fn start_upload(&self) -> Child {
        let big = self.local.path().join("big");
        let stderr = std::fs::File::create(self.local.path().join("put.stderr")).expect("stderr");
        let rate = RATE.to_string();
        let mut arguments = vec!["-v", "put", big.to_str().expect("utf-8"), "/big", "--stats"];
        if self.relay.is_none() {
            arguments.extend(["--limit-rate", &rate]);
        }
        self.client
            .command(&arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting qftp put")
    }

    fn namespace(&self) -> &Namespace {
        self.namespace.as_ref().expect("a namespace of its own")
    }

    /// Waits until the server holds `bytes` of the upload's partial file.
    fn wait_for_progress(&self, bytes: u64) {
        let partial = server_partial(&self.server.home("alice"), "/big");
        assert!(
            wait_until(Duration::from_secs(60), || {
                std::fs::metadata(&partial).is_ok_and(|meta| meta.len() >= bytes)
            }),
            "the upload never reached {bytes} bytes"
        );
    }

    /// Waits for the upload to end and checks what it left.
    fn finish(&self, mut upload: Child) -> String {
        let status = wait_bounded(&mut upload, Duration::from_secs(120)).unwrap_or_else(|| {
            let _ = upload.kill();
            panic!("the upload did not finish")
        });
        let stderr =
            std::fs::read_to_string(self.local.path().join("put.stderr")).unwrap_or_default();
        assert!(status.success(), "qftp put failed: {stderr}");
        assert!(
            !stderr.contains("resuming"),
            "the upload resumed instead of carrying on: {stderr}"
        );
        assert_eq!(
            file_hash(&self.server.home("alice").join("big")),
            file_hash(&self.local.path().join("big")),
            "the uploaded file differs"
        );
        // Every connection of the put logs in with the saved token once.
        let log = self.server.log();
        let token_logins = log
            .lines()
            .filter(|line| {
                line.contains("audit") && line.contains("login") && line.contains("token")
            })
            .count();
        assert_eq!(
            token_logins, 1,
            "the put should be one connection; the server logged: {log}"
        );
        stderr
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {name} failed");
}

#[test]
fn an_upload_carries_on_when_the_client_moves_to_a_new_port() {
    let setup = Setup::new();
    let upload = setup.start_upload();
    setup.wait_for_progress(4 * 1024 * 1024);
    signal(&upload, "-USR1");
    let stderr = setup.finish(upload);
    assert!(
        stderr.contains("moved the connection"),
        "the client did not say it moved: {stderr}"
    );
    assert!(
        stderr.contains("moved to a new local address 1 times"),
        "--stats does not count the move: {stderr}"
    );
    for figure in ["rtt ", "loss ", "window ", "MB/s sent"] {
        assert!(
            stderr.contains(figure),
            "--stats lacks {figure:?}: {stderr}"
        );
    }
}

#[test]
fn an_upload_carries_on_when_a_nat_changes_the_source_port() {
    let setup = Setup::new();
    let upload = setup.start_upload();
    setup.wait_for_progress(4 * 1024 * 1024);
    let relay = setup.relay.as_ref().expect("a relay");
    relay.change_source_port();
    assert!(
        wait_until(Duration::from_secs(10), || relay.counts().rebound == 1),
        "the relay did not move"
    );
    setup.finish(upload);
}

#[test]
fn an_upload_carries_on_when_the_kernel_reports_a_new_network() {
    let setup = Setup::in_namespace();
    let upload = setup.start_upload();
    setup.wait_for_progress(4 * 1024 * 1024);
    setup.namespace().join_a_network();
    let stderr = setup.finish(upload);
    assert!(
        stderr.contains("the local network changed: moved the connection"),
        "the client did not follow the change the kernel reported: {stderr}"
    );
}
