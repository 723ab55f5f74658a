//! The network-link scenarios as the benchmark runs them: the 256 MiB
//! source, the link's own work directory, and the peers over ssh (scp,
//! qcp) found through the peers script, handed to [`crate::link`].
//!
//! The link itself (namespaces, impairment, rounds) is [`crate::link`]'s;
//! this file only connects it to the benchmark's arguments and paths.

use std::collections::BTreeMap;
use std::time::Duration;

use super::args::BenchArgs;
use super::paths::Paths;
use crate::contest_report::ContestReport;
use crate::data::{self, DataSet};
use crate::link;
use crate::peers::Peers;
use crate::report::ScenarioReport;

/// What the link measured.
#[derive(Debug)]
pub struct LinkResults {
    pub scenarios: Vec<ScenarioReport>,
    pub contests: Vec<ContestReport>,
    /// The peers' versions.
    pub versions: BTreeMap<String, String>,
}

/// The link scenarios and fairness contests ([`crate::link`]).
pub fn run_links(
    arguments: &BenchArgs,
    paths: &Paths,
    links: &[(&'static str, link::Impairment)],
    contests: &[(&'static str, link::Contest)],
) -> anyhow::Result<LinkResults> {
    let source = data::ensure(&paths.data, DataSet::Link)?;
    let (peers, versions) = link_peers(arguments, paths);
    let work = paths.bench.join("link");
    let settings = link::Settings {
        rounds: arguments.rounds,
        quiet_wait: Duration::from_secs(arguments.quiet_wait),
        lossy_limit: Duration::from_secs(arguments.link_time_limit),
        binaries: &paths.snapshot,
        source: &source,
        work: &work,
        logs: &paths.logs,
        peers,
    };
    let (scenarios, contests) = link::run(&settings, links, contests)?;
    data::remove(&work)?;
    Ok(LinkResults {
        scenarios,
        contests,
        versions,
    })
}

/// The peers of the link scenarios (scp, qcp) and their versions, or why
/// there are none. The peers script's install phase runs if ssh, scp or
/// sshd is missing (or with --peers-install); its setup phase if its sshd
/// config is missing or invalid.
fn link_peers(
    arguments: &BenchArgs,
    paths: &Paths,
) -> (Result<link::Peers, String>, BTreeMap<String, String>) {
    if arguments.no_peers {
        return (Err("not run (--no-peers)".into()), BTreeMap::new());
    }
    let Some(script) = &arguments.peers_script else {
        return (
            Err("not run: no peers script (--peers-script or QFTP_PEERS_SCRIPT)".into()),
            BTreeMap::new(),
        );
    };
    let peers = match Peers::new(
        script,
        arguments.peers_results.as_deref(),
        &paths.logs,
        arguments.quiet_wait,
    ) {
        Ok(peers) => peers,
        Err(error) => return (Err(format!("not measured: {error:#}")), BTreeMap::new()),
    };
    let result = peers
        .install(arguments.peers_install, &["ssh", "scp", "sshd", "rsync"])
        .and_then(|()| {
            link::Peers::from_script(script, &paths.logs).or_else(|error| {
                eprintln!("peers: not ready for the link ({error:#}); running the setup phase");
                peers.setup()?;
                link::Peers::from_script(script, &paths.logs)
            })
        });
    let versions = peers.versions();
    match result {
        Ok(found) => (Ok(found), versions),
        Err(error) => {
            eprintln!("xtask: warning: no peers on the link: {error:#}");
            (Err(format!("not measured: {error:#}")), versions)
        }
    }
}
