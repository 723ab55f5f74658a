//! Passwords, session tokens and login throttling.
//!
//! * [`password`]: argon2id hashing and checks.
//! * [`token`]: session tokens and the hash the database keeps of them.
//! * [`throttle`]: [`LoginGuard`], which stands in front of every login.
//! * [`bound`]: [`LoginBound`], the `[login]` setting behind each throttle bound.
//!
//! This module neither stores anything (that is [`crate::embedded`]) nor
//! speaks the protocol (that is [`crate::connection`]). Nothing here logs a
//! password or a token.

pub mod bound;
pub mod password;
pub mod throttle;
pub mod token;

pub use bound::LoginBound;
pub use password::{AuthError, hash_password, verify_password, verify_password_in};
pub use throttle::{LoginError, LoginGuard};
pub use token::{new_session_token, token_hash};
