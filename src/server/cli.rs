//! The `qftp-server` command line: its subcommands, options and help text,
//! as clap types. Parsing only: running a command is [`super::commands`]'s.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use qftp_proto::size::Quota;
use qftp_server::config::LogFormat;

const EXAMPLE: &str =
    "Example:\n  qftp-server init && qftp-server user add alice && qftp-server serve";

/// The EXIT STATUS section of the long help (and so of the man pages):
/// what `main` returns, and what a shell reports for a kill by Ctrl-C.
pub const EXIT_STATUS_HELP: &str = "\
EXIT STATUS:
  0    success; serve: stopped by SIGTERM or Ctrl-C, after the drain
  1    error (the message says what failed)
  2    usage error (bad arguments)
  130  interrupted by Ctrl-C at a password prompt or before serve listens
       (killed by SIGINT, as the shell reports it)";

/// A multi-user file transfer server over QUIC.
#[derive(Debug, Parser)]
#[command(
    name = "qftp-server",
    version,
    after_help = EXAMPLE,
    after_long_help = format!("{EXAMPLE}\n\n{EXIT_STATUS_HELP}")
)]
pub(crate) struct Cli {
    /// Server root directory, holding config.toml, certs/, users.db and the homes
    #[arg(
        long,
        global = true,
        env = "QFTP_ROOT",
        default_value = "./qftp-data",
        value_name = "DIR"
    )]
    pub(crate) root: PathBuf,
    /// Log debug messages (otherwise RUST_LOG, default info)
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
    /// Log lines as text or json [default: log_format from config.toml, else text]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
    /// Append log lines to this file instead of standard error [default: log_file from config.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the server root: config, self-signed certificate, user database and homes
    #[command(after_help = "Example:\n  qftp-server init --san files.example.org")]
    Init(InitArgs),
    /// Serve clients until interrupted
    #[command(after_help = "Example:\n  qftp-server serve --listen 0.0.0.0:4433")]
    Serve(ServeArgs),
    /// Inspect the server certificate
    #[command(subcommand, after_help = "Example:\n  qftp-server cert fingerprint")]
    Cert(CertCommand),
    /// Add, change, list and remove users
    #[command(
        subcommand,
        after_help = "Example:\n  qftp-server user add alice --quota 10GiB"
    )]
    User(UserCommand),
    /// List the live connections of the running server
    #[command(after_help = "Example:\n  qftp-server sessions")]
    Sessions,
    /// End every connection of a user on the running server
    #[command(after_help = "Example:\n  qftp-server kick alice")]
    Kick(NameArgs),
    /// Print a shell completion script to standard output
    #[command(
        after_help = "Example:\n  qftp-server completions bash > ~/.local/share/bash-completion/completions/qftp-server"
    )]
    Completions {
        /// The shell to write the script for
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Another name (DNS name or IP address) for the certificate; repeatable
    #[arg(long = "san", value_name = "NAME")]
    pub(crate) sans: Vec<String>,
    /// Replace an existing certificate (clients that pinned it will refuse the new one)
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// UDP address to listen on [default: listen from config.toml]
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Print the certificate's SHA-256 fingerprint, which clients pin
    #[command(after_help = "Example:\n  qftp-server cert fingerprint")]
    Fingerprint,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user and create their home
    #[command(after_help = "Example:\n  qftp-server user add alice --quota 500MiB")]
    Add(AddArgs),
    /// Change a user's password and end their sessions
    #[command(after_help = "Example:\n  qftp-server user passwd alice")]
    Passwd(PasswdArgs),
    /// Delete a user (their home is kept unless --purge)
    #[command(after_help = "Example:\n  qftp-server user del alice --purge")]
    Del(DelArgs),
    /// List users with their quota, usage and home
    #[command(after_help = "Example:\n  qftp-server user list")]
    List,
    /// Set a user's quota
    #[command(after_help = "Example:\n  qftp-server user quota alice 10GiB")]
    Quota(QuotaArgs),
    /// Recount the bytes stored in a user's home
    #[command(after_help = "Example:\n  qftp-server user rescan alice")]
    Rescan(NameArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// User name: 1 to 32 characters from A-Z a-z 0-9 _ . - (not starting with . or -)
    pub(crate) name: String,
    /// Quota such as 500MiB, 10GiB or unlimited [default: default_quota from config.toml]
    #[arg(long, value_name = "SIZE")]
    pub(crate) quota: Option<Quota>,
    /// Home directory, relative paths taken from the root [default: HOMES_DIR/NAME]
    #[arg(long, value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// Read the password from the first line of standard input instead of prompting
    #[arg(long)]
    pub(crate) password_stdin: bool,
    #[command(flatten)]
    pub(crate) strength: PasswordStrength,
}

#[derive(Debug, Args)]
pub(crate) struct PasswdArgs {
    /// User name
    pub(crate) name: String,
    /// Read the password from the first line of standard input instead of prompting
    #[arg(long)]
    pub(crate) password_stdin: bool,
    #[command(flatten)]
    pub(crate) strength: PasswordStrength,
}

#[derive(Debug, Args)]
pub(crate) struct DelArgs {
    /// User name
    pub(crate) name: String,
    /// Also remove the user's home directory and everything in it
    #[arg(long)]
    pub(crate) purge: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QuotaArgs {
    /// User name
    pub(crate) name: String,
    /// New quota, such as 500MiB, 10GiB or unlimited
    pub(crate) size: Quota,
}

#[derive(Debug, Args)]
pub(crate) struct NameArgs {
    /// User name
    pub(crate) name: String,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "qftp-server",
            "--root",
            "/srv/q",
            "user",
            "add",
            "alice",
            "--quota",
            "10GiB",
        ])
        .unwrap();
        assert_eq!(cli.root, Path::new("/srv/q"));
        match cli.command {
            Command::User(UserCommand::Add(args)) => {
                assert_eq!(args.quota, Some(Quota::Bytes(10 << 30)));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["qftp-server", "user", "quota", "alice", "lots"]).is_err());
        let cli =
            Cli::try_parse_from(["qftp-server", "serve", "-v", "--listen", "127.0.0.1:9"]).unwrap();
        assert!(cli.verbose);
    }

    #[test]
    fn every_subcommand_has_an_example() {
        fn check(command: &clap::Command) {
            for sub in command.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                let after = sub
                    .get_after_help()
                    .map(|help| help.to_string())
                    .unwrap_or_default();
                assert!(
                    after.starts_with("Example:\n  qftp-server "),
                    "{} lacks an example",
                    sub.get_name()
                );
                assert!(
                    sub.get_about().is_some(),
                    "{} lacks a description",
                    sub.get_name()
                );
                check(sub);
            }
        }
        check(&Cli::command());
    }
}

/// How strong a new password must be, for `user add` and `user passwd`.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct PasswordStrength {
    /// The fewest characters a new password may have
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        env = "QFTP_MIN_PASSWORD_LENGTH"
    )]
    pub(crate) min_password_length: usize,
    /// Accept a password shorter than --min-password-length (for tests and demos)
    #[arg(long)]
    pub(crate) allow_weak: bool,
}
