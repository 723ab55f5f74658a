//! The `qftp` program's entry: logging, the async runtime, the dispatch of
//! the parsed command line, and errors turned into one line and an exit
//! code. The commands themselves are in [`super::commands`].

use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;
use qftp_client::connection::CLIENT_IDLE_TIMEOUT;

use super::cli::{Cli, Command};
use super::commands::execute;
use super::session::{connect_saved, login, logout};

/// Sends log lines to stderr: debug with `-v`, else warnings only
/// (`RUST_LOG` overrides both).
pub fn init_logging(verbose: bool) {
    let filter = if verbose { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error as one line (the chain with `-v`) and picks the exit code.
pub fn report_error(error: &anyhow::Error, verbose: bool) -> ExitCode {
    if error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    if verbose {
        eprintln!("qftp: error: {error:#}");
    } else {
        eprintln!("qftp: error: {error}");
    }
    ExitCode::FAILURE
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs the parsed command line and picks the exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let idle_timeout = cli
        .idle_timeout
        .map_or(CLIENT_IDLE_TIMEOUT, std::time::Duration::from_secs);
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "qftp", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Login(args) => runtime()?.block_on(login(args, idle_timeout)),
        Command::Logout => runtime()?.block_on(logout(idle_timeout)),
        Command::Shell => {
            let runtime = runtime()?;
            let mut session = runtime.block_on(connect_saved(idle_timeout))?;
            let code = super::shell::run(&runtime, &mut session);
            runtime.block_on(session.client.close());
            code
        }
        command => {
            let runtime = runtime()?;
            runtime.block_on(async {
                let mut session = connect_saved(idle_timeout).await?;
                let result = execute(&mut session, command).await;
                session.client.close().await;
                result
            })
        }
    }
}
