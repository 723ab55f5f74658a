//! [`Bound`]: the bounds on failed logins as the `[login]` settings that
//! hold them, and the refusal and WARN line of reaching one.
//!
//! The throttle ([`qftp_store::LoginThrottle`]) says which bound an attempt
//! reached; this module names the setting for the log and the client.

use qftp_proto::ErrorKind;

use crate::config::LoginLimits;
use crate::error::RequestError;
use crate::limits::Refusal;

/// The bounds on failed logins, each a setting of the `[login]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// One address against one user, or against session tokens.
    Pair,
    /// One address against any users and tokens.
    Address,
    /// One user from any addresses (but those it logged in from).
    User,
}

impl Bound {
    /// The setting in `config.toml` that holds this bound.
    pub fn setting(self) -> &'static str {
        match self {
            Self::Pair => "login.max_failures",
            Self::Address => "login.max_failures_per_address",
            Self::User => "login.max_failures_per_user",
        }
    }

    /// This bound's configured value.
    pub fn value(self, limits: &LoginLimits) -> u32 {
        match self {
            Self::Pair => limits.max_failures,
            Self::Address => limits.max_failures_per_address,
            Self::User => limits.max_failures_per_user,
        }
    }

    /// Writes the rate-limited WARN line for `who` reaching this bound.
    pub fn warn(self, limits: &LoginLimits, who: &str) {
        let value = self.value(limits).to_string();
        self.refusal(&value, who).warn();
    }

    /// The client's error for an attempt of `who` refused at this bound,
    /// of kind `kind`, whose message starts with `what`; logged as
    /// [`Refusal`] does.
    pub fn refuse(
        self,
        limits: &LoginLimits,
        who: &str,
        kind: ErrorKind,
        what: impl std::fmt::Display,
    ) -> RequestError {
        let value = self.value(limits).to_string();
        self.refusal(&value, who).refuse_as(kind, what)
    }

    fn refusal<'a>(self, value: &'a str, who: &'a str) -> Refusal<'a> {
        Refusal {
            setting: self.setting(),
            value,
            who,
        }
    }
}

impl From<qftp_store::Bound> for Bound {
    /// The bound a throttle reported; one this server does not know yet is
    /// reported as the pair bound, the narrowest.
    fn from(bound: qftp_store::Bound) -> Self {
        match bound {
            qftp_store::Bound::Address => Self::Address,
            qftp_store::Bound::User => Self::User,
            _ => Self::Pair,
        }
    }
}

impl From<Bound> for qftp_store::Bound {
    fn from(bound: Bound) -> Self {
        match bound {
            Bound::Pair => Self::Pair,
            Bound::Address => Self::Address,
            Bound::User => Self::User,
        }
    }
}
