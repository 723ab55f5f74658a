//! The peers' tools on the link (scp, qcp) and their sshd, found through
//! the peers script.
//!
//! It finds them; starting the sshd is [`super::sshd`]'s, their command
//! lines are [`super::tools`]'.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::commands::find_program;
use crate::rerun::{self, Rerun};

/// The peers' tools on the link, from the peers script.
#[derive(Debug, Clone)]
pub struct Peers {
    pub sshd: PathBuf,
    pub sshd_config: PathBuf,
    pub ssh_config: PathBuf,
    /// qcp, or why it is not available.
    pub qcp: Result<PathBuf, String>,
}

impl Peers {
    /// Reads the sshd, its config and the ssh client config from the peers
    /// script, and looks for qcp on this PATH and on the PATH the script
    /// exports (where it installs qcp).
    pub fn from_script(script: &Path, logs: &Path) -> anyhow::Result<Self> {
        let rerun = Rerun::from_script(script)?;
        rerun.check(logs)?;
        let ssh_config = rerun
            .ssh_config()
            .with_context(|| format!("no `ssh -F CONFIG` in the SSHP of {}", script.display()))?;
        if !ssh_config.is_file() {
            bail!("{} does not exist", ssh_config.display());
        }
        for tool in ["ssh", "scp"] {
            if find_program(tool, &[]).is_none() {
                bail!("{tool} is not installed");
            }
        }
        let text =
            fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
        let qcp = find_program("qcp", &rerun::exported_path(&text)).ok_or_else(|| {
            "not installed: the peers script did not install qcp (its install phase runs \
             `cargo install qcp`; see --peers-install)"
                .to_owned()
        });
        Ok(Self {
            sshd: rerun.sshd().to_owned(),
            sshd_config: rerun.sshd_config().to_owned(),
            ssh_config,
            qcp,
        })
    }
}
