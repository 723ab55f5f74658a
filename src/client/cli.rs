//! The `qftp` command table: every command and its arguments, as clap
//! parses them. Shared by the command line and the interactive shell; it
//! runs nothing itself ([`super::commands`] does).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use qftp_client::transfer::TransferOptions;
use qftp_transport::Fingerprint;

/// qftp: fast, verified file transfer over QUIC.
#[derive(Debug, Parser)]
#[command(
    name = "qftp",
    version,
    about,
    after_help = EXAMPLES,
    after_long_help = long_help()
)]
pub struct Cli {
    /// Show more: -v the cause chain of errors and the connection's
    /// figures, -vv also the libraries' debug lines (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars and no summary; errors are still printed.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Give up reaching a server after this many seconds (1 to 600; 10 when
    /// not given). A port where nothing listens fails at once.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "QFTP_CONNECT_TIMEOUT",
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub connect_timeout: Option<u64>,
    /// Give up on a silent server after this many seconds (2 to 60; 20
    /// when not given). A longer timeout rides out longer network outages, a
    /// shorter one notices a dead path sooner; an interrupted transfer
    /// resumes when run again. Keep-alives go out every third of it, which
    /// keeps them inside the server's own idle timeout (60 s by default).
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        env = "QFTP_IDLE_TIMEOUT",
        value_parser = clap::value_parser!(u64).range(2..=60)
    )]
    pub idle_timeout: Option<u64>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Example:\n  qftp login alice@files.example.org\n  qftp put -r photos/ /backup/\n  qftp ls -l /backup";

/// The long help's end: the examples, the address forms and the exit codes.
fn long_help() -> String {
    format!(
        "{EXAMPLES}\n\n\
         ADDRESSES:\n  \
         A server is [qftp://][USER@]HOST[:PORT] (port 4433 when omitted; IPv6 as [::1]:4433),\n  \
         or the NAME of a [hosts.NAME] profile in config.toml of the config directory.\n  \
         A remote argument may name its server first, as scp does: HOST:PATH, NAME:PATH,\n  \
         USER@HOST:PATH or qftp://USER@HOST:PORT/PATH; that server's saved session is used.\n  \
         Write ./a:b for a file whose name holds a colon.\n\n\
         {}",
        super::exit::EXIT_STATUS_HELP
    )
}

/// Where `put` and `get` place their sources (cp and rsync's rules), with
/// an example.
fn placement_help(example: &str) -> String {
    format!(
        "Example:\n  {example}\n\n\
         WHERE FILES LAND:\n  \
         A destination that exists as a directory, or ends with /, is a directory: each\n  \
         source lands inside it under its own name. A missing one is created, with its\n  \
         parents. Several sources need such a directory. Otherwise the one source lands\n  \
         under the destination's name, and missing parents are created (with or without -r).\n  \
         A source that is missing or unreadable is reported and the others are copied;\n  \
         the exit code is then 3."
    )
}

impl Cli {
    /// The command, with the global options that belong to it applied.
    pub fn into_command(self) -> Command {
        let mut command = self.command;
        if let Some(run) = command.run_args_mut() {
            run.quiet |= self.quiet;
        }
        command
    }
}

impl Command {
    /// How transfers run, for the commands that move files.
    pub fn run_args_mut(&mut self) -> Option<&mut RunArgs> {
        match self {
            Command::Put { transfer, .. } | Command::Get { transfer, .. } => {
                Some(&mut transfer.run)
            }
            Command::Sync(args) => Some(&mut args.run),
            _ => None,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to a server and remember the session.
    #[command(
        after_help = "Example:\n  qftp login alice@files.example.org:4433\n  echo \"$PASSWORD\" | qftp login alice@127.0.0.1:4433 --password-stdin --fingerprint SHA256:..."
    )]
    Login(LoginArgs),
    /// End the session on the server and forget it here.
    #[command(after_help = "Example:\n  qftp logout")]
    Logout,
    /// Show who is logged in, where.
    #[command(after_help = "Example:\n  qftp whoami\n  qftp whoami --json")]
    Whoami {
        /// JSON output: one object with the user, the server and the
        /// remote current directory.
        #[arg(long)]
        json: bool,
    },
    /// Print the remote current directory.
    #[command(after_help = "Example:\n  qftp pwd")]
    Pwd,
    /// Change the remote current directory (remembered between commands).
    #[command(after_help = "Example:\n  qftp cd photos/2024\n  qftp cd ..")]
    Cd {
        /// The directory; the home directory when omitted.
        path: Option<String>,
    },
    /// List remote directories and files, as ls does.
    #[command(
        disable_help_flag = true,
        after_help = "Example:\n  qftp ls -lh photos\n  qftp ls -a -R backup docs/notes.txt",
        after_long_help = LS_HELP
    )]
    Ls(LsArgs),
    /// Create remote directories.
    #[command(after_help = "Example:\n  qftp mkdir -p backup/2024/11")]
    Mkdir {
        /// Create missing parents, accept existing directories.
        #[arg(short, long)]
        parents: bool,
        /// The directories.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Remove remote files or directories; every path is tried, and the exit code is 3 when some were not removed.
    #[command(
        after_help = "Example:\n  qftp rm old.log\n  qftp rm -f maybe.tmp\n  qftp rm -r old-backups"
    )]
    Rm {
        /// Remove directories and their contents.
        #[arg(short, long)]
        recursive: bool,
        /// Say nothing about paths that do not exist.
        #[arg(short, long)]
        force: bool,
        /// What to remove.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Move or rename a remote file or directory.
    #[command(
        after_help = "Example:\n  qftp mv draft.txt final.txt\n  qftp mv report.pdf archive/"
    )]
    Mv {
        /// The existing path.
        from: String,
        /// The new path, or a directory to move into.
        to: String,
    },
    /// Show quota use.
    #[command(after_help = "Example:\n  qftp df\n  qftp df --json")]
    Df {
        /// JSON output: one object with the bytes used, reserved by uploads
        /// in progress, the quota and what is free (null when unlimited).
        #[arg(long)]
        json: bool,
    },
    /// Upload files (the last argument is the remote destination when there are several).
    #[command(
        after_help = "Example:\n  qftp put report.pdf\n  qftp put -r -j 16 photos/ backup/",
        after_long_help = placement_help("qftp put a.txt b.txt newdir/")
    )]
    Put {
        /// Local files, then optionally the remote destination.
        #[arg(required = true, num_args = 1..)]
        paths: Vec<String>,
        #[command(flatten)]
        transfer: TransferArgs,
    },
    /// Download files (the last argument is the local destination when there are several).
    #[command(
        after_help = "Example:\n  qftp get report.pdf\n  qftp get -r backup/photos ./restore",
        after_long_help = placement_help("qftp get a.txt b.txt newdir/")
    )]
    Get {
        /// Remote files, then optionally the local destination.
        #[arg(required = true, num_args = 1..)]
        paths: Vec<String>,
        #[command(flatten)]
        transfer: TransferArgs,
    },
    /// Make a destination tree match a source tree (push, or --pull).
    #[command(
        after_help = "Example:\n  qftp sync --delete -j 16 site/ /www\n  qftp sync --pull --exclude '*.tmp' /datasets/2024 ./data"
    )]
    Sync(SyncArgs),
    /// An interactive prompt with these commands over one connection.
    ///
    /// Besides the commands above, the shell has lcd, lls, lpwd and !CMD for
    /// this machine, and `help` lists them all. Tab completes command names
    /// and remote paths (local ones for put, lcd and lls).
    #[command(
        after_help = "Example:\n  qftp shell\n  qftp alice@host:/> lcd ~/photos\n  qftp alice@host:/> put -r 2024 /backup/"
    )]
    Shell,
    /// Manage the pinned server certificates (the known_hosts file).
    #[command(
        subcommand,
        name = "known-hosts",
        after_help = "Example:\n  qftp known-hosts remove files.example.org:4433"
    )]
    KnownHosts(KnownHostsCommand),
    /// Print shell completions.
    #[command(after_help = "Example:\n  qftp completions bash > /etc/bash_completion.d/qftp")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `qftp known-hosts` subcommands.
#[derive(Debug, Subcommand)]
pub enum KnownHostsCommand {
    /// Forget the pinned certificate of a server, to pin a replaced one at the next login.
    Remove {
        /// The server, as HOST[:PORT] or a host profile's name.
        host: String,
    },
}

/// The end of `ls --help`: what it shows and how it reports.
const LS_HELP: &str = "Example:\n  qftp ls -lh photos\n  qftp ls -a -R backup docs/notes.txt\n\n\
     OUTPUT:\n  \
     Each directory is listed under a heading when more than one path is given or with -R.\n  \
     A path that cannot be listed is reported and the others are listed; the exit code is\n  \
     then 3. Times are local (the TZ variable, else the system's zone) unless --utc, which\n  \
     writes them in UTC followed by \"UTC\". Without -a, names beginning with a dot are left\n  \
     out (. and .. are never listed). The server's partial files of uploads in progress are\n  \
     never listed. --json prints one JSON array of every entry listed, each with its name,\n  \
     its full remote path, kind, size in bytes, mtime in seconds since 1970 (UTC), mode\n  \
     and link target.";

/// Arguments of `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The directories or files; the current directory when omitted.
    pub paths: Vec<String>,
    /// Long format: kind, permissions, size in bytes, modification time.
    #[arg(short = 'l', long)]
    pub long: bool,
    /// Also entries whose names begin with a dot.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// List subdirectories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Sizes in the long format in human units (KiB, MiB, ...), as in -lh.
    #[arg(short = 'h', long)]
    pub human_readable: bool,
    /// Times in UTC (marked "UTC") instead of the local time zone.
    #[arg(long)]
    pub utc: bool,
    /// JSON output: one array of every entry listed.
    #[arg(long)]
    pub json: bool,
    /// Print help (-h is --human-readable here, as in ls).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// Arguments of `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server, as [qftp://][USER@]HOST[:PORT] (port 4433 when omitted)
    /// or the name of a host profile.
    pub server: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Trust servers whose certificate is signed by this CA (PEM file).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["fingerprint", "trust"])]
    pub ca: Option<PathBuf>,
    /// Expect this certificate fingerprint (SHA256:HEX) and pin it.
    #[arg(long, value_name = "SHA256:HEX", conflicts_with = "trust")]
    pub fingerprint: Option<Fingerprint>,
    /// Accept and pin an unknown certificate without asking.
    #[arg(long)]
    pub trust: bool,
}

/// Arguments of `sync`.
#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    /// The source: a local directory, or with --pull a remote one.
    pub source: String,
    /// The destination: a remote directory, or with --pull a local one.
    pub destination: String,
    /// Pull from the server instead of pushing to it.
    #[arg(long)]
    pub pull: bool,
    /// Remove destination entries the source does not have.
    #[arg(long)]
    pub delete: bool,
    /// Print the plan and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Compare BLAKE3 hashes instead of size and modification time.
    #[arg(short, long)]
    pub checksum: bool,
    /// Leave out entries matching this glob (a name, or a path with `/`); repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Recreate symlinks (only those that stay inside the tree) instead of skipping them.
    #[arg(long)]
    pub links: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Arguments of `put` and `get`.
#[derive(Debug, Args, Clone, Copy)]
pub struct TransferArgs {
    /// Copy directories recursively.
    #[arg(short, long)]
    pub recursive: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

/// How transfers run, for `put`, `get` and `sync`.
#[derive(Debug, Args, Clone, Copy)]
pub struct RunArgs {
    /// Files in flight at once, each on its own stream.
    #[arg(short = 'j', long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Start over instead of resuming from partial files.
    #[arg(long)]
    pub no_resume: bool,
    /// No progress bars and no summary: the global `-q`/`--quiet`.
    #[arg(skip)]
    pub quiet: bool,
    /// Limit the total rate, in bytes per second (e.g. 10MiB).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,
    /// At the end, print the connection's transport figures: round trip,
    /// loss, congestion window and the rate it allows, bytes each way, and
    /// the average rate (how to read them: "Why is my transfer slow" in
    /// docs/performance.md).
    #[arg(long)]
    pub stats: bool,
}

fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.strip_suffix("/s").unwrap_or(text);
    match qftp_proto::size::parse_size(text) {
        Ok(0) => Err("the rate must be above zero".into()),
        Ok(rate) => Ok(rate),
        Err(error) => Err(error.to_string()),
    }
}

impl RunArgs {
    /// The transfer options these arguments ask for.
    pub fn options(&self) -> TransferOptions {
        TransferOptions {
            resume: !self.no_resume,
            rate_limit: self
                .limit_rate
                .map(|rate| Arc::new(qftp_transport::pump::RateLimit::new(rate))),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
