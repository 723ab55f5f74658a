//! Workspace tasks for qftp, run as `cargo xtask TASK` (an alias defined in
//! `.cargo/config.toml` for `cargo run --package xtask --release --`).
//!
//! The main task is `bench`: it builds the release binaries, starts a
//! `qftp-server` on loopback, times `qftp put`/`get`/`sync` of generated
//! data sets against `cp` followed by an fsync (the local limit) and against
//! scp, rsync and lftp (first runs measured by the peers script,
//! no-change re-runs by the benchmark against the script's sshd), in
//! alternating rounds of one run, and reports the medians as Markdown and
//! JSON under `target/bench`. Its scenarios over a delayed, lossy link
//! between two network namespaces use the hidden task `nfdelay` as the
//! impairer, and its `mem-ceiling` scenario the hidden task of that name.
//! See `docs/performance.md` for the method and the latest results.
//!
//! The task `test` installs what the tests need and runs them all (see
//! `suite.rs`). The task `dist-check` checks the packaging in `dist/`.
//!
//! The task `stress` runs the reliability suites at full scale (see
//! `docs/reliability.md`).

mod bench;
mod contest_report;
mod data;
mod dist_check;
mod imports;
mod link;
mod link_rate;
mod measure;
mod memceiling;
mod nfdelay;
mod peers;
mod process;
mod report;
mod rerun;
mod server;
mod stress;
mod suite;
mod tcpflow;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Workspace tasks for qftp.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about)]
struct Cli {
    /// The task.
    #[command(subcommand)]
    task: Task,
}

/// The tasks.
#[derive(Debug, Subcommand)]
enum Task {
    /// Measure qftp against cp+fsync and scp/rsync/lftp on loopback (and,
    /// when selected, against scp/qcp over a delayed, lossy link).
    #[command(
        after_help = "Example:\n  QFTP_PEERS_SCRIPT=/path/to/peers.sh cargo xtask bench --rounds 3\n  cargo xtask bench --peers-script /path/to/peers.sh --scenarios sync-10k,resync-10k\n  cargo xtask bench --no-peers --scenarios put-10k --rounds 1\n  QFTP_PEERS_SCRIPT=/path/to/peers.sh cargo xtask bench --scenarios link-plain,link-delay,link-loss,put-1g,mem-ceiling"
    )]
    Bench(bench::BenchArgs),
    /// Delay and drop packets handed to a netfilter queue (used by the
    /// link scenarios of `bench`, inside their network namespaces).
    #[command(hide = true)]
    Nfdelay(nfdelay::NfdelayArgs),
    /// Send bytes from memory over one QUIC stream on loopback with qftp's
    /// transport settings (the `mem-ceiling` scenario of `bench`).
    #[command(hide = true, name = "mem-ceiling")]
    MemCeiling(memceiling::MemCeilingArgs),
    /// A plain TCP flow: a sink that reports the bytes arriving, or a
    /// sender (used by the bottleneck scenarios of `bench`).
    #[command(hide = true)]
    Tcpflow(tcpflow::TcpflowArgs),
    /// Run the reliability suites (fuzz, crash, load, network, attacks) at
    /// full scale and write their table to target/stress.
    #[command(
        after_help = "Example:\n  cargo xtask stress\n  cargo xtask stress --suites crash --crash-rounds 200 --seed 42"
    )]
    Stress(stress::StressArgs),
    /// Install what the tests need if missing (PostgreSQL, SeaweedFS,
    /// tmux), then run `cargo test --workspace --locked` and print the
    /// totals.
    #[command(
        after_help = "Example:\n  cargo xtask test\n  cargo xtask test -- --test e2e cluster\n  cargo xtask test --install-only"
    )]
    Test(suite::TestArgs),
    /// Check that the files of each crate import each other in one
    /// direction only (no import circles).
    Imports(imports::ImportsArgs),
    /// Check the packaging in dist/: systemd-analyze verify of the unit and
    /// a container build, each where the tool is installed.
    #[command(name = "dist-check", after_help = "Example:\n  cargo xtask dist-check")]
    DistCheck(dist_check::DistCheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = process::watch_signals() {
        eprintln!("xtask: warning: cannot watch for Ctrl-C and SIGTERM: {error:#}");
    }
    let result = match cli.task {
        Task::Bench(arguments) => bench::run(&arguments),
        Task::Nfdelay(arguments) => nfdelay::run(&arguments),
        Task::MemCeiling(arguments) => memceiling::run(&arguments),
        Task::Stress(arguments) => stress::run(&arguments),
        Task::Test(arguments) => suite::run(&arguments),
        Task::Tcpflow(arguments) => tcpflow::run(&arguments),
        Task::Imports(arguments) => imports::run(&arguments),
        Task::DistCheck(arguments) => dist_check::run(&arguments),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
