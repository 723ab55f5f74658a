//! The `qftp-server` binary: all of it lives in [`qftp_server::cli`], so
//! this file only hands over to it and returns its exit code.

fn main() -> std::process::ExitCode {
    qftp_server::cli::main()
}
