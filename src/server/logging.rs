//! Where `qftp-server` logs go and how they look: standard error or a log
//! file, plain text or one JSON object per line, filtered by `-v` or
//! `RUST_LOG`. What is logged is the library's business (its audit lines
//! are `qftp_server::audit`'s).
//!
//! Colours are used only when the lines go to a terminal: a log file, the
//! journal or a pipe gets no escape codes.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use qftp_server::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// How and where to log.
#[derive(Debug, Clone)]
pub(crate) struct LogOptions {
    /// Debug lines as well (`-v`); otherwise `RUST_LOG`, default info.
    pub(crate) verbose: bool,
    /// Text or JSON; `None` means text.
    pub(crate) format: Option<LogFormat>,
    /// A file to append to instead of standard error.
    pub(crate) file: Option<PathBuf>,
}

/// Installs the process's subscriber.
pub(crate) fn init(options: &LogOptions) -> Result<()> {
    let filter = if options.verbose {
        EnvFilter::new("debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A subscriber already installed (there is none in the program) is fine.
    match (&options.file, options.format.unwrap_or_default()) {
        (Some(path), format) => {
            let file = Arc::new(open_log_file(path)?);
            match format {
                LogFormat::Json => {
                    let _ = builder.json().with_writer(file).try_init();
                }
                LogFormat::Text => {
                    let _ = builder.with_ansi(false).with_writer(file).try_init();
                }
            }
        }
        (None, LogFormat::Json) => {
            let _ = builder.json().with_writer(io::stderr).try_init();
        }
        (None, LogFormat::Text) => {
            let ansi = io::stderr().is_terminal();
            let _ = builder.with_ansi(ansi).with_writer(io::stderr).try_init();
        }
    }
    Ok(())
}

/// Opens `path` for appending, creating it readable by its owner only.
fn open_log_file(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))
}
