//! The `qftp` command: parses the command line and hands it to
//! [`qftp::client::program`], which returns the exit code.

use std::process::ExitCode;

use clap::Parser as _;
use qftp::client::cli::Cli;
use qftp::client::program;

fn main() -> ExitCode {
    let cli = Cli::parse();
    program::init_logging(cli.verbose);
    let verbose = cli.verbose;
    match program::run(cli) {
        Ok(code) => code,
        Err(error) => program::report_error(&error, verbose),
    }
}
