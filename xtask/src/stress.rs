//! `cargo xtask stress`: the long version of the reliability suites.
//!
//! CI runs every suite at a small scale; this task runs the same code at
//! full scale: the fuzz targets for many iterations, then the end-to-end
//! modules `crash`, `load`, `network` and `attacks` (release build, one
//! test at a time, so the load figures are not disturbed by other tests),
//! with their scale raised through the `QFTP_STRESS_*` variables they read.
//! Each scenario prints one line `reliability: {json}`; those lines become
//! the table in `target/stress/results.md` (and `results.json`), the source
//! of `docs/reliability.md`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

use crate::process;

/// Suites of the stress run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// The cargo-fuzz targets under `fuzz/`.
    Fuzz,
    /// SIGKILL of clients and of the server during transfers, then reruns.
    Crash,
    /// Many concurrent clients, and many idle connections.
    Load,
    /// Transfers through an impaired UDP relay.
    Network,
    /// Hostile clients.
    Attacks,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Fuzz => "fuzz",
            Suite::Crash => "crash",
            Suite::Load => "load",
            Suite::Network => "network",
            Suite::Attacks => "attacks",
        }
    }
}

/// Options of `cargo xtask stress`.
#[derive(Debug, clap::Args)]
pub struct StressArgs {
    /// Suites to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["fuzz", "crash", "load", "network", "attacks"])]
    suites: Vec<Suite>,
    /// Iterations of each fuzz target.
    #[arg(long, default_value_t = 1_000_000)]
    fuzz_runs: u64,
    /// Rounds of the client crash loop.
    #[arg(long, default_value_t = 50)]
    crash_rounds: u32,
    /// Rounds of the server crash loop.
    #[arg(long, default_value_t = 50)]
    server_crash_rounds: u32,
    /// Concurrent clients of the load suite.
    #[arg(long, default_value_t = 100)]
    load_clients: u32,
    /// Files each load client uploads and downloads.
    #[arg(long, default_value_t = 20)]
    load_files: u32,
    /// Idle authenticated connections held at once.
    #[arg(long, default_value_t = 1000)]
    idle_connections: u32,
    /// Size in MiB of each transfer through the impaired relay.
    #[arg(long, default_value_t = 32)]
    network_mib: u32,
    /// Rounds of the attack tests.
    #[arg(long, default_value_t = 10)]
    attack_rounds: u32,
    /// Seed of the crash loops' random choices (default: a new one).
    #[arg(long)]
    seed: Option<u64>,
    /// Longest run of one suite, in minutes.
    #[arg(long, default_value_t = 90)]
    suite_limit_minutes: u64,
}

/// One `reliability:` line.
#[derive(Debug, Clone)]
struct Row {
    suite: Suite,
    fields: Map<String, Value>,
}

impl Row {
    fn scenario(&self) -> &str {
        self.fields
            .get("scenario")
            .and_then(Value::as_str)
            .unwrap_or("?")
    }

    fn number(&self, key: &str) -> u64 {
        self.fields.get(key).and_then(Value::as_u64).unwrap_or(0)
    }
}

/// Runs the chosen suites and writes the report.
pub fn run(arguments: &StressArgs) -> anyhow::Result<()> {
    let root = workspace_root()?;
    let out = root.join("target/stress");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let started = crate::report::utc_now();
    let mut rows = Vec::new();
    let mut broken = Vec::new();
    for &suite in &arguments.suites {
        let log = out.join(format!("{}.log", suite.name()));
        eprintln!("== {} (log: {})", suite.name(), log.display());
        let mut command = command_for(suite, arguments, &root);
        let succeeded = run_logged(&mut command, &log, arguments.suite_limit_minutes, suite)?;
        let found = reliability_lines(&log, suite)?;
        if !succeeded {
            broken.push(format!(
                "{}: the suite failed (see {})",
                suite.name(),
                log.display()
            ));
        }
        if found.is_empty() {
            broken.push(format!("{}: no scenario reported a result", suite.name()));
        }
        for row in &found {
            eprintln!("   {}", describe(row));
        }
        rows.extend(found);
    }
    let markdown = render(&rows, &started, arguments);
    std::fs::write(out.join("results.md"), &markdown)?;
    let json: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut fields = row.fields.clone();
            fields.insert("suite".into(), Value::from(row.suite.name()));
            Value::Object(fields)
        })
        .collect();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("{markdown}");
    eprintln!("report: {}", out.join("results.md").display());
    let lost: u64 = rows.iter().map(|row| row.number("data_lost")).sum();
    let failures: u64 = rows.iter().map(|row| row.number("failures")).sum();
    if !broken.is_empty() || lost > 0 || failures > 0 {
        bail!(
            "{failures} failed rounds, {lost} files lost{}{}",
            if broken.is_empty() { "" } else { "; " },
            broken.join("; ")
        );
    }
    Ok(())
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .context("the workspace root above xtask/")
}

/// The command that runs one suite at full scale.
fn command_for(suite: Suite, arguments: &StressArgs, root: &Path) -> Command {
    if suite == Suite::Fuzz {
        let mut command = Command::new("bash");
        command
            .arg(root.join("fuzz/run"))
            .arg(arguments.fuzz_runs.to_string())
            .current_dir(root);
        return command;
    }
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["test", "--release", "--test", "e2e", "--"])
        .arg(format!("{}::", suite.name()))
        .args(["--test-threads=1", "--nocapture"])
        .current_dir(root);
    for (name, value) in scale(arguments) {
        command.env(name, value);
    }
    if let Some(seed) = arguments.seed {
        command.env("QFTP_STRESS_SEED", seed.to_string());
    }
    command
}

/// The environment that sets the end-to-end suites' scale.
fn scale(arguments: &StressArgs) -> Vec<(&'static str, String)> {
    vec![
        (
            "QFTP_STRESS_CRASH_ROUNDS",
            arguments.crash_rounds.to_string(),
        ),
        (
            "QFTP_STRESS_SERVER_CRASH_ROUNDS",
            arguments.server_crash_rounds.to_string(),
        ),
        (
            "QFTP_STRESS_LOAD_CLIENTS",
            arguments.load_clients.to_string(),
        ),
        ("QFTP_STRESS_LOAD_FILES", arguments.load_files.to_string()),
        (
            "QFTP_STRESS_IDLE_CONNECTIONS",
            arguments.idle_connections.to_string(),
        ),
        ("QFTP_STRESS_NETWORK_MIB", arguments.network_mib.to_string()),
        (
            "QFTP_STRESS_ATTACK_ROUNDS",
            arguments.attack_rounds.to_string(),
        ),
    ]
}

/// Runs `command` with its output in `log`; whether it exited successfully.
fn run_logged(
    command: &mut Command,
    log: &Path,
    limit_minutes: u64,
    suite: Suite,
) -> anyhow::Result<bool> {
    let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file));
    let outcome = process::run(
        command,
        None,
        Duration::from_secs(limit_minutes * 60),
        suite.name(),
    );
    match outcome {
        Ok(outcome) => {
            eprintln!(
                "   {} finished in {:.0} s: {}",
                suite.name(),
                outcome.elapsed.as_secs_f64(),
                outcome.status
            );
            Ok(outcome.status.success())
        }
        Err(error) => {
            eprintln!("   {}: {error:#}", suite.name());
            Ok(false)
        }
    }
}

/// The `reliability:` lines of a log.
fn reliability_lines(log: &Path, suite: Suite) -> anyhow::Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut rows = Vec::new();
    for line in text.lines() {
        let Some(json) = line.split_once("reliability:").map(|(_, rest)| rest.trim()) else {
            continue;
        };
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(fields)) => rows.push(Row { suite, fields }),
            _ => eprintln!("   ignoring a malformed result line: {line}"),
        }
    }
    Ok(rows)
}

fn describe(row: &Row) -> String {
    format!(
        "{}: {} rounds, {} failures, {} lost",
        row.scenario(),
        row.number("rounds"),
        row.number("failures"),
        row.number("data_lost")
    )
}

/// How to rerun one suite at the scale of this run.
fn rerun_hint(suite: Suite, arguments: &StressArgs) -> String {
    let flag = |name: &str, value: String| format!("--{name} {value}");
    let option = match suite {
        Suite::Fuzz => flag("fuzz-runs", arguments.fuzz_runs.to_string()),
        Suite::Crash => format!(
            "{} {}",
            flag("crash-rounds", arguments.crash_rounds.to_string()),
            flag(
                "server-crash-rounds",
                arguments.server_crash_rounds.to_string()
            )
        ),
        Suite::Load => format!(
            "{} {} {}",
            flag("load-clients", arguments.load_clients.to_string()),
            flag("load-files", arguments.load_files.to_string()),
            flag("idle-connections", arguments.idle_connections.to_string())
        ),
        Suite::Network => flag("network-mib", arguments.network_mib.to_string()),
        Suite::Attacks => flag("attack-rounds", arguments.attack_rounds.to_string()),
    };
    format!("`cargo xtask stress --suites {} {option}`", suite.name())
}

/// The Markdown table of a run.
fn render(rows: &[Row], started: &str, arguments: &StressArgs) -> String {
    let mut text = format!(
        "Stress run started {started}.\n\n| scenario | rounds | failures | data lost | figures | rerun |\n|---|---:|---:|---:|---|---|\n"
    );
    for row in rows {
        let figures: Vec<String> = row
            .fields
            .iter()
            .filter(|(key, _)| {
                !matches!(
                    key.as_str(),
                    "scenario" | "rounds" | "failures" | "data_lost"
                )
            })
            .map(|(key, value)| format!("{key} {value}"))
            .collect();
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.scenario(),
            row.number("rounds"),
            row.number("failures"),
            row.number("data_lost"),
            if figures.is_empty() {
                "–".to_owned()
            } else {
                figures.join(", ")
            },
            rerun_hint(row.suite, arguments)
        ));
    }
    text
}
