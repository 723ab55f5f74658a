//! Hostile bytes on the control stream close that connection only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use qftp_client::Trust;
use qftp_client::connection::quic_client_config;
use qftp_proto::{ClientHello, PROTOCOL_VERSION, frame};
use qftp_transport::tuning::PathProfile;

use crate::support::{TestClient, TestServer};

/// Opens a raw QUIC connection with the qftp ALPN and sends `bytes` on the
/// control stream, then waits for the server to close the connection.
async fn send_raw(server: &TestServer, bytes: Vec<u8>, finish: bool) -> quinn::ConnectionError {
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
    send.write_all(&bytes).await.unwrap();
    if finish {
        send.finish().unwrap();
    }
    let error = tokio::time::timeout(Duration::from_secs(15), connection.closed())
        .await
        .expect("the server should close the connection");
    endpoint.close(0u32.into(), b"");
    error
}

fn hello() -> Vec<u8> {
    let hello = ClientHello {
        version: PROTOCOL_VERSION,
        client: "raw test".into(),
    };
    frame::encode(&hello, 1024).unwrap()
}

fn assert_protocol_close(error: quinn::ConnectionError) {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, 1u32.into(), "{close:?}");
            assert!(
                String::from_utf8_lossy(&close.reason).contains("protocol error"),
                "{close:?}"
            );
        }
        other => panic!("expected an application close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_and_truncated_frames_close_only_their_connection() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let alice = TestClient::new();
    tokio::task::block_in_place(|| alice.login(&server, "alice", "alice-pw-1"));

    // Garbage where the hello should be.
    let mut garbage = 7u32.to_be_bytes().to_vec();
    garbage.extend([0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9]);
    assert_protocol_close(send_raw(&server, garbage.clone(), false).await);
    // A valid hello, then a garbage request frame.
    let mut after_hello = hello();
    after_hello.extend(&garbage);
    assert_protocol_close(send_raw(&server, after_hello, false).await);
    // A length prefix far beyond the limit.
    let mut oversized = hello();
    oversized.extend(u32::MAX.to_be_bytes());
    assert_protocol_close(send_raw(&server, oversized, false).await);
    // A frame cut short by the end of the stream.
    let mut truncated = hello();
    truncated.extend(100u32.to_be_bytes());
    truncated.extend([0u8; 10]);
    assert_protocol_close(send_raw(&server, truncated, true).await);

    // The server still serves everyone else.
    tokio::task::block_in_place(|| {
        alice.ok(&["mkdir", "still-here"]);
        assert_eq!(alice.ok(&["ls"]), "still-here/\n");
    });
}
