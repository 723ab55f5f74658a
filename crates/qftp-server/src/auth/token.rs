//! Session tokens: 32 random bytes as 64 hex digits for the client; the
//! database keeps only the SHA-256 of that text, so a leaked database holds
//! no usable token.
//!
//! This module stores nothing and checks no session (that is
//! [`crate::userdb`]'s and [`crate::session`]'s).

use sha2::{Digest, Sha256};

/// A new session token: 64 hex digits for the client, and the SHA-256 of
/// that text for the database.
///
/// # Panics
///
/// If the operating system's random number generator fails, which leaves
/// no safe way to make a token.
pub fn new_session_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// The SHA-256 of a token's text, as the database stores it.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_with_their_hash() {
        let (token, hash) = new_session_token();
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(hash, token_hash(&token));
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(token.as_bytes())));
        assert_ne!(new_session_token().0, token);
    }
}
