//! [`PgOptions`] and [`ThrottleBounds`]: how a store behaves beyond what
//! the database holds.

use std::time::Duration;

use qftp_store::Bound;

/// How a store behaves beyond what the database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections in the pool.
    pub pool_size: usize,
    /// The most entries (files, directories, links) a user may have;
    /// `None` is no limit.
    pub entry_limit: Option<u64>,
    /// The login throttle's bounds.
    pub throttle: ThrottleBounds,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            pool_size: 16,
            entry_limit: None,
            throttle: ThrottleBounds::default(),
        }
    }
}

/// The throttle's bounds and times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleBounds {
    /// Failures of one address against one user (or against tokens)
    /// before that pair is blocked.
    pub pair: u32,
    /// Failures of one address against anything before it is blocked.
    pub address: u32,
    /// Failures against one user from anywhere before it is blocked (for
    /// addresses it has not logged in from recently).
    pub user: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// How long a block lasts.
    pub block: Duration,
    /// The delay after a first failure; it doubles with each further one.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// How long an address a user logged in from is spared the user bound.
    pub remember_origin: Duration,
}

impl Default for ThrottleBounds {
    fn default() -> ThrottleBounds {
        ThrottleBounds {
            pair: 5,
            address: 20,
            user: 100,
            window: Duration::from_secs(15 * 60),
            block: Duration::from_secs(15 * 60),
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            remember_origin: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl ThrottleBounds {
    /// The failures that block a count of `kind`.
    pub(crate) fn bound(&self, kind: Bound) -> i32 {
        let bound = match kind {
            Bound::Pair => self.pair,
            Bound::Address => self.address,
            _ => self.user,
        };
        i32::try_from(bound).unwrap_or(i32::MAX)
    }

    /// The delay after the `failures`-th failure of a pair.
    pub(crate) fn delay(&self, failures: i32) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}
