//! Where the benchmark keeps its files: the workspace, the release
//! binaries and the benchmark's copies of them, and its directories under
//! `target/bench` (data sets, logs, server root, destinations).
//!
//! It only names the places; creating and clearing them is up to the steps
//! that use them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Where things live.
#[derive(Debug)]
pub struct Paths {
    pub workspace: PathBuf,
    /// Where cargo puts the release binaries (shared with other builds).
    pub binaries: PathBuf,
    /// The benchmark's private copies of them, run for the whole benchmark.
    pub snapshot: PathBuf,
    pub bench: PathBuf,
    pub data: PathBuf,
    pub logs: PathBuf,
    pub server: PathBuf,
    pub downloads: PathBuf,
    pub copies: PathBuf,
    /// Destinations of the peers' no-change re-runs.
    pub peer_copies: PathBuf,
}

impl Paths {
    pub fn find() -> anyhow::Result<Self> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("the workspace directory")?
            .to_owned();
        // This program runs as TARGET/release/xtask.
        let executable = std::env::current_exe().context("the path of this program")?;
        let target = executable
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| workspace.join("target"), Path::to_owned);
        let bench = target.join("bench");
        Ok(Self {
            binaries: target.join("release"),
            snapshot: bench.join("bin"),
            data: bench.join("data"),
            logs: bench.join("logs"),
            server: bench.join("server"),
            downloads: bench.join("downloads"),
            copies: bench.join("copies"),
            peer_copies: bench.join("peer-copies"),
            workspace,
            bench,
        })
    }
}
