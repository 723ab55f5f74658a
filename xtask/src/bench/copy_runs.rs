//! The local references of the loopback scenarios: a timed `cp -r`
//! followed by `sync -f`, or by an fsync of each file and directory in
//! turn, of every data set some scenario copies in full.
//!
//! The series these samples go into are set up by [`super::loopback`].

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::rig::{RUN_LIMIT, Rig};
use crate::data::{self, DataSet};
use crate::measure::{self, Sample};
use crate::process;
use crate::server;

impl Rig<'_> {
    /// One timed `cp` + `sync -f` (or + fsync of each file) of a data set.
    pub fn copy_sample(
        &self,
        round: u32,
        set: DataSet,
        source: &Path,
        fsync_each: bool,
    ) -> anyhow::Result<Sample> {
        let copy = self.paths.copies.join(set.name());
        let variant = if fsync_each { "fsync-each" } else { "syncfs" };
        let log = self
            .paths
            .logs
            .join(format!("cp-{variant}-{}-round-{round}.log", set.name()));
        let mut prepare = || -> anyhow::Result<()> {
            data::remove(&copy)?;
            measure::flush_file_systems()?;
            data::warm(source)
        };
        let mut timed = || -> anyhow::Result<Duration> {
            let (stdout, stderr) = server::log_files(&log)?;
            let mut command = Command::new("cp");
            command
                .arg("-r")
                .arg(source)
                .arg(&copy)
                .stdout(stdout)
                .stderr(stderr);
            let copied = process::run_ok(&mut command, None, RUN_LIMIT, "cp")
                .with_context(|| format!("see {}", log.display()))?;
            let synced = if fsync_each {
                let start = Instant::now();
                data::fsync_each(&copy)?;
                start.elapsed()
            } else {
                let sync_log = self
                    .paths
                    .logs
                    .join(format!("sync-{}-round-{round}.log", set.name()));
                let (stdout, stderr) = server::log_files(&sync_log)?;
                let mut command = Command::new("sync");
                command.arg("-f").arg(&copy).stdout(stdout).stderr(stderr);
                process::run_ok(&mut command, None, RUN_LIMIT, "sync -f")?.elapsed
            };
            Ok(copied.elapsed + synced)
        };
        let label = format!("cp + {variant} {}", set.name());
        self.measure(round, &label, &mut prepare, &mut timed)
    }
}
