//! Carrying out a sync: `push` and `pull` list both trees, plan, and
//! apply the plan (deletes, directories, the files through
//! [`crate::batch`], links last). The comparison itself is
//! [`super::plan`].

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qftp_proto::size::format_size;

use crate::batch::{self, BatchReport, DownloadJob, UploadJob, UploadPlan};
use crate::connection::Client;
use crate::destination::{Destination, LocalName};
use crate::error::ClientError;
use crate::refusal::Refusal;
use crate::transfer::{SharedObserver, TransferOptions};

use super::excludes::Excludes;
use super::plan::{PlanOptions, SyncPlan, hash_candidates, plan};
use super::scan::{hash_local_files, remote_tree, scan_local};
use super::tree::Tree;

/// Settings of one sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// What the planner compares.
    pub plan: PlanOptions,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// Print the plan, change nothing.
    pub dry_run: bool,
    /// Files in flight at once.
    pub jobs: usize,
    /// Resume and rate limit for the transfers.
    pub transfer: TransferOptions,
}

/// How a sync went.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// The plan that was carried out (or only printed, for a dry run).
    pub plan: SyncPlan,
    /// The transfers' outcome.
    pub transfers: BatchReport,
    /// Entries deleted.
    pub deleted: usize,
    /// Directories and links created.
    pub created: usize,
    /// Failures outside the transfers (deletes, directories, links).
    pub failed: Vec<(String, ClientError)>,
    /// Entries of a pull not written because their name or place was
    /// unsafe, outside the transfers, with why.
    pub refused: Vec<(String, Refusal)>,
    /// Wall time, planning included.
    pub elapsed: Duration,
}

impl SyncReport {
    /// Every failure, transfers included.
    pub fn failures(&self) -> impl Iterator<Item = &(String, ClientError)> {
        self.failed.iter().chain(self.transfers.failed.iter())
    }

    /// Every refused entry, transfers included.
    pub fn refusals(&self) -> impl Iterator<Item = &(String, Refusal)> {
        self.refused.iter().chain(self.transfers.refused.iter())
    }

    /// One line: sent, unchanged, deleted, failed, bytes, time and rate.
    pub fn summary(&self) -> String {
        let seconds = self.elapsed.as_secs_f64();
        let bytes = self.transfers.transferred;
        let rate = if seconds > 0.0 {
            bytes as f64 / seconds
        } else {
            0.0
        };
        let failed = self.failed.len() + self.transfers.failed.len();
        let refused = match self.refusals().count() {
            0 => String::new(),
            count => format!(", {count} refused"),
        };
        format!(
            "sync: {} sent, {} unchanged, {} deleted, {} failed{refused}; {} in {:.2} s ({}/s), {} resumed",
            self.transfers.succeeded,
            self.plan.unchanged,
            self.deleted,
            failed,
            format_size(bytes),
            seconds,
            format_size(rate as u64),
            format_size(self.transfers.resumed),
        )
    }
}

fn remote_join(root: &str, relative: &str) -> String {
    if root.ends_with('/') {
        format!("{root}{relative}")
    } else {
        format!("{root}/{relative}")
    }
}

/// Which side of a sync is on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocalSide {
    Source,
    Destination,
}

/// Plans, first hashing the local side's candidates when comparing by
/// checksum (the remote side's hashes came with its listing).
async fn plan_trees(
    mut source: Tree,
    mut destination: Tree,
    local_root: &Path,
    local_side: LocalSide,
    options: PlanOptions,
) -> Result<SyncPlan, ClientError> {
    if options.checksum {
        let wanted = hash_candidates(&source, &destination);
        let local = match local_side {
            LocalSide::Source => &mut source,
            LocalSide::Destination => &mut destination,
        };
        hash_local_files(local_root, local, &wanted).await?;
    }
    Ok(plan(&source, &destination, options))
}

/// Counts a successful step in `done`, or keeps its failure.
fn tally(
    done: &mut usize,
    failed: &mut Vec<(String, ClientError)>,
    path: &str,
    result: Result<(), ClientError>,
) {
    match result {
        Ok(()) => *done += 1,
        Err(error) => failed.push((path.to_owned(), error)),
    }
}

/// Like [`tally`] for a step of a pull, which keeps a refusal apart.
fn tally_local(
    done: &mut usize,
    failed: &mut Vec<(String, ClientError)>,
    refused: &mut Vec<(String, Refusal)>,
    path: &str,
    result: Result<(), ClientError>,
) {
    match result {
        Err(ClientError::Refused { name, reason }) => refused.push((name, reason)),
        result => tally(done, failed, path, result),
    }
}

/// The name of a pulled entry, or its refusal kept in `refused`.
fn checked(path: &str, refused: &mut Vec<(String, Refusal)>) -> Option<LocalName> {
    match LocalName::parse(path) {
        Ok(name) => Some(name),
        Err(reason) => {
            refused.push((path.to_owned(), reason));
            None
        }
    }
}

/// Pushes the local directory `source` to the remote directory `destination`.
pub async fn push(
    client: &Client,
    source: &Path,
    destination: &str,
    options: &SyncOptions,
    observer: impl FnOnce(&SyncPlan) -> SharedObserver,
) -> Result<SyncReport, ClientError> {
    let started = Instant::now();
    let excludes = Excludes::new(&options.excludes)?;
    // The two listings do not depend on each other: the local scan runs on
    // a blocking thread while the server's walk streams in.
    let (source_tree, remote) = tokio::join!(
        scan_local(source, &excludes),
        remote_tree(client, destination, &excludes, options.plan.checksum)
    );
    let source_tree = source_tree?
        .ok_or_else(|| ClientError::Usage(format!("{}: no such directory", source.display())))?;
    let remote = remote?;
    let exists = remote.is_some();
    let plan = plan_trees(
        source_tree,
        remote.unwrap_or_default(),
        source,
        LocalSide::Source,
        options.plan,
    )
    .await?;
    let mut report = SyncReport {
        plan: plan.clone(),
        ..SyncReport::default()
    };
    if !options.dry_run {
        if !exists {
            client.mkdir(destination, true).await?;
        }
        for path in &plan.deletes {
            let result = client.remove(&remote_join(destination, path), true).await;
            tally(&mut report.deleted, &mut report.failed, path, result);
        }
        let directories: Vec<String> = plan
            .directories
            .iter()
            .map(|path| remote_join(destination, path))
            .collect();
        let created = batch::directories::create_remote(client, &directories).await;
        for (path, result) in plan.directories.iter().zip(created) {
            tally(&mut report.created, &mut report.failed, path, result);
        }
        let files = plan
            .transfers
            .iter()
            .map(|(path, size)| UploadJob {
                local: source.join(path),
                remote: remote_join(destination, path),
                size: *size,
            })
            .collect();
        let upload = UploadPlan {
            files,
            ..UploadPlan::default()
        };
        let transfer = options.transfer.clone();
        report.transfers =
            batch::upload(client, upload, options.jobs, transfer, observer(&plan)).await?;
        for (path, target) in &plan.links {
            let result = client
                .symlink(&remote_join(destination, path), target)
                .await;
            tally(&mut report.created, &mut report.failed, path, result);
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Pulls the remote directory `source` into the local directory `destination`.
pub async fn pull(
    client: &Client,
    source: &str,
    destination: &Path,
    options: &SyncOptions,
    observer: impl FnOnce(&SyncPlan) -> SharedObserver,
) -> Result<SyncReport, ClientError> {
    let started = Instant::now();
    let excludes = Excludes::new(&options.excludes)?;
    let (source_tree, destination_tree) = tokio::join!(
        remote_tree(client, source, &excludes, options.plan.checksum),
        scan_local(destination, &excludes)
    );
    let source_tree =
        source_tree?.ok_or_else(|| ClientError::Usage(format!("{source}: no such directory")))?;
    let destination_tree = destination_tree?.unwrap_or_default();
    let plan = plan_trees(
        source_tree,
        destination_tree,
        destination,
        LocalSide::Destination,
        options.plan,
    )
    .await?;
    let mut report = SyncReport {
        plan: plan.clone(),
        ..SyncReport::default()
    };
    if !options.dry_run {
        // The one use of ambient authority: everything below is written
        // beneath this handle.
        let local = Arc::new(Destination::open(destination, true)?);
        for path in &plan.deletes {
            if let Some(name) = checked(path, &mut report.refused) {
                let result = local.remove(&name);
                tally_local(
                    &mut report.deleted,
                    &mut report.failed,
                    &mut report.refused,
                    path,
                    result,
                );
            }
        }
        for path in &plan.directories {
            if let Some(name) = checked(path, &mut report.refused) {
                let result = local.create_dir_all(&name);
                tally_local(
                    &mut report.created,
                    &mut report.failed,
                    &mut report.refused,
                    path,
                    result,
                );
            }
        }
        let mut files = Vec::new();
        for (path, size) in &plan.transfers {
            if let Some(name) = checked(path, &mut report.refused) {
                files.push(DownloadJob {
                    remote: remote_join(source, path),
                    local: name,
                    size: *size,
                });
            }
        }
        let transfer = options.transfer.clone();
        report.transfers = batch::download_beneath(
            client,
            Arc::clone(&local),
            &[],
            files,
            options.jobs,
            transfer,
            observer(&plan),
        )
        .await?;
        for (path, target) in &plan.links {
            if let Some(name) = checked(path, &mut report.refused) {
                let result = local.symlink(&name, target);
                tally_local(
                    &mut report.created,
                    &mut report.failed,
                    &mut report.refused,
                    path,
                    result,
                );
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
