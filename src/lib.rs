//! The qftp programs, thin layers over the libraries in `crates/`; the
//! binaries in `src/bin/` call into the modules here.
//!
//! * [`client`]: the `qftp` command (arguments, the shell, prompts,
//!   progress bars, output, exit codes) on top of `qftp-client`.
//!
//! End-to-end tests and examples for qftp live in `tests/` and `examples/`.

pub mod client;
