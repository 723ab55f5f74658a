//! The qftp server: users with jailed homes and quotas, serving logins,
//! navigation and file transfers over QUIC.
//!
//! The program `qftp-server` (in the root package) is a thin layer over this
//! library: it parses the command line, prompts for passwords and prints;
//! [`admin`] does the administrator's work and [`server::run`] runs the
//! listener. Nothing here parses arguments, prompts or draws on a terminal.
//!
//! Code map:
//! * [`admin`]: creating a server root and managing its users.
//! * [`admin_socket`]: `sessions` and `kick` against a running server, through `ROOT/admin.sock`.
//! * `audit`: the INFO line of every operation that changes or moves data, login and logout.
//! * [`config`]: the server root's layout and `config.toml`.
//! * [`certs`]: the self-signed development certificate.
//! * [`userdb`]: the SQLite user store (password hashes, quotas, sessions).
//! * [`embedded`]: the store traits of `qftp-store` on the user database and in memory.
//! * [`auth`]: password hashing, session tokens and the login gate.
//! * [`footprint`]: what an entry costs: quota bytes and one entry.
//! * [`jail`]: every file-system operation, confined to one home.
//! * [`live`]: the live connections, their transfers in flight, and the drain on shutdown.
//! * [`metrics`]: the exported series and the named functions that record into them.
//! * [`metrics_listener`]: the optional HTTP listener of `/metrics` and `/healthz`.
//! * [`lock`]: the lock file that keeps a second server off a root.
//! * [`links`]: the rule that keeps every symlink in a home resolving inside it.
//! * [`limits`]: refusals at a configured limit: the client's error and a rate-limited WARN.
//! * [`open_uploads`]: how many uploads each user has open, over all their connections.
//! * [`quota`]: reservations that keep parallel uploads inside a quota.
//! * [`partials`]: partial upload files: safe opening and the sweep of abandoned ones.
//! * [`tree`]: traversals of any depth that hold a bounded number of directory handles.
//! * [`state`]: what all connections of a server share.
//! * [`server`]: the listener: TLS, the accept loop, shutdown.
//! * [`connection`]: one connection: hello, login stage, request loop, data streams.
//! * [`connection_limit`]: `max_connections`, a bound a reload may change.
//! * [`reload`]: reloading `config.toml` on SIGHUP: what changes live, what waits for a restart.
//! * `session`: the logged-in user, and the context each request runs with.
//! * `requests`: what each request of a logged-in connection does.
//! * [`transfer`]: uploads (with the atomic commit) and downloads.

pub mod admin;
pub mod admin_socket;
mod audit;
pub mod auth;
pub mod certs;
pub mod config;
pub mod connection;
pub mod connection_limit;
pub mod embedded;
pub mod error;
pub mod footprint;
pub mod jail;
pub mod limits;
pub mod links;
pub mod live;
pub mod lock;
pub mod metrics;
pub mod metrics_listener;
pub mod open_uploads;
pub mod partials;
pub mod quota;
pub mod reload;
mod requests;
pub mod server;
mod session;
pub mod state;
pub mod transfer;
pub mod tree;
pub mod userdb;
