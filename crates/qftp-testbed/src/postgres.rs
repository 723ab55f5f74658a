//! [`Postgres`]: a PostgreSQL server of Debian's package, in a temporary
//! directory, on 127.0.0.1 with a free port.
//!
//! PostgreSQL refuses to run as root, so a test running as root runs it as
//! the `postgres` account the package creates. The cluster trusts every
//! local TCP connection of its one role, [`Postgres::USER`]; each test
//! makes a database of its own with [`Postgres::create_database`].

use std::path::Path;
use std::process::Command;

use crate::error::TestbedError;
use crate::guardian::{Guarded, Launch};
use crate::ports::free_ports;
use crate::programs;
use crate::wait::READY_BOUND;

/// How many times a start is tried with new ports when the server exits
/// early (another program took the port in between).
const START_ATTEMPTS: usize = 3;

/// A running PostgreSQL server, stopped when dropped.
#[derive(Debug)]
pub struct Postgres {
    server: Guarded,
    port: u16,
    // Dropped after `server`: the guardian removes the directory, this
    // removes it if the guardian could not.
    _temp: tempfile::TempDir,
}

impl Postgres {
    /// The superuser role every database belongs to.
    pub const USER: &'static str = "qftp";

    /// Initialises a cluster and starts it, waiting (bounded) until it
    /// accepts connections.
    pub fn start() -> Result<Postgres, TestbedError> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Postgres::start_once() {
                Ok(postgres) => return Ok(postgres),
                Err(error @ TestbedError::Exited { .. }) => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn start_once() -> Result<Postgres, TestbedError> {
        let initdb = programs::postgresql("initdb")?;
        let postgres = programs::postgresql("postgres")?;
        let pg_isready = programs::postgresql("pg_isready")?;
        let temp = tempfile::Builder::new()
            .prefix("qftp-postgres-")
            .tempdir()
            .map_err(TestbedError::io(std::env::temp_dir()))?;
        let workdir = temp.path().to_owned();
        let user = server_account()?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&workdir, Some(uid), Some(gid))
                .map_err(TestbedError::io(&workdir))?;
        }
        let data = workdir.join("data");
        let mut init = Command::new(&initdb);
        init.arg("--pgdata")
            .arg(&data)
            .args(["--username", Postgres::USER, "--auth", "trust"])
            .args(["--encoding", "UTF8", "--locale", "C", "--no-sync"]);
        run_as(&mut init, user)?;

        let port = free_ports(1)?[0];
        let command = vec![
            postgres.display().to_string(),
            "-D".to_owned(),
            data.display().to_string(),
            "-p".to_owned(),
            port.to_string(),
            "-c".to_owned(),
            "listen_addresses=127.0.0.1".to_owned(),
            "-c".to_owned(),
            format!("unix_socket_directories={}", workdir.display()),
            "-c".to_owned(),
            "fsync=off".to_owned(),
            "-c".to_owned(),
            "max_connections=300".to_owned(),
        ];
        let mut server = Guarded::start(Launch {
            server: "postgres",
            workdir: &workdir,
            // SIGINT is PostgreSQL's fast shutdown.
            stop_signal: "INT",
            command,
            user,
        })?;
        server.wait_ready(READY_BOUND, || {
            Command::new(&pg_isready)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--username", Postgres::USER, "--quiet"])
                .status()
                .is_ok_and(|status| status.success())
        })?;
        Ok(Postgres {
            server,
            port,
            _temp: temp,
        })
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID.
    pub fn pid(&self) -> i32 {
        self.server.pid()
    }

    /// The URL of database `name` (`postgres://qftp@127.0.0.1:PORT/NAME`).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{name}",
            Postgres::USER,
            self.port
        )
    }

    /// Creates an empty database `name` (letters, digits and `_`) and
    /// returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, TestbedError> {
        let createdb = programs::postgresql("createdb")?;
        let mut command = Command::new(createdb);
        command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--username", Postgres::USER, name]);
        run(&mut command)?;
        Ok(self.url(name))
    }

    /// The server's work directory (data and log).
    pub fn workdir(&self) -> &Path {
        self.server.workdir()
    }
}

/// The uid and gid to run PostgreSQL as: the `postgres` account when the
/// test runs as root, else the test's own (`None`).
fn server_account() -> Result<Option<(u32, u32)>, TestbedError> {
    if !rustix::process::getuid().is_root() {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, TestbedError> {
        let output = run(Command::new("id").args([flag, "postgres"]))?;
        output.trim().parse().map_err(|_| TestbedError::Command {
            command: format!("id {flag} postgres"),
            output,
        })
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

fn run_as(command: &mut Command, user: Option<(u32, u32)>) -> Result<String, TestbedError> {
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt as _;
        command.uid(uid).gid(gid);
    }
    run(command)
}

/// Runs `command` to completion; its stdout, or an error with its output.
fn run(command: &mut Command) -> Result<String, TestbedError> {
    let described = format!("{command:?}");
    let output = command.output().map_err(|error| TestbedError::Command {
        command: described.clone(),
        output: error.to_string(),
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(TestbedError::Command {
            command: described,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}
