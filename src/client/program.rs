//! The `qftp` program's entry: logging, the async runtime, the dispatch of
//! the parsed command line, and errors turned into one line and an exit
//! code. The commands themselves are in [`super::commands`].

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::CommandFactory as _;
use qftp_client::connection::CLIENT_IDLE_TIMEOUT;

use super::cli::{Cli, Command, KnownHostsCommand};
use super::exit;
use super::interrupt::execute_until_interrupted;
use super::report::error_text;
use super::session::{Dial, connect_saved, forget_host, login, logout};
use super::targets::take_server;

/// How long a server may take to answer the handshake when
/// `--connect-timeout` is not given.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends log lines to stderr: warnings only by default, qftp's own debug
/// lines (transfers, the connection's figures) with `-v`, every library's
/// with `-vv`. `RUST_LOG` overrides all of them.
pub fn init_logging(verbose: u8) {
    let filter = match verbose {
        0 => "warn",
        1 => "warn,qftp=debug,qftp_client=debug,qftp_transport=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error as one line (the chain with `-v`) and picks the exit code.
pub fn report_error(error: &anyhow::Error, verbose: u8) -> ExitCode {
    if error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    eprintln!("qftp: error: {}", error_text(error, verbose > 0));
    ExitCode::from(exit::ERROR)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs the parsed command line and picks the exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dial = Dial {
        idle_timeout: cli
            .idle_timeout
            .map_or(CLIENT_IDLE_TIMEOUT, Duration::from_secs),
        connect_timeout: cli
            .connect_timeout
            .map_or(CONNECT_TIMEOUT, Duration::from_secs),
    };
    match cli.into_command() {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "qftp", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::KnownHosts(KnownHostsCommand::Remove { host }) => forget_host(&host),
        Command::Login(args) => runtime()?.block_on(login(args, dial)),
        Command::Logout => runtime()?.block_on(logout(dial, None)),
        Command::Shell => {
            let runtime = runtime()?;
            let mut session = runtime.block_on(connect_saved(dial, None))?;
            let code = super::shell::run(&runtime, &mut session);
            runtime.block_on(session.client.close());
            code
        }
        mut command => {
            // Before any connection: a malformed address is a local error.
            let server = take_server(&mut command)?;
            let runtime = runtime()?;
            runtime.block_on(async {
                let mut session = connect_saved(dial, server.as_deref()).await?;
                execute_until_interrupted(&mut session, command).await
            })
        }
    }
}
