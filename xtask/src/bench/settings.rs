//! What the report records about how the benchmark ran: the scenarios and
//! arguments chosen, the binaries' hashes, the limits of the measurement
//! and when it finished.
//!
//! Only the record; the report's layout is [`crate::report`]'s.

use std::collections::BTreeMap;

use super::args::BenchArgs;
use super::scenario::Scenario;
use crate::measure::{self, cpu};

/// The settings block of the report.
pub fn settings(
    arguments: &BenchArgs,
    scenarios: &[Scenario],
    binaries: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let mut settings = BTreeMap::new();
    let mut setting = |key: &str, value: serde_json::Value| {
        settings.insert(key.to_owned(), value);
    };
    setting("scenarios", serde_json::to_value(scenarios)?);
    setting("jobs", arguments.jobs.into());
    setting("built", (!arguments.no_build).into());
    setting("binaries", serde_json::to_value(binaries)?);
    setting("attempts_at_most", measure::ATTEMPTS.into());
    setting("quiet_below_cores", cpu::QUIET_CORES.into());
    setting("repeat_above_cores", cpu::RETRY_CORES.into());
    setting("quiet_wait_seconds", arguments.quiet_wait.into());
    setting("link_time_limit_seconds", arguments.link_time_limit.into());
    setting(
        "peers_script",
        arguments
            .peers_script
            .as_ref()
            .map(|path| path.display().to_string())
            .into(),
    );
    setting("peers_runs_per_round", 1.into());
    setting("peers_tools", serde_json::to_value(&arguments.peer_tools)?);
    setting(
        "sync_peers_tools",
        serde_json::to_value(&arguments.sync_peer_tools)?,
    );
    setting("finished", crate::report::utc_now().into());
    Ok(settings)
}
