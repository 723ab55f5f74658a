//! File hashes: the one a peer declares and the one that was checked.
//!
//! Every file travels with the BLAKE3 hash of its whole contents. A hash
//! that arrived in a message is only a claim ([`HashBytes`]); a
//! [`VerifiedHash`] is the proof that the bytes actually received or stored
//! hash to that claim. Only [`verify`] makes one, so code that must not
//! commit unverified data (the server's atomic commit, the client's final
//! rename of a download) asks for a `VerifiedHash` in its signature and
//! cannot be called with a bare array.
//!
//! This module computes no hashes itself: the caller hashes the bytes as
//! they pass and hands over the result.

use std::fmt;

use crate::message::HashBytes;

/// A BLAKE3 hash that was computed over the bytes in hand and found equal
/// to the one the peer declared.
///
/// There is no public constructor: [`verify`] is the only way to get one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifiedHash(HashBytes);

impl VerifiedHash {
    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &HashBytes {
        &self.0
    }
}

impl fmt::Debug for VerifiedHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "VerifiedHash({})", short_hex(&self.0))
    }
}

impl fmt::Display for VerifiedHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(formatter, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// The bytes in hand do not hash to what the peer declared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "BLAKE3 mismatch: declared {}, computed {}",
    short_hex(.declared),
    short_hex(.computed)
)]
pub struct HashMismatch {
    /// What the peer said the hash is.
    pub declared: HashBytes,
    /// What the bytes in hand hash to.
    pub computed: HashBytes,
}

/// Checks `computed`, the hash of the bytes in hand, against `declared`, the
/// hash the peer sent; equal hashes become a [`VerifiedHash`].
///
/// The comparison takes the same time wherever the hashes differ.
pub fn verify(declared: &HashBytes, computed: &HashBytes) -> Result<VerifiedHash, HashMismatch> {
    let difference = declared
        .iter()
        .zip(computed)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b));
    if difference == 0 {
        Ok(VerifiedHash(*computed))
    } else {
        Err(HashMismatch {
            declared: *declared,
            computed: *computed,
        })
    }
}

/// The first eight bytes of a hash in hex, enough to tell two apart in a
/// message.
fn short_hex(hash: &HashBytes) -> String {
    hash[..8].iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_hashes_verify() {
        let hash = [7u8; 32];
        let verified = verify(&hash, &hash).expect("equal hashes verify");
        assert_eq!(verified.as_bytes(), &hash);
        assert_eq!(verified.to_string(), "07".repeat(32));
    }

    #[test]
    fn any_differing_byte_is_a_mismatch() {
        let declared = [1u8; 32];
        for position in [0, 15, 31] {
            let mut computed = declared;
            computed[position] ^= 0x80;
            let mismatch = verify(&declared, &computed).expect_err("a differing byte");
            assert_eq!(mismatch.declared, declared);
            assert_eq!(mismatch.computed, computed);
        }
    }

    #[test]
    fn the_mismatch_names_both_hashes_briefly() {
        let mismatch = verify(&[0xab; 32], &[0xcd; 32]).unwrap_err();
        assert_eq!(
            mismatch.to_string(),
            "BLAKE3 mismatch: declared abababababababab, computed cdcdcdcdcdcdcdcd"
        );
    }
}
