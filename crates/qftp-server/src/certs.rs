//! The server's TLS certificate: generating a self-signed one, loading the
//! PEM files, and computing the fingerprint clients pin.
//!
//! The generated certificate is meant to be trusted by fingerprint (clients
//! pin `SHA256:...` on first use), not through a certificate authority, so
//! it keeps rcgen's very long default validity. This module does not decide
//! whether a certificate is trusted and does not build the rustls server
//! configuration; it only produces and reads the files.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use qftp_transport::Fingerprint;
use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate could not be generated, written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The file exists and overwriting was not asked for.
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    /// A subject alternative name is neither an IP address nor a DNS name.
    #[error("invalid subject alternative name {0:?}: expected a DNS name or an IP address")]
    InvalidName(String),
    /// rcgen refused the parameters or could not sign.
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why writing failed.
        source: io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        source: io::Error,
    },
    /// A file holds a damaged PEM section.
    #[error("malformed PEM in {}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser reported.
        source: io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {}", .0.display())]
    NoCertificate(PathBuf),
    /// The key file holds no private key.
    #[error("no private key in {}", .0.display())]
    NoKey(PathBuf),
}

/// Where the system keeps its host name.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// Generates a self-signed certificate and its PKCS#8 key, and writes them
/// as PEM to `cert_path` and `key_path` (the key with mode 0600).
///
/// The names are `localhost`, `127.0.0.1`, `::1`, the host name when it is a
/// valid DNS name, and `extra_sans` (IP literals become IP names, the rest
/// DNS names). Existing files are left alone and reported as
/// [`CertError::Exists`] unless `overwrite` is set.
pub fn generate_self_signed(
    cert_path: &Path,
    key_path: &Path,
    extra_sans: &[String],
    overwrite: bool,
) -> Result<(), CertError> {
    if !overwrite {
        refuse_existing(cert_path)?;
        refuse_existing(key_path)?;
    }
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(host_name());
    names.extend(extra_sans.iter().cloned());
    let mut params = CertificateParams::default();
    params.subject_alt_names = subject_alt_names(&names)?;
    params.distinguished_name.remove(DnType::CommonName);
    params
        .distinguished_name
        .push(DnType::CommonName, "qftp server");
    let key = KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    write_file(key_path, key.serialize_pem().as_bytes(), 0o600, overwrite)?;
    write_file(cert_path, certificate.pem().as_bytes(), 0o644, overwrite)?;
    Ok(())
}

/// Reads the certificate chain from `cert_path` and the private key from
/// `key_path`.
pub fn load(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), CertError> {
    let certificates = read_certificates(cert_path)?;
    let key = read_key(key_path)?;
    Ok((certificates, key))
}

/// The SHA-256 fingerprint of the first certificate in `cert_path`.
pub fn fingerprint(cert_path: &Path) -> Result<Fingerprint, CertError> {
    let certificates = read_certificates(cert_path)?;
    Ok(Fingerprint::of_der(certificates[0].as_ref()))
}

fn refuse_existing(path: &Path) -> Result<(), CertError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(CertError::Exists(path.to_owned())),
        Err(_) => Ok(()),
    }
}

/// The machine's host name, if it can be read and is a valid DNS name.
fn host_name() -> Option<String> {
    let name = fs::read_to_string(HOSTNAME_FILE).ok()?;
    let name = name.trim();
    (is_dns_name(name) && !name.eq_ignore_ascii_case("localhost")).then(|| name.to_owned())
}

/// Turns names into SANs (IP literals as IP addresses), without duplicates.
fn subject_alt_names(names: &[String]) -> Result<Vec<SanType>, CertError> {
    let mut seen = BTreeSet::new();
    let mut sans = Vec::new();
    for name in names {
        let name = name.trim();
        if !seen.insert(name.to_ascii_lowercase()) {
            continue;
        }
        let san = match name.parse::<IpAddr>() {
            Ok(address) => SanType::IpAddress(address),
            Err(_) if is_dns_name(name) => SanType::DnsName(name.try_into()?),
            Err(_) => return Err(CertError::InvalidName(name.to_owned())),
        };
        sans.push(san);
    }
    Ok(sans)
}

/// Whether `name` is a DNS name: dot-separated labels of letters, digits and
/// inner hyphens, each 1 to 63 long, at most 253 in all; the first label may
/// be the wildcard `*`.
fn is_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let name = name.strip_prefix("*.").unwrap_or(name);
    name.split('.').all(is_dns_label)
}

fn is_dns_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Writes `contents` to a new file created with `mode` (on Unix), replacing
/// an existing file only when `overwrite` is set.
fn write_file(path: &Path, contents: &[u8], mode: u32, overwrite: bool) -> Result<(), CertError> {
    let error = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        fs::create_dir_all(parent).map_err(error)?;
    }
    if overwrite {
        match fs::remove_file(path) {
            Err(source) if source.kind() != io::ErrorKind::NotFound => return Err(error(source)),
            _ => {}
        }
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => CertError::Exists(path.to_owned()),
        _ => error(source),
    })?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)
}

fn read_pem(path: &Path) -> Result<Vec<u8>, CertError> {
    fs::read(path).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let pem = read_pem(path)?;
    let certificates = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(CertError::NoCertificate(path.to_owned()));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let pem = read_pem(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| CertError::Pem {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| CertError::NoKey(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        _dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
    }

    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("certs/cert.pem");
        let key = dir.path().join("certs/key.pem");
        Files {
            _dir: dir,
            cert,
            key,
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    #[test]
    fn generated_certificate_loads_and_matches_its_key() {
        let files = files();
        generate_self_signed(&files.cert, &files.key, &[], false).unwrap();
        let (certificates, key) = load(&files.cert, &files.key).unwrap();
        assert_eq!(certificates.len(), 1);
        assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
        let server = rustls::ServerConfig::builder_with_provider(qftp_transport::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates.clone(), key);
        assert!(server.is_ok(), "{:?}", server.err());
        let fingerprint = fingerprint(&files.cert).unwrap();
        assert_eq!(fingerprint, Fingerprint::of_der(certificates[0].as_ref()));
        assert!(fingerprint.to_string().starts_with("SHA256:"));
    }

    #[test]
    fn names_are_in_the_certificate() {
        let files = files();
        let extra = ["files.example.org".to_owned(), "192.0.2.7".to_owned()];
        generate_self_signed(&files.cert, &files.key, &extra, false).unwrap();
        let (certificates, _) = load(&files.cert, &files.key).unwrap();
        let der = certificates[0].as_ref();
        assert!(contains(der, b"localhost"));
        assert!(contains(der, b"files.example.org"));
        assert!(contains(der, &[192, 0, 2, 7]));
        assert!(contains(der, &[127, 0, 0, 1]));
    }

    #[test]
    fn invalid_names_are_refused() {
        let files = files();
        let error = generate_self_signed(&files.cert, &files.key, &["bad name!".to_owned()], false)
            .unwrap_err();
        assert!(matches!(error, CertError::InvalidName(ref name) if name == "bad name!"));
        assert!(!files.cert.exists() && !files.key.exists());
    }

    #[cfg(unix)]
    #[test]
    fn key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let files = files();
        generate_self_signed(&files.cert, &files.key, &[], false).unwrap();
        let mode = fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn existing_files_are_kept_unless_overwriting() {
        let files = files();
        generate_self_signed(&files.cert, &files.key, &[], false).unwrap();
        let before = fingerprint(&files.cert).unwrap();
        let error = generate_self_signed(&files.cert, &files.key, &[], false).unwrap_err();
        assert!(matches!(error, CertError::Exists(ref path) if path == &files.cert));
        assert_eq!(fingerprint(&files.cert).unwrap(), before);
        generate_self_signed(&files.cert, &files.key, &[], true).unwrap();
        assert_ne!(fingerprint(&files.cert).unwrap(), before);
        load(&files.cert, &files.key).unwrap();
    }

    #[test]
    fn missing_pem_sections_are_named() {
        let files = files();
        generate_self_signed(&files.cert, &files.key, &[], false).unwrap();
        let message = load(&files.key, &files.key).unwrap_err().to_string();
        assert_eq!(
            message,
            format!("no certificate in {}", files.key.display())
        );
        let message = load(&files.cert, &files.cert).unwrap_err().to_string();
        assert_eq!(
            message,
            format!("no private key in {}", files.cert.display())
        );
        let missing = files.cert.with_file_name("absent.pem");
        let message = fingerprint(&missing).unwrap_err().to_string();
        assert!(message.starts_with(&format!("cannot read {}", missing.display())));
    }

    #[test]
    fn dns_names_are_checked() {
        assert!(is_dns_name("localhost"));
        assert!(is_dns_name("files.example.org"));
        assert!(is_dns_name("*.example.org"));
        assert!(is_dns_name("host-1"));
        assert!(!is_dns_name(""));
        assert!(!is_dns_name("-host"));
        assert!(!is_dns_name("a..b"));
        assert!(!is_dns_name("under_score"));
        assert!(!is_dns_name(&"a".repeat(64)));
    }
}
