//! The short commands that set up and tear down the link (`ip`,
//! `iptables`, `sshd -t`), run with a time limit and their output appended
//! to `link-setup.log`, and where to find the programs.
//!
//! It runs single commands; what they build is [`super::namespaces`]',
//! [`super::impairer`]'s and [`super::sshd`]'s.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::process;

/// Time limit of `ip`, `iptables` and similar commands.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// How long the sshd and the impairers may take to get ready.
pub const READY_LIMIT: Duration = Duration::from_secs(20);

/// `name` in this process's PATH, /usr/sbin or `extra`.
pub fn find_program(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .chain(extra.iter().cloned())
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}

/// The iptables of the link rules: the legacy one where it exists (this
/// kernel's netfilter tables are driven by it), else `iptables`.
pub fn iptables() -> &'static str {
    if find_program("iptables-legacy", &[]).is_some() {
        "iptables-legacy"
    } else {
        "iptables"
    }
}

/// Runs a short set-up command (`ip`, `iptables`), failing with its output.
pub fn set_up(command: &mut Command, label: &str, logs: &Path) -> anyhow::Result<()> {
    run_logged(command, label, logs, false)
}

/// Runs a clean-up command: also after Ctrl-C, when [`set_up`] refuses.
pub fn cleanup(command: &mut Command, label: &str, logs: &Path) -> anyhow::Result<()> {
    run_logged(command, label, logs, true)
}

/// Runs `command` with its output appended to `link-setup.log`; a clean-up
/// (`cleaning`) runs even after an interruption.
fn run_logged(
    command: &mut Command,
    label: &str,
    logs: &Path,
    cleaning: bool,
) -> anyhow::Result<()> {
    let log = logs.join("link-setup.log");
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let copy = file.try_clone().context("duplicating a file handle")?;
    command.stdout(file).stderr(copy);
    let result = if cleaning {
        process::run_cleanup(command, COMMAND_LIMIT, label)
    } else {
        process::run_ok(command, None, COMMAND_LIMIT, label).map(|_| ())
    };
    result.with_context(|| format!("see {}", log.display()))
}
