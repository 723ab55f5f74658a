//! QUIC glue that the qftp client and server share.
//!
//! * [`congestion`]: qftp's congestion controller, which tells random loss
//!   from congestion.
//! * [`durable`]: flushes to disk shared among the files stored at the same
//!   time (group commit).
//! * [`framed`]: reading and writing [`qftp_proto::frame`]s on quinn streams,
//!   with the size limit checked before the payload is read.
//! * [`fingerprint`]: the SHA-256 fingerprint by which a client pins a
//!   server certificate.
//! * [`pump`]: moving one file between disk and a data stream, hashing as
//!   the bytes pass, with bounded memory and no disk I/O on async workers.
//! * [`tuning`]: the QUIC transport settings both sides use.
//!
//! This crate holds no protocol logic (that is `qftp-proto`) and no policy
//! (users, files, trust decisions belong to the server and client crates).

pub mod congestion;
pub mod durable;
pub mod fingerprint;
pub mod framed;
pub mod pump;
pub mod tuning;

pub use fingerprint::Fingerprint;

/// The rustls crypto provider qftp uses on both sides.
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
