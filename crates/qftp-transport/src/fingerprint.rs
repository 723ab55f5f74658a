//! Certificate fingerprints: SHA-256 of the DER encoding, written
//! `SHA256:` followed by 64 lower-case hex digits.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 fingerprint of a certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// A fingerprint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fingerprint {0:?}: expected SHA256: followed by 64 hex digits")]
pub struct FingerprintError(String);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(certificate_der: &[u8]) -> Self {
        Self(Sha256::digest(certificate_der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    /// Accepts `SHA256:HEX`, bare `HEX`, and hex with `:` between byte pairs.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || FingerprintError(input.to_owned());
        let trimmed = input.trim();
        let digits = trimmed
            .strip_prefix("SHA256:")
            .or_else(|| trimmed.strip_prefix("sha256:"))
            .unwrap_or(trimmed)
            .replace(':', "");
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| error())?;
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_through_text() {
        let fingerprint = Fingerprint::of_der(b"certificate");
        let text = fingerprint.to_string();
        assert!(text.starts_with("SHA256:"));
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fingerprint);
        let bare = text.trim_start_matches("SHA256:").to_uppercase();
        assert_eq!(bare.parse::<Fingerprint>().unwrap(), fingerprint);
        assert!("SHA256:abcd".parse::<Fingerprint>().is_err());
    }
}
