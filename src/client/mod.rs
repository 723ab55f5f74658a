//! The `qftp` program, on top of the [`qftp_client`] library: everything
//! that belongs to a terminal and not to a library.
//!
//! * [`cli`]: the command table (clap), shared by the command line and the
//!   shell.
//! * [`program`]: the entry called by `src/bin/qftp.rs`: logging, the
//!   runtime, dispatch, errors as one line and an exit code.
//! * [`session`]: login, logout and connecting with the saved session.
//! * [`prompt`]: the password and certificate questions.
//! * [`commands`]: running one command on a connected session.
//! * [`shell`]: the interactive prompt; [`shell_commands`]: its command
//!   table; [`local`]: its local commands (`lcd`, `lls`, `lpwd`, `!CMD`);
//!   [`completion`]: Tab completion of commands and paths.
//! * [`progress`]: indicatif bars, a [`qftp_client::transfer::TransferObserver`];
//!   [`bar_layout`]: how their lines fit the terminal's width.
//! * [`ls`]: the `ls` command (several paths, `-R`, `--json`);
//!   [`listing`]: how it prints entries.
//! * [`exit`]: the exit codes; [`report`]: how an error reads.
//! * [`targets`]: which server a command names (`HOST:PATH` arguments).
//! * [`interrupt`]: Ctrl-C during a command; [`migration`]: following
//!   the local network during one (SIGUSR1 too).
//!
//! Files import each other in one direction: `program` → `shell` →
//! `commands` → `ls` → `session` → `prompt`, with `cli`, `progress` → `bar_layout`, `listing`, `exit`
//! and `report` below them all (`program` → `targets`).

pub mod bar_layout;
pub mod cli;
pub mod commands;
pub mod completion;
pub mod exit;
pub mod interrupt;
pub mod listing;
pub mod local;
pub mod ls;
pub mod migration;
pub mod program;
pub mod progress;
pub mod prompt;
pub mod report;
pub mod session;
pub mod shell;
pub mod shell_commands;
pub mod targets;
