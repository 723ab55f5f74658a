//! Host profiles, as in `~/.ssh/config`: named servers in `config.toml` of
//! the client's config directory.
//!
//! ```toml
//! [hosts.work]
//! address = "files.example.org"   # any form of crate::address
//! user = "alice"
//! port = 4501
//! fingerprint = "SHA256:..."      # pin this certificate
//! # ca = "/etc/ssl/work-ca.pem"   # or trust this CA
//! ```
//!
//! A name on the command line (`qftp login work`, `qftp put f work:/d/`) is
//! looked up here first and otherwise parsed as an address. This module
//! only reads the file; the sessions saved per server are in
//! [`crate::settings`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qftp_transport::Fingerprint;
use serde::Deserialize;

use crate::address::{ServerAddress, host_key};
use crate::error::ClientError;

/// The file name of the client's config, in the config directory.
pub const CONFIG_FILE: &str = "config.toml";

/// The client's config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The host profiles by name.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostProfile>,
}

/// One `[hosts.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostProfile {
    /// The server, in any form [`ServerAddress::parse`] takes.
    pub address: String,
    /// The user (overrides one in `address`).
    pub user: Option<String>,
    /// The port (overrides one in `address`).
    pub port: Option<u16>,
    /// The certificate fingerprint to pin (`SHA256:HEX`).
    pub fingerprint: Option<String>,
    /// A CA file to verify the server with.
    pub ca: Option<PathBuf>,
}

/// The server a name on the command line stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChoice {
    /// `host:port`, the key of known_hosts and of the saved sessions.
    pub key: String,
    /// The user, when the name or the profile gives one.
    pub user: Option<String>,
    /// A fingerprint the profile pins.
    pub fingerprint: Option<Fingerprint>,
    /// A CA file the profile trusts.
    pub ca: Option<PathBuf>,
    /// The profile's name, when the name was one.
    pub profile: Option<String>,
}

impl ClientConfig {
    /// Reads `config.toml` in `dir`; a missing file has no profiles.
    pub fn load(dir: &Path) -> Result<Self, ClientError> {
        let path = dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|error| ClientError::Usage(format!("{}: {error}", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(ClientError::local(path, error)),
        }
    }

    /// What `text` names: `[USER@]NAME` of a profile, else an address.
    pub fn resolve(&self, text: &str) -> Result<ServerChoice, ClientError> {
        let (typed_user, name) = match text.rsplit_once('@') {
            Some((user, name)) => (Some(user), name),
            None => (None, text),
        };
        if let Some(profile) = self.hosts.get(name) {
            let address = ServerAddress::parse(&profile.address).map_err(|error| {
                ClientError::Usage(format!("{CONFIG_FILE}: [hosts.{name}]: {error}"))
            })?;
            let fingerprint = profile
                .fingerprint
                .as_deref()
                .map(|fingerprint| {
                    fingerprint.parse().map_err(|error| {
                        ClientError::Usage(format!(
                            "{CONFIG_FILE}: [hosts.{name}] fingerprint: {error}"
                        ))
                    })
                })
                .transpose()?;
            // A typed user is checked as any address's user is.
            if let Some(user) = typed_user {
                ServerAddress::parse(&format!("{user}@{}", address.key()))?;
            }
            let port = profile.port.unwrap_or(address.port_or_default());
            return Ok(ServerChoice {
                key: host_key(&address.host, port),
                user: typed_user
                    .map(str::to_owned)
                    .or_else(|| profile.user.clone())
                    .or(address.user),
                fingerprint,
                ca: profile.ca.clone(),
                profile: Some(name.to_owned()),
            });
        }
        let address = ServerAddress::parse(text)?;
        Ok(ServerChoice {
            key: address.key(),
            user: address.user,
            fingerprint: None,
            ca: None,
            profile: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ClientConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_profile_name_stands_for_its_server() {
        let config = config(
            "[hosts.work]\naddress = \"qftp://bob@files.example.org\"\nport = 4501\n\
             [hosts.lab]\naddress = \"[::1]:7\"\nuser = \"carol\"\n",
        );
        let work = config.resolve("work").unwrap();
        assert_eq!(work.key, "files.example.org:4501");
        assert_eq!(work.user.as_deref(), Some("bob"));
        assert_eq!(work.profile.as_deref(), Some("work"));
        let lab = config.resolve("dave@lab").unwrap();
        assert_eq!(lab.key, "[::1]:7");
        assert_eq!(lab.user.as_deref(), Some("dave"));
        let plain = config.resolve("eve@host:9").unwrap();
        assert_eq!((plain.key.as_str(), plain.profile), ("host:9", None));
        assert!(config.resolve("bad user@work").is_err());
    }

    #[test]
    fn a_broken_profile_is_reported_with_its_name() {
        let config = config("[hosts.x]\naddress = \"host:notaport\"\n");
        let error = config.resolve("x").unwrap_err().to_string();
        assert!(error.contains("[hosts.x]"), "{error}");
        assert!(toml::from_str::<ClientConfig>("[hosts.x]\nadress = \"h\"\n").is_err());
    }
}
