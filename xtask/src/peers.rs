//! The peers script, which measures existing tools (scp, rsync, ...)
//! on this machine with hyperfine.
//!
//! Its location is never built in: it comes from `--peers-script` or
//! `QFTP_PEERS_SCRIPT`. It is run as `bash SCRIPT PHASE...`; the `local`
//! phase honours `CASES="SCENARIO.ID ..."`, `RUNS` and `GATE_MAX`, writes
//! hyperfine JSON to `RESULTS/SCENARIO.ID.json` and a status row per case to
//! `RESULTS/index-SCENARIO.tsv`, and stops its sshd when it exits, so each
//! invocation stands alone. `RESULTS` is the script's `R` (its top-level
//! assignment), unless `--peers-results` says otherwise. The script has no
//! no-change re-run cases; see [`crate::rerun`] for those.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::process::Guard;
use crate::server::log_files;

/// Time limit of the `install` phase (apt-get and cargo installs).
const INSTALL_LIMIT: Duration = Duration::from_secs(3600);

/// Time limit of the `data` phase.
const DATA_LIMIT: Duration = Duration::from_secs(1800);

/// Time limit of the `setup` phase.
const SETUP_LIMIT: Duration = Duration::from_secs(600);

/// Time limit of one `local` invocation.
const LOCAL_LIMIT: Duration = Duration::from_secs(3600);

/// The commands the loopback cases need; `install` provides them.
const NEEDED: [&str; 5] = ["hyperfine", "ssh", "scp", "rsync", "sshd"];

/// The name of a case in the script: `SCENARIO.ID`, e.g. `big.scp`.
pub fn case(scenario: &str, tool: &str) -> String {
    format!("{scenario}.{tool}")
}

/// One case's result of one invocation.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The hyperfine median, when the case ran and succeeded.
    pub seconds: Option<f64>,
    /// The script's status, e.g. `ok, output verified`.
    pub status: String,
    /// Cores other processes used meanwhile, as the script measured.
    pub foreign_cores: Option<f64>,
}

/// The peers script and where it puts results.
#[derive(Debug)]
pub struct Peers {
    script: PathBuf,
    results: PathBuf,
    logs: PathBuf,
    /// `GATE_MAX`: the longest wait for a quiet machine before each case.
    gate_seconds: u64,
}

impl Peers {
    /// Checks that `script` exists; `results` defaults to the script's `R`.
    pub fn new(
        script: &Path,
        results: Option<&Path>,
        logs: &Path,
        gate_seconds: u64,
    ) -> anyhow::Result<Self> {
        if !script.is_file() {
            bail!("the peers script {} does not exist", script.display());
        }
        let results = match results {
            Some(results) => results.to_owned(),
            None => {
                let text = std::fs::read_to_string(script)
                    .with_context(|| format!("reading {}", script.display()))?;
                crate::rerun::variables(&text)
                    .remove("R")
                    .map(PathBuf::from)
                    .with_context(|| {
                        format!(
                            "no top-level R=DIR (results) in {}; pass --peers-results",
                            script.display()
                        )
                    })?
            }
        };
        Ok(Self {
            script: script.to_owned(),
            results,
            logs: logs.to_owned(),
            gate_seconds,
        })
    }

    /// The script.
    pub fn script(&self) -> &Path {
        &self.script
    }

    /// Runs `install` when forced or a needed command (or one of `extra`)
    /// is missing, then `data` (which keeps existing data sets).
    pub fn prepare(&self, force_install: bool, extra: &[&str]) -> anyhow::Result<()> {
        let needed: Vec<&str> = NEEDED.iter().chain(extra).copied().collect();
        self.install(force_install, &needed)?;
        self.invoke(&["data"], &[], DATA_LIMIT, "peers-data.log")
    }

    /// Runs `install` when forced or one of the commands `needed` is missing.
    pub fn install(&self, force_install: bool, needed: &[&str]) -> anyhow::Result<()> {
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|name| !on_path(name))
            .collect();
        if force_install || !missing.is_empty() {
            if !missing.is_empty() {
                eprintln!(
                    "peers: {} missing; running the install phase (may take minutes)",
                    missing.join(", ")
                );
            }
            self.invoke(&["install"], &[], INSTALL_LIMIT, "peers-install.log")?;
        }
        Ok(())
    }

    /// Runs the `setup` phase: keys, configs and the privilege-separation
    /// directory of its sshd (which it stops again when it exits).
    pub fn setup(&self) -> anyhow::Result<()> {
        self.invoke(&["setup"], &[], SETUP_LIMIT, "peers-setup.log")
    }

    /// Measures `cases` once each (`local` with `CASES` and `RUNS=1`); the
    /// results are read with [`Peers::read`].
    pub fn measure(&self, round: u32, cases: &[String]) -> anyhow::Result<()> {
        for case in cases {
            let json = self.results.join(format!("{case}.json"));
            crate::data::remove(&json)?;
        }
        let gate = self.gate_seconds.to_string();
        let cases = cases.join(" ");
        self.invoke(
            &["local"],
            &[
                ("CASES", cases.as_str()),
                ("RUNS", "1"),
                ("GATE_MAX", gate.as_str()),
            ],
            LOCAL_LIMIT,
            &format!("peers-round-{round}.log"),
        )
    }

    /// The result of `case` from the last [`Peers::measure`].
    pub fn read(&self, case: &str) -> CaseResult {
        let (scenario, id) = case.split_once('.').unwrap_or((case, ""));
        let row = self.index_row(scenario, id);
        let status = row
            .as_ref()
            .and_then(|row| row.get(7).cloned())
            .unwrap_or_else(|| "no result".into());
        let foreign_cores = row
            .as_ref()
            .and_then(|row| row.get(8))
            .and_then(|value| value.parse().ok());
        let median = self.median(case);
        match median {
            Ok(seconds) if status.starts_with("ok") => CaseResult {
                seconds: Some(seconds),
                status,
                foreign_cores,
            },
            Ok(_) => CaseResult {
                seconds: None,
                status,
                foreign_cores,
            },
            Err(error) => CaseResult {
                seconds: None,
                status: format!("{status} ({error:#})"),
                foreign_cores,
            },
        }
    }

    /// Short versions of the tools (`versions-short.txt`: `NAME=VERSION`).
    pub fn versions(&self) -> BTreeMap<String, String> {
        let path = self.results.join("versions-short.txt");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once('='))
            .filter(|(_, version)| !version.trim().is_empty())
            .map(|(name, version)| (name.to_owned(), version.trim().to_owned()))
            .collect()
    }

    fn median(&self, case: &str) -> anyhow::Result<f64> {
        let path = self.results.join(format!("{case}.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        value["results"][0]["median"]
            .as_f64()
            .with_context(|| format!("no results[0].median in {}", path.display()))
    }

    fn index_row(&self, scenario: &str, id: &str) -> Option<Vec<String>> {
        let path = self.results.join(format!("index-{scenario}.tsv"));
        std::fs::read_to_string(path)
            .ok()?
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect::<Vec<_>>())
            .find(|row| row.get(1).is_some_and(|found| found == id))
    }

    /// Runs `bash SCRIPT PHASES` with `environment`, its output in
    /// `logs/LOG`, for at most `limit` (then SIGTERM, which the script
    /// answers by stopping its child and its sshd).
    fn invoke(
        &self,
        phases: &[&str],
        environment: &[(&str, &str)],
        limit: Duration,
        log: &str,
    ) -> anyhow::Result<()> {
        let log = self.logs.join(log);
        let (stdout, stderr) = log_files(&log)?;
        eprintln!(
            "peers: bash {} {} (log {})",
            self.script.display(),
            phases.join(" "),
            log.display()
        );
        let child = Command::new("bash")
            .arg(&self.script)
            .args(phases)
            .envs(environment.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting bash {}", self.script.display()))?;
        let mut guard = Guard::new(child, "the peers script", "TERM");
        let status = guard.wait(limit)?;
        if !status.success() {
            bail!(
                "bash {} {} failed ({status}); see {}",
                self.script.display(),
                phases.join(" "),
                log.display()
            );
        }
        Ok(())
    }
}

/// Whether `name` is an executable on `PATH` (or in /usr/sbin, for sshd).
fn on_path(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .any(|directory| directory.join(name).is_file())
}
