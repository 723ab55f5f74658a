//! Ctrl-C during a command: the progress bars are taken off the terminal
//! ([`super::progress::clear_all`]) before anything is printed, the
//! command is dropped, the connection is closed with
//! [`qftp_client::connection::close_code::INTERRUPTED`] so the server ends
//! the transfers and releases their quota reservations at once, and the
//! program says what was kept and exits with [`super::exit::INTERRUPTED`].
//! While the command runs, the connection follows the local network
//! ([`super::migration`]); at its end `--stats` prints the transport's
//! figures.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::cli::Command;
use super::commands::execute;
use super::exit;
use super::session::Session;

/// Runs `command` on `session` until it ends or Ctrl-C arrives, then
/// closes the connection.
pub async fn execute_until_interrupted(
    session: &mut Session,
    mut command: Command,
) -> anyhow::Result<ExitCode> {
    let moves_files = command.run_args_mut().is_some();
    let stats = command.run_args_mut().is_some_and(|run| run.stats);
    let started = Instant::now();
    let follower = super::migration::follow_network(session.client.clone());
    let finished = tokio::select! {
        result = execute(session, command) => Some(result),
        Ok(()) = tokio::signal::ctrl_c() => None,
    };
    follower.abort();
    match finished {
        Some(result) => {
            if stats {
                print_stats(&session.client.transport_figures(), started.elapsed());
            }
            session.client.close().await;
            result
        }
        None => {
            // First, so that no bar is left between the lines below.
            super::progress::clear_all();
            session.client.close_interrupted().await;
            if moves_files {
                eprintln!(
                    "qftp: interrupted; the parts already moved are kept: run the same command again to resume"
                );
            } else {
                eprintln!("qftp: interrupted");
            }
            Ok(ExitCode::from(exit::INTERRUPTED))
        }
    }
}

/// The `--stats` lines: the transport's figures and the average rates.
fn print_stats(figures: &qftp_client::figures::TransportFigures, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    eprintln!("qftp: transport: {figures}");
    eprintln!(
        "qftp: average over {seconds:.1} s: {:.1} MB/s sent, {:.1} MB/s received",
        figures.sent_bytes as f64 / seconds / 1e6,
        figures.received_bytes as f64 / seconds / 1e6,
    );
}
