//! The server root's layout and its `config.toml`.
//!
//! A server keeps everything under one root directory (default
//! `./qftp-data`): the configuration, the certificate and key, the user
//! database and, unless configured otherwise, the users' homes. [`ServerRoot`]
//! names those paths; [`ServerConfig`] is the parsed `config.toml`, with a
//! default for every setting so that a missing file or a missing key is fine.
//!
//! This module only reads and checks settings. It creates no files (that is
//! `qftp-server init`, in [`crate::cli`]) and enforces none of the limits
//! (the listener, [`crate::auth`] and the quota code do).

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use qftp_proto::size::{Quota, SizeError};

use crate::userdb::UserRecord;

/// A configuration could not be read or holds a bad value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// Why reading failed.
        source: io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped settings.
    #[error("invalid configuration in {}: {message}", path.display())]
    Parse {
        /// The configuration file.
        path: PathBuf,
        /// The TOML parser's explanation.
        message: String,
    },
    /// A setting parsed but its value is not allowed.
    #[error("invalid setting in {}: {message}", path.display())]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// Which setting, and what is wrong with it.
        message: String,
    },
    /// `default_quota` is not a size.
    #[error("invalid default_quota: {0}")]
    Quota(#[from] SizeError),
}

/// Layout of a server root directory (default `./qftp-data`).
#[derive(Debug, Clone)]
pub struct ServerRoot {
    path: PathBuf,
}

impl ServerRoot {
    /// A root at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `root/config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.path.join("config.toml")
    }

    /// `root/certs`.
    pub fn certs_dir(&self) -> PathBuf {
        self.path.join("certs")
    }

    /// `root/certs/cert.pem`.
    pub fn cert_file(&self) -> PathBuf {
        self.certs_dir().join("cert.pem")
    }

    /// `root/certs/key.pem`.
    pub fn key_file(&self) -> PathBuf {
        self.certs_dir().join("key.pem")
    }

    /// `root/admin.sock`, the running server's administration socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.path.join("admin.sock")
    }

    /// `root/users.db`.
    pub fn database(&self) -> PathBuf {
        self.path.join("users.db")
    }

    /// The directory that holds the homes; a relative `homes_dir` is taken
    /// from the root.
    pub fn homes_dir(&self, config: &ServerConfig) -> PathBuf {
        self.path.join(&config.homes_dir)
    }

    /// The home of `user`: their own `home` if set (a relative one is taken
    /// from the root), else `homes_dir/NAME`.
    pub fn home_of(&self, config: &ServerConfig, user: &UserRecord) -> PathBuf {
        match &user.home {
            Some(home) => self.path.join(home),
            None => self.homes_dir(config).join(&user.name),
        }
    }
}

/// The settings in `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The UDP address to listen on.
    pub listen: SocketAddr,
    /// Where homes live; relative paths are taken from the root.
    pub homes_dir: PathBuf,
    /// The quota of new users, as a size or `unlimited`.
    pub default_quota: String,
    /// The most connections served at once.
    pub max_connections: usize,
    /// The most connections one user may hold at once.
    pub max_connections_per_user: usize,
    /// The most concurrent unidirectional data streams a client may open.
    pub max_streams_per_connection: u32,
    /// The largest control frame payload accepted, in bytes.
    pub max_frame_size: usize,
    /// Seconds without traffic after which a connection is closed.
    pub idle_timeout_secs: u64,
    /// Bytes one connection may send ahead of what the server has taken in
    /// (a size such as `96MiB`; one stream gets half). It bounds what a
    /// connection can make the server buffer, and must exceed bandwidth ×
    /// round trip for uploads to run at the path's rate.
    pub receive_window: String,
    /// Seconds a session token stays valid.
    pub session_ttl_secs: u64,
    /// Abandoned partial uploads untouched this many seconds (by the
    /// server's clock) are removed; until then they are charged to their
    /// owner.
    pub partial_max_age_secs: u64,
    /// Login throttling, the `[login]` table.
    pub login: LoginLimits,
    /// Bounds on what one user or one connection may hold, the `[limits]`
    /// table.
    pub limits: ResourceLimits,
    /// Seconds a stopping server lets the transfers in flight finish.
    pub shutdown_grace_secs: u64,
    /// How log lines are written: `text` (plain, without colours unless
    /// standard error is a terminal) or `json` (one object per line).
    pub log_format: LogFormat,
    /// The file log lines are appended to; empty means standard error. A
    /// relative path is taken from the root.
    pub log_file: PathBuf,
    /// The TCP address of the HTTP listener serving `/metrics` and
    /// `/healthz`, such as `127.0.0.1:9464`; empty means none.
    pub metrics_listen: String,
}

/// How log lines are written (`log_format`, `--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

/// The `[limits]` table: what one user or one connection may hold at once,
/// so that no user can exhaust the server for the others. Each refusal
/// names its setting (see [`crate::limits`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceLimits {
    /// Seconds a new connection may take from its handshake to a successful
    /// login before it is closed.
    pub login_timeout_secs: u64,
    /// Connections from one address that have not logged in yet, at most.
    pub max_unauthenticated_per_address: usize,
    /// Uploads one user may have open at once over all their connections
    /// (each holds a partial file open).
    pub max_open_uploads_per_user: usize,
    /// Listings and walks one connection may have running at once.
    pub max_listings_per_connection: usize,
    /// The deepest a path in a home may be, in names below the home.
    pub max_depth: usize,
    /// The longest a path in a home may be, in bytes.
    pub max_path_bytes: usize,
    /// Entries (files, directories, links, partial uploads) one user may
    /// have, an inode quota beside the byte quota.
    pub max_entries_per_user: u64,
    /// Bytes charged to the quota for each directory and each symlink, the
    /// block each takes on disk (a size such as `4KiB`).
    pub entry_cost: String,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            login_timeout_secs: 30,
            max_unauthenticated_per_address: 32,
            max_open_uploads_per_user: 128,
            max_listings_per_connection: 4,
            max_depth: 128,
            max_path_bytes: 4096,
            max_entries_per_user: 1_000_000,
            entry_cost: "4KiB".to_owned(),
        }
    }
}

impl ResourceLimits {
    /// [`Self::login_timeout_secs`] as a duration.
    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.login_timeout_secs)
    }

    /// [`Self::entry_cost`] in bytes.
    pub fn entry_cost(&self) -> Result<u64, String> {
        let bytes = qftp_proto::size::parse_size(&self.entry_cost)
            .map_err(|error| format!("invalid limits.entry_cost: {error}"))?;
        if bytes > 1024 * 1024 {
            return Err(format!(
                "limits.entry_cost must be at most 1MiB, not {}",
                self.entry_cost
            ));
        }
        Ok(bytes)
    }
}

/// The `[login]` table: how failed logins, by password or by session
/// token, are slowed down and refused (see [`crate::auth::LoginGuard`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimits {
    /// The first failure delays the reply this many milliseconds.
    pub base_delay_ms: u64,
    /// The delay doubles per recent failure (the largest of the counts per
    /// address and user, per address and per user wins), capped at this
    /// many milliseconds.
    pub max_delay_ms: u64,
    /// After this many failures from one address against one user (or with
    /// session tokens) within `window_secs`, that address is refused for
    /// that user (or for tokens).
    pub max_failures: u32,
    /// After this many failures from one address against any users within
    /// `window_secs`, that address is refused for everyone.
    pub max_failures_per_address: u32,
    /// After this many failures against one user from any addresses within
    /// `window_secs`, password logins as that user are refused, except from
    /// addresses it logged in from within `known_address_secs`.
    pub max_failures_per_user: u32,
    /// How long an address a user logged in from stays known as theirs, in
    /// seconds.
    pub known_address_secs: u64,
    /// How far back failures count, in seconds.
    pub window_secs: u64,
    /// How long a refused address, user or pair stays refused, in seconds.
    pub block_secs: u64,
    /// At most this many password hashes are computed at once.
    pub hashing_concurrency: usize,
}

const DAY_SECS: u64 = 24 * 60 * 60;
const MIN_RECEIVE_WINDOW: u64 = 1024 * 1024;
const MAX_RECEIVE_WINDOW: u64 = 1024 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 4433)),
            homes_dir: PathBuf::from("homes"),
            default_quota: "unlimited".to_owned(),
            max_connections: 1000,
            max_connections_per_user: 64,
            max_streams_per_connection: 64,
            max_frame_size: qftp_proto::DEFAULT_MAX_FRAME,
            idle_timeout_secs: 60,
            receive_window: "96MiB".to_owned(),
            session_ttl_secs: 30 * DAY_SECS,
            partial_max_age_secs: 7 * DAY_SECS,
            login: LoginLimits::default(),
            limits: ResourceLimits::default(),
            shutdown_grace_secs: 30,
            log_format: LogFormat::Text,
            log_file: PathBuf::new(),
            metrics_listen: String::new(),
        }
    }
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            base_delay_ms: 100,
            max_delay_ms: 2000,
            max_failures: 5,
            max_failures_per_address: 30,
            max_failures_per_user: 20,
            known_address_secs: 30 * DAY_SECS,
            window_secs: 300,
            block_secs: 300,
            hashing_concurrency: 2,
        }
    }
}

impl ServerConfig {
    /// Reads `root/config.toml`; a missing file means all defaults.
    pub fn load(root: &ServerRoot) -> Result<Self, ConfigError> {
        let path = root.config_file();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config: Self = toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.clone(),
            message: describe_toml_error(&text, &error),
        })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        Ok(config)
    }

    /// The quota of new users in bytes; `None` means unlimited.
    pub fn default_quota(&self) -> Result<Option<u64>, ConfigError> {
        Ok(self.default_quota.parse::<Quota>()?.bytes())
    }

    /// [`Self::idle_timeout_secs`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// [`Self::session_ttl_secs`] as a duration.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    /// [`Self::receive_window`] in bytes.
    pub fn receive_window(&self) -> Result<u32, String> {
        let bytes = qftp_proto::size::parse_size(&self.receive_window)
            .map_err(|error| format!("invalid receive_window: {error}"))?;
        if !(MIN_RECEIVE_WINDOW..=MAX_RECEIVE_WINDOW).contains(&bytes) {
            return Err(format!(
                "receive_window must be between 1MiB and 1GiB, not {}",
                self.receive_window
            ));
        }
        u32::try_from(bytes).map_err(|_| format!("receive_window {bytes} is too large"))
    }

    /// [`Self::shutdown_grace_secs`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The log file in `root`, or `None` for standard error.
    pub fn log_file(&self, root: &ServerRoot) -> Option<PathBuf> {
        (!self.log_file.as_os_str().is_empty()).then(|| root.path().join(&self.log_file))
    }

    /// [`Self::metrics_listen`] as an address, or `None` when empty.
    pub fn metrics_listen(&self) -> Result<Option<SocketAddr>, String> {
        let text = self.metrics_listen.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            format!("metrics_listen must be an address and port such as \"127.0.0.1:9464\", not {text:?}")
        })
    }

    /// [`Self::partial_max_age_secs`] as a duration.
    pub fn partial_max_age(&self) -> Duration {
        Duration::from_secs(self.partial_max_age_secs)
    }

    /// Checks the values that parse but make no sense; the message names the
    /// setting.
    fn validate(&self) -> Result<(), String> {
        if let Err(error) = self.default_quota() {
            return Err(error.to_string());
        }
        self.receive_window()?;
        self.metrics_listen()?;
        self.limits.entry_cost()?;
        if self.max_frame_size == 0 || self.max_frame_size > qftp_proto::HARD_MAX_FRAME {
            return Err(format!(
                "max_frame_size must be between 1 and {} bytes, not {}",
                qftp_proto::HARD_MAX_FRAME,
                self.max_frame_size
            ));
        }
        let positive = [
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_user",
                self.max_connections_per_user as u64,
            ),
            (
                "max_streams_per_connection",
                u64::from(self.max_streams_per_connection),
            ),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("session_ttl_secs", self.session_ttl_secs),
            ("partial_max_age_secs", self.partial_max_age_secs),
            ("login.max_failures", u64::from(self.login.max_failures)),
            (
                "login.max_failures_per_address",
                u64::from(self.login.max_failures_per_address),
            ),
            (
                "login.max_failures_per_user",
                u64::from(self.login.max_failures_per_user),
            ),
            ("login.window_secs", self.login.window_secs),
            (
                "login.hashing_concurrency",
                self.login.hashing_concurrency as u64,
            ),
            ("limits.login_timeout_secs", self.limits.login_timeout_secs),
            (
                "limits.max_unauthenticated_per_address",
                self.limits.max_unauthenticated_per_address as u64,
            ),
            (
                "limits.max_open_uploads_per_user",
                self.limits.max_open_uploads_per_user as u64,
            ),
            (
                "limits.max_listings_per_connection",
                self.limits.max_listings_per_connection as u64,
            ),
            ("limits.max_depth", self.limits.max_depth as u64),
            ("limits.max_path_bytes", self.limits.max_path_bytes as u64),
            (
                "limits.max_entries_per_user",
                self.limits.max_entries_per_user,
            ),
        ];
        match positive.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(format!("{name} must be greater than 0")),
            None => Ok(()),
        }
    }
}

/// One line for a TOML error: `line N: what is wrong`.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", error.message().trim_end())
        }
        None => error.message().trim_end().to_owned(),
    }
}

/// A `config.toml` with every setting commented out at its default value,
/// each explained by the comment above it. `qftp-server init` writes it.
pub const CONFIG_TEMPLATE: &str = r#"# qftp-server configuration.
# Every setting below is commented out and shows its default value;
# uncomment a line and change the value to override it.

# UDP address and port to listen on ("[::]:4433" for IPv6 as well).
# listen = "0.0.0.0:4433"

# Directory holding the users' homes; a relative path is taken from the server root.
# homes_dir = "homes"

# Quota of new users, e.g. "500MiB", "10GiB" or "unlimited".
# default_quota = "unlimited"

# Most connections served at once.
# max_connections = 1000

# Most connections a single user may hold at once.
# max_connections_per_user = 64

# Most concurrent data streams (parallel transfers) one connection may open.
# max_streams_per_connection = 64

# Largest control message accepted, in bytes (at most 16777216).
# max_frame_size = 1048576

# Seconds without traffic after which a connection is closed.
# idle_timeout_secs = 60

# Bytes one connection may send ahead of what the server has taken in (one
# file's stream gets half). Bounds the memory a connection can tie up; needs to
# exceed bandwidth x round trip (several times over on lossy paths) for uploads
# to run at the path's rate. Loopback connections use at most 32MiB.
# receive_window = "96MiB"

# Seconds a login session (the token a client keeps) stays valid: 30 days.
# session_ttl_secs = 2592000

# Abandoned partial uploads (kept for a resume, and charged to their owner's
# quota meanwhile) are removed once untouched this many seconds by the server's
# clock: 7 days.
# partial_max_age_secs = 604800

# On SIGTERM or Ctrl-C the server refuses new connections, closes idle ones and
# lets the transfers in flight finish for at most this many seconds (a second
# signal stops at once). Clients cut then are told to rerun, which resumes.
# shutdown_grace_secs = 30

# Log lines as "text" (plain, coloured only on a terminal) or "json" (one
# object per line, for log collectors); --log-format overrides it.
# log_format = "text"

# File the log is appended to; empty means standard error (the journal, under
# systemd). A relative path is taken from the server root; --log-file overrides it.
# log_file = ""

# TCP address of an HTTP listener for Prometheus: GET /metrics answers the
# server's metrics (connections, logins, transfers, bytes, quota refusals, QUIC
# path figures) and GET /healthz answers 200 while the server accepts
# connections, 503 while it drains. Empty means no listener; keep it on a local
# or private address, e.g. "127.0.0.1:9464".
# metrics_listen = ""

[login]
# Failed logins, by password or by session token, are counted three ways
# within window_secs: per address and user, per address, and per user. Each
# count has its own bound below, and a success clears only its own address
# and user's count, so an account of one's own cannot reset the count of
# guesses at someone else's. Refused attempts cost no password hash.

# Milliseconds the reply to the first failed login is delayed.
# base_delay_ms = 100

# Cap of the delay, which doubles with each recent failure (of the address
# against the user, of the address, or of the user: the largest count wins).
# max_delay_ms = 2000

# Failed logins from one address against one user (a made-up session token
# counts against "session tokens") before that address is refused for that
# user. Others behind the same address (a NAT) are not affected.
# max_failures = 5

# Failed logins from one address against any users before that address is
# refused for everyone: bounds guessing a few passwords of many users, and is
# set well above max_failures so that the typos of several users behind one
# NAT do not lock it out.
# max_failures_per_address = 30

# Failed logins against one user from any addresses before password logins
# as that user are refused, except from addresses the user logged in from
# within known_address_secs: guesses spread over many addresses are bounded,
# and the real user still gets in from their usual address.
# max_failures_per_user = 20

# Seconds an address a user logged in from (by password or token) counts as
# theirs for the exception above: 30 days. Kept in memory only.
# known_address_secs = 2592000

# Seconds over which failed logins are counted.
# window_secs = 300

# Seconds a refused address, user, or address and user, stays refused.
# block_secs = 300

# Most password hashes computed at once (each takes about 19 MiB and some CPU).
# hashing_concurrency = 2

[limits]
# What one user or one connection may hold at once, so that nobody can exhaust
# the server for the others. A refusal tells the client which limit was hit,
# and the server logs one WARN line per user and limit a minute at most.

# Seconds a new connection may take from its handshake to a successful login.
# login_timeout_secs = 30

# Connections from one address that have not logged in yet, at most.
# max_unauthenticated_per_address = 32

# Uploads one user may have open at once over all their connections.
# max_open_uploads_per_user = 128

# Listings and tree walks one connection may have running at once.
# max_listings_per_connection = 4

# Deepest path in a home, in names below the home.
# max_depth = 128

# Longest path in a home, in bytes.
# max_path_bytes = 4096

# Entries (files, directories, links, partial uploads) one user may have.
# max_entries_per_user = 1000000

# Bytes charged to the quota for each directory and each symlink.
# entry_cost = "4KiB"
"#;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The template with every `# key = value` line uncommented.
    fn uncommented_template() -> String {
        CONFIG_TEMPLATE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if is_setting(setting) => setting,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_setting(line: &str) -> bool {
        line.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
    }

    /// The field names serde expects for a struct, captured from the derived
    /// `Deserialize` implementation so that the list cannot drift.
    fn field_names<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
        struct Capture(Vec<&'static str>);
        #[derive(Debug)]
        struct Done;
        impl std::fmt::Display for Done {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("done")
            }
        }
        impl std::error::Error for Done {}
        impl serde::de::Error for Done {
            fn custom<M: std::fmt::Display>(_: M) -> Self {
                Done
            }
        }
        impl<'de> serde::Deserializer<'de> for &mut Capture {
            type Error = Done;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Done> {
                Err(Done)
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Done> {
                self.0.extend_from_slice(fields);
                Err(Done)
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut capture = Capture(Vec::new());
        assert!(T::deserialize(&mut capture).is_err());
        capture.0
    }

    fn write_config(text: &str) -> (tempfile::TempDir, ServerRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = ServerRoot::new(dir.path());
        fs::write(root.config_file(), text).unwrap();
        (dir, root)
    }

    #[test]
    fn template_uncommented_parses_to_the_defaults() {
        let text = uncommented_template();
        let parsed: ServerConfig = toml::from_str(&text).unwrap();
        assert_eq!(parsed, ServerConfig::default());
        let commented: ServerConfig = toml::from_str(CONFIG_TEMPLATE).unwrap();
        assert_eq!(commented, ServerConfig::default());
    }

    #[test]
    fn template_mentions_every_setting() {
        let table: toml::Table = toml::from_str(&uncommented_template()).unwrap();
        let top: BTreeSet<&str> = table.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = field_names::<ServerConfig>().into_iter().collect();
        assert_eq!(top, expected);
        let login = table["login"].as_table().unwrap();
        let login_keys: BTreeSet<&str> = login.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = field_names::<LoginLimits>().into_iter().collect();
        assert_eq!(login_keys, expected);
        let limits = table["limits"].as_table().unwrap();
        let limit_keys: BTreeSet<&str> = limits.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = field_names::<ResourceLimits>().into_iter().collect();
        assert_eq!(limit_keys, expected);
    }

    #[test]
    fn missing_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::load(&ServerRoot::new(dir.path())).unwrap();
        assert_eq!(config, ServerConfig::default());
        assert_eq!(config.default_quota().unwrap(), None);
        assert_eq!(config.session_ttl(), Duration::from_secs(30 * DAY_SECS));
        assert_eq!(config.partial_max_age(), Duration::from_secs(7 * DAY_SECS));
        assert_eq!(config.idle_timeout(), Duration::from_secs(60));
        assert_eq!(config.receive_window(), Ok(96 << 20));
    }

    #[test]
    fn receive_window_accepts_sizes_within_bounds() {
        for (text, bytes) in [("1MiB", 1 << 20), ("256 MiB", 256 << 20), ("1GiB", 1 << 30)] {
            let (_dir, root) = write_config(&format!("receive_window = \"{text}\""));
            let config = ServerConfig::load(&root).unwrap();
            assert_eq!(config.receive_window(), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn settings_override_defaults() {
        let (_dir, root) = write_config(
            "listen = \"127.0.0.1:9000\"\ndefault_quota = \"10GiB\"\n[login]\nmax_failures = 3\n",
        );
        let config = ServerConfig::load(&root).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.default_quota().unwrap(), Some(10 << 30));
        assert_eq!(config.login.max_failures, 3);
        assert_eq!(config.login.window_secs, 300);
        assert_eq!(config.max_connections, 1000);
    }

    #[test]
    fn errors_name_the_file() {
        for text in [
            "listen = ",
            "lisen = \"127.0.0.1:1\"",
            "max_connections = \"many\"",
            "default_quota = \"lots\"",
            "max_frame_size = 0",
            "max_frame_size = 16777217",
            "[login]\nhashing_concurrency = 0",
            "receive_window = \"lots\"",
            "receive_window = \"512KiB\"",
            "receive_window = \"2GiB\"",
            "metrics_listen = \"localhost\"",
            "metrics_listen = \"127.0.0.1\"",
        ] {
            let (_dir, root) = write_config(text);
            let error = ServerConfig::load(&root).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(&root.config_file().display().to_string()),
                "{text:?} gave {message:?}"
            );
            assert!(!message.contains('\n'), "{text:?} gave {message:?}");
        }
    }

    #[test]
    fn metrics_listen_is_off_by_default_and_parsed() {
        assert_eq!(ServerConfig::default().metrics_listen(), Ok(None));
        let (_dir, root) = write_config("metrics_listen = \"127.0.0.1:9464\"");
        let config = ServerConfig::load(&root).unwrap();
        assert_eq!(
            config.metrics_listen(),
            Ok(Some("127.0.0.1:9464".parse().unwrap()))
        );
    }

    #[test]
    fn parse_errors_give_the_line() {
        let (_dir, root) = write_config("listen = \"127.0.0.1:1\"\n\nmax_connections = \"many\"\n");
        let message = ServerConfig::load(&root).unwrap_err().to_string();
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn largest_frame_size_is_accepted() {
        let (_dir, root) =
            write_config(&format!("max_frame_size = {}", qftp_proto::HARD_MAX_FRAME));
        let config = ServerConfig::load(&root).unwrap();
        assert_eq!(config.max_frame_size, qftp_proto::HARD_MAX_FRAME);
    }

    #[test]
    fn layout_paths_and_homes() {
        let root = ServerRoot::new("/srv/qftp");
        assert_eq!(root.config_file(), Path::new("/srv/qftp/config.toml"));
        assert_eq!(root.cert_file(), Path::new("/srv/qftp/certs/cert.pem"));
        assert_eq!(root.key_file(), Path::new("/srv/qftp/certs/key.pem"));
        assert_eq!(root.database(), Path::new("/srv/qftp/users.db"));
        let mut config = ServerConfig::default();
        let mut user = UserRecord {
            name: "alice".into(),
            password_hash: String::new(),
            quota: None,
            used: 0,
            home: None,
            account: 0,
        };
        assert_eq!(
            root.home_of(&config, &user),
            Path::new("/srv/qftp/homes/alice")
        );
        config.homes_dir = PathBuf::from("/data/homes");
        assert_eq!(root.home_of(&config, &user), Path::new("/data/homes/alice"));
        user.home = Some(PathBuf::from("special/alice"));
        assert_eq!(
            root.home_of(&config, &user),
            Path::new("/srv/qftp/special/alice")
        );
        user.home = Some(PathBuf::from("/elsewhere"));
        assert_eq!(root.home_of(&config, &user), Path::new("/elsewhere"));
    }
}
