//! `cargo xtask mem-ceiling` (hidden): the memory-to-memory ceiling of
//! qftp's own QUIC settings on loopback.
//!
//! One QUIC connection on 127.0.0.1 between two endpoints built by
//! `qftp_transport::tuning` (the same socket buffers, advertised UDP payload
//! limit, loopback profile, BBR and flow-control windows as `qftp` and
//! `qftp-server`), TLS 1.3 with the qftp ALPN and a throw-away rcgen
//! certificate. The sender writes `--bytes` from one buffer in memory on one
//! unidirectional stream; the receiver counts them and throws them away. No
//! disk, no hashing, no protocol frames: what is left is QUIC, TLS and UDP.
//! Each side has its own thread and single-threaded runtime, as two
//! processes would. The time runs from opening the stream (after the
//! handshake) until the receiver has seen the end of the stream; it is
//! printed as `seconds=S bytes=N` on standard output.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use qftp_transport::tuning::{
    Congestion, PathProfile, TransportLimits, endpoint, transport_config,
};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Size of each write (the pump's chunk is 256 KiB; larger writes only
/// lower the per-call cost, which this ceiling should not count).
const WRITE_BYTES: usize = 1 << 20;

/// Arguments of `cargo xtask mem-ceiling`.
#[derive(Debug, Args)]
pub struct MemCeilingArgs {
    /// Bytes to send.
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    max_secs: u64,
}

/// Sends the bytes and prints the time.
pub fn run(arguments: &MemCeilingArgs) -> anyhow::Result<()> {
    let limit = Duration::from_secs(arguments.max_secs);
    let names = vec!["localhost".to_owned()];
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    let certificate: CertificateDer<'static> = certified.cert.der().clone();
    let key: PrivateKeyDer<'static> =
        PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()).into();

    let mut server_tls =
        rustls::ServerConfig::builder_with_provider(qftp_transport::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3 is not available")?
            .with_no_client_auth()
            .with_single_cert(vec![certificate.clone()], key)
            .context("the certificate and key do not match")?;
    server_tls.alpn_protocols = vec![qftp_proto::ALPN.to_vec()];
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(server_tls).context("building the server's QUIC TLS")?,
    ));
    let limits = TransportLimits {
        congestion: Congestion::from_env().map_err(anyhow::Error::msg)?,
        ..TransportLimits::default()
    };
    server_config.transport_config(transport_config(&limits, PathProfile::Loopback));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).context("trusting the certificate")?;
    let mut client_tls =
        rustls::ClientConfig::builder_with_provider(qftp_transport::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("TLS 1.3 is not available")?
            .with_root_certificates(roots)
            .with_no_client_auth();
    client_tls.alpn_protocols = vec![qftp_proto::ALPN.to_vec()];
    let mut client_config = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(client_tls).context("building the client's QUIC TLS")?,
    ));
    client_config.transport_config(transport_config(&limits, PathProfile::Loopback));

    let (address_sender, address_receiver) = mpsc::channel::<SocketAddr>();
    let server = std::thread::Builder::new()
        .name("receiver".into())
        .spawn(move || -> anyhow::Result<(u64, Instant)> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the receiver's runtime")?;
            runtime.block_on(async move {
                let listener = endpoint((Ipv4Addr::LOCALHOST, 0).into(), Some(server_config))
                    .context("binding the receiver")?;
                address_sender
                    .send(listener.local_addr().context("the receiver's address")?)
                    .context("handing over the address")?;
                let received = tokio::time::timeout(limit, async {
                    let incoming = listener.accept().await.context("no connection")?;
                    let connection = incoming.await.context("accepting the connection")?;
                    let mut stream = connection.accept_uni().await.context("no stream")?;
                    let mut received = 0u64;
                    while let Some(chunk) = stream
                        .read_chunk(usize::MAX, true)
                        .await
                        .context("reading the stream")?
                    {
                        received += chunk.bytes.len() as u64;
                    }
                    let end = Instant::now();
                    connection.close(0u32.into(), b"done");
                    anyhow::Ok((received, end))
                })
                .await
                .context("the receiver ran out of time")??;
                listener.wait_idle().await;
                Ok(received)
            })
        })
        .context("starting the receiver thread")?;

    let address = address_receiver
        .recv_timeout(Duration::from_secs(30))
        .context("the receiver did not start")?;
    let total = arguments.bytes;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the sender's runtime")?;
    let sent: anyhow::Result<Instant> = runtime.block_on(async move {
        let mut client =
            endpoint((Ipv4Addr::LOCALHOST, 0).into(), None).context("binding the sender")?;
        client.set_default_client_config(client_config);
        tokio::time::timeout(limit, async {
            let connection = client
                .connect(address, "localhost")
                .context("connecting")?
                .await
                .context("the handshake")?;
            let buffer = Bytes::from(vec![0x5a; WRITE_BYTES]);
            let start = Instant::now();
            let mut stream = connection.open_uni().await.context("opening a stream")?;
            let mut left = total;
            while left > 0 {
                let length = usize::try_from(left.min(WRITE_BYTES as u64)).unwrap_or(WRITE_BYTES);
                stream
                    .write_chunk(buffer.slice(..length))
                    .await
                    .context("writing")?;
                left -= length as u64;
            }
            stream.finish().context("finishing the stream")?;
            // The receiver closes the connection once it has everything.
            let _ = connection.closed().await;
            anyhow::Ok(start)
        })
        .await
        .context("the sender ran out of time")?
    });
    let received = server
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver thread panicked"))?;
    let start = sent?;
    let (bytes, end) = received?;
    if bytes != total {
        bail!("the receiver got {bytes} of {total} bytes");
    }
    let seconds = end.duration_since(start).as_secs_f64();
    eprintln!(
        "mem-ceiling: {bytes} bytes in {seconds:.3} s = {:.2} GB/s (one QUIC stream on 127.0.0.1, \
         memory to memory)",
        bytes as f64 / seconds / 1e9
    );
    println!("seconds={seconds:.6} bytes={bytes}");
    Ok(())
}

/// Parses the `seconds=S bytes=N` line of `cargo xtask mem-ceiling`.
pub fn parse(output: &str) -> Option<(f64, u64)> {
    let line = output
        .lines()
        .rev()
        .find(|line| line.starts_with("seconds="))?;
    let mut seconds = None;
    let mut bytes = None;
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some(("seconds", value)) => seconds = value.parse().ok(),
            Some(("bytes", value)) => bytes = value.parse().ok(),
            _ => {}
        }
    }
    Some((seconds?, bytes?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_parsed() {
        assert_eq!(
            parse("noise\nseconds=0.812000 bytes=1073741824\n"),
            Some((0.812, 1 << 30))
        );
        assert_eq!(parse("seconds=x bytes=1\n"), None);
        assert_eq!(parse(""), None);
    }
}
