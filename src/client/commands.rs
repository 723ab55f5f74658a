//! Running one parsed command on a connected session: navigation, `put`,
//! `get` and `sync` with their progress bars and summaries. Shared by the
//! command line and the shell; parsing is [`super::cli`]'s business.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use qftp_client::Refusal;
use qftp_client::batch::placement::ends_with_slash;
use qftp_client::batch::{self, BatchReport};
use qftp_client::sync::{self, PlanOptions, SyncOptions, SyncPlan};
use qftp_proto::EntryKind;
use qftp_proto::size::format_size;

use super::cli::{Command, SyncArgs, TransferArgs};
use super::exit;
use super::ls;
use super::progress::{ProgressBars, should_draw};
use super::report::tidy;
use super::session::Session;

pub async fn execute(session: &mut Session, command: Command) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match command {
        Command::Whoami { json } => {
            let saved = &session.saved;
            if json {
                let value = serde_json::json!({
                    "user": saved.user,
                    "server": saved.server,
                    "cwd": session.cwd.to_string(),
                });
                writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                writeln!(stdout, "{}@{}", saved.user, saved.server)?;
            }
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
        Command::Ls(args) => return ls::list(session, &args, &mut stdout).await,
        Command::Mkdir { parents, paths } => {
            for path in paths {
                session
                    .client
                    .mkdir(&session.resolve_string(&path)?, parents)
                    .await?;
            }
        }
        Command::Rm {
            recursive,
            force,
            paths,
        } => {
            // As rm does: every path is tried; a missing one is reported
            // (unless -f) and the exit code says some were not removed.
            let mut failures = 0;
            for path in paths {
                let target = session.resolve_string(&path)?;
                match session.client.remove(&target, recursive).await {
                    Ok(()) => {}
                    Err(error)
                        if force
                            && error.server_kind() == Some(qftp_proto::ErrorKind::NotFound) => {}
                    Err(error) => {
                        eprintln!("qftp: rm: {path}: {}", tidy(&error.to_string()));
                        failures += 1;
                    }
                }
            }
            return Ok(exit::for_failures(failures));
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
        Command::Df { json } => {
            let usage = session.client.disk_usage().await?;
            if json {
                let value = serde_json::json!({
                    "used": usage.used,
                    "reserved": usage.reserved,
                    "quota": usage.quota,
                    "free": usage.free(),
                });
                writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)?;
                return Ok(ExitCode::SUCCESS);
            }
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
        Command::Login(_)
        | Command::Logout
        | Command::Shell
        | Command::Completions { .. }
        | Command::KnownHosts(_) => {
            anyhow::bail!("this command is not available here");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn put(session: &Session, paths: &[String], args: TransferArgs) -> anyhow::Result<ExitCode> {
    let (sources, destination, trailing_slash) = match paths {
        [single] => (vec![PathBuf::from(single)], session.cwd.clone(), false),
        [sources @ .., destination] => (
            sources.iter().map(PathBuf::from).collect(),
            session.resolve(destination)?,
            ends_with_slash(destination),
        ),
        [] => anyhow::bail!("nothing to upload"),
    };
    let plan = batch::plan_upload(
        &session.client,
        &sources,
        &destination,
        trailing_slash,
        args.recursive,
    )
    .await?;
    let bytes: u64 = plan.files.iter().map(|file| file.size).sum();
    let progress = ProgressBars::new(plan.files.len(), bytes, should_draw(args.run.quiet));
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
    let progress = ProgressBars::new(plan.files.len(), bytes, should_draw(args.run.quiet));
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
    let observer = |plan: &SyncPlan| -> qftp_client::transfer::SharedObserver {
        let progress = ProgressBars::new(plan.transfers.len(), plan.bytes(), draw);
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
    for (name, reason) in report.refusals() {
        print_refusal(name, reason);
        failed = true;
    }
    if !args.run.quiet {
        eprintln!("{}", report.summary());
    }
    Ok(exit::for_failures(usize::from(failed)))
}

/// One line for an entry of a pull that was not written. The name is
/// quoted: it comes from the server and may hold any character.
fn print_refusal(name: &str, reason: &Refusal) {
    eprintln!("qftp: refused {name:?}: {reason}");
}

/// Prints a batch's failures, refusals and summary; the exit code says
/// whether everything arrived (a pull with refused entries is partial).
fn finish_batch(report: BatchReport, quiet: bool) -> anyhow::Result<ExitCode> {
    for (label, error) in &report.failed {
        // Most errors name their path already; the label is added when not.
        let message = tidy(&error.to_string());
        if message.starts_with(label.as_str()) {
            eprintln!("qftp: failed: {message}");
        } else {
            eprintln!("qftp: failed: {label}: {message}");
        }
    }
    for (name, reason) in &report.refused {
        print_refusal(name, reason);
    }
    if !quiet {
        eprintln!("{}", report.summary());
    }
    Ok(exit::for_failures(
        report.failed.len() + report.refused.len(),
    ))
}
