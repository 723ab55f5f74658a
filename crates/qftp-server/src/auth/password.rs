//! Password hashing: argon2id PHC strings with a random salt, checks in
//! reusable working memory, and the dummy hash that makes an unknown user
//! cost as much as a known one.
//!
//! This module counts no failures and decides nothing about who may try
//! (that is [`super::throttle`]'s), and runs its work where it is called:
//! callers keep it off the async workers.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Salt length in bytes (the argon2 recommendation).
const SALT_BYTES: usize = 16;

/// A password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The operating system gave no random bytes.
    #[error("cannot get random bytes: {0}")]
    Random(getrandom::Error),
    /// argon2 refused to hash.
    #[error("cannot hash password: {0}")]
    Hash(argon2::password_hash::Error),
}

/// Hashes `password` with argon2id (default parameters) and a random salt,
/// as a PHC string.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(AuthError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(AuthError::Hash)?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(AuthError::Hash)?;
    Ok(hash.to_string())
}

/// Whether `password` matches `password_hash`; false for a malformed hash.
pub fn verify_password(password_hash: &str, password: &str) -> bool {
    match PasswordHash::new(password_hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The largest argon2 working memory kept for reuse (the default cost
/// needs 19 MiB); a stored hash asking for more gets a buffer of its own.
const MAX_POOLED_BLOCKS: usize = 256 * 1024;

/// Like [`verify_password`], but hashing in `memory`, which is grown as the
/// hash's cost requires and kept by the caller for the next check. Each
/// check otherwise allocates the whole working memory (19 MiB at the default
/// cost), and the allocator keeps those blocks after they are freed: a
/// server with a hundred logins behind it held more than a gigabyte.
pub fn verify_password_in(password_hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(password_hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; argon2::password_hash::Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    let mut own = Vec::new();
    let memory = if blocks <= MAX_POOLED_BLOCKS {
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        &mut memory[..blocks]
    } else {
        own.resize(blocks, Block::new());
        &mut own[..]
    };
    let mut output = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut output,
        memory,
    );
    // `Output` compares in constant time.
    hashed.is_ok()
        && argon2::password_hash::Output::new(&output).is_ok_and(|output| output == expected)
}

/// The dummy hash, once computed.
pub(crate) static DUMMY: OnceLock<String> = OnceLock::new();

/// A fixed argon2id hash (default parameters) that no password matches in
/// practice, verified against for unknown users so that they cost as much
/// as known ones. Computed once, by [`super::LoginGuard::new`].
pub(crate) fn dummy_hash() -> &'static str {
    DUMMY.get_or_init(|| {
        let salt = SaltString::from_b64("cWZ0cC11bmtub3duLXVzZXI")
            .expect("the fixed salt is valid base64");
        Argon2::default()
            .hash_password(b"qftp: no such user", &salt)
            .expect("argon2 with default parameters and a valid salt cannot fail")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("s3cret"));
        assert!(verify_password(&hash, "s3cret"));
        assert!(!verify_password(&hash, "s3cret "));
        assert_ne!(hash_password("s3cret").unwrap(), hash, "salts must differ");
        assert!(!verify_password("not a hash", "s3cret"));
        assert!(!verify_password("", ""));
    }

    #[test]
    fn checks_in_reused_memory_agree_with_the_plain_check() {
        let stored = hash_password("correct horse").unwrap();
        let mut memory = Vec::new();
        for (password, expected) in [("correct horse", true), ("wrong", false), ("", false)] {
            assert_eq!(verify_password(&stored, password), expected, "{password}");
            assert_eq!(
                verify_password_in(&stored, password, &mut memory),
                expected,
                "{password}"
            );
        }
        // The memory is kept at the default cost's size for the next check.
        assert_eq!(memory.len(), Params::DEFAULT_M_COST as usize);
        // A hash with other parameters works in the same memory.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap())
        .unwrap()
        .to_string();
        assert!(verify_password_in(&cheap, "pw", &mut memory));
        assert!(!verify_password_in(&cheap, "px", &mut memory));
        assert!(!verify_password_in("not a hash", "pw", &mut memory));
        assert!(verify_password_in(
            dummy_hash(),
            "qftp: no such user",
            &mut memory
        ));
    }

    #[test]
    fn dummy_hash_is_argon2id_with_default_cost() {
        let dummy = PasswordHash::new(dummy_hash()).unwrap();
        let real_hash = hash_password("x").unwrap();
        let real = PasswordHash::new(&real_hash).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.params, real.params);
        assert!(!verify_password(dummy_hash(), ""));
    }
}
