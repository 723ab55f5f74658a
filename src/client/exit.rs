//! The exit codes of `qftp`, one place for the numbers that `--help`
//! documents and scripts test.

use std::process::ExitCode;

/// Everything asked was done.
pub const OK: u8 = 0;
/// An error: nothing, or not everything, could be done, and the error says why.
pub const ERROR: u8 = 1;
/// The command line could not be parsed (clap's own code).
pub const USAGE: u8 = 2;
/// Some files of a batch failed or were refused; the others arrived.
pub const PARTIAL: u8 = 3;
/// Interrupted by Ctrl-C (SIGINT); partial files are kept for a resume.
pub const INTERRUPTED: u8 = 130;

/// The EXIT STATUS section of the long help (and so of the man page).
pub const EXIT_STATUS_HELP: &str = "\
EXIT STATUS:
  0    success
  1    error (the message says what failed)
  2    usage error (bad arguments)
  3    partial failure: some files failed or were refused, the others arrived
  130  interrupted (Ctrl-C); partial files are kept, rerun the command to resume";

/// The code for a batch that ended with `failures` files not done.
pub fn for_failures(failures: usize) -> ExitCode {
    ExitCode::from(if failures == 0 { OK } else { PARTIAL })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_every_code() {
        for code in [OK, ERROR, USAGE, PARTIAL, INTERRUPTED] {
            assert!(EXIT_STATUS_HELP.contains(&format!("\n  {code} ")));
        }
    }
}
