//! [`LoginBound`]: the `[login]` setting behind each of the throttle's
//! bounds ([`qftp_store::Bound`]), and the refusal and WARN line of
//! reaching one.
//!
//! The throttle ([`qftp_store::LoginThrottle`]) says which bound an attempt
//! reached; this module names the setting for the log and the client.

use qftp_proto::ErrorKind;
use qftp_store::Bound;

use crate::config::LoginLimits;
use crate::error::RequestError;
use crate::limits::Refusal;

/// A throttle bound as this server configures it.
pub trait LoginBound: Copy {
    /// The setting in `config.toml` that holds this bound.
    fn setting(self) -> &'static str;

    /// This bound's configured value.
    fn value(self, limits: &LoginLimits) -> u32;

    /// Writes the rate-limited WARN line for `who` reaching this bound.
    fn warn(self, limits: &LoginLimits, who: &str) {
        let value = self.value(limits).to_string();
        refusal(self.setting(), &value, who).warn();
    }

    /// The client's error for an attempt of `who` refused at this bound,
    /// of kind `kind`, whose message starts with `what`; logged as
    /// [`Refusal`] does.
    fn refuse(
        self,
        limits: &LoginLimits,
        who: &str,
        kind: ErrorKind,
        what: impl std::fmt::Display,
    ) -> RequestError {
        let value = self.value(limits).to_string();
        refusal(self.setting(), &value, who).refuse_as(kind, what)
    }
}

impl LoginBound for Bound {
    // A bound this server does not know yet is reported as the pair bound,
    // the narrowest.
    fn setting(self) -> &'static str {
        match self {
            Bound::Address => "login.max_failures_per_address",
            Bound::User => "login.max_failures_per_user",
            _ => "login.max_failures",
        }
    }

    fn value(self, limits: &LoginLimits) -> u32 {
        match self {
            Bound::Address => limits.max_failures_per_address,
            Bound::User => limits.max_failures_per_user,
            _ => limits.max_failures,
        }
    }
}

fn refusal<'a>(setting: &'static str, value: &'a str, who: &'a str) -> Refusal<'a> {
    Refusal {
        setting,
        value,
        who,
    }
}
