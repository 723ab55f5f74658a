//! [`ConnectionLimit`]: how many connections a server serves at once
//! (`max_connections`), a bound that a reload may raise or lower while
//! connections are open.
//!
//! Lowering the bound closes nothing: connections already served keep
//! their place, and new ones are refused until fewer than the new bound
//! are open. This module accepts no connection; the listener
//! ([`crate::server`]) asks it before each one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bound on connections served at once, and how many are served now.
#[derive(Debug)]
pub struct ConnectionLimit {
    counts: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    limit: AtomicUsize,
    open: AtomicUsize,
}

/// One connection's place under the limit, given back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    counts: Arc<Counts>,
}

impl ConnectionLimit {
    /// A bound of `limit` connections, none open.
    pub fn new(limit: usize) -> Self {
        Self {
            counts: Arc::new(Counts {
                limit: AtomicUsize::new(limit),
                open: AtomicUsize::new(0),
            }),
        }
    }

    /// A place for one more connection, or `None` when `limit` are open.
    pub fn try_admit(&self) -> Option<ConnectionPermit> {
        let limit = self.counts.limit.load(Ordering::Acquire);
        self.counts
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            })
            .ok()?;
        Some(ConnectionPermit {
            counts: Arc::clone(&self.counts),
        })
    }

    /// Changes the bound for the connections that arrive from now on.
    pub fn set_limit(&self, limit: usize) {
        self.counts.limit.store(limit, Ordering::Release);
    }

    /// The bound in force.
    pub fn limit(&self) -> usize {
        self.counts.limit.load(Ordering::Acquire)
    }

    /// How many connections hold a place now.
    pub fn open(&self) -> usize {
        self.counts.open.load(Ordering::Acquire)
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.counts.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_admits_up_to_its_bound_and_frees_places() {
        let limit = ConnectionLimit::new(1);
        let first = limit.try_admit().expect("one place");
        assert!(limit.try_admit().is_none());
        drop(first);
        assert_eq!(limit.open(), 0);
        assert!(limit.try_admit().is_some());
    }

    #[test]
    fn raising_the_bound_admits_more_and_lowering_closes_nothing() {
        let limit = ConnectionLimit::new(1);
        let first = limit.try_admit().unwrap();
        limit.set_limit(3);
        let second = limit.try_admit().unwrap();
        let third = limit.try_admit().unwrap();
        assert!(limit.try_admit().is_none());
        limit.set_limit(1);
        assert_eq!(limit.open(), 3, "lowering the bound closes nothing");
        drop(first);
        drop(second);
        assert!(limit.try_admit().is_none(), "one is still open");
        drop(third);
        assert!(limit.try_admit().is_some());
        assert_eq!(limit.limit(), 1);
    }
}
