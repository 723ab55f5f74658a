//! The `qftp` command line.
//!
//! `qftp login` connects, settles trust in the server's certificate, logs in
//! and saves the session; every other command connects with the saved
//! session's token. [`execute`] runs one command on a connected session and
//! is shared with the interactive [`crate::shell`].

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use qftp_proto::path::RemotePath;
use qftp_proto::size::format_size;
use qftp_proto::{EntryInfo, EntryKind, ErrorKind};
use qftp_transport::Fingerprint;

use crate::batch::{self, BatchReport};
use crate::connection::{CLIENT_IDLE_TIMEOUT, Client, ConnectOptions, host_key, split_host_port};
use crate::error::ClientError;
use crate::progress::{ProgressBars, should_draw};
use crate::settings::{KNOWN_HOSTS_FILE, SavedSession, config_dir};
use crate::sync::{self, PlanOptions, SyncOptions, SyncPlan};
use crate::transfer::TransferOptions;
use crate::trust::{KnownHosts, Trust, ask_to_trust};

/// qftp: fast, verified file transfer over QUIC.
#[derive(Debug, Parser)]
#[command(
    name = "qftp",
    version,
    about,
    after_help = "Example:\n  qftp login alice@files.example.org\n  qftp put -r photos/ /backup/\n  qftp ls -l /backup"
)]
pub struct Cli {
    /// Show more detail, including the cause chain of errors.
    #[arg(short, long, global = true)]
    pub verbose: bool,
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
    #[command(after_help = "Example:\n  qftp whoami")]
    Whoami,
    /// Print the remote current directory.
    #[command(after_help = "Example:\n  qftp pwd")]
    Pwd,
    /// Change the remote current directory (remembered between commands).
    #[command(after_help = "Example:\n  qftp cd photos/2024\n  qftp cd ..")]
    Cd {
        /// The directory; the home directory when omitted.
        path: Option<String>,
    },
    /// List a remote directory.
    #[command(after_help = "Example:\n  qftp ls -l photos")]
    Ls {
        /// The directory or file; the current directory when omitted.
        path: Option<String>,
        /// Long format: kind, permissions, size, modification time.
        #[arg(short = 'l', long)]
        long: bool,
        /// JSON output, one array of entries.
        #[arg(long)]
        json: bool,
    },
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
    /// Remove remote files or directories.
    #[command(after_help = "Example:\n  qftp rm old.log\n  qftp rm -r old-backups")]
    Rm {
        /// Remove directories and their contents.
        #[arg(short, long)]
        recursive: bool,
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
    #[command(after_help = "Example:\n  qftp df")]
    Df,
    /// Upload files (the last argument is the remote destination when there are several).
    #[command(after_help = "Example:\n  qftp put report.pdf\n  qftp put -r -j 16 photos/ backup/")]
    Put {
        /// Local files, then optionally the remote destination.
        #[arg(required = true, num_args = 1..)]
        paths: Vec<String>,
        #[command(flatten)]
        transfer: TransferArgs,
    },
    /// Download files (the last argument is the local destination when there are several).
    #[command(
        after_help = "Example:\n  qftp get report.pdf\n  qftp get -r backup/photos ./restore"
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
    #[command(after_help = "Example:\n  qftp shell")]
    Shell,
    /// Print shell completions.
    #[command(after_help = "Example:\n  qftp completions bash > /etc/bash_completion.d/qftp")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Arguments of `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server, as [USER@]HOST[:PORT] (port 4433 when omitted).
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
    /// No progress bars and no summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Limit the total rate, in bytes per second (e.g. 10MiB).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,
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
    fn options(&self) -> TransferOptions {
        TransferOptions {
            resume: !self.no_resume,
            rate_limit: self
                .limit_rate
                .map(|rate| Arc::new(qftp_transport::pump::RateLimit::new(rate))),
        }
    }
}

/// A connected, authenticated session.
#[derive(Debug)]
pub struct Session {
    /// The connection.
    pub client: Client,
    /// What is saved on disk.
    pub saved: SavedSession,
    /// The config directory.
    pub config: PathBuf,
    /// The remote current directory.
    pub cwd: RemotePath,
}

impl Session {
    /// Resolves a user-typed remote path against the current directory.
    pub fn resolve(&self, path: &str) -> anyhow::Result<RemotePath> {
        RemotePath::resolve(&self.cwd, path)
            .map_err(|error| anyhow::anyhow!("invalid remote path {path:?}: {error}"))
    }

    fn resolve_string(&self, path: &str) -> anyhow::Result<String> {
        self.resolve(path).map(|path| path.to_string())
    }
}

/// Entry point of the `qftp` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let verbose = cli.verbose;
    match run(cli) {
        Ok(code) => code,
        Err(error) => report_error(&error, verbose),
    }
}

fn init_logging(verbose: bool) {
    let filter = if verbose { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error as one line (the chain with `-v`) and picks the exit code.
pub fn report_error(error: &anyhow::Error, verbose: bool) -> ExitCode {
    if error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe)
    {
        return ExitCode::SUCCESS;
    }
    if verbose {
        eprintln!("qftp: error: {error:#}");
    } else {
        eprintln!("qftp: error: {error}");
    }
    ExitCode::FAILURE
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let idle_timeout = cli
        .idle_timeout
        .map_or(CLIENT_IDLE_TIMEOUT, std::time::Duration::from_secs);
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "qftp", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Login(args) => runtime()?.block_on(login(args, idle_timeout)),
        Command::Logout => runtime()?.block_on(logout(idle_timeout)),
        Command::Shell => {
            let runtime = runtime()?;
            let mut session = runtime.block_on(connect_saved(idle_timeout))?;
            let code = crate::shell::run(&runtime, &mut session);
            runtime.block_on(session.client.close());
            code
        }
        command => {
            let runtime = runtime()?;
            runtime.block_on(async {
                let mut session = connect_saved(idle_timeout).await?;
                let result = execute(&mut session, command).await;
                session.client.close().await;
                result
            })
        }
    }
}

fn known_hosts(config: &std::path::Path) -> anyhow::Result<KnownHosts> {
    Ok(KnownHosts::load(&config.join(KNOWN_HOSTS_FILE))?)
}

fn read_password(args: &LoginArgs, user: &str, host: &str) -> anyhow::Result<String> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        rpassword::prompt_password(format!("{user}@{host}'s password: "))
            .context("reading the password")?
    };
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    Ok(password)
}

async fn login(args: LoginArgs, idle_timeout: std::time::Duration) -> anyhow::Result<ExitCode> {
    let config = config_dir()?;
    let (user, server) = match args.server.split_once('@') {
        Some((user, server)) => (user.to_owned(), server.to_owned()),
        None => (
            std::env::var("USER")
                .context("no user name given and $USER is not set; use USER@HOST")?,
            args.server.clone(),
        ),
    };
    let (host, port) = split_host_port(&server)?;
    let key = host_key(&host, port);
    let mut known = known_hosts(&config)?;
    let trust = match (&args.ca, args.fingerprint, known.get(&key)) {
        (Some(ca), _, _) => {
            Trust::CertificateAuthority(std::path::absolute(ca).unwrap_or_else(|_| ca.clone()))
        }
        (None, Some(fingerprint), _) => Trust::Pinned(fingerprint),
        (None, None, Some(pinned)) => Trust::Pinned(pinned),
        (None, None, None) => Trust::FirstUse,
    };
    let mut options = ConnectOptions::new(key.clone(), trust.clone());
    options.known_hosts = Some(known.path().to_owned());
    options.idle_timeout = idle_timeout;
    let client = Client::connect(&options).await?;
    if let Some(fingerprint) = client.server_fingerprint() {
        let accepted = match trust {
            Trust::FirstUse => args.trust || ask_to_trust(&key, fingerprint)?,
            _ => true,
        };
        if !accepted {
            client.close().await;
            return Err(ClientError::Untrusted {
                host: key,
                fingerprint,
            }
            .into());
        }
    }
    let password = read_password(&args, &user, &key)?;
    let (token, _expires) = client.login(&user, &password).await?;
    drop(password);
    // Pin only once the login worked, so a mistyped address pins nothing.
    if let Some(fingerprint) = client.server_fingerprint()
        && known.get(&key) != Some(fingerprint)
        && !matches!(trust, Trust::CertificateAuthority(_))
    {
        known.pin(&key, fingerprint)?;
        eprintln!("pinned {key} {fingerprint} in {}", known.path().display());
    }
    let saved = SavedSession {
        server: key.clone(),
        user: user.clone(),
        token,
        cwd: "/".into(),
        ca: args
            .ca
            .as_ref()
            .map(|ca| std::path::absolute(ca).unwrap_or_else(|_| ca.clone())),
    };
    saved.save(&config)?;
    client.close().await;
    println!("logged in as {user} on {key}");
    Ok(ExitCode::SUCCESS)
}

async fn logout(idle_timeout: std::time::Duration) -> anyhow::Result<ExitCode> {
    let config = config_dir()?;
    if SavedSession::load(&config)?.is_none() {
        anyhow::bail!(ClientError::NotLoggedIn);
    }
    let revoked = match connect_saved(idle_timeout).await {
        Ok(session) => {
            let result = session.client.logout().await;
            session.client.close().await;
            result.map_err(anyhow::Error::from)
        }
        Err(error) => Err(error),
    };
    SavedSession::remove(&config)?;
    match revoked {
        Ok(()) => println!("logged out"),
        Err(error) => eprintln!(
            "qftp: warning: the server could not revoke the session ({error}); it was forgotten here"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects with the saved session; a connection silent for `idle_timeout`
/// is given up.
pub async fn connect_saved(idle_timeout: std::time::Duration) -> anyhow::Result<Session> {
    let config = config_dir()?;
    let saved = SavedSession::load(&config)?.ok_or(ClientError::NotLoggedIn)?;
    let known = known_hosts(&config)?;
    let trust = match (&saved.ca, known.get(&saved.server)) {
        (Some(ca), _) => Trust::CertificateAuthority(ca.clone()),
        (None, Some(pinned)) => Trust::Pinned(pinned),
        (None, None) => anyhow::bail!(
            "no pinned certificate for {} in {}; log in again with `qftp login`",
            saved.server,
            known.path().display()
        ),
    };
    let mut options = ConnectOptions::new(saved.server.clone(), trust);
    options.known_hosts = Some(known.path().to_owned());
    options.idle_timeout = idle_timeout;
    let client = Client::connect(&options).await?;
    match client.authenticate(&saved.token).await {
        Ok(_) => {}
        Err(error) if error.server_kind() == Some(ErrorKind::SessionExpired) => {
            client.close().await;
            anyhow::bail!(
                "session expired or revoked; log in again with `qftp login {}@{}`",
                saved.user,
                saved.server
            );
        }
        Err(error) => return Err(error.into()),
    }
    let cwd = RemotePath::parse(&saved.cwd).unwrap_or_default();
    Ok(Session {
        client,
        saved,
        config,
        cwd,
    })
}

/// Runs one command on a connected session.
pub async fn execute(session: &mut Session, command: Command) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match command {
        Command::Whoami => {
            writeln!(stdout, "{}@{}", session.saved.user, session.saved.server)?;
        }
        Command::Pwd => writeln!(stdout, "{}", session.cwd)?,
        Command::Cd { path } => {
            let target = session.resolve(path.as_deref().unwrap_or("/"))?;
            let entry = session.client.stat(&target.to_string()).await?;
            if entry.kind != EntryKind::Directory {
                anyhow::bail!("{target}: not a directory");
            }
            session.cwd = target;
            session.saved.cwd = session.cwd.to_string();
            session.saved.save(&session.config)?;
        }
        Command::Ls { path, long, json } => {
            let target = session.resolve_string(path.as_deref().unwrap_or("."))?;
            let entries = session.client.list(&target).await?;
            print_listing(&mut stdout, &entries, long, json)?;
        }
        Command::Mkdir { parents, paths } => {
            for path in paths {
                session
                    .client
                    .mkdir(&session.resolve_string(&path)?, parents)
                    .await?;
            }
        }
        Command::Rm { recursive, paths } => {
            for path in paths {
                session
                    .client
                    .remove(&session.resolve_string(&path)?, recursive)
                    .await?;
            }
        }
        Command::Mv { from, to } => {
            session
                .client
                .rename(
                    &session.resolve_string(&from)?,
                    &session.resolve_string(&to)?,
                )
                .await?;
        }
        Command::Df => {
            let usage = session.client.disk_usage().await?;
            match (usage.quota, usage.free()) {
                (Some(quota), Some(free)) => writeln!(
                    stdout,
                    "used {} of {} ({} free, {} reserved by uploads in progress)",
                    format_size(usage.used),
                    format_size(quota),
                    format_size(free),
                    format_size(usage.reserved)
                )?,
                _ => writeln!(stdout, "used {} (no quota)", format_size(usage.used))?,
            }
        }
        Command::Put { paths, transfer } => {
            drop(stdout);
            return put(session, &paths, transfer).await;
        }
        Command::Get { paths, transfer } => {
            drop(stdout);
            return get(session, &paths, transfer).await;
        }
        Command::Sync(args) => {
            drop(stdout);
            return sync(session, args).await;
        }
        Command::Login(_) | Command::Logout | Command::Shell | Command::Completions { .. } => {
            anyhow::bail!("this command is not available here");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn put(session: &Session, paths: &[String], args: TransferArgs) -> anyhow::Result<ExitCode> {
    let (sources, destination) = match paths {
        [single] => (vec![PathBuf::from(single)], session.cwd.clone()),
        [sources @ .., destination] => (
            sources.iter().map(PathBuf::from).collect(),
            session.resolve(destination)?,
        ),
        [] => anyhow::bail!("nothing to upload"),
    };
    let plan = batch::plan_upload(&session.client, &sources, &destination, args.recursive).await?;
    let bytes: u64 = plan.files.iter().map(|file| file.size).sum();
    let progress = Arc::new(ProgressBars::new(
        plan.files.len(),
        bytes,
        should_draw(args.run.quiet),
    ));
    for (path, reason) in &plan.skipped {
        progress.println(&format!("skipped {}: {reason}", path.display()));
    }
    let options = args.run.options();
    let report = batch::upload(
        &session.client,
        plan,
        usize::from(args.run.jobs),
        options,
        progress.clone(),
    )
    .await;
    progress.finish();
    finish_batch(report?, args.run.quiet)
}

async fn get(session: &Session, paths: &[String], args: TransferArgs) -> anyhow::Result<ExitCode> {
    let (sources, destination) = match paths {
        [single] => (vec![session.resolve(single)?], PathBuf::from(".")),
        [sources @ .., destination] => (
            sources
                .iter()
                .map(|source| session.resolve(source))
                .collect::<anyhow::Result<Vec<_>>>()?,
            PathBuf::from(destination),
        ),
        [] => anyhow::bail!("nothing to download"),
    };
    let plan =
        batch::plan_download(&session.client, &sources, &destination, args.recursive).await?;
    let bytes: u64 = plan.files.iter().map(|file| file.size).sum();
    let progress = Arc::new(ProgressBars::new(
        plan.files.len(),
        bytes,
        should_draw(args.run.quiet),
    ));
    for (path, reason) in &plan.skipped {
        progress.println(&format!("skipped {path}: {reason}"));
    }
    let options = args.run.options();
    let report = batch::download(
        &session.client,
        plan,
        usize::from(args.run.jobs),
        options,
        progress.clone(),
    )
    .await;
    progress.finish();
    finish_batch(report?, args.run.quiet)
}

async fn sync(session: &Session, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let options = SyncOptions {
        plan: PlanOptions {
            delete: args.delete,
            checksum: args.checksum,
            links: args.links,
        },
        excludes: args.exclude.clone(),
        dry_run: args.dry_run,
        jobs: usize::from(args.run.jobs),
        transfer: args.run.options(),
    };
    let draw = should_draw(args.run.quiet);
    let bars: std::sync::OnceLock<Arc<ProgressBars>> = std::sync::OnceLock::new();
    let observer = |plan: &SyncPlan| -> crate::transfer::SharedObserver {
        let progress = Arc::new(ProgressBars::new(plan.transfers.len(), plan.bytes(), draw));
        let _ = bars.set(Arc::clone(&progress));
        progress
    };
    let report = if args.pull {
        let source = session.resolve_string(&args.source)?;
        sync::pull(
            &session.client,
            &source,
            std::path::Path::new(&args.destination),
            &options,
            observer,
        )
        .await?
    } else {
        let destination = session.resolve_string(&args.destination)?;
        sync::push(
            &session.client,
            std::path::Path::new(&args.source),
            &destination,
            &options,
            observer,
        )
        .await?
    };
    if let Some(bars) = bars.get() {
        bars.finish();
    }
    if args.dry_run {
        let plan = &report.plan;
        print!("{}", plan.describe());
        println!(
            "dry run: would send {} file{} ({}), delete {}, create {} director{} and {} link{}; {} unchanged",
            plan.transfers.len(),
            if plan.transfers.len() == 1 { "" } else { "s" },
            format_size(plan.bytes()),
            plan.deletes.len(),
            plan.directories.len(),
            if plan.directories.len() == 1 {
                "y"
            } else {
                "ies"
            },
            plan.links.len(),
            if plan.links.len() == 1 { "" } else { "s" },
            plan.unchanged
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (path, reason) in &report.plan.skipped {
        eprintln!("qftp: skipped {path}: {reason}");
    }
    let mut failed = false;
    for (path, error) in report.failures() {
        eprintln!("qftp: failed: {path}: {error}");
        failed = true;
    }
    if !args.run.quiet {
        eprintln!("{}", report.summary());
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn finish_batch(report: BatchReport, quiet: bool) -> anyhow::Result<ExitCode> {
    for (label, error) in &report.failed {
        eprintln!("qftp: failed: {label}: {error}");
    }
    if !quiet {
        eprintln!("{}", report.summary());
    }
    if report.failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

fn print_listing(
    out: &mut impl std::io::Write,
    entries: &[EntryInfo],
    long: bool,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let values: Vec<_> = entries
            .iter()
            .map(|entry| {
                serde_json::json!({
                    "name": entry.name,
                    "kind": match entry.kind {
                        EntryKind::File => "file",
                        EntryKind::Directory => "directory",
                        EntryKind::Symlink => "symlink",
                        _ => "other",
                    },
                    "size": entry.size,
                    "mtime": entry.mtime.secs,
                    "mtime_nanos": entry.mtime.nanos,
                    "mode": entry.mode & 0o7777,
                    "link_target": entry.link_target,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?;
        return Ok(());
    }
    for entry in entries {
        let suffix = match entry.kind {
            EntryKind::Directory => "/",
            _ => "",
        };
        if long {
            let kind = match entry.kind {
                EntryKind::Directory => 'd',
                EntryKind::Symlink => 'l',
                EntryKind::File => '-',
                _ => '?',
            };
            let target = entry
                .link_target
                .as_ref()
                .map(|target| format!(" -> {target}"))
                .unwrap_or_default();
            writeln!(
                out,
                "{kind}{} {:>10} {} {}{suffix}{target}",
                permissions(entry.mode),
                format_size(entry.size),
                entry.mtime.to_utc_minutes(),
                entry.name
            )?;
        } else {
            writeln!(out, "{}{suffix}", entry.name)?;
        }
    }
    Ok(())
}

fn permissions(mode: u32) -> String {
    let mut text = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_spelled_out() {
        assert_eq!(permissions(0o755), "rwxr-xr-x");
        assert_eq!(permissions(0o640), "rw-r-----");
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
