//! Ctrl-C during a command: the command is dropped (its progress bars
//! clear themselves), the connection is closed with
//! [`qftp_client::connection::close_code::INTERRUPTED`] so the server ends
//! the transfers and releases their quota reservations at once, and the
//! program says what was kept and exits with [`super::exit::INTERRUPTED`].

use std::process::ExitCode;

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
    let finished = tokio::select! {
        result = execute(session, command) => Some(result),
        Ok(()) = tokio::signal::ctrl_c() => None,
    };
    match finished {
        Some(result) => {
            session.client.close().await;
            result
        }
        None => {
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
