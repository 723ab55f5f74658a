//! The `qftp-server` command line: `init`, `serve`, `cert`, `user` and
//! `completions`.
//!
//! Each subcommand is a small function over a [`ServerRoot`] that writes
//! what it did to a given output, so the commands can be tested without a
//! terminal. The admin commands work on the same SQLite database as a
//! running server; changes apply at the user's next login.
//!
//! This module does not serve clients (that is [`crate::server::run`]) and
//! holds no rules of its own about users, certificates or settings: it calls
//! [`crate::userdb`], [`crate::certs`], [`crate::auth`] and [`crate::config`].

use std::fs;
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use qftp_proto::size::{Quota, format_size};

use crate::auth::hash_password;
use crate::certs::{self, CertError};
use crate::config::{CONFIG_TEMPLATE, ServerConfig, ServerRoot};
use crate::userdb::{DbError, UserDb, UserRecord, validate_user_name};

/// A multi-user file transfer server over QUIC.
#[derive(Debug, Parser)]
#[command(
    name = "qftp-server",
    version,
    after_help = "Example:\n  qftp-server init && qftp-server user add alice && qftp-server serve"
)]
struct Cli {
    /// Server root directory, holding config.toml, certs/, users.db and the homes
    #[arg(
        long,
        global = true,
        env = "QFTP_ROOT",
        default_value = "./qftp-data",
        value_name = "DIR"
    )]
    root: PathBuf,
    /// Log debug messages (otherwise RUST_LOG, default info)
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
struct InitArgs {
    /// Another name (DNS name or IP address) for the certificate; repeatable
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// Replace an existing certificate (clients that pinned it will refuse the new one)
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// UDP address to listen on [default: listen from config.toml]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Print the certificate's SHA-256 fingerprint, which clients pin
    #[command(after_help = "Example:\n  qftp-server cert fingerprint")]
    Fingerprint,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
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
struct AddArgs {
    /// User name: 1 to 32 characters from A-Z a-z 0-9 _ . - (not starting with . or -)
    name: String,
    /// Quota such as 500MiB, 10GiB or unlimited [default: default_quota from config.toml]
    #[arg(long, value_name = "SIZE")]
    quota: Option<Quota>,
    /// Home directory, relative paths taken from the root [default: HOMES_DIR/NAME]
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Read the password from the first line of standard input instead of prompting
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
struct PasswdArgs {
    /// User name
    name: String,
    /// Read the password from the first line of standard input instead of prompting
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
struct DelArgs {
    /// User name
    name: String,
    /// Also remove the user's home directory and everything in it
    #[arg(long)]
    purge: bool,
}

#[derive(Debug, Args)]
struct QuotaArgs {
    /// User name
    name: String,
    /// New quota, such as 500MiB, 10GiB or unlimited
    size: Quota,
}

#[derive(Debug, Args)]
struct NameArgs {
    /// User name
    name: String,
}

/// Runs `qftp-server` with the process's arguments and returns its exit
/// code: 0, or 1 after printing one error line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("qftp-server: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error: debug with `-v`, else `RUST_LOG`, else info.
fn init_tracing(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = if verbose {
        EnvFilter::new("debug")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
    };
    // A subscriber already installed (there is none in the binary) is fine.
    let _ = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(filter)
        .try_init();
}

fn run(cli: Cli) -> Result<()> {
    let root = ServerRoot::new(cli.root);
    let out = &mut io::stdout();
    match cli.command {
        Command::Init(args) => init(&root, &args, out),
        Command::Serve(args) => serve(root, &args),
        Command::Cert(CertCommand::Fingerprint) => print_fingerprint(&root, out),
        Command::User(command) => run_user_command(&root, command, out),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "qftp-server", out);
            Ok(())
        }
    }
}

fn run_user_command(root: &ServerRoot, command: UserCommand, out: &mut impl Write) -> Result<()> {
    match command {
        UserCommand::Add(args) => {
            let from_stdin = args.password_stdin;
            user_add(root, &args, || read_new_password(from_stdin), out)
        }
        UserCommand::Passwd(args) => {
            let from_stdin = args.password_stdin;
            user_passwd(root, &args.name, || read_new_password(from_stdin), out)
        }
        UserCommand::Del(args) => user_del(root, &args, out),
        UserCommand::List => user_list(root, out),
        UserCommand::Quota(args) => user_quota(root, &args, out),
        UserCommand::Rescan(args) => user_rescan(root, &args.name, out),
    }
}

// ---------------------------------------------------------------- init

fn init(root: &ServerRoot, args: &InitArgs, out: &mut impl Write) -> Result<()> {
    report_directory(out, root.path(), create_private_dir(root.path())?)?;
    create_private_dir(&root.certs_dir())?;
    create_certificate(root, args, out)?;
    create_config(root, out)?;
    let config = ServerConfig::load(root)?;
    let database = root.database();
    let existed = database.exists();
    UserDb::open(&database)?;
    let verb = if existed { "kept existing" } else { "created" };
    writeln!(out, "{verb} user database {}", database.display())?;
    let homes = root.homes_dir(&config);
    report_directory(out, &homes, create_private_dir(&homes)?)?;
    let fingerprint = certs::fingerprint(&root.cert_file())?;
    writeln!(out, "certificate fingerprint: {fingerprint}")?;
    writeln!(
        out,
        "next: qftp-server user add NAME, then qftp-server serve"
    )?;
    Ok(())
}

fn create_certificate(root: &ServerRoot, args: &InitArgs, out: &mut impl Write) -> Result<()> {
    let (cert, key) = (root.cert_file(), root.key_file());
    match certs::generate_self_signed(&cert, &key, &args.sans, args.force) {
        Err(CertError::Exists(path)) => bail!(
            "{} already exists: pass --force to replace the certificate (clients that pinned it will refuse the new one)",
            path.display()
        ),
        result => result?,
    }
    writeln!(
        out,
        "created certificate {} and key {}",
        cert.display(),
        key.display()
    )?;
    Ok(())
}

fn create_config(root: &ServerRoot, out: &mut impl Write) -> Result<()> {
    let path = root.config_file();
    if path.exists() {
        writeln!(out, "kept existing {}", path.display())?;
        return Ok(());
    }
    fs::write(&path, CONFIG_TEMPLATE)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(out, "created {}", path.display())?;
    Ok(())
}

/// Creates `path` and any missing parents with mode 0700; whether it was
/// created (false if it already existed).
fn create_private_dir(path: &Path) -> Result<bool> {
    if path.is_dir() {
        return Ok(false);
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .with_context(|| format!("cannot create directory {}", path.display()))?;
    Ok(true)
}

fn report_directory(out: &mut impl Write, path: &Path, created: bool) -> Result<()> {
    let verb = if created { "created" } else { "kept existing" };
    writeln!(out, "{verb} directory {}", path.display())?;
    Ok(())
}

// ---------------------------------------------------------------- serve

fn serve(root: ServerRoot, args: &ServeArgs) -> Result<()> {
    require_initialised(&root)?;
    let config = ServerConfig::load(&root)?;
    let listen = args.listen.unwrap_or(config.listen);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(crate::server::run(root, config, listen))
}

/// Fails with a hint to run `init` unless the root has a config file and a
/// certificate with its key.
fn require_initialised(root: &ServerRoot) -> Result<()> {
    for path in [root.config_file(), root.cert_file(), root.key_file()] {
        if !path.exists() {
            bail!(
                "{} is not initialised ({} is missing): run `qftp-server init` first",
                root.path().display(),
                path.display()
            );
        }
    }
    Ok(())
}

fn print_fingerprint(root: &ServerRoot, out: &mut impl Write) -> Result<()> {
    let fingerprint = certs::fingerprint(&root.cert_file())?;
    writeln!(out, "{fingerprint}")?;
    Ok(())
}

// ---------------------------------------------------------------- users

/// The configuration and the user database of an initialised root.
fn open_admin(root: &ServerRoot) -> Result<(ServerConfig, UserDb)> {
    let database = root.database();
    if !database.exists() {
        bail!(
            "{} has no user database: run `qftp-server init` first",
            root.path().display()
        );
    }
    let config = ServerConfig::load(root)?;
    Ok((config, UserDb::open(&database)?))
}

fn existing_user(db: &UserDb, name: &str) -> Result<UserRecord> {
    Ok(db
        .user(name)?
        .ok_or_else(|| DbError::NoSuchUser(name.to_owned()))?)
}

fn user_add(
    root: &ServerRoot,
    args: &AddArgs,
    read_password: impl FnOnce() -> Result<String>,
    out: &mut impl Write,
) -> Result<()> {
    validate_user_name(&args.name)?;
    let (config, db) = open_admin(root)?;
    if db.user(&args.name)?.is_some() {
        return Err(DbError::UserExists(args.name.clone()).into());
    }
    let quota = match args.quota {
        Some(quota) => quota.bytes(),
        None => config.default_quota()?,
    };
    let password_hash = hash_password(&read_password()?)?;
    let record = UserRecord {
        name: args.name.clone(),
        password_hash,
        quota,
        used: 0,
        home: args.home.clone(),
        account: 0,
    };
    let home = root.home_of(&config, &record);
    let created = create_private_dir(&home)?;
    db.add_user(
        &record.name,
        &record.password_hash,
        quota,
        record.home.as_deref(),
    )?;
    writeln!(
        out,
        "added user {} with quota {}",
        record.name,
        quota_text(quota)
    )?;
    if created {
        writeln!(out, "created home {}", home.display())?;
    } else {
        writeln!(
            out,
            "home {} already exists; run `qftp-server user rescan {}` to count what it holds",
            home.display(),
            record.name
        )?;
    }
    Ok(())
}

fn user_passwd(
    root: &ServerRoot,
    name: &str,
    read_password: impl FnOnce() -> Result<String>,
    out: &mut impl Write,
) -> Result<()> {
    let (_, db) = open_admin(root)?;
    existing_user(&db, name)?;
    let password_hash = hash_password(&read_password()?)?;
    db.set_password(name, &password_hash)?;
    writeln!(
        out,
        "changed the password of {name}; their sessions have ended"
    )?;
    Ok(())
}

fn user_del(root: &ServerRoot, args: &DelArgs, out: &mut impl Write) -> Result<()> {
    let (config, db) = open_admin(root)?;
    let record = existing_user(&db, &args.name)?;
    let home = root.home_of(&config, &record);
    if args.purge {
        refuse_to_purge_root(root, &home)?;
    }
    db.delete_user(&record.name)?;
    if !args.purge {
        writeln!(
            out,
            "deleted user {}; home {} kept",
            record.name,
            home.display()
        )?;
        return Ok(());
    }
    match fs::remove_dir_all(&home) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "deleted user {}, but cannot remove {}",
                    record.name,
                    home.display()
                )
            });
        }
    }
    writeln!(
        out,
        "deleted user {} and removed home {}",
        record.name,
        home.display()
    )?;
    Ok(())
}

/// A home that is the server root or contains it must never be purged.
fn refuse_to_purge_root(root: &ServerRoot, home: &Path) -> Result<()> {
    let (Ok(home), Ok(root_path)) = (home.canonicalize(), root.path().canonicalize()) else {
        return Ok(());
    };
    if root_path.starts_with(&home) {
        bail!(
            "refusing to purge {}: it contains the server root",
            home.display()
        );
    }
    Ok(())
}

fn user_list(root: &ServerRoot, out: &mut impl Write) -> Result<()> {
    let (config, db) = open_admin(root)?;
    let users = db.users()?;
    if users.is_empty() {
        writeln!(out, "no users; add one with `qftp-server user add NAME`")?;
        return Ok(());
    }
    let mut rows = vec![[
        "NAME".to_owned(),
        "QUOTA".into(),
        "USED".into(),
        "HOME".into(),
    ]];
    rows.extend(users.iter().map(|user| {
        [
            user.name.clone(),
            quota_text(user.quota),
            format_size(user.used),
            root.home_of(&config, user).display().to_string(),
        ]
    }));
    write_table(out, &rows)
}

/// Writes rows with columns padded to their widest cell.
fn write_table<const N: usize>(out: &mut impl Write, rows: &[[String; N]]) -> Result<()> {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn user_quota(root: &ServerRoot, args: &QuotaArgs, out: &mut impl Write) -> Result<()> {
    let (_, db) = open_admin(root)?;
    let quota = args.size.bytes();
    db.set_quota(&args.name, quota)?;
    let (used, _) = db.usage(&args.name)?;
    writeln!(
        out,
        "quota of {} is now {} ({} used)",
        args.name,
        quota_text(quota),
        format_size(used)
    )?;
    Ok(())
}

fn user_rescan(root: &ServerRoot, name: &str, out: &mut impl Write) -> Result<()> {
    let (config, db) = open_admin(root)?;
    let record = existing_user(&db, name)?;
    let home = root.home_of(&config, &record);
    let limits =
        crate::jail::JailLimits::from_config(&config.limits).map_err(anyhow::Error::msg)?;
    let used = crate::jail::Jail::open(&home, name, limits)
        .and_then(|jail| jail.disk_usage())
        .with_context(|| format!("cannot scan home {}", home.display()))?
        .bytes;
    db.set_used(name, used)?;
    writeln!(
        out,
        "{name}: used {} → {}",
        format_size(record.used),
        format_size(used)
    )?;
    Ok(())
}

fn quota_text(quota: Option<u64>) -> String {
    quota.map_or(Quota::Unlimited, Quota::Bytes).to_string()
}

// ---------------------------------------------------------------- passwords

/// A new password, from standard input or prompted twice without echo;
/// empty passwords are refused.
fn read_new_password(from_stdin: bool) -> Result<String> {
    let password = if from_stdin {
        read_password_line(&mut io::stdin().lock())?
    } else {
        prompt_new_password()?
    };
    if password.is_empty() {
        bail!("empty passwords are not allowed");
    }
    Ok(password)
}

/// The first line of `reader`, without its line ending.
fn read_password_line(reader: &mut impl BufRead) -> Result<String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(line.to_owned())
}

fn prompt_new_password() -> Result<String> {
    let first = rpassword::prompt_password("New password: ")
        .context("cannot read the password from the terminal (use --password-stdin to pipe it)")?;
    let second = rpassword::prompt_password("Repeat password: ")
        .context("cannot read the password from the terminal")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::verify_password;

    fn initialised() -> (tempfile::TempDir, ServerRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = ServerRoot::new(dir.path().join("data"));
        let args = InitArgs {
            sans: vec!["files.example.org".into()],
            force: false,
        };
        init(&root, &args, &mut Vec::new()).unwrap();
        (dir, root)
    }

    fn add(root: &ServerRoot, name: &str, quota: Option<&str>) -> String {
        let args = AddArgs {
            name: name.into(),
            quota: quota.map(|quota| quota.parse().unwrap()),
            home: None,
            password_stdin: true,
        };
        let mut out = Vec::new();
        user_add(root, &args, || Ok("pw-1".into()), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn database(root: &ServerRoot) -> UserDb {
        UserDb::open(&root.database()).unwrap()
    }

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

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

    #[test]
    fn completions_are_generated() {
        let mut out = Vec::new();
        clap_complete::generate(Shell::Bash, &mut Cli::command(), "qftp-server", &mut out);
        assert!(text(out).contains("rescan"));
    }

    #[test]
    fn init_creates_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = ServerRoot::new(dir.path().join("data"));
        let mut out = Vec::new();
        init(
            &root,
            &InitArgs {
                sans: vec![],
                force: false,
            },
            &mut out,
        )
        .unwrap();
        let out = text(out);
        assert_eq!(
            fs::read_to_string(root.config_file()).unwrap(),
            CONFIG_TEMPLATE
        );
        assert!(root.cert_file().is_file() && root.key_file().is_file());
        assert!(root.database().is_file());
        assert!(root.homes_dir(&ServerConfig::default()).is_dir());
        let fingerprint = certs::fingerprint(&root.cert_file()).unwrap();
        assert!(
            out.contains(&format!("certificate fingerprint: {fingerprint}")),
            "{out}"
        );
        require_initialised(&root).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(root.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn init_again_keeps_config_and_refuses_to_replace_the_certificate() {
        let (_dir, root) = initialised();
        fs::write(root.config_file(), "max_connections = 7\n").unwrap();
        let before = certs::fingerprint(&root.cert_file()).unwrap();
        let error = init(
            &root,
            &InitArgs {
                sans: vec![],
                force: false,
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("--force"), "{error:#}");
        assert_eq!(certs::fingerprint(&root.cert_file()).unwrap(), before);
        init(
            &root,
            &InitArgs {
                sans: vec![],
                force: true,
            },
            &mut Vec::new(),
        )
        .unwrap();
        assert_ne!(certs::fingerprint(&root.cert_file()).unwrap(), before);
        assert_eq!(
            fs::read_to_string(root.config_file()).unwrap(),
            "max_connections = 7\n"
        );
    }

    #[test]
    fn uninitialised_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = ServerRoot::new(dir.path());
        let error = require_initialised(&root).unwrap_err();
        assert!(error.to_string().contains("run `qftp-server init` first"));
        let error = user_list(&root, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("run `qftp-server init` first"));
        assert!(!root.database().exists());
    }

    #[test]
    fn fingerprint_is_one_line() {
        let (_dir, root) = initialised();
        let mut out = Vec::new();
        print_fingerprint(&root, &mut out).unwrap();
        let out = text(out);
        assert_eq!(
            out.trim_end()
                .parse::<qftp_transport::Fingerprint>()
                .unwrap(),
            certs::fingerprint(&root.cert_file()).unwrap()
        );
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn user_add_stores_the_user_and_creates_the_home() {
        let (_dir, root) = initialised();
        let out = add(&root, "alice", Some("500MiB"));
        assert!(out.contains("added user alice with quota 500 MiB"), "{out}");
        let record = database(&root).user("alice").unwrap().unwrap();
        assert_eq!(record.quota, Some(500 << 20));
        assert!(verify_password(&record.password_hash, "pw-1"));
        let home = root.home_of(&ServerConfig::default(), &record);
        assert!(home.is_dir());
        let error = user_add(
            &root,
            &AddArgs {
                name: "alice".into(),
                quota: None,
                home: None,
                password_stdin: true,
            },
            || panic!("no password should be asked for an existing user"),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "user \"alice\" already exists");
    }

    #[test]
    fn user_add_uses_the_default_quota_and_a_custom_home() {
        let (_dir, root) = initialised();
        fs::write(root.config_file(), "default_quota = \"1GiB\"\n").unwrap();
        let args = AddArgs {
            name: "bob".into(),
            quota: None,
            home: Some(PathBuf::from("elsewhere/bob")),
            password_stdin: true,
        };
        user_add(&root, &args, || Ok("pw".into()), &mut Vec::new()).unwrap();
        let record = database(&root).user("bob").unwrap().unwrap();
        assert_eq!(record.quota, Some(1 << 30));
        assert!(root.path().join("elsewhere/bob").is_dir());
    }

    #[test]
    fn user_add_refuses_bad_names_and_empty_passwords() {
        let (_dir, root) = initialised();
        let args = AddArgs {
            name: ".x".into(),
            quota: None,
            home: None,
            password_stdin: true,
        };
        let error = user_add(&root, &args, || Ok("pw".into()), &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("invalid user name"));
        let args = AddArgs {
            name: "carol".into(),
            quota: None,
            home: None,
            password_stdin: true,
        };
        let error = user_add(
            &root,
            &args,
            || bail!("the passwords do not match"),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "the passwords do not match");
        assert_eq!(database(&root).user("carol").unwrap(), None);
    }

    #[test]
    fn passwd_changes_the_hash_and_ends_sessions() {
        let (_dir, root) = initialised();
        add(&root, "alice", None);
        let db = database(&root);
        db.create_session("alice", &[1; 32], i64::MAX).unwrap();
        user_passwd(&root, "alice", || Ok("pw-2".into()), &mut Vec::new()).unwrap();
        let record = db.user("alice").unwrap().unwrap();
        assert!(verify_password(&record.password_hash, "pw-2"));
        assert_eq!(db.session_user(&[1; 32], 0).unwrap(), None);
        let error = user_passwd(&root, "nobody", || Ok("x".into()), &mut Vec::new()).unwrap_err();
        assert_eq!(error.to_string(), "no such user \"nobody\"");
    }

    #[test]
    fn del_keeps_the_home_unless_purging() {
        let (_dir, root) = initialised();
        add(&root, "alice", None);
        add(&root, "bob", None);
        let config = ServerConfig::default();
        let homes = root.homes_dir(&config);
        fs::write(homes.join("alice/file"), "x").unwrap();
        let mut out = Vec::new();
        user_del(
            &root,
            &DelArgs {
                name: "alice".into(),
                purge: false,
            },
            &mut out,
        )
        .unwrap();
        assert!(text(out).contains("kept"));
        assert!(homes.join("alice/file").exists());
        let mut out = Vec::new();
        user_del(
            &root,
            &DelArgs {
                name: "bob".into(),
                purge: true,
            },
            &mut out,
        )
        .unwrap();
        assert!(text(out).contains("removed home"));
        assert!(!homes.join("bob").exists());
        assert!(database(&root).users().unwrap().is_empty());
    }

    #[test]
    fn purge_never_removes_the_root() {
        let (_dir, root) = initialised();
        let args = AddArgs {
            name: "odd".into(),
            quota: None,
            home: Some(PathBuf::from(".")),
            password_stdin: true,
        };
        user_add(&root, &args, || Ok("pw".into()), &mut Vec::new()).unwrap();
        let error = user_del(
            &root,
            &DelArgs {
                name: "odd".into(),
                purge: true,
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("contains the server root"));
        assert!(root.database().exists());
        assert!(database(&root).user("odd").unwrap().is_some());
    }

    #[test]
    fn list_shows_a_table() {
        let (_dir, root) = initialised();
        let mut out = Vec::new();
        user_list(&root, &mut out).unwrap();
        assert!(text(out).starts_with("no users"));
        add(&root, "bob", None);
        add(&root, "alice", Some("10GiB"));
        database(&root).set_used("alice", 1536).unwrap();
        let mut out = Vec::new();
        user_list(&root, &mut out).unwrap();
        let out = text(out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("NAME   QUOTA      USED      HOME"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("alice  10 GiB     1.50 KiB  "),
            "{out}"
        );
        assert!(
            lines[2].starts_with("bob    unlimited  0 B       "),
            "{out}"
        );
        assert!(lines[1].ends_with("homes/alice"), "{out}");
    }

    #[test]
    fn quota_is_changed() {
        let (_dir, root) = initialised();
        add(&root, "alice", None);
        let mut out = Vec::new();
        user_quota(
            &root,
            &QuotaArgs {
                name: "alice".into(),
                size: Quota::Bytes(2048),
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(text(out), "quota of alice is now 2 KiB (0 B used)\n");
        assert_eq!(database(&root).usage("alice").unwrap(), (0, Some(2048)));
        user_quota(
            &root,
            &QuotaArgs {
                name: "alice".into(),
                size: Quota::Unlimited,
            },
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(database(&root).usage("alice").unwrap(), (0, None));
        let error = user_quota(
            &root,
            &QuotaArgs {
                name: "nobody".into(),
                size: Quota::Unlimited,
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "no such user \"nobody\"");
    }

    #[test]
    fn rescan_counts_files_in_the_home_only() {
        let (dir, root) = initialised();
        add(&root, "alice", None);
        let home = root.homes_dir(&ServerConfig::default()).join("alice");
        fs::create_dir_all(home.join("a/b")).unwrap();
        fs::write(home.join("top"), vec![0; 100]).unwrap();
        fs::write(home.join("a/b/deep"), vec![0; 20]).unwrap();
        fs::write(home.join(qftp_proto::partial_name("upload")), vec![0; 3]).unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("big"), vec![0; 5000]).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, home.join("link-dir")).unwrap();
            std::os::unix::fs::symlink(outside.join("big"), home.join("link-file")).unwrap();
        }
        database(&root).set_used("alice", 999).unwrap();
        let mut out = Vec::new();
        user_rescan(&root, "alice", &mut out).unwrap();
        // Everything on disk is charged: files (an old-style partial
        // included), the two directories and the two links as one block each.
        let expected = 100 + 20 + 3 + 4 * 4096;
        assert_eq!(
            text(out),
            format!("alice: used 999 B → {}\n", format_size(expected))
        );
        assert_eq!(database(&root).usage("alice").unwrap().0, expected);
    }

    #[test]
    fn password_line_loses_its_line_ending() {
        assert_eq!(
            read_password_line(&mut "secret\nmore\n".as_bytes()).unwrap(),
            "secret"
        );
        assert_eq!(
            read_password_line(&mut "secret\r\n".as_bytes()).unwrap(),
            "secret"
        );
        assert_eq!(
            read_password_line(&mut "no newline".as_bytes()).unwrap(),
            "no newline"
        );
        assert_eq!(
            read_password_line(&mut " spaced \n".as_bytes()).unwrap(),
            " spaced "
        );
        assert_eq!(read_password_line(&mut "".as_bytes()).unwrap(), "");
    }
}
