//! What the link scenarios need from the benchmark: rounds, waits and
//! limits, the binaries to run, the source file, the work and log
//! directories, and the peers over ssh (or why there are none).
//!
//! The benchmark fills it in ([`crate::bench`]); nothing here runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::peers::Peers;

/// What the link scenarios need from the benchmark.
#[derive(Debug)]
pub struct Settings<'a> {
    /// Rounds; each runs every tool once.
    pub rounds: u32,
    /// Longest wait for a quiet machine before each run.
    pub quiet_wait: Duration,
    /// Time limit of each run on the lossy link.
    pub lossy_limit: Duration,
    /// The benchmark's copies of `qftp`, `qftp-server` and `xtask`.
    pub binaries: &'a Path,
    /// The 256 MiB source file.
    pub source: &'a Path,
    /// The link scenarios' own directory (server root, peer destinations).
    pub work: &'a Path,
    /// Where the processes' output goes.
    pub logs: &'a Path,
    /// The peers over ssh, or why there are none.
    pub peers: Result<Peers, String>,
}

impl Settings<'_> {
    /// The known-hosts file of the link's ssh clients (the script's own stays untouched).
    pub fn known_hosts(&self) -> PathBuf {
        self.work.join("known_hosts")
    }
}
