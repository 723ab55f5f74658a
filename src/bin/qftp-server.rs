//! The `qftp-server` program: everything it does lives in [`qftp::server`];
//! this file only runs it and turns its outcome into an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    match qftp::server::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("qftp-server: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
