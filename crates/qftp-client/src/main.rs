//! The `qftp` command; everything lives in [`qftp_client::cli`].

fn main() -> std::process::ExitCode {
    qftp_client::cli::main()
}
