//! Attacks before login and around the login throttle, each an end-to-end
//! test against a real server: connections that never log in, data streams
//! opened before login, made-up session tokens, an own account used to
//! reset the throttle between guesses at another user, guesses at one user
//! spread over many addresses, and an upload committed after its session
//! was revoked.
//!
//! Addresses other than 127.0.0.1 are other loopback addresses (the whole
//! 127.0.0.0/8 is the loopback interface); a raw protocol client binds its
//! socket to one to stand for another machine. This module checks what the
//! server promises (answers, error kinds, settings named, files on disk),
//! never log text or timings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qftp_client::{Client, ClientError, ConnectOptions, Trust};
use qftp_proto::{
    ClientFrame, ClientHello, DataHeader, ErrorKind, PROTOCOL_VERSION, Request, Response,
    ServerFrame, ServerHello, Timestamp,
};
use qftp_transport::framed;
use qftp_transport::tuning::PathProfile;

use crate::support::{TestClient, TestServer, snapshot, text, wait_until};

/// How long any single step may take before the test gives up.
const STEP: Duration = Duration::from_secs(20);

/// `127.0.0.N`.
fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A server whose `[login]` and `[limits]` tables get `login` and `limits`
/// (lines of `key = value`).
fn start_with_tables(login: &str, limits: &str) -> TestServer {
    TestServer::start_with_config(&format!("[login]\n{login}\n[limits]\n{limits}"))
}

fn options(server: &TestServer) -> ConnectOptions {
    let fingerprint = server.fingerprint.parse().expect("server fingerprint");
    ConnectOptions::new(server.host(), Trust::Pinned(fingerprint))
}

async fn connect(server: &TestServer) -> Client {
    Client::connect(&options(server))
        .await
        .expect("connecting to the server")
}

fn kind<T>(result: &Result<T, ClientError>) -> Option<ErrorKind> {
    result.as_ref().err().and_then(ClientError::server_kind)
}

/// The reason the peer gave for closing `connection`, if it did.
fn close_reason(connection: &quinn::Connection) -> Option<String> {
    match connection.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(close) => {
            Some(String::from_utf8_lossy(&close.reason).into_owned())
        }
        other => Some(other.to_string()),
    }
}

/// A protocol client on a socket of its own address, speaking frame by
/// frame: one request at a time, answers read in order.
struct RawClient {
    _endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    next_id: u64,
}

impl RawClient {
    /// Connects from `local` and exchanges hellos; on failure, the
    /// server's close reason if it gave one.
    async fn connect_from(server: &TestServer, local: IpAddr) -> Result<Self, String> {
        let mut endpoint = qftp_transport::tuning::endpoint(SocketAddr::new(local, 0), None)
            .map_err(|error| format!("binding {local}: {error}"))?;
        let trust = Trust::Pinned(server.fingerprint.parse().expect("server fingerprint"));
        let config = qftp_client::connection::quic_client_config(
            &trust,
            Arc::new(Mutex::new(None)),
            Duration::from_secs(30),
            PathProfile::Loopback,
        )
        .map_err(|error| error.to_string())?;
        endpoint.set_default_client_config(config);
        let connecting = endpoint
            .connect(server.address, "127.0.0.1")
            .map_err(|error| error.to_string())?;
        let connection = tokio::time::timeout(STEP, connecting)
            .await
            .map_err(|_| "no handshake".to_owned())?
            .map_err(|error| error.to_string())?;
        let hello = async {
            let (mut send, mut recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            let hello = ClientHello {
                version: PROTOCOL_VERSION,
                client: "hardening_login".into(),
            };
            framed::write_message(&mut send, &hello, qftp_proto::DEFAULT_MAX_FRAME)
                .await
                .map_err(|error| error.to_string())?;
            framed::read_message::<ServerHello>(&mut recv, qftp_proto::DEFAULT_MAX_FRAME)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| "no server hello".to_owned())?;
            Ok::<_, String>((send, recv))
        };
        match tokio::time::timeout(STEP, hello).await {
            Ok(Ok((send, recv))) => Ok(Self {
                _endpoint: endpoint,
                connection,
                send,
                recv,
                next_id: 1,
            }),
            Ok(Err(error)) => Err(close_reason(&connection).unwrap_or(error)),
            Err(_) => Err("no hello".to_owned()),
        }
    }

    /// Sends `request` and reads its (first) answer.
    async fn request(&mut self, request: Request) -> Result<Response, String> {
        let id = self.next_id;
        self.next_id += 1;
        let exchange = async {
            framed::write_message(
                &mut self.send,
                &ClientFrame { id, request },
                qftp_proto::DEFAULT_MAX_FRAME,
            )
            .await
            .map_err(|error| error.to_string())?;
            let frame =
                framed::read_message::<ServerFrame>(&mut self.recv, qftp_proto::DEFAULT_MAX_FRAME)
                    .await
                    .map_err(|error| error.to_string())?
                    .ok_or_else(|| "the control stream ended".to_owned())?;
            assert_eq!(frame.id, id, "answers come in order here");
            Ok(frame.response)
        };
        tokio::time::timeout(STEP, exchange)
            .await
            .map_err(|_| "no answer".to_owned())?
    }

    async fn login(&mut self, user: &str, password: &str) -> Result<Response, String> {
        self.request(Request::Login {
            user: user.into(),
            password: password.into(),
        })
        .await
    }

    fn close(&self) {
        self.connection.close(0u32.into(), b"done");
    }
}

/// The error kind and message of an answer, if it is an error.
fn refusal(response: &Response) -> Option<(ErrorKind, &str)> {
    match response {
        Response::Error(reply) => Some((reply.kind, reply.message.as_str())),
        _ => None,
    }
}

fn is_too_many(response: &Response, setting: &str) -> bool {
    matches!(refusal(response), Some((ErrorKind::TooManyAttempts { .. }, message)) if message.contains(setting))
}

// ---------------------------------------------------------------------------
// 5. Before login
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_log_in_are_capped_and_closed_while_others_get_in() {
    const CAP: usize = 3;
    let server = start_with_tables(
        "",
        &format!("login_timeout_secs = 3\nmax_unauthenticated_per_address = {CAP}"),
    );
    server.add_user("alice", "alice-pw-1", None);
    server.add_user("bob", "bob-pw-1", None);
    let attacker = loopback(1);

    // The attacker holds every pre-login slot of its address...
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(RawClient::connect_from(&server, attacker).await.unwrap());
    }
    // ...and one more is closed with a reason naming the limit.
    let extra = RawClient::connect_from(&server, attacker).await;
    match &extra {
        Err(reason) => assert!(
            reason.contains("max_unauthenticated_per_address"),
            "{reason}"
        ),
        Ok(_) => panic!("a connection beyond the cap was served"),
    }

    // Someone at another address logs in meanwhile.
    let mut bob = RawClient::connect_from(&server, loopback(2)).await.unwrap();
    let logged_in = bob.login("bob", "bob-pw-1").await.unwrap();
    assert!(
        matches!(logged_in, Response::LoggedIn { .. }),
        "{logged_in:?}"
    );

    // The connections that never logged in are closed at the deadline, with
    // a reason naming the limit.
    for client in &idle {
        let closed = tokio::time::timeout(STEP, client.connection.closed()).await;
        assert!(closed.is_ok(), "a connection outlived the login timeout");
        let reason = close_reason(&client.connection).unwrap_or_default();
        assert!(reason.contains("login_timeout_secs"), "{reason}");
    }
    // The one that logged in before the deadline is still served after it.
    let identity = bob.request(Request::WhoAmI).await.unwrap();
    assert!(
        matches!(&identity, Response::Identity { user, .. } if user == "bob"),
        "{identity:?}"
    );
    // The attacker's address has its slots back: the real CLI logs in there.
    let cli = TestClient::new();
    tokio::task::block_in_place(|| {
        cli.login(&server, "alice", "alice-pw-1");
        assert!(cli.ok(&["ls"]).is_empty());
    });
    bob.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_streams_cannot_be_opened_before_login() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let mut client = RawClient::connect_from(&server, loopback(1)).await.unwrap();
    let connection = client.connection.clone();
    let opening = connection.open_uni();
    tokio::pin!(opening);
    // The server allowed no unidirectional stream at the handshake, so the
    // open cannot complete: nothing can be sent for it to buffer.
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut opening)
            .await
            .is_err(),
        "a data stream opened before login"
    );
    let refused = client.request(Request::WhoAmI).await.unwrap();
    assert!(
        matches!(refusal(&refused), Some((ErrorKind::NotAuthenticated, _))),
        "{refused:?}"
    );
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut opening)
            .await
            .is_err(),
        "a data stream opened before login"
    );

    // Once logged in, the same open completes and an upload runs.
    let logged_in = client.login("alice", "alice-pw-1").await.unwrap();
    assert!(
        matches!(logged_in, Response::LoggedIn { .. }),
        "{logged_in:?}"
    );
    let mut stream = tokio::time::timeout(STEP, &mut opening)
        .await
        .expect("the data stream opens after login")
        .unwrap();
    let data: Vec<u8> = (0..4u32 << 20).map(|index| (index % 251) as u8).collect();
    let ready = client
        .request(Request::PutOpen {
            transfer_id: 1,
            path: "/after-login.bin".into(),
            size: data.len() as u64,
            mtime: Timestamp::now(),
            resume: false,
        })
        .await
        .unwrap();
    assert!(
        matches!(ready, Response::PutReady { offset: 0, .. }),
        "{ready:?}"
    );
    let header = DataHeader {
        transfer_id: 1,
        offset: 0,
    };
    framed::write_message(&mut stream, &header, 64)
        .await
        .unwrap();
    stream.write_all(&data).await.unwrap();
    stream.finish().unwrap();
    let done = client
        .request(Request::PutCommit {
            transfer_id: 1,
            hash: *blake3::hash(&data).as_bytes(),
        })
        .await
        .unwrap();
    assert!(matches!(done, Response::PutDone { .. }), "{done:?}");
    assert_eq!(
        std::fs::read(server.home("alice").join("after-login.bin")).unwrap(),
        data
    );
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_tokens_are_refused_and_then_blocked_unchecked() {
    const MAX_FAILURES: usize = 3;
    const TRIES: usize = 20;
    let server = start_with_tables(
        &format!("base_delay_ms = 10\nmax_delay_ms = 40\nmax_failures = {MAX_FAILURES}"),
        "",
    );
    server.add_user("alice", "alice-pw-1", None);
    let alice = connect(&server).await;
    let (token, _) = alice.login("alice", "alice-pw-1").await.unwrap();

    // From 127.0.0.1: made-up tokens, over a few connections.
    let (mut expired, mut blocked, mut other) = (0, 0, Vec::new());
    for attempt in 0..TRIES {
        let client = connect(&server).await;
        for guess in 0..2 {
            let made_up = format!("{:064x}", attempt * 2 + guess);
            let result = client.authenticate(&made_up).await;
            match kind(&result) {
                Some(ErrorKind::SessionExpired) => expired += 1,
                Some(ErrorKind::TooManyAttempts { .. })
                    if result
                        .as_ref()
                        .unwrap_err()
                        .to_string()
                        .contains("login.max_failures") =>
                {
                    blocked += 1
                }
                _ => other.push(format!("{result:?}")),
            }
        }
        client.close().await;
    }
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(expired, MAX_FAILURES, "tokens checked before the block");
    assert_eq!(blocked, 2 * TRIES - MAX_FAILURES);
    // The blocked address is refused even a valid token, unchecked...
    let client = connect(&server).await;
    let result = client.authenticate(&token).await;
    assert!(
        matches!(kind(&result), Some(ErrorKind::TooManyAttempts { .. })),
        "{result:?}"
    );
    // ...but may still log in by password, and the token works elsewhere.
    client.login("alice", "alice-pw-1").await.unwrap();
    client.close().await;
    let mut elsewhere = RawClient::connect_from(&server, loopback(2)).await.unwrap();
    let resumed = elsewhere
        .request(Request::Authenticate {
            token: token.clone(),
        })
        .await
        .unwrap();
    assert!(
        matches!(resumed, Response::Authenticated { ref user } if user == "alice"),
        "{resumed:?}"
    );
    // The connection that was logged in before is not disturbed.
    assert!(alice.list("/").await.is_ok());
    elsewhere.close();
    alice.close().await;
}

// ---------------------------------------------------------------------------
// 6. Around the login throttle
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_account_does_not_reset_the_guesses_at_another() {
    // The default max_failures = 5, with short delays.
    const MAX_FAILURES: usize = 5;
    let server = start_with_tables("base_delay_ms = 10\nmax_delay_ms = 40", "");
    server.add_user("alice", "alice-pw-1", None);
    server.add_user("mallory", "mallory-pw-1", None);
    let mallory = TestClient::new();
    let guesser = TestClient::new();
    tokio::task::block_in_place(|| {
        for round in 0..2 * MAX_FAILURES {
            // Mallory's own login succeeds between every two guesses.
            mallory.login(&server, "mallory", "mallory-pw-1");
            let guess = guesser.try_login(&server, "alice", &format!("guess-{round}"));
            assert!(!guess.status.success());
            let stderr = text(&guess.stderr);
            if round < MAX_FAILURES {
                assert!(stderr.contains("wrong user name or password"), "{stderr}");
            } else {
                assert!(
                    stderr.contains("login.max_failures"),
                    "round {round}: {stderr}"
                );
            }
        }
        // Even the right password is refused from this address now...
        let right = guesser.try_login(&server, "alice", "alice-pw-1");
        assert!(!right.status.success());
        assert!(text(&right.stderr).contains("too many failed logins"));
        // ...while mallory herself is not locked out.
        mallory.login(&server, "mallory", "mallory-pw-1");
    });
    // Alice from her own address gets in.
    let mut alice = RawClient::connect_from(&server, loopback(2)).await.unwrap();
    let logged_in = alice.login("alice", "alice-pw-1").await.unwrap();
    assert!(
        matches!(logged_in, Response::LoggedIn { .. }),
        "{logged_in:?}"
    );
    alice.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_from_many_addresses_are_refused_but_the_user_gets_in_from_home() {
    const PER_USER: usize = 6;
    const ADDRESSES: u8 = 30;
    let server = start_with_tables(
        &format!("base_delay_ms = 10\nmax_delay_ms = 40\nmax_failures_per_user = {PER_USER}"),
        "",
    );
    server.add_user("alice", "alice-pw-1", None);
    server.add_user("bob", "bob-pw-1", None);
    // Alice has logged in from 127.0.0.1, her usual address, with the CLI.
    let cli = TestClient::new();
    tokio::task::block_in_place(|| cli.login(&server, "alice", "alice-pw-1"));

    // One guess from each of many addresses.
    let (mut checked, mut refused, mut other) = (0, 0, Vec::new());
    for index in 0..ADDRESSES {
        let mut client = RawClient::connect_from(&server, loopback(10 + index))
            .await
            .unwrap();
        let answer = client
            .login("alice", &format!("guess-{index}"))
            .await
            .unwrap();
        match refusal(&answer) {
            Some((ErrorKind::AuthenticationFailed, _)) => checked += 1,
            _ if is_too_many(&answer, "login.max_failures_per_user") => refused += 1,
            _ => other.push(format!("{answer:?}")),
        }
        client.close();
    }
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(checked, PER_USER, "guesses checked before the block");
    assert_eq!(refused, usize::from(ADDRESSES) - PER_USER);
    // A new address is refused even the right password.
    let mut lucky = RawClient::connect_from(&server, loopback(100))
        .await
        .unwrap();
    let answer = lucky.login("alice", "alice-pw-1").await.unwrap();
    assert!(
        is_too_many(&answer, "login.max_failures_per_user"),
        "{answer:?}"
    );
    // Other users are not affected, from there either.
    let answer = lucky.login("bob", "bob-pw-1").await.unwrap();
    assert!(matches!(answer, Response::LoggedIn { .. }), "{answer:?}");
    lucky.close();
    // Alice logs in again from her usual address, by password.
    tokio::task::block_in_place(|| {
        cli.login(&server, "alice", "alice-pw-1");
        assert!(cli.ok(&["ls"]).is_empty());
    });
}

// ---------------------------------------------------------------------------
// An upload committed after its session was revoked
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_not_committed_after_its_session_was_revoked() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let first = connect(&server).await;
    let (token, _) = first.login("alice", "alice-pw-1").await.unwrap();
    let data: Vec<u8> = (0..50_000u32).map(|index| (index % 241) as u8).collect();
    let transfer_id = first.next_transfer_id();
    let ready = first
        .request(Request::PutOpen {
            transfer_id,
            path: "/late.bin".into(),
            size: data.len() as u64,
            mtime: Timestamp::now(),
            resume: false,
        })
        .await
        .unwrap();
    assert!(matches!(ready, Response::PutReady { .. }), "{ready:?}");
    let mut stream = first.open_data_stream(transfer_id, 0).await.unwrap();
    stream.write_all(&data).await.unwrap();
    stream.finish().unwrap();
    // Every byte is in the partial file (wherever the server keeps it).
    let home = server.home("alice");
    assert!(wait_until(STEP, || {
        snapshot(&home)
            .values()
            .any(|content| content.as_deref() == Some(&data[..]))
    }));

    // The session is revoked from another connection.
    let second = connect(&server).await;
    second.authenticate(&token).await.unwrap();
    second.logout().await.unwrap();
    let commit = first
        .request(Request::PutCommit {
            transfer_id,
            hash: *blake3::hash(&data).as_bytes(),
        })
        .await;
    assert_eq!(kind(&commit), Some(ErrorKind::SessionExpired), "{commit:?}");
    assert!(!home.join("late.bin").exists());

    // After a new login the partial is offered for a resume and completes.
    let again = connect(&server).await;
    again.login("alice", "alice-pw-1").await.unwrap();
    let transfer_id = again.next_transfer_id();
    let ready = again
        .request(Request::PutOpen {
            transfer_id,
            path: "/late.bin".into(),
            size: data.len() as u64,
            mtime: Timestamp::now(),
            resume: true,
        })
        .await
        .unwrap();
    let expected_prefix = *blake3::hash(&data).as_bytes();
    assert!(
        matches!(ready, Response::PutReady { offset, prefix_hash: Some(prefix) }
            if offset == data.len() as u64 && prefix == expected_prefix),
        "{ready:?}"
    );
    let mut stream = again
        .open_data_stream(transfer_id, data.len() as u64)
        .await
        .unwrap();
    stream.finish().unwrap();
    let done = again
        .request(Request::PutCommit {
            transfer_id,
            hash: expected_prefix,
        })
        .await;
    assert!(matches!(done, Ok(Response::PutDone { .. })), "{done:?}");
    assert_eq!(std::fs::read(home.join("late.bin")).unwrap(), data);
    for client in [first, second, again] {
        client.close().await;
    }
}
