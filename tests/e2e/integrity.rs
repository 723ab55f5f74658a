//! A client that lies about its bytes or its hash gets nothing stored.

use std::time::Duration;

use qftp_client::{Client, ConnectOptions, Trust};
use qftp_proto::{ErrorKind, Request, Response, Timestamp};

use crate::support::{TestServer, wait_until};

async fn connect(server: &TestServer) -> Client {
    let fingerprint = server.fingerprint.parse().unwrap();
    let client = Client::connect(&ConnectOptions::new(
        server.host(),
        Trust::Pinned(fingerprint),
    ))
    .await
    .unwrap();
    client.login("alice", "alice-pw-1").await.unwrap();
    client
}

/// Uploads `sent` while declaring the hash of `declared`; returns the
/// server's answer to the commit.
async fn upload_lying(
    client: &Client,
    path: &str,
    sent: &[u8],
    declared: &[u8],
) -> Result<Response, qftp_client::ClientError> {
    let transfer_id = client.next_transfer_id();
    let ready = client
        .request(Request::PutOpen {
            transfer_id,
            path: path.into(),
            size: declared.len() as u64,
            mtime: Timestamp::now(),
            resume: false,
        })
        .await?;
    assert!(
        matches!(ready, Response::PutReady { offset: 0, .. }),
        "{ready:?}"
    );
    let mut stream = client.open_data_stream(transfer_id, 0).await?;
    stream.write_all(sent).await.unwrap();
    stream.finish().unwrap();
    client
        .request(Request::PutCommit {
            transfer_id,
            hash: *blake3::hash(declared).as_bytes(),
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_bytes_or_a_wrong_hash_are_rejected() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let client = connect(&server).await;
    let original: Vec<u8> = (0..100_000u32).map(|index| (index % 251) as u8).collect();

    let mut altered = original.clone();
    altered[54_321] ^= 0x01;
    let error = upload_lying(&client, "/altered.bin", &altered, &original)
        .await
        .unwrap_err();
    assert_eq!(
        error.server_kind(),
        Some(ErrorKind::IntegrityMismatch),
        "{error}"
    );

    let error = upload_lying(&client, "/wrong-hash.bin", &original, &altered)
        .await
        .unwrap_err();
    assert_eq!(
        error.server_kind(),
        Some(ErrorKind::IntegrityMismatch),
        "{error}"
    );

    // A stream longer than declared is cut and rejected too.
    let mut longer = original.clone();
    longer.extend_from_slice(b"extra");
    let error = upload_lying(&client, "/longer.bin", &longer, &original)
        .await
        .unwrap_err();
    assert_eq!(
        error.server_kind(),
        Some(ErrorKind::IntegrityMismatch),
        "{error}"
    );

    let home = server.home("alice");
    // Nothing under a final name, and the rejected partials are gone.
    for name in ["altered.bin", "wrong-hash.bin", "longer.bin"] {
        assert!(!home.join(name).exists(), "{name} must not appear");
    }
    assert!(wait_until(Duration::from_secs(5), || {
        !crate::support::server_partial(&home, "/altered.bin").exists()
            && !crate::support::server_partial(&home, "/wrong-hash.bin").exists()
    }));

    // An honest upload on the same connection works.
    let answer = upload_lying(&client, "/honest.bin", &original, &original)
        .await
        .unwrap();
    assert!(matches!(answer, Response::PutDone { .. }), "{answer:?}");
    assert_eq!(std::fs::read(home.join("honest.bin")).unwrap(), original);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stops_midway_is_cut_while_the_connection_lives() {
    let server = TestServer::start_with_config("idle_timeout_secs = 3");
    server.add_user("alice", "alice-pw-1", None);
    let fingerprint = server.fingerprint.parse().unwrap();
    let mut options = ConnectOptions::new(server.host(), Trust::Pinned(fingerprint));
    // Keep-alives every second hold the connection open; only the stream stalls.
    options.idle_timeout = Duration::from_secs(3);
    let client = Client::connect(&options).await.unwrap();
    client.login("alice", "alice-pw-1").await.unwrap();
    let transfer_id = client.next_transfer_id();
    let ready = client
        .request(Request::PutOpen {
            transfer_id,
            path: "/stalled.bin".into(),
            size: 1_000_000,
            mtime: Timestamp::now(),
            resume: false,
        })
        .await
        .unwrap();
    assert!(matches!(ready, Response::PutReady { .. }), "{ready:?}");
    let mut stream = client.open_data_stream(transfer_id, 0).await.unwrap();
    stream.write_all(&[7u8; 1000]).await.unwrap();
    // Neither more data nor a finish: the server must give up on the stream.
    let commit = client.request(Request::PutCommit {
        transfer_id,
        hash: [0; 32],
    });
    let error = tokio::time::timeout(Duration::from_secs(20), commit)
        .await
        .expect("the server answers once the stream stalls")
        .unwrap_err();
    assert!(error.to_string().contains("stalled"), "{error}");
    assert!(
        client.connection().close_reason().is_none(),
        "the connection itself stays up"
    );
    assert!(!server.home("alice").join("stalled.bin").exists());
    // The same connection still works.
    assert!(client.list("/").await.unwrap().is_empty());
    client.close().await;
}

/// Sends a `PutSmall` declaring `declared` (size and hash) with `sent` on
/// its data stream, optionally opening the stream before the request.
async fn small_upload_lying(
    client: &Client,
    path: &str,
    sent: &[u8],
    declared: &[u8],
    stream_first: bool,
) -> Result<Response, qftp_client::ClientError> {
    let transfer_id = client.next_transfer_id();
    let request = Request::PutSmall {
        transfer_id,
        path: path.into(),
        size: declared.len() as u64,
        mtime: Timestamp::now(),
        hash: *blake3::hash(declared).as_bytes(),
    };
    let send_stream = async {
        if let Ok(mut stream) = client.open_data_stream(transfer_id, 0).await {
            // The server may stop the stream early; its answer tells why.
            let _ = stream.write_all(sent).await;
            let _ = stream.finish();
        }
    };
    if stream_first {
        send_stream.await;
        // Let the stream reach the server well before its request.
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.request(request).await
    } else {
        let mut answer = client.send(request).await?;
        send_stream.await;
        answer.next().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_uploads_that_lie_are_rejected_and_honest_ones_land_in_any_order() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", Some("1MiB"));
    let client = connect(&server).await;
    let home = server.home("alice");
    let original: Vec<u8> = (0..40_000u32).map(|index| (index % 253) as u8).collect();

    let mut altered = original.clone();
    altered[12_345] ^= 0x80;
    let mut longer = original.clone();
    longer.push(0);
    let shorter = &original[..original.len() - 1];
    for (name, sent) in [
        ("altered.bin", altered.as_slice()),
        ("longer.bin", longer.as_slice()),
        ("shorter.bin", shorter),
    ] {
        let error = small_upload_lying(&client, &format!("/{name}"), sent, &original, false)
            .await
            .unwrap_err();
        assert_eq!(
            error.server_kind(),
            Some(ErrorKind::IntegrityMismatch),
            "{name}: {error}"
        );
        assert!(!home.join(name).exists(), "{name} must not appear");
    }

    // Larger than a small upload may be: refused before any byte is stored.
    let big = vec![1u8; qftp_proto::SMALL_FILE_MAX as usize + 1];
    let error = small_upload_lying(&client, "/big.bin", &big, &big, false)
        .await
        .unwrap_err();
    assert_eq!(error.server_kind(), Some(ErrorKind::Protocol), "{error}");
    assert!(!home.join("big.bin").exists());

    // Honest ones land whichever of stream and request arrives first.
    for (name, stream_first) in [("after.bin", false), ("before.bin", true)] {
        let answer = small_upload_lying(
            &client,
            &format!("/{name}"),
            &original,
            &original,
            stream_first,
        )
        .await
        .unwrap();
        assert!(matches!(answer, Response::PutDone { .. }), "{answer:?}");
        assert_eq!(std::fs::read(home.join(name)).unwrap(), original, "{name}");
    }

    // Nothing rejected was charged: exactly the two stored files count.
    let usage = client.disk_usage().await.unwrap();
    assert_eq!(usage.used, 2 * original.len() as u64, "{usage:?}");
    assert_eq!(usage.reserved, 0, "{usage:?}");
    client.close().await;
}
