//! The `qftp-server` program: the command line over the `qftp-server`
//! library.
//!
//! [`run`] parses the arguments ([`cli`]) and runs one subcommand
//! ([`commands`], which sets up logging with [`logging`]), which asks for passwords
//! ([`password`]) and prints what the library did. The rules about users,
//! certificates, settings and serving are the library's
//! (`qftp_server::admin`, `qftp_server::server`); nothing here knows them.

mod cli;
mod commands;
mod logging;
mod password;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};

pub use cli::EXIT_STATUS_HELP;

/// The command table of `qftp-server` (for its manual pages).
pub fn command() -> clap::Command {
    cli::Cli::command()
}

/// Runs `qftp-server` with the process's arguments: success, or the error
/// for the caller to print as one line.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = cli::Cli::parse();
    commands::run(cli)?;
    Ok(ExitCode::SUCCESS)
}
