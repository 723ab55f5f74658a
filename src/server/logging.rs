//! Where `qftp-server` logs go: standard error, filtered by `-v` or
//! `RUST_LOG`. What is logged is the library's business.

use std::io;

use tracing_subscriber::EnvFilter;

/// Logs to standard error: debug with `-v`, else `RUST_LOG`, else info.
pub(crate) fn init(verbose: bool) {
    let filter = if verbose {
        EnvFilter::new("debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
    };
    // A subscriber already installed (there is none in the program) is fine.
    let _ = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(filter)
        .try_init();
}
