//! End-to-end tests and examples for qftp live in `tests/` and `examples/`.

pub mod server;
