//! Reloading `config.toml` while the server runs (on SIGHUP): which
//! settings take effect at once, and which wait for a restart.
//!
//! [`Reloader::reload`] reads the file again. A file that does not load
//! (unreadable, not TOML, a bad value) is logged as an error and changes
//! nothing. Otherwise the settings in [`LIVE_SETTINGS`] are applied to the
//! running server, and every other setting that changed is named in one
//! WARN line of its own, since it takes effect only at the next start. No
//! connection is closed by a reload.
//!
//! This module compares and applies settings; it does not catch the signal
//! (that is [`crate::server`]'s) and enforces none of the limits it sets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{LoginLimits, ServerConfig, ServerRoot};
use crate::state::ServerState;

/// The settings a reload applies to the running server. `max_connections`
/// bounds the connections accepted from then on (lowering it closes none);
/// the `[login]` bounds and delays count from the next login attempt on,
/// keeping the failures and blocks counted so far.
/// `login.hashing_concurrency` is not among them: it sizes the hashing pool
/// once, at start.
pub const LIVE_SETTINGS: &[&str] = &[
    "max_connections",
    "login.base_delay_ms",
    "login.max_delay_ms",
    "login.max_failures",
    "login.max_failures_per_address",
    "login.max_failures_per_user",
    "login.known_address_secs",
    "login.window_secs",
    "login.block_secs",
];

/// Whether a reload applies `setting` (a dotted name such as
/// `login.max_failures`) to the running server.
pub fn applies_live(setting: &str) -> bool {
    LIVE_SETTINGS.contains(&setting)
}

/// The dotted names of the settings whose values differ between `old` and
/// `new`, in order.
pub fn changed_settings(old: &ServerConfig, new: &ServerConfig) -> Result<Vec<String>, String> {
    let (old, new) = (flatten(old)?, flatten(new)?);
    let mut names: Vec<String> = old
        .iter()
        .filter(|(name, value)| new.get(*name) != Some(value))
        .map(|(name, _)| name.clone())
        .collect();
    names.extend(new.keys().filter(|name| !old.contains_key(*name)).cloned());
    names.sort();
    Ok(names)
}

/// Every setting of `config` under its dotted name.
fn flatten(config: &ServerConfig) -> Result<BTreeMap<String, toml::Value>, String> {
    let table = toml::Table::try_from(config)
        .map_err(|error| format!("cannot compare the configurations: {error}"))?;
    let mut settings = BTreeMap::new();
    flatten_into("", table, &mut settings);
    Ok(settings)
}

fn flatten_into(prefix: &str, table: toml::Table, settings: &mut BTreeMap<String, toml::Value>) {
    for (key, value) in table {
        let name = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => flatten_into(&format!("{name}."), inner, settings),
            value => {
                settings.insert(name, value);
            }
        }
    }
}

/// Reloads `config.toml` into a running server.
pub struct Reloader {
    root: ServerRoot,
    /// The configuration the server runs with: the one it started with,
    /// with the live settings of the last good reload.
    in_force: Mutex<ServerConfig>,
    state: Arc<ServerState>,
    /// Hands new `[login]` bounds to the login throttle.
    apply_login: Box<dyn Fn(LoginLimits) + Send + Sync>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Reloader")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader of `state`'s configuration, handing new `[login]` bounds
    /// to `apply_login` (the throttle's).
    pub fn new(
        state: Arc<ServerState>,
        apply_login: impl Fn(LoginLimits) + Send + Sync + 'static,
    ) -> Self {
        Self {
            root: state.root.clone(),
            in_force: Mutex::new(state.config.clone()),
            state,
            apply_login: Box::new(apply_login),
        }
    }

    /// Reads `config.toml` again and applies what can change live; logs what
    /// changed, what waits for a restart, or why the file was refused.
    /// Blocking: it reads a file.
    pub fn reload(&self) {
        let new = match ServerConfig::load(&self.root) {
            Ok(new) => new,
            Err(error) => {
                tracing::error!(%error, "reload refused: the configuration in force stays");
                return;
            }
        };
        let mut in_force = self.in_force.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = match changed_settings(&in_force, &new) {
            Ok(changed) => changed,
            Err(error) => {
                tracing::error!(%error, "reload refused: the configuration in force stays");
                return;
            }
        };
        let (applied, waiting): (Vec<_>, Vec<_>) =
            changed.into_iter().partition(|name| applies_live(name));
        for setting in &waiting {
            tracing::warn!(
                setting = setting.as_str(),
                "reload: {setting} changed; it takes effect when the server is restarted"
            );
        }
        in_force.max_connections = new.max_connections;
        self.state.connections.set_limit(new.max_connections);
        let login = LoginLimits {
            hashing_concurrency: in_force.login.hashing_concurrency,
            ..new.login
        };
        in_force.login = login.clone();
        self.state.set_login_limits(login.clone());
        (self.apply_login)(login);
        tracing::info!(applied = ?applied, "configuration reloaded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_configuration_changes_nothing() {
        let config = ServerConfig::default();
        assert_eq!(
            changed_settings(&config, &config.clone()).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn changed_settings_are_named_with_their_table() {
        let old = ServerConfig::default();
        let mut new = old.clone();
        new.max_connections = 4;
        new.idle_timeout_secs = 5;
        new.login.max_failures = 9;
        new.limits.max_depth = 3;
        assert_eq!(
            changed_settings(&old, &new).unwrap(),
            [
                "idle_timeout_secs",
                "limits.max_depth",
                "login.max_failures",
                "max_connections"
            ]
        );
    }

    #[test]
    fn only_the_connection_bound_and_login_bounds_apply_live() {
        assert!(applies_live("max_connections"));
        assert!(applies_live("login.base_delay_ms"));
        assert!(applies_live("login.block_secs"));
        assert!(!applies_live("login.hashing_concurrency"));
        assert!(!applies_live("listen"));
        assert!(!applies_live("limits.max_depth"));
        assert!(!applies_live("max_connections_per_user"));
    }

    #[test]
    fn every_live_setting_is_a_setting() {
        let names = flatten(&ServerConfig::default()).unwrap();
        for setting in LIVE_SETTINGS {
            assert!(names.contains_key(*setting), "{setting} is not a setting");
        }
    }
}
