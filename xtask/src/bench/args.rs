//! The command line of `cargo xtask bench`, and which peer tools it asks
//! for in each scenario.
//!
//! Only what the user chose; where the benchmark keeps its files is
//! [`super::paths`]'s.

use std::path::PathBuf;

use clap::Args;

use super::scenario::{Kind, Scenario};

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Rounds; each runs every scenario once with qftp, cp and the peers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rounds: u32,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_values = ["put-1g", "get-1g", "put-10k"]
    )]
    pub scenarios: Vec<Scenario>,
    /// The peers script (peers.sh), which measures scp and rsync.
    #[arg(long, env = "QFTP_PEERS_SCRIPT", value_name = "PATH")]
    pub peers_script: Option<PathBuf>,
    /// Measure qftp and cp only (even when a peers script is given).
    #[arg(long)]
    pub no_peers: bool,
    /// Peer tools for the put scenarios: case ids of the peers script,
    /// comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["scp".to_owned(), "rsync".to_owned()])]
    pub peer_tools: Vec<String>,
    /// Peer tools for the sync scenarios: case ids of the peers script for
    /// the first runs; the no-change re-runs know `rsync` and `lftp`.
    #[arg(long, value_delimiter = ',', default_values_t = ["rsync".to_owned(), "lftp".to_owned()])]
    pub sync_peer_tools: Vec<String>,
    /// Where the peers script writes its results [default: its `R=`].
    #[arg(long, env = "QFTP_PEERS_RESULTS", value_name = "DIR")]
    pub peers_results: Option<PathBuf>,
    /// Run the peers script's install phase even when its tools are present.
    #[arg(long)]
    pub peers_install: bool,
    /// Longest wait, in seconds, for other people's processes to go idle
    /// before each timed run (also the peers script's GATE_MAX).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub quiet_wait: u64,
    /// Use the release binaries already in the target directory instead of
    /// building them (e.g. while the working tree does not compile).
    #[arg(long)]
    pub no_build: bool,
    /// Time limit, in seconds, of each run on the lossy link (`link-loss`);
    /// a run stopped there is reported as a time-out.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub link_time_limit: u64,
    /// Files in flight at once (`qftp -j`) in the tree scenarios.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
}

impl BenchArgs {
    /// The peer tools of a scenario.
    pub fn peer_tools_for(&self, scenario: Scenario) -> &[String] {
        match scenario.kind() {
            Kind::Put | Kind::Get => &self.peer_tools,
            Kind::Sync | Kind::Resync => &self.sync_peer_tools,
            // Their peers are their own (crate::link) or none.
            Kind::Link | Kind::Memory => &[],
        }
    }
}
