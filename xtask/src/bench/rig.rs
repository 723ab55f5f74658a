//! What the timed runs of the loopback scenarios share: the settings, the
//! paths, the logged-in `qftp` client, the server's home on disk and the
//! peers' no-change re-runs, with the time limit of one run.
//!
//! It holds them and times a run through [`crate::measure`]; the runs
//! themselves are in [`super::qftp_runs`], [`super::copy_runs`] and
//! [`super::rerun_runs`].

use std::path::PathBuf;
use std::time::Duration;

use super::args::BenchArgs;
use super::paths::Paths;
use crate::measure::{self, Sample};
use crate::rerun::Rerun;
use crate::server::BenchClient;

/// Time limit of one timed `qftp`, `cp` or peer run.
pub const RUN_LIMIT: Duration = Duration::from_secs(1800);

/// What the rounds share.
#[derive(Debug)]
pub struct Rig<'a> {
    pub arguments: &'a BenchArgs,
    pub paths: &'a Paths,
    pub client: &'a BenchClient,
    /// The benchmark user's home on the server's disk.
    pub home: PathBuf,
    /// The peers' no-change re-runs, when measured.
    pub rerun: Option<&'a Rerun>,
}

impl Rig<'_> {
    /// Times one run; see [`measure::measure`].
    pub fn measure(
        &self,
        round: u32,
        label: &str,
        prepare: &mut dyn FnMut() -> anyhow::Result<()>,
        timed: &mut dyn FnMut() -> anyhow::Result<Duration>,
    ) -> anyhow::Result<Sample> {
        measure::measure(
            Duration::from_secs(self.arguments.quiet_wait),
            round,
            label,
            prepare,
            timed,
        )
    }
}
