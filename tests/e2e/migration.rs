//! Connection migration: an upload in flight carries on, on the same
//! connection and without a resume, when the client moves to a new local
//! port (`qftp` on SIGUSR1, as on a change of network) and when a NAT in
//! the path gives it a new source port.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::relay::{Impairment, Relay};
use crate::support::{
    TestClient, TestServer, file_hash, server_partial, text, wait_bounded, wait_until,
};

/// Big enough that the upload is still in flight when the path moves.
const SIZE: usize = 32 * 1024 * 1024;
/// The relay's rate: about four seconds for the file.
const RATE: u64 = 8 * 1024 * 1024;

struct Setup {
    server: TestServer,
    relay: Relay,
    client: TestClient,
    local: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let server = TestServer::start_logged("");
        server.add_user("alice", "alice-pw-1", None);
        let relay = Relay::start(
            server.address,
            Impairment {
                rate: Some(RATE),
                ..Impairment::default()
            },
        );
        let client = TestClient::new();
        let login = client.try_login_at(
            &relay.address.to_string(),
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
        }
    }

    /// Starts `qftp put big /big` with its stderr in a file.
    fn start_upload(&self) -> Child {
        let big = self.local.path().join("big");
        let stderr = std::fs::File::create(self.local.path().join("put.stderr")).expect("stderr");
        self.client
            .command(&["-v", "put", big.to_str().expect("utf-8"), "/big", "--stats"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting qftp put")
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
    setup.relay.change_source_port();
    assert!(
        wait_until(Duration::from_secs(10), || setup.relay.counts().rebound
            == 1),
        "the relay did not move"
    );
    setup.finish(upload);
}
