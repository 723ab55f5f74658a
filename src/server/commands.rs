//! Running one `qftp-server` subcommand: call the library, then say what
//! happened in one line per step on the given output.
//!
//! Each subcommand is a small function over a [`ServerRoot`] that writes to
//! `out`, so the commands can be tested without a terminal. The work itself
//! (what `init` creates, what adding a user checks, how a home is measured)
//! is `qftp_server::admin`'s; serving is `qftp_server::server::run`'s.

use std::io::{self, Write};

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory as _;
use qftp_proto::size::{Quota, format_size};
use qftp_server::admin::{self, AdminError, InitStep, NewUser};
use qftp_server::admin_socket;
use qftp_server::certs::{self, CertError};
use qftp_server::config::{ServerConfig, ServerRoot};

use super::cli::{
    AddArgs, CertCommand, Cli, Command, DelArgs, InitArgs, QuotaArgs, ServeArgs, UserCommand,
};
use super::logging::{self, LogOptions};
use super::password;

/// Runs the parsed command line, reporting on standard output.
pub(crate) fn run(cli: Cli) -> Result<()> {
    let root = ServerRoot::new(cli.root);
    let out = &mut io::stdout();
    let logging = LogOptions {
        verbose: cli.verbose,
        format: cli.log_format,
        file: cli.log_file.clone(),
    };
    // Serving reads config.toml first, which may say how to log.
    if !matches!(cli.command, Command::Serve(_)) {
        logging::init(&logging)?;
    }
    match cli.command {
        Command::Init(args) => init(&root, &args, out),
        Command::Serve(args) => serve(root, &args, logging),
        Command::Cert(CertCommand::Fingerprint) => print_fingerprint(&root, out),
        Command::User(command) => run_user_command(&root, command, out),
        Command::Sessions => list_sessions(&root, out),
        Command::Kick(args) => {
            let kicked = admin_socket::kick(&root, &args.name)?;
            writeln!(out, "ended {kicked} connection(s) of {}", args.name)?;
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "qftp-server", out);
            Ok(())
        }
    }
}

fn run_user_command(root: &ServerRoot, command: UserCommand, out: &mut impl Write) -> Result<()> {
    match command {
        UserCommand::Add(args) => {
            let (from_stdin, strength) = (args.password_stdin, args.strength);
            user_add(
                root,
                &args,
                || password::read_new(from_stdin, strength),
                out,
            )
        }
        UserCommand::Passwd(args) => {
            let (from_stdin, strength) = (args.password_stdin, args.strength);
            admin::set_password(root, &args.name, || {
                password::read_new(from_stdin, strength)
            })?;
            writeln!(
                out,
                "changed the password of {}; their sessions have ended",
                args.name
            )?;
            Ok(())
        }
        UserCommand::Del(args) => user_del(root, &args, out),
        UserCommand::List => user_list(root, out),
        UserCommand::Quota(args) => user_quota(root, &args, out),
        UserCommand::Rescan(args) => {
            let rescanned = admin::rescan(root, &args.name)?;
            writeln!(
                out,
                "{}: used {} → {}",
                args.name,
                format_size(rescanned.before),
                format_size(rescanned.after)
            )?;
            Ok(())
        }
    }
}

fn init(root: &ServerRoot, args: &InitArgs, out: &mut impl Write) -> Result<()> {
    let mut written = Ok(());
    let result = admin::init(root, &args.sans, args.force, |step| {
        if written.is_ok() {
            written = report_init_step(out, &step);
        }
    });
    match result {
        Err(AdminError::Certificate(CertError::Exists(path))) => bail!(
            "{} already exists: pass --force to replace the certificate (clients that pinned it will refuse the new one)",
            path.display()
        ),
        result => result?,
    }
    written?;
    writeln!(
        out,
        "next: qftp-server user add NAME, then qftp-server serve"
    )?;
    Ok(())
}

fn report_init_step(out: &mut impl Write, step: &InitStep) -> io::Result<()> {
    let verb = |created: bool| if created { "created" } else { "kept existing" };
    match step {
        InitStep::Directory { path, created } => {
            writeln!(out, "{} directory {}", verb(*created), path.display())
        }
        InitStep::Certificate { cert, key } => writeln!(
            out,
            "created certificate {} and key {}",
            cert.display(),
            key.display()
        ),
        InitStep::Config { path, created } => {
            writeln!(out, "{} {}", verb(*created), path.display())
        }
        InitStep::Database { path, created } => {
            writeln!(out, "{} user database {}", verb(*created), path.display())
        }
        InitStep::Fingerprint(fingerprint) => {
            writeln!(out, "certificate fingerprint: {fingerprint}")
        }
        _ => Ok(()),
    }
}

/// Serves with the logging that `config.toml` asks for, where the command
/// line does not say otherwise.
fn serve(root: ServerRoot, args: &ServeArgs, logging: LogOptions) -> Result<()> {
    admin::require_initialised(&root)?;
    let config = ServerConfig::load(&root)?;
    logging::init(&LogOptions {
        format: logging.format.or(Some(config.log_format)),
        file: logging.file.or_else(|| config.log_file(&root)),
        ..logging
    })?;
    let listen = args.listen.unwrap_or(config.listen);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(qftp_server::server::run(root, config, listen));
    // Whatever still runs on the blocking pool (a cut upload settling its
    // reservation) gets a moment; a second signal must not wait for more.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    served?;
    Ok(())
}

fn print_fingerprint(root: &ServerRoot, out: &mut impl Write) -> Result<()> {
    let fingerprint = certs::fingerprint(&root.cert_file())?;
    writeln!(out, "{fingerprint}")?;
    Ok(())
}

fn user_add(
    root: &ServerRoot,
    args: &AddArgs,
    read_password: impl FnOnce() -> Result<String>,
    out: &mut impl Write,
) -> Result<()> {
    let user = NewUser {
        name: args.name.clone(),
        quota: args.quota.map(Quota::bytes),
        home: args.home.clone(),
    };
    let added = admin::add_user(root, &user, read_password)?;
    writeln!(
        out,
        "added user {} with quota {}",
        user.name,
        quota_text(added.quota)
    )?;
    if added.home_created {
        writeln!(out, "created home {}", added.home.display())?;
    } else {
        writeln!(
            out,
            "home {} already exists; run `qftp-server user rescan {}` to count what it holds",
            added.home.display(),
            user.name
        )?;
    }
    Ok(())
}

fn user_del(root: &ServerRoot, args: &DelArgs, out: &mut impl Write) -> Result<()> {
    let home = admin::delete_user(root, &args.name, args.purge)?;
    if args.purge {
        writeln!(
            out,
            "deleted user {} and removed home {}",
            args.name,
            home.display()
        )?;
    } else {
        writeln!(
            out,
            "deleted user {}; home {} kept",
            args.name,
            home.display()
        )?;
    }
    Ok(())
}

fn user_list(root: &ServerRoot, out: &mut impl Write) -> Result<()> {
    let users = admin::list_users(root)?;
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
    rows.extend(users.iter().map(|(user, home)| {
        [
            user.name.clone(),
            quota_text(user.quota),
            format_size(user.used),
            home.display().to_string(),
        ]
    }));
    write_table(out, &rows)
}

fn list_sessions(root: &ServerRoot, out: &mut impl Write) -> Result<()> {
    let sessions = admin_socket::sessions(root)?;
    if sessions.is_empty() {
        writeln!(out, "no connections")?;
        return Ok(());
    }
    let now = std::time::SystemTime::now();
    let mut rows = vec![[
        "USER".to_owned(),
        "ADDRESS".into(),
        "CONNECTED".into(),
        "TRANSFERS".into(),
        "BYTES".into(),
    ]];
    rows.extend(sessions.iter().map(|session| {
        let age = now.duration_since(session.since).unwrap_or_default();
        [
            session
                .user
                .clone()
                .unwrap_or_else(|| "(logging in)".to_owned()),
            session.remote.to_string(),
            format!("{} ago", age_text(age)),
            session.transfers.to_string(),
            format_size(session.bytes),
        ]
    }));
    write_table(out, &rows)
}

/// `1h02m`, `3m05s` or `12s`.
fn age_text(age: std::time::Duration) -> String {
    let seconds = age.as_secs();
    match (seconds / 3600, seconds / 60 % 60, seconds % 60) {
        (0, 0, seconds) => format!("{seconds}s"),
        (0, minutes, seconds) => format!("{minutes}m{seconds:02}s"),
        (hours, minutes, _) => format!("{hours}h{minutes:02}m"),
    }
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
    let quota = args.size.bytes();
    let used = admin::set_quota(root, &args.name, quota)?;
    writeln!(
        out,
        "quota of {} is now {} ({} used)",
        args.name,
        quota_text(quota),
        format_size(used)
    )?;
    Ok(())
}

fn quota_text(quota: Option<u64>) -> String {
    quota.map_or(Quota::Unlimited, Quota::Bytes).to_string()
}

#[cfg(test)]
mod tests {
    use clap_complete::Shell;
    use qftp_server::userdb::UserDb;

    use super::*;
    use crate::server::cli::PasswordStrength;

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
            strength: PasswordStrength {
                min_password_length: 8,
                allow_weak: false,
            },
        };
        let mut out = Vec::new();
        user_add(root, &args, || Ok("pw-1".into()), &mut out).unwrap();
        text(out)
    }

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ages_are_short() {
        use std::time::Duration;
        assert_eq!(age_text(Duration::from_secs(12)), "12s");
        assert_eq!(age_text(Duration::from_secs(185)), "3m05s");
        assert_eq!(age_text(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn completions_are_generated() {
        let mut out = Vec::new();
        clap_complete::generate(Shell::Bash, &mut Cli::command(), "qftp-server", &mut out);
        assert!(text(out).contains("rescan"));
    }

    #[test]
    fn init_reports_each_step_and_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let root = ServerRoot::new(dir.path().join("data"));
        let args = InitArgs {
            sans: vec![],
            force: false,
        };
        let mut out = Vec::new();
        init(&root, &args, &mut out).unwrap();
        let out = text(out);
        let fingerprint = certs::fingerprint(&root.cert_file()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                format!("created directory {}", root.path().display()),
                format!(
                    "created certificate {} and key {}",
                    root.cert_file().display(),
                    root.key_file().display()
                ),
                format!("created {}", root.config_file().display()),
                format!("created user database {}", root.database().display()),
                format!(
                    "created directory {}",
                    root.homes_dir(&ServerConfig::default()).display()
                ),
                format!("certificate fingerprint: {fingerprint}"),
                "next: qftp-server user add NAME, then qftp-server serve".to_owned(),
            ]
        );
    }

    #[test]
    fn init_again_asks_for_force() {
        let (_dir, root) = initialised();
        let args = InitArgs {
            sans: vec![],
            force: false,
        };
        let mut out = Vec::new();
        let error = init(&root, &args, &mut out).unwrap_err();
        assert!(format!("{error:#}").contains("--force"), "{error:#}");
        assert_eq!(
            text(out),
            format!("kept existing directory {}\n", root.path().display())
        );
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
    fn user_add_says_what_it_made() {
        let (_dir, root) = initialised();
        let out = add(&root, "alice", Some("500MiB"));
        assert!(out.contains("added user alice with quota 500 MiB"), "{out}");
        assert!(out.contains("created home "), "{out}");
        let args = AddArgs {
            name: "carol".into(),
            quota: None,
            home: None,
            password_stdin: true,
            strength: PasswordStrength {
                min_password_length: 8,
                allow_weak: false,
            },
        };
        let error = user_add(
            &root,
            &args,
            || bail!("the passwords do not match"),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "the passwords do not match");
    }

    #[test]
    fn del_says_whether_the_home_was_kept() {
        let (_dir, root) = initialised();
        add(&root, "alice", None);
        add(&root, "bob", None);
        let mut out = Vec::new();
        let args = DelArgs {
            name: "alice".into(),
            purge: false,
        };
        user_del(&root, &args, &mut out).unwrap();
        assert!(text(out).contains("kept"));
        let mut out = Vec::new();
        let args = DelArgs {
            name: "bob".into(),
            purge: true,
        };
        user_del(&root, &args, &mut out).unwrap();
        assert!(text(out).contains("removed home"));
    }

    #[test]
    fn list_shows_a_table() {
        let (_dir, root) = initialised();
        let mut out = Vec::new();
        user_list(&root, &mut out).unwrap();
        assert!(text(out).starts_with("no users"));
        add(&root, "bob", None);
        add(&root, "alice", Some("10GiB"));
        UserDb::open(&root.database())
            .unwrap()
            .set_used("alice", 1536)
            .unwrap();
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
    fn quota_change_reports_usage() {
        let (_dir, root) = initialised();
        add(&root, "alice", None);
        let mut out = Vec::new();
        let args = QuotaArgs {
            name: "alice".into(),
            size: Quota::Bytes(2048),
        };
        user_quota(&root, &args, &mut out).unwrap();
        assert_eq!(text(out), "quota of alice is now 2 KiB (0 B used)\n");
    }
}
