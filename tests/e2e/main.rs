//! End-to-end tests: real servers on 127.0.0.1, real `qftp` processes.

mod accounts;
mod jail;
mod protocol;
mod support;
