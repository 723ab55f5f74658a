//! The qftp programs, thin layers over the libraries in `crates/`; the
//! binaries in `src/bin/` call into the modules here.
//!
//! * [`client`]: the `qftp` command (arguments, the shell, prompts,
//!   progress bars, output, exit codes) on top of `qftp-client`.
//! * [`server`]: the `qftp-server` command (arguments, password prompts,
//!   logging set-up, the admin commands' output) on top of `qftp-server`.
//! * [`man`]: the manual pages of both, made from their command tables.
//!
//! End-to-end tests and examples for qftp live in `tests/` and `examples/`.

pub mod client;
pub mod man;
pub mod server;
