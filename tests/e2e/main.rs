//! End-to-end tests: real servers on 127.0.0.1, real `qftp` processes.

mod accounts;
mod attacks;
mod crash;
mod habits_addr;
mod habits_ls;
mod habits_paths;
mod hardening_links;
mod hardening_login;
mod hardening_quota;
mod hardening_resources;
mod hostile_server;
mod integrity;
mod jail;
mod load;
mod migration;
mod navigation;
mod network;
mod protocol;
mod quota;
mod relay;
mod service;
mod support;
mod sync;
mod transfers;
