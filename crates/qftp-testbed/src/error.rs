//! [`TestbedError`]: why a server could not be started.

use std::path::PathBuf;
use std::time::Duration;

/// A test server could not be started or prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestbedError {
    /// A program the server needs is not installed.
    #[error("{program} is not installed; install it with: {install}")]
    Missing {
        /// The program looked for.
        program: String,
        /// The command that installs it (`cargo xtask test` runs it).
        install: String,
    },
    /// A command failed.
    #[error("{command} failed: {output}")]
    Command {
        /// The command, for the message.
        command: String,
        /// What it printed.
        output: String,
    },
    /// The server exited before it was ready.
    #[error("{server} exited while starting: {log}")]
    Exited {
        /// Which server.
        server: String,
        /// The end of its log.
        log: String,
    },
    /// The server was not ready within the bound.
    #[error("{server} was not ready within {bound:?}")]
    NotReady {
        /// Which server.
        server: String,
        /// How long was waited.
        bound: Duration,
    },
    /// Preparing a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl TestbedError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TestbedError {
        let path = path.into();
        move |source| TestbedError::Io { path, source }
    }
}
