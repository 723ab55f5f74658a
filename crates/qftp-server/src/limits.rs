//! Refusals at a configured limit: one clear error for the client and one
//! rate-limited WARN line for the administrator.
//!
//! Every bound the server enforces against one user or one connection (open
//! uploads, listing buffers, path depth, pre-login connections, login
//! attempts…) refuses through [`Refusal`], so each refusal names the limit,
//! its value and the `config.toml` setting that changes it, and an attack
//! that hits a limit thousands of times a second writes a handful of log
//! lines rather than thousands: at most one line per (limit, who) every
//! [`WARN_INTERVAL`], the next one saying how many were left out.
//!
//! This module decides nothing: callers check their bound and call it when
//! the bound is exceeded.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use qftp_proto::ErrorKind;

use crate::error::RequestError;

/// The shortest time between two WARN lines for one limit and one user or
/// address.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// The most (limit, who) pairs remembered; beyond this the oldest are
/// forgotten, so a flood from many addresses cannot grow the table.
const MAX_REMEMBERED: usize = 10_000;

/// A refusal at a configured limit.
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    /// The setting in `config.toml` (for example `max_open_uploads_per_user`).
    pub setting: &'static str,
    /// The limit's value as configured, for the message.
    pub value: &'a str,
    /// Who hit it: a user name, or an address before login.
    pub who: &'a str,
}

impl Refusal<'_> {
    /// Logs the refusal (rate-limited) and returns the client's error, of
    /// kind [`ErrorKind::LimitReached`], whose message starts with `what`.
    pub fn refuse(self, what: impl std::fmt::Display) -> RequestError {
        self.refuse_as(ErrorKind::LimitReached, what)
    }

    /// Like [`Refusal::refuse`] with another error kind.
    pub fn refuse_as(self, kind: ErrorKind, what: impl std::fmt::Display) -> RequestError {
        self.warn();
        RequestError::new(
            kind,
            format!(
                "{what}: server limit {} = {} reached (the administrator can change it in config.toml)",
                self.setting, self.value
            ),
        )
    }

    /// Writes the WARN line if none was written for this limit and this
    /// user or address within [`WARN_INTERVAL`].
    pub fn warn(self) {
        if let Some(suppressed) = warn_allowed(self.setting, self.who, Instant::now()) {
            tracing::warn!(
                who = self.who,
                limit = self.setting,
                value = self.value,
                suppressed,
                "limit reached"
            );
        }
    }
}

#[derive(Debug)]
struct LastWarning {
    at: Instant,
    suppressed: u64,
}

fn table() -> &'static Mutex<HashMap<(&'static str, String), LastWarning>> {
    static TABLE: OnceLock<Mutex<HashMap<(&'static str, String), LastWarning>>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `Some(number of refusals not logged since the last line)` when a line may
/// be written now, `None` when it is to be left out.
fn warn_allowed(setting: &'static str, who: &str, now: Instant) -> Option<u64> {
    let mut table = table()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (setting, who.to_owned());
    if let Some(last) = table.get_mut(&key) {
        if now.duration_since(last.at) < WARN_INTERVAL {
            last.suppressed = last.suppressed.saturating_add(1);
            return None;
        }
        let suppressed = last.suppressed;
        *last = LastWarning {
            at: now,
            suppressed: 0,
        };
        return Some(suppressed);
    }
    if table.len() >= MAX_REMEMBERED {
        table.retain(|_, last| now.duration_since(last.at) < WARN_INTERVAL);
        if table.len() >= MAX_REMEMBERED {
            // Still full of recent entries: an attack from very many
            // addresses. Forget them all rather than grow.
            table.clear();
        }
    }
    table.insert(
        key,
        LastWarning {
            at: now,
            suppressed: 0,
        },
    );
    Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_per_limit_and_user() {
        let start = Instant::now();
        assert_eq!(warn_allowed("test_a", "alice", start), Some(0));
        assert_eq!(warn_allowed("test_a", "alice", start), None);
        assert_eq!(warn_allowed("test_a", "alice", start), None);
        // Another user or another limit has its own allowance.
        assert_eq!(warn_allowed("test_a", "bob", start), Some(0));
        assert_eq!(warn_allowed("test_b", "alice", start), Some(0));
        // After the interval the next line tells how many were left out.
        let later = start + WARN_INTERVAL;
        assert_eq!(warn_allowed("test_a", "alice", later), Some(2));
        assert_eq!(warn_allowed("test_a", "alice", later), None);
    }

    #[test]
    fn the_message_names_the_setting_and_its_value() {
        let error = Refusal {
            setting: "max_open_uploads_per_user",
            value: "64",
            who: "alice",
        }
        .refuse("/a.bin: too many uploads open");
        assert_eq!(error.kind, ErrorKind::LimitReached);
        assert!(error.message.starts_with("/a.bin: too many uploads open"));
        assert!(error.message.contains("max_open_uploads_per_user = 64"));
        assert!(error.message.contains("config.toml"));
    }

    #[test]
    fn the_table_stays_bounded() {
        let now = Instant::now();
        for index in 0..(MAX_REMEMBERED + 10) {
            warn_allowed("test_bounded", &index.to_string(), now);
        }
        let size = table().lock().unwrap().len();
        assert!(size <= MAX_REMEMBERED, "{size} entries");
    }
}
