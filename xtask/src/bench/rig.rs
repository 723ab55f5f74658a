//! What the timed runs of the loopback scenarios share: the settings, the
//! paths, the logged-in `qftp` client, the server's home on disk and the
//! peers' no-change re-runs, with the time limit of one run.
//!
//! It holds them and times a run through [`crate::measure`]; the runs
//! themselves are in [`super::qftp_runs`], [`super::copy_runs`] and
//! [`super::rerun_runs`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::args::BenchArgs;
use super::paths::Paths;
use crate::data::DataSet;
use crate::measure::memory::{self, Matcher, Watcher};
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
    /// The server's process id, whose peak memory is read around a run.
    pub server_pid: u32,
    /// Peak memory (KiB) seen in each round, by scenario and process
    /// (e.g. `qftp client`), for the scenarios that report it.
    pub memory: RefCell<BTreeMap<(String, String), Vec<u64>>>,
}

/// Whether a scenario of `set` reports the peak memory of both ends: the
/// tree of 100,000 files, whose listings are the largest.
pub fn reports_memory(set: DataSet) -> bool {
    set == DataSet::Tiny
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

    /// Times one run like [`Rig::measure`] while watching the peak memory
    /// of its two ends: `local` selects the client-side process, `remote`
    /// the server-side one (none: the qftp server, read by its pid). The
    /// peaks of the last attempt are kept under `label`.
    pub fn measure_with_memory(
        &self,
        round: u32,
        label: &str,
        prepare: &mut dyn FnMut() -> anyhow::Result<()>,
        timed: &mut dyn FnMut() -> anyhow::Result<Duration>,
        watch: Option<(Matcher, Option<Matcher>)>,
    ) -> anyhow::Result<Sample> {
        let Some((local, remote)) = watch else {
            return self.measure(round, label, prepare, timed);
        };
        let peaks = RefCell::new((None, None));
        let mut watched = || -> anyhow::Result<Duration> {
            let _ = memory::reset_peak(self.server_pid);
            let local_watch = Watcher::start(Arc::clone(&local));
            let remote_watch = remote
                .as_ref()
                .map(|remote| Watcher::start(Arc::clone(remote)));
            let elapsed = timed();
            let local_peak = local_watch.stop();
            let remote_peak = match remote_watch {
                Some(watch) => watch.stop(),
                None => memory::peak_kib(self.server_pid),
            };
            *peaks.borrow_mut() = (local_peak, remote_peak);
            elapsed
        };
        let sample = self.measure(round, label, prepare, &mut watched)?;
        let (local_peak, remote_peak) = *peaks.borrow();
        let mut memory = self.memory.borrow_mut();
        for (end, peak) in [("client", local_peak), ("server", remote_peak)] {
            if let Some(peak) = peak {
                memory
                    .entry((label.to_owned(), end.to_owned()))
                    .or_default()
                    .push(peak);
            }
        }
        Ok(sample)
    }
}
