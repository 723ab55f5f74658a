//! The contract suite: checks any implementation of the store traits runs
//! against itself (feature `contract-tests`).
//!
//! Each check is an `async fn` that panics with a sentence naming the broken
//! rule. Checks make their own users (names starting with the `prefix`
//! given, so several checks can share one store), need a multi-threaded
//! tokio runtime, and leave what they made behind.
//!
//! ```text
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn ledger_contract() {
//!     let (users, ledger) = my_stores().await;
//!     qftp_store::contract::ledger::reservation_race(&*users, ledger, "race").await;
//! }
//! ```

pub mod files;
pub mod ledger;
pub mod sessions;
pub mod throttle;
pub mod users;

use crate::users::{NewUser, UserRecord, UserStore};

/// A hash that no password check accepts, for users made by the checks.
pub const TEST_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Adds the user `name` with `quota`, panicking if the store refuses.
pub async fn add_user(users: &dyn UserStore, name: &str, quota: Option<u64>) -> UserRecord {
    users
        .add_user(NewUser {
            name: name.to_owned(),
            password_hash: TEST_PASSWORD_HASH.to_owned(),
            quota,
            home: None,
        })
        .await
        .unwrap_or_else(|error| panic!("adding user {name} failed: {error}"))
}
