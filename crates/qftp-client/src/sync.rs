//! `qftp sync`: bring a destination tree in line with a source tree.
//!
//! Both trees are listed first: the local one by walking the disk, the
//! remote one with a single streamed `Walk` request (no round trip per
//! directory). [`plan`] compares them, a pure function, and the plan is
//! carried out with the same transfer engine as `put` and `get`
//! ([`crate::batch`]). A file counts as changed when its size or mtime
//! differs, or with `checksum` when its BLAKE3 differs. An interrupted sync
//! run again skips what already arrived and resumes the partial file.
//!
//! Symlinks are reported and skipped unless `links` asks to recreate them;
//! only relative links that stay inside the tree are ever created, on
//! either side, and they are created after all files, so no transfer can
//! be routed through a link the sync itself made. A link is sent in the
//! canonical form the server accepts (`..` first, then names; see
//! [`qftp_proto::path::LinkTarget`]): a target that differs from it only by
//! `.`, doubled slashes or a `..` after a real directory of the tree is
//! rewritten to it, and anything else (absolute, leading out of the tree,
//! `..` after a link or a file) is skipped with the reason, the way rsync's
//! `--safe-links` skips unsafe links, rather than failing the whole sync.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use qftp_proto::size::format_size;
use qftp_proto::{EntryKind, HashBytes, Timestamp};

use crate::batch::{self, BatchReport, DownloadJob, DownloadPlan, UploadJob, UploadPlan};
use crate::connection::Client;
use crate::error::ClientError;
use crate::transfer::{SharedObserver, TransferOptions};

/// One entry of a tree, keyed by its relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// BLAKE3 of a file, when computed.
    pub hash: Option<HashBytes>,
    /// A symlink's target.
    pub link_target: Option<String>,
}

/// A tree: relative paths (with `/`) to entries.
pub type Tree = BTreeMap<String, Node>;

/// `--exclude` patterns: a pattern with a `/` matches the relative path, one
/// without matches the name at any depth. An excluded directory excludes
/// everything below it.
#[derive(Debug, Clone)]
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
}

impl Excludes {
    /// Compiles `patterns`.
    pub fn new(patterns: &[String]) -> Result<Self, ClientError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = Glob::new(pattern.trim_start_matches('/')).map_err(|error| {
                ClientError::Usage(format!("invalid --exclude pattern {pattern:?}: {error}"))
            })?;
            if pattern.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |builder: GlobSetBuilder| {
            builder
                .build()
                .map_err(|error| ClientError::Usage(format!("invalid --exclude pattern: {error}")))
        };
        Ok(Self {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    /// Whether `relative` itself matches a pattern.
    fn matches(&self, relative: &str) -> bool {
        let name = relative.rsplit('/').next().unwrap_or(relative);
        self.names.is_match(name) || self.paths.is_match(relative)
    }

    /// Whether `relative` or any of its ancestors matches a pattern.
    pub fn excludes(&self, relative: &str) -> bool {
        relative
            .match_indices('/')
            .map(|(index, _)| &relative[..index])
            .chain(std::iter::once(relative))
            .any(|prefix| self.matches(prefix))
    }
}

/// What [`plan`] compares.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Remove destination entries the source lacks.
    pub delete: bool,
    /// Compare BLAKE3 hashes instead of size and mtime.
    pub checksum: bool,
    /// Recreate symlinks instead of skipping them.
    pub links: bool,
}

/// The actions that bring the destination in line with the source.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// Destination entries to remove (the topmost of each removed subtree).
    pub deletes: Vec<String>,
    /// Directories to create, parents first.
    pub directories: Vec<String>,
    /// Files to transfer, with their sizes.
    pub transfers: Vec<(String, u64)>,
    /// Symlinks to create: path and target.
    pub links: Vec<(String, String)>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Entries left alone, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl SyncPlan {
    /// Bytes the transfers will move.
    pub fn bytes(&self) -> u64 {
        self.transfers.iter().map(|(_, size)| size).sum()
    }

    /// The plan, one action a line, as `--dry-run` prints it.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for path in &self.deletes {
            text.push_str(&format!("delete {path}\n"));
        }
        for path in &self.directories {
            text.push_str(&format!("mkdir  {path}/\n"));
        }
        for (path, size) in &self.transfers {
            text.push_str(&format!("send   {path} ({})\n", format_size(*size)));
        }
        for (path, target) in &self.links {
            text.push_str(&format!("link   {path} -> {target}\n"));
        }
        for (path, reason) in &self.skipped {
            text.push_str(&format!("skip   {path}: {reason}\n"));
        }
        text
    }
}

/// Whether `target`, read from the directory of `path`, stays inside the
/// tree: it must be in canonical form and climb no higher than the top.
pub fn link_stays_inside(path: &str, target: &str) -> bool {
    qftp_proto::path::link_target_stays_inside(path.matches('/').count(), target)
}

/// The canonical form of the link `path -> target` of `tree`, or why it
/// cannot be recreated safely.
///
/// Only rewrites that cannot change where the link leads are made: `.` and
/// empty names are dropped, and `name/..` is cancelled when `name` is a
/// real directory of the tree (the tree is walked without following links,
/// so its directories are real). A `..` after a link or a file is refused,
/// because it climbs from wherever that name leads.
pub fn canonical_link_target(path: &str, target: &str, tree: &Tree) -> Result<String, String> {
    if target.is_empty() || target.contains('\0') {
        return Err("symlink with an empty or invalid target".into());
    }
    let outside = || format!("symlink to {target} leads outside the tree");
    if target.starts_with('/') {
        return Err(outside());
    }
    let parent: Vec<&str> =
        parent_of(path).map_or_else(Vec::new, |parent| parent.split('/').collect());
    let mut position = parent.clone();
    // Whether every name of `position` is a real directory of the tree.
    let mut real = true;
    for name in target.split('/') {
        match name {
            "" | "." => {}
            ".." if !real => {
                return Err(format!(
                    "symlink to {target} climbs back out of a link or file, which may lead anywhere"
                ));
            }
            ".." => {
                if position.pop().is_none() {
                    return Err(outside());
                }
            }
            name => {
                position.push(name);
                real = tree
                    .get(&position.join("/"))
                    .is_some_and(|node| node.kind == EntryKind::Directory);
            }
        }
    }
    let common = parent
        .iter()
        .zip(&position)
        .take_while(|(left, right)| left == right)
        .count();
    let mut names = vec![".."; parent.len() - common];
    names.extend(&position[common..]);
    if names.is_empty() {
        // The link's own directory: `..` and its name again.
        match parent.last() {
            Some(last) => names = vec!["..", last],
            None => return Err(format!("symlink to {target} points at the top of the tree")),
        }
    }
    let canonical = names.join("/");
    if link_stays_inside(path, &canonical) {
        Ok(canonical)
    } else {
        Err(format!(
            "symlink to {target} cannot be written in canonical form"
        ))
    }
}

fn parent_of(path: &str) -> Option<&str> {
    path.rfind('/').map(|index| &path[..index])
}

/// Whether any ancestor of `path` is in `set`.
fn under_any(path: &str, set: &BTreeSet<String>) -> bool {
    let mut current = path;
    while let Some(parent) = parent_of(current) {
        if set.contains(parent) {
            return true;
        }
        current = parent;
    }
    false
}

/// Compares `source` with `destination`.
pub fn plan(source: &Tree, destination: &Tree, options: PlanOptions) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let mut blocked = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for (path, node) in source {
        if under_any(path, &blocked) {
            continue;
        }
        let existing = destination.get(path);
        match node.kind {
            EntryKind::Directory => match existing.map(|existing| existing.kind) {
                Some(EntryKind::Directory) => {}
                Some(_) if options.delete => {
                    delete(path, &mut plan, &mut deleted);
                    plan.directories.push(path.clone());
                }
                Some(_) => {
                    plan.skipped.push((
                        path.clone(),
                        "something else is in the way of this directory (use --delete)".into(),
                    ));
                    blocked.insert(path.clone());
                }
                None => plan.directories.push(path.clone()),
            },
            EntryKind::File => match existing {
                Some(existing) if existing.kind == EntryKind::Directory => {
                    if options.delete {
                        delete(path, &mut plan, &mut deleted);
                        plan.transfers.push((path.clone(), node.size));
                    } else {
                        plan.skipped.push((
                            path.clone(),
                            "a directory is in the way of this file (use --delete)".into(),
                        ));
                    }
                }
                Some(existing)
                    if existing.kind == EntryKind::File
                        && same_content(node, existing, options.checksum) =>
                {
                    plan.unchanged += 1;
                }
                _ => plan.transfers.push((path.clone(), node.size)),
            },
            EntryKind::Symlink if !options.links => plan
                .skipped
                .push((path.clone(), "symlink (use --links to recreate it)".into())),
            EntryKind::Symlink => {
                let raw = node.link_target.as_deref().unwrap_or_default();
                match canonical_link_target(path, raw, source) {
                    Err(reason) => plan.skipped.push((path.clone(), reason)),
                    Ok(target) => match existing {
                        Some(existing)
                            if existing.kind == EntryKind::Symlink
                                && existing.link_target.as_deref() == Some(target.as_str()) =>
                        {
                            plan.unchanged += 1;
                        }
                        Some(_) if options.delete => {
                            delete(path, &mut plan, &mut deleted);
                            plan.links.push((path.clone(), target));
                        }
                        Some(_) => plan.skipped.push((
                            path.clone(),
                            "something else is in the way of this link (use --delete)".into(),
                        )),
                        None => plan.links.push((path.clone(), target)),
                    },
                }
            }
            EntryKind::Other => plan
                .skipped
                .push((path.clone(), "not a regular file".into())),
        }
    }
    if options.delete {
        for path in destination.keys() {
            if !source.contains_key(path) {
                delete(path, &mut plan, &mut deleted);
            }
        }
    }
    plan
}

/// Plans the removal of `path` unless an ancestor is already removed.
fn delete(path: &str, plan: &mut SyncPlan, deleted: &mut BTreeSet<String>) {
    if !under_any(path, deleted) && deleted.insert(path.to_owned()) {
        plan.deletes.push(path.to_owned());
    }
}

fn same_content(source: &Node, destination: &Node, checksum: bool) -> bool {
    if source.size != destination.size {
        return false;
    }
    if checksum {
        matches!((source.hash, destination.hash), (Some(a), Some(b)) if a == b)
    } else {
        source.mtime == destination.mtime
    }
}

/// Walks a local directory into a [`Tree`], leaving out excluded entries and
/// partial files; `None` if `root` does not exist.
pub fn local_tree(root: &Path, excludes: &Excludes) -> Result<Option<Tree>, ClientError> {
    match std::fs::metadata(root) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(ClientError::Usage(format!(
                "{}: not a directory",
                root.display()
            )));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(ClientError::local(root, error)),
    }
    let mut tree = Tree::new();
    let mut pending = vec![(root.to_owned(), String::new())];
    while let Some((directory, prefix)) = pending.pop() {
        let entries =
            std::fs::read_dir(&directory).map_err(|error| ClientError::local(&directory, error))?;
        for entry in entries {
            let entry = entry.map_err(|error| ClientError::local(&directory, error))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if qftp_proto::is_partial_name(&name) {
                continue;
            }
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if excludes.matches(&relative) {
                continue;
            }
            let metadata = std::fs::symlink_metadata(&path)
                .map_err(|error| ClientError::local(&path, error))?;
            let kind = if metadata.is_dir() {
                EntryKind::Directory
            } else if metadata.is_file() {
                EntryKind::File
            } else if metadata.file_type().is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::Other
            };
            let link_target = if kind == EntryKind::Symlink {
                std::fs::read_link(&path)
                    .ok()
                    .map(|target| target.to_string_lossy().into_owned())
            } else {
                None
            };
            let mtime = metadata.modified().map(Timestamp::from).unwrap_or_default();
            if kind == EntryKind::Directory {
                pending.push((path, relative.clone()));
            }
            tree.insert(
                relative,
                Node {
                    kind,
                    size: if kind == EntryKind::File {
                        metadata.len()
                    } else {
                        0
                    },
                    mtime,
                    hash: None,
                    link_target,
                },
            );
        }
    }
    Ok(Some(tree))
}

/// Computes the BLAKE3 of every file in `tree` below `root` whose path is in
/// `wanted`, off the async workers.
async fn hash_local_files(
    root: &Path,
    tree: &mut Tree,
    wanted: &BTreeSet<String>,
) -> Result<(), ClientError> {
    let root = root.to_owned();
    let paths: Vec<String> = wanted.iter().cloned().collect();
    let hashes =
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, HashBytes)>, ClientError> {
            paths
                .into_iter()
                .map(|relative| {
                    let path = root.join(&relative);
                    let mut hasher = blake3::Hasher::new();
                    let file = std::fs::File::open(&path)
                        .map_err(|error| ClientError::local(&path, error))?;
                    hasher
                        .update_reader(file)
                        .map_err(|error| ClientError::local(&path, error))?;
                    Ok((relative, *hasher.finalize().as_bytes()))
                })
                .collect()
        })
        .await
        .map_err(|error| ClientError::Protocol(format!("hashing thread failed: {error}")))??;
    for (relative, hash) in hashes {
        if let Some(node) = tree.get_mut(&relative) {
            node.hash = Some(hash);
        }
    }
    Ok(())
}

/// Lists the remote directory `root` into a [`Tree`] with one streamed
/// request; `None` if it does not exist.
pub async fn remote_tree(
    client: &Client,
    root: &str,
    excludes: &Excludes,
    hashes: bool,
) -> Result<Option<Tree>, ClientError> {
    match client.stat(root).await {
        Ok(entry) if entry.kind == EntryKind::Directory => {}
        Ok(_) => return Err(ClientError::Usage(format!("{root}: not a directory"))),
        Err(error) if error.server_kind() == Some(qftp_proto::ErrorKind::NotFound) => {
            return Ok(None);
        }
        Err(error) => return Err(error),
    }
    let mut tree = Tree::new();
    client
        .walk(root, hashes, |entries| {
            for entry in entries {
                if excludes.excludes(&entry.name) {
                    continue;
                }
                tree.insert(
                    entry.name,
                    Node {
                        kind: entry.kind,
                        size: entry.size,
                        mtime: entry.mtime,
                        hash: entry.hash,
                        link_target: entry.link_target,
                    },
                );
            }
        })
        .await?;
    Ok(Some(tree))
}

/// Files on both sides with the same size: the ones whose hashes matter.
fn hash_candidates(source: &Tree, destination: &Tree) -> BTreeSet<String> {
    source
        .iter()
        .filter(|(path, node)| {
            node.kind == EntryKind::File
                && destination
                    .get(*path)
                    .is_some_and(|other| other.kind == EntryKind::File && other.size == node.size)
        })
        .map(|(path, _)| path.clone())
        .collect()
}

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
    /// Wall time, planning included.
    pub elapsed: Duration,
}

impl SyncReport {
    /// Every failure, transfers included.
    pub fn failures(&self) -> impl Iterator<Item = &(String, ClientError)> {
        self.failed.iter().chain(self.transfers.failed.iter())
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
        format!(
            "sync: {} sent, {} unchanged, {} deleted, {} failed; {} in {:.2} s ({}/s), {} resumed",
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

/// Scans a local tree off the async workers.
async fn scan_local(root: &Path, excludes: &Excludes) -> Result<Option<Tree>, ClientError> {
    let root = root.to_owned();
    let excludes = excludes.clone();
    tokio::task::spawn_blocking(move || local_tree(&root, &excludes))
        .await
        .map_err(|error| ClientError::Protocol(format!("scanning thread failed: {error}")))?
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
    let source_tree = scan_local(source, &excludes)
        .await?
        .ok_or_else(|| ClientError::Usage(format!("{}: no such directory", source.display())))?;
    let remote = remote_tree(client, destination, &excludes, options.plan.checksum).await?;
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
        for path in &plan.directories {
            let result = client.mkdir(&remote_join(destination, path), true).await;
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
    let source_tree = remote_tree(client, source, &excludes, options.plan.checksum)
        .await?
        .ok_or_else(|| ClientError::Usage(format!("{source}: no such directory")))?;
    let destination_tree = scan_local(destination, &excludes)
        .await?
        .unwrap_or_default();
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
        std::fs::create_dir_all(destination)
            .map_err(|error| ClientError::local(destination, error))?;
        let local = |path: &str| batch::safe_local_join(destination, path);
        for path in &plan.deletes {
            let target = local(path)?;
            let removed = match std::fs::symlink_metadata(&target) {
                Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(&target),
                Ok(_) => std::fs::remove_file(&target),
                Err(error) => Err(error),
            };
            let result = removed.map_err(|error| ClientError::local(target, error));
            tally(&mut report.deleted, &mut report.failed, path, result);
        }
        for path in &plan.directories {
            let target = local(path)?;
            let result =
                std::fs::create_dir_all(&target).map_err(|error| ClientError::local(target, error));
            tally(&mut report.created, &mut report.failed, path, result);
        }
        let files = plan
            .transfers
            .iter()
            .map(|(path, size)| {
                Ok(DownloadJob {
                    remote: remote_join(source, path),
                    local: local(path)?,
                    size: *size,
                })
            })
            .collect::<Result<_, ClientError>>()?;
        let download = DownloadPlan {
            files,
            ..DownloadPlan::default()
        };
        let transfer = options.transfer.clone();
        report.transfers =
            batch::download(client, download, options.jobs, transfer, observer(&plan)).await?;
        for (path, target) in &plan.links {
            let link = local(path)?;
            let result = std::os::unix::fs::symlink(target, &link)
                .map_err(|error| ClientError::local(link, error));
            tally(&mut report.created, &mut report.failed, path, result);
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, secs: i64) -> Node {
        Node {
            kind: EntryKind::File,
            size,
            mtime: Timestamp { secs, nanos: 0 },
            hash: None,
            link_target: None,
        }
    }

    fn directory() -> Node {
        Node {
            kind: EntryKind::Directory,
            size: 0,
            mtime: Timestamp::default(),
            hash: None,
            link_target: None,
        }
    }

    fn link(target: &str) -> Node {
        Node {
            kind: EntryKind::Symlink,
            size: 0,
            mtime: Timestamp::default(),
            hash: None,
            link_target: Some(target.into()),
        }
    }

    fn tree(entries: &[(&str, Node)]) -> Tree {
        entries
            .iter()
            .map(|(path, node)| (path.to_string(), node.clone()))
            .collect()
    }

    #[test]
    fn changed_new_and_removed_files_are_planned() {
        let source = tree(&[
            ("a", directory()),
            ("a/same.txt", file(10, 100)),
            ("a/resized.txt", file(11, 100)),
            ("a/touched.txt", file(10, 200)),
            ("new", directory()),
            ("new/file.txt", file(5, 1)),
        ]);
        let destination = tree(&[
            ("a", directory()),
            ("a/same.txt", file(10, 100)),
            ("a/resized.txt", file(10, 100)),
            ("a/touched.txt", file(10, 100)),
            ("old", directory()),
            ("old/inner.txt", file(1, 1)),
            ("a-stale.txt", file(1, 1)),
        ]);
        let plan = plan(
            &source,
            &destination,
            PlanOptions {
                delete: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(plan.directories, ["new"]);
        let sent: Vec<_> = plan
            .transfers
            .iter()
            .map(|(path, _)| path.as_str())
            .collect();
        assert_eq!(sent, ["a/resized.txt", "a/touched.txt", "new/file.txt"]);
        assert_eq!(plan.unchanged, 1);
        // Only the topmost entry of a removed subtree is deleted.
        assert_eq!(plan.deletes, ["a-stale.txt", "old"]);
    }

    #[test]
    fn without_delete_nothing_is_removed_and_conflicts_are_skipped() {
        let source = tree(&[("x", file(1, 1)), ("d", directory()), ("d/f", file(1, 1))]);
        let destination = tree(&[("x", directory()), ("d", file(3, 3)), ("extra", file(1, 1))]);
        let plan = plan(&source, &destination, PlanOptions::default());
        assert!(plan.deletes.is_empty());
        assert!(plan.transfers.is_empty(), "{plan:?}");
        let skipped: Vec<_> = plan.skipped.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(skipped, ["d", "x"]);
    }

    #[test]
    fn checksum_compares_hashes_not_times() {
        let mut source_file = file(4, 1);
        source_file.hash = Some([1; 32]);
        let mut destination_file = file(4, 1);
        destination_file.hash = Some([2; 32]);
        let source = tree(&[("f", source_file.clone())]);
        let destination = tree(&[("f", destination_file)]);
        assert_eq!(
            plan(&source, &destination, PlanOptions::default()).unchanged,
            1
        );
        let checked = plan(
            &source,
            &destination,
            PlanOptions {
                checksum: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(checked.transfers, [("f".to_string(), 4)]);
        let mut touched = source_file;
        touched.mtime.secs = 99;
        let same_content = tree(&[("f", touched)]);
        let destination = tree(&[("f", {
            let mut node = file(4, 1);
            node.hash = Some([1; 32]);
            node
        })]);
        assert_eq!(
            plan(
                &same_content,
                &destination,
                PlanOptions {
                    checksum: true,
                    ..PlanOptions::default()
                }
            )
            .unchanged,
            1
        );
    }

    #[test]
    fn symlinks_are_skipped_unless_asked_and_never_lead_outside() {
        let source = tree(&[
            ("d", directory()),
            ("d/inside", link("../f")),
            ("d/outside", link("../../x")),
            ("abs", link("/etc")),
        ]);
        let plan_without = plan(&source, &Tree::new(), PlanOptions::default());
        assert!(plan_without.links.is_empty());
        assert_eq!(plan_without.skipped.len(), 3);
        let plan_with = plan(
            &source,
            &Tree::new(),
            PlanOptions {
                links: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!(
            plan_with.links,
            [("d/inside".to_string(), "../f".to_string())]
        );
        assert_eq!(plan_with.skipped.len(), 2);
    }

    #[test]
    fn excludes_match_names_paths_and_subtrees() {
        let excludes =
            Excludes::new(&["*.tmp".into(), "build/cache".into(), "target".into()]).unwrap();
        assert!(excludes.excludes("a/b/x.tmp"));
        assert!(excludes.excludes("target"));
        assert!(excludes.excludes("src/target/debug/app"));
        assert!(excludes.excludes("build/cache/objects/1"));
        assert!(!excludes.excludes("build/output"));
        assert!(!excludes.excludes("notes.txt"));
        assert!(Excludes::new(&["[".into()]).is_err());
    }

    #[test]
    fn link_containment_is_checked_lexically() {
        assert!(link_stays_inside("a/b", "../c"));
        assert!(link_stays_inside("a/b", "c/d"));
        assert!(!link_stays_inside("a/b", "../../c"));
        assert!(!link_stays_inside("b", "/etc/passwd"));
        assert!(!link_stays_inside("a/b", "x/../../../y"));
        assert!(!link_stays_inside("a/b", "x/../y"));
    }

    #[test]
    fn link_targets_are_sent_in_canonical_form_or_skipped() {
        let source = tree(&[
            ("a", directory()),
            ("a/real", directory()),
            ("a/s", link("../q")),
            ("a/f", file(1, 1)),
            ("q", directory()),
        ]);
        let canonical = |path: &str, target: &str| canonical_link_target(path, target, &source);
        assert_eq!(canonical("a/l", "../q/x"), Ok("../q/x".into()));
        assert_eq!(canonical("a/l", "./real//x/"), Ok("real/x".into()));
        assert_eq!(canonical("a/l", "real/../f"), Ok("f".into()));
        assert_eq!(canonical("a/l", "../a/real"), Ok("real".into()));
        assert_eq!(canonical("a/l", "."), Ok("../a".into()));
        assert_eq!(canonical("top", "a/real/../../q"), Ok("q".into()));
        // `s` is a link: `..` after it climbs from wherever it leads.
        assert!(canonical("a/l", "s/../../z").is_err());
        assert!(canonical("a/l", "f/../real").is_err());
        assert!(canonical("a/l", "missing/../real").is_err());
        assert!(
            canonical("a/l", "../../x")
                .unwrap_err()
                .contains("leads outside the tree")
        );
        assert!(
            canonical("a/l", "/etc")
                .unwrap_err()
                .contains("leads outside the tree")
        );
        assert!(canonical("top", ".").is_err());
        assert!(canonical("top", "").is_err());

        let plan = plan(
            &tree(&[
                ("a", directory()),
                ("a/tidy", link("./b//c")),
                ("a/escape", link("b/../../../x")),
            ]),
            &tree(&[("a", directory()), ("a/tidy", link("b/c"))]),
            PlanOptions {
                links: true,
                ..PlanOptions::default()
            },
        );
        assert_eq!((plan.unchanged, plan.links.len()), (1, 0));
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.skipped[0].0, "a/escape");
    }
}
