//! A hostile server cannot make `qftp` write outside the destination of a
//! pull (the scp bug class, CVE-2019-6111).
//!
//! The server here is a raw quinn endpoint inside the test, with an rcgen
//! certificate on 127.0.0.1:0, speaking the real protocol (qftp-proto
//! messages in qftp-transport frames): hello, login, `Stat`, `Walk` and
//! `GetOpen` with their data streams. Its tree names entries `../escape`,
//! an absolute path, a partial file's name, and entries that lead through
//! links: one planted in the destination pointing outside, one the pull
//! itself made (`l1 -> sub`), and links whose targets lead out (`a -> ..`,
//! `sub/l2 -> ../../..`). The real `qftp` binary runs `get -r` and
//! `sync --pull --links` against it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use qftp_proto::{
    ClientFrame, ClientHello, DataHeader, EntryInfo, EntryKind, ErrorKind, ErrorReply,
    PROTOCOL_VERSION, Request, Response, ServerFrame, ServerHello, Timestamp,
};
use qftp_transport::Fingerprint;
use qftp_transport::framed::{read_message, write_message};

use crate::support::{TestClient, snapshot, text};

const FRAME_LIMIT: usize = qftp_proto::DEFAULT_MAX_FRAME;

/// What the hostile server serves under `/tree`.
struct Served {
    /// The walk's entries, names as the server sends them.
    entries: Vec<EntryInfo>,
    /// The bytes of each file, by remote path.
    files: BTreeMap<String, Vec<u8>>,
}

fn entry(name: &str, kind: EntryKind, size: u64, link_target: Option<&str>) -> EntryInfo {
    EntryInfo {
        name: name.to_owned(),
        kind,
        size,
        mtime: Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        },
        mode: 0o644,
        hash: None,
        link_target: link_target.map(str::to_owned),
    }
}

impl Served {
    /// The tree: two safe files, and every kind of hostile name. The
    /// absolute name points into `outside`.
    fn new(outside: &Path) -> Self {
        let absolute = format!("{}/absolute.txt", outside.display());
        let mut served = Served {
            entries: Vec::new(),
            files: BTreeMap::new(),
        };
        served.directory("sub");
        served.file("good.txt", b"good content");
        served.file("sub/inner.txt", b"inner content");
        served.file("../escape.txt", b"escaped");
        served.file(&absolute, b"absolute");
        served.file(".hidden.qftp-part", b"a partial's name");
        served.file("planted/through-planted.txt", b"through a planted link");
        served.link("l1", "sub");
        served.link("a", "..");
        served.file("a/b/through-a.txt", b"through a");
        served.link("sub/l2", "../../..");
        served.file("l1/through-l1.txt", b"through l1");
        served.file("l1/l2/through-chain.txt", b"through l1 and l2");
        served
    }

    fn directory(&mut self, name: &str) {
        self.entries
            .push(entry(name, EntryKind::Directory, 0, None));
    }

    fn file(&mut self, name: &str, content: &[u8]) {
        self.entries
            .push(entry(name, EntryKind::File, content.len() as u64, None));
        self.files.insert(format!("/tree/{name}"), content.to_vec());
    }

    fn link(&mut self, name: &str, target: &str) {
        self.entries
            .push(entry(name, EntryKind::Symlink, 0, Some(target)));
    }
}

/// The hostile server: an endpoint and the task accepting connections.
struct HostileServer {
    address: std::net::SocketAddr,
    fingerprint: Fingerprint,
    endpoint: quinn::Endpoint,
    accepting: tokio::task::JoinHandle<()>,
}

impl HostileServer {
    fn start(served: Served) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("generating a certificate");
        let certificate = certified.cert.der().clone();
        let fingerprint = Fingerprint::of_der(&certificate);
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let mut tls =
            rustls::ServerConfig::builder_with_provider(qftp_transport::crypto_provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("TLS 1.3")
                .with_no_client_auth()
                .with_single_cert(vec![certificate], key)
                .expect("a server certificate");
        tls.alpn_protocols = vec![qftp_proto::ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("QUIC TLS");
        let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap())
            .expect("binding the hostile server");
        let address = endpoint.local_addr().expect("its address");
        let served = Arc::new(served);
        let accepting = tokio::spawn({
            let endpoint = endpoint.clone();
            async move {
                while let Some(incoming) = endpoint.accept().await {
                    let served = Arc::clone(&served);
                    tokio::spawn(async move {
                        if let Ok(connection) = incoming.await {
                            let _ = serve(connection, &served).await;
                        }
                    });
                }
            }
        });
        Self {
            address,
            fingerprint,
            endpoint,
            accepting,
        }
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"done");
        self.accepting.abort();
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// One connection: the hello, then every request answered in order.
async fn serve(connection: quinn::Connection, served: &Served) -> Result<(), Failure> {
    let (mut send, mut recv) = connection.accept_bi().await?;
    let _hello: ClientHello = read_message(&mut recv, FRAME_LIMIT)
        .await?
        .ok_or("no hello")?;
    let hello = ServerHello {
        version: PROTOCOL_VERSION,
        server: "hostile".into(),
        max_frame: FRAME_LIMIT as u32,
    };
    write_message(&mut send, &hello, FRAME_LIMIT).await?;
    while let Some(frame) = read_message::<ClientFrame>(&mut recv, FRAME_LIMIT).await? {
        let id = frame.id;
        let mut answer = async |response: Response| {
            write_message(&mut send, &ServerFrame { id, response }, FRAME_LIMIT).await
        };
        match frame.request {
            Request::Login { user, .. } => {
                answer(Response::LoggedIn {
                    user,
                    token: "hostile-token".into(),
                    expires: Timestamp {
                        secs: 4_000_000_000,
                        nanos: 0,
                    },
                })
                .await?;
            }
            Request::Authenticate { .. } => {
                answer(Response::Authenticated {
                    user: "victim".into(),
                })
                .await?;
            }
            Request::Stat { path } if path == "/tree" => {
                answer(Response::Entry(entry(
                    "tree",
                    EntryKind::Directory,
                    0,
                    None,
                )))
                .await?;
            }
            Request::Walk { path, .. } if path == "/tree" => {
                answer(Response::Tree {
                    entries: served.entries.clone(),
                    done: true,
                })
                .await?;
            }
            Request::GetOpen {
                transfer_id, path, ..
            } if served.files.contains_key(&path) => {
                let content = &served.files[&path];
                answer(Response::GetReady {
                    size: content.len() as u64,
                    mtime: Timestamp {
                        secs: 1_700_000_000,
                        nanos: 0,
                    },
                    offset: 0,
                })
                .await?;
                let mut data = connection.open_uni().await?;
                let header = DataHeader {
                    transfer_id,
                    offset: 0,
                };
                write_message(&mut data, &header, 64).await?;
                data.write_all(content).await?;
                data.finish()?;
                answer(Response::GetDone {
                    hash: *blake3::hash(content).as_bytes(),
                })
                .await?;
            }
            other => {
                answer(Response::Error(ErrorReply {
                    kind: ErrorKind::NotFound,
                    message: format!("the hostile server does not serve {}", other.kind()),
                }))
                .await?;
            }
        }
    }
    Ok(())
}

/// The temp directory holding both destinations and `outside`, which a
/// hostile server would like to write into.
struct Scene {
    top: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let top = tempfile::tempdir().expect("temp dir");
        let outside = top.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("canary.txt"), b"untouched").unwrap();
        Self { top }
    }

    fn outside(&self) -> std::path::PathBuf {
        self.top.path().join("outside")
    }

    /// A destination directory holding the pull's top `within` (itself
    /// for a sync, `tree` for `get -r`), with a link planted at
    /// `within/planted` that points at `outside`.
    fn destination(&self, name: &str, within: &str) -> std::path::PathBuf {
        let destination = self.top.path().join(name);
        let top = destination.join(within);
        std::fs::create_dir_all(&top).unwrap();
        std::os::unix::fs::symlink(self.outside(), top.join("planted")).unwrap();
        destination
    }

    /// Asserts that the top holds only what the test made and that
    /// `outside` is as it was.
    fn assert_nothing_outside(&self, destinations: &[&str]) {
        let mut names: Vec<String> = std::fs::read_dir(self.top.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected: Vec<String> = destinations.iter().map(|name| name.to_string()).collect();
        expected.push("outside".into());
        expected.sort();
        assert_eq!(names, expected, "entries appeared next to the destinations");
        let outside = snapshot(&self.outside());
        assert_eq!(
            outside,
            BTreeMap::from([("canary.txt".to_string(), Some(b"untouched".to_vec()))]),
            "something was written outside the destination"
        );
    }
}

/// Every hostile entry's name appears in the client's messages.
fn assert_named(stderr: &str, names: &[&str]) {
    for name in names {
        assert!(stderr.contains(name), "{name} is not named in:\n{stderr}");
    }
}

/// The safe entries of the served tree arrived below `top`, intact.
fn assert_safe_files_arrived(top: &Path) {
    assert_eq!(
        std::fs::read(top.join("good.txt")).unwrap(),
        b"good content"
    );
    assert_eq!(
        std::fs::read(top.join("sub/inner.txt")).unwrap(),
        b"inner content"
    );
}

fn login(client: &TestClient, server: &HostileServer) {
    let output = client.try_login_at(
        &server.address.to_string(),
        &server.fingerprint.to_string(),
        "victim",
        "any password",
    );
    assert!(output.status.success(), "login: {}", text(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_server_cannot_write_outside_a_pull() {
    let scene = Scene::new();
    let served = Served::new(&scene.outside());
    let absolute = format!("{}/absolute.txt", scene.outside().display());
    let server = HostileServer::start(served);
    let client = TestClient::new();
    tokio::task::block_in_place(|| {
        login(&client, &server);

        // `get -r` into an existing directory: the files land in `tree`.
        let got = scene.destination("got", "tree");
        let output = client.run(&["get", "-r", "/tree", got.to_str().unwrap()]);
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "a partial pull must say so");
        assert_safe_files_arrived(&got.join("tree"));
        assert_named(
            &stderr,
            &[
                "../escape.txt",
                &absolute,
                ".hidden.qftp-part",
                "planted/through-planted.txt",
            ],
        );
        assert!(stderr.contains("refused"), "{stderr}");
        scene.assert_nothing_outside(&["got"]);

        // `sync --pull --links`, twice: the first run makes the link
        // `l1 -> sub`, the second is offered entries through it.
        let synced = scene.destination("synced", "");
        for run in 0..2 {
            let output = client.run(&[
                "sync",
                "--pull",
                "--links",
                "/tree",
                synced.to_str().unwrap(),
            ]);
            let stderr = text(&output.stderr);
            assert!(!output.status.success(), "run {run}: {stderr}");
            assert_safe_files_arrived(&synced);
            assert_eq!(
                std::fs::read_link(synced.join("l1")).unwrap(),
                Path::new("sub")
            );
            assert!(std::fs::symlink_metadata(synced.join("a")).is_err());
            assert!(std::fs::symlink_metadata(synced.join("sub/l2")).is_err());
            assert!(!synced.join("sub/through-l1.txt").exists());
            assert!(!synced.join("sub/l2").exists());
            assert_named(
                &stderr,
                &[
                    "../escape.txt",
                    &absolute,
                    ".hidden.qftp-part",
                    "planted/through-planted.txt",
                    "sub/l2",
                    "a/b/through-a.txt",
                    "l1/through-l1.txt",
                    "l1/l2/through-chain.txt",
                ],
            );
            if run == 1 {
                // Now `l1` exists: what leads through it is refused.
                assert!(
                    stderr
                        .lines()
                        .any(|line| line.contains("refused") && line.contains("l1/through-l1.txt")),
                    "{stderr}"
                );
            }
            scene.assert_nothing_outside(&["got", "synced"]);
        }
    });
}
