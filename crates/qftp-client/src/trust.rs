//! Deciding whether to trust a server's certificate.
//!
//! qftp pins certificates the way ssh pins host keys: the first time a
//! client meets a server it shows the certificate's SHA-256 fingerprint and,
//! once accepted, remembers it in a known-hosts file; from then on any other
//! certificate is refused. Alternatively a certificate authority can be
//! trusted, for servers with CA-issued certificates.
//!
//! The verifier still checks the TLS handshake signature against the
//! presented certificate, so a pinned fingerprint proves the server holds
//! the matching private key. Asking a person whether to trust an unknown
//! certificate is the program's business, not this module's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use qftp_transport::Fingerprint;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::ClientError;

/// How a connection decides to trust the server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Accept only a certificate with this fingerprint.
    Pinned(Fingerprint),
    /// Accept any certificate and report its fingerprint; the caller must
    /// decide (ask the user, or check the known-hosts file) before sending
    /// anything that matters.
    FirstUse,
    /// Verify the certificate chain against these CA certificates (PEM file).
    CertificateAuthority(PathBuf),
}

/// Verifies by fingerprint, recording what the server presented.
#[derive(Debug)]
pub(crate) struct FingerprintVerifier {
    expected: Option<Fingerprint>,
    presented: Arc<Mutex<Option<Fingerprint>>>,
    provider: Arc<CryptoProvider>,
}

impl FingerprintVerifier {
    pub(crate) fn new(
        expected: Option<Fingerprint>,
        presented: Arc<Mutex<Option<Fingerprint>>>,
    ) -> Self {
        Self {
            expected,
            presented,
            provider: qftp_transport::crypto_provider(),
        }
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = Fingerprint::of_der(end_entity);
        *self.presented.lock().expect("fingerprint lock") = Some(fingerprint);
        match self.expected {
            Some(expected) if expected != fingerprint => Err(rustls::Error::General(
                "certificate fingerprint does not match the pinned one".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds the rustls verifier for `trust`; `presented` receives the
/// fingerprint the server showed, for fingerprint-based trust.
pub(crate) fn verifier(
    trust: &Trust,
    presented: Arc<Mutex<Option<Fingerprint>>>,
) -> Result<Arc<dyn ServerCertVerifier>, ClientError> {
    match trust {
        Trust::Pinned(fingerprint) => Ok(Arc::new(FingerprintVerifier::new(
            Some(*fingerprint),
            presented,
        ))),
        Trust::FirstUse => Ok(Arc::new(FingerprintVerifier::new(None, presented))),
        Trust::CertificateAuthority(path) => {
            let pem = std::fs::read(path).map_err(|error| ClientError::local(path, error))?;
            let mut roots = rustls::RootCertStore::empty();
            for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
                let certificate = certificate.map_err(|error| ClientError::local(path, error))?;
                roots
                    .add(certificate)
                    .map_err(|error| ClientError::Usage(format!("{}: {error}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(ClientError::Usage(format!(
                    "{}: no certificate found",
                    path.display()
                )));
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                qftp_transport::crypto_provider(),
            )
            .build()
            .map(|verifier| verifier as Arc<dyn ServerCertVerifier>)
            .map_err(|error| ClientError::Usage(format!("{}: {error}", path.display())))
        }
    }
}

/// The known-hosts file: one `host:port SHA256:...` line per server.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    hosts: BTreeMap<String, Fingerprint>,
}

impl KnownHosts {
    /// Reads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let mut hosts = BTreeMap::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (number, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let parsed =
                        line.split_once(char::is_whitespace)
                            .and_then(|(host, fingerprint)| {
                                Some((host, fingerprint.trim().parse().ok()?))
                            });
                    let Some((host, fingerprint)) = parsed else {
                        return Err(ClientError::Usage(format!(
                            "{}:{}: expected `HOST:PORT SHA256:HEX`",
                            path.display(),
                            number + 1
                        )));
                    };
                    hosts.insert(host.to_owned(), fingerprint);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(ClientError::local(path, error)),
        }
        Ok(Self {
            path: path.to_owned(),
            hosts,
        })
    }

    /// The file this list lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned fingerprint of `host` (`host:port`).
    pub fn get(&self, host: &str) -> Option<Fingerprint> {
        self.hosts.get(host).copied()
    }

    /// Pins `fingerprint` for `host` and writes the file.
    pub fn pin(&mut self, host: &str, fingerprint: Fingerprint) -> Result<(), ClientError> {
        self.hosts.insert(host.to_owned(), fingerprint);
        self.write()
    }

    /// Forgets the pin of `host` and writes the file; the fingerprint that
    /// was pinned, or `None` if there was none.
    pub fn remove(&mut self, host: &str) -> Result<Option<Fingerprint>, ClientError> {
        let removed = self.hosts.remove(host);
        if removed.is_some() {
            self.write()?;
        }
        Ok(removed)
    }

    fn write(&self) -> Result<(), ClientError> {
        let mut text = String::from("# qftp known hosts: HOST:PORT certificate fingerprint\n");
        for (host, fingerprint) in &self.hosts {
            text.push_str(&format!("{host} {fingerprint}\n"));
        }
        crate::settings::write_private(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_round_trip() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("known_hosts");
        let mut hosts = KnownHosts::load(&path).unwrap();
        assert_eq!(hosts.get("example:4433"), None);
        let fingerprint = Fingerprint::of_der(b"cert");
        hosts.pin("example:4433", fingerprint).unwrap();
        let mut reloaded = KnownHosts::load(&path).unwrap();
        assert_eq!(reloaded.get("example:4433"), Some(fingerprint));
        assert_eq!(reloaded.remove("example:4433").unwrap(), Some(fingerprint));
        assert_eq!(reloaded.remove("example:4433").unwrap(), None);
        assert_eq!(KnownHosts::load(&path).unwrap().get("example:4433"), None);
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(KnownHosts::load(&path).is_err());
    }
}
