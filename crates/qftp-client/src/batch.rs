//! Many transfers at once: expanding `put`/`get` arguments into per-file
//! jobs, and running them with a bounded number in flight on one
//! connection, each file on its own stream.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qftp_proto::EntryKind;
use qftp_proto::path::RemotePath;

use crate::connection::Client;
use crate::error::ClientError;
use crate::transfer::{self, SharedObserver, TransferOptions};

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadJob {
    /// The local file.
    pub local: PathBuf,
    /// The remote path, absolute within the home.
    pub remote: String,
    /// Its size when planned.
    pub size: u64,
}

/// One file to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadJob {
    /// The remote path, absolute within the home.
    pub remote: String,
    /// The local destination.
    pub local: PathBuf,
    /// Its size when planned.
    pub size: u64,
}

/// An upload plan: directories to create first, then files.
#[derive(Debug, Default, Clone)]
pub struct UploadPlan {
    /// Remote directories, parents before children.
    pub directories: Vec<String>,
    /// Files.
    pub files: Vec<UploadJob>,
    /// Local entries left out, with the reason (symlinks, special files).
    pub skipped: Vec<(PathBuf, String)>,
}

/// A download plan: directories to create first, then files.
#[derive(Debug, Default, Clone)]
pub struct DownloadPlan {
    /// Local directories, parents before children.
    pub directories: Vec<PathBuf>,
    /// Files.
    pub files: Vec<DownloadJob>,
    /// Remote entries left out, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// How a batch went.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Files that arrived, verified.
    pub succeeded: usize,
    /// Files that failed, with why.
    pub failed: Vec<(String, ClientError)>,
    /// Bytes that travelled.
    pub transferred: u64,
    /// Bytes that were already in place from earlier attempts.
    pub resumed: u64,
    /// Wall time of the batch.
    pub elapsed: Duration,
}

impl BatchReport {
    /// One line: files, bytes, time, average rate, resumed bytes.
    pub fn summary(&self) -> String {
        use qftp_proto::size::format_size;
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.transferred as f64 / seconds
        } else {
            0.0
        };
        let mut line = format!(
            "{} file{} transferred, {} in {:.2} s ({}/s), {} resumed",
            self.succeeded,
            if self.succeeded == 1 { "" } else { "s" },
            format_size(self.transferred),
            seconds,
            format_size(rate as u64),
            format_size(self.resumed),
        );
        if !self.failed.is_empty() {
            line.push_str(&format!(", {} failed", self.failed.len()));
        }
        line
    }
}

fn name_of(path: &Path) -> Result<String, ClientError> {
    path.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Usage(format!("{}: has no usable file name", path.display())))
}

fn join_remote(base: &RemotePath, relative: &str) -> Result<String, ClientError> {
    base.join(relative)
        .map(|path| path.to_string())
        .map_err(|error| ClientError::Usage(format!("{relative}: {error}")))
}

/// Expands `put` arguments: `sources` are local paths, `destination` the
/// remote target (already resolved against the current directory).
pub async fn plan_upload(
    client: &Client,
    sources: &[PathBuf],
    destination: &RemotePath,
    recursive: bool,
) -> Result<UploadPlan, ClientError> {
    let target_is_dir = match client.stat(&destination.to_string()).await {
        Ok(entry) => entry.kind == EntryKind::Directory,
        Err(error) if error.server_kind() == Some(qftp_proto::ErrorKind::NotFound) => false,
        Err(error) => return Err(error),
    };
    let into_directory = target_is_dir || sources.len() > 1;
    if sources.len() > 1 && !target_is_dir {
        return Err(ClientError::Usage(format!(
            "{destination}: not a directory (several sources need a directory)"
        )));
    }
    let mut plan = UploadPlan::default();
    for source in sources {
        let metadata =
            std::fs::metadata(source).map_err(|error| ClientError::local(source, error))?;
        let root = if into_directory {
            destination
                .join(&name_of(source)?)
                .map_err(|error| ClientError::Usage(error.to_string()))?
        } else {
            destination.clone()
        };
        if metadata.is_file() {
            plan.files.push(UploadJob {
                local: source.clone(),
                remote: root.to_string(),
                size: metadata.len(),
            });
        } else if metadata.is_dir() {
            if !recursive {
                return Err(ClientError::Usage(format!(
                    "{}: is a directory (use -r)",
                    source.display()
                )));
            }
            plan.directories.push(root.to_string());
            walk_local(source, &root, &mut plan)?;
        } else {
            plan.skipped
                .push((source.clone(), "not a regular file or directory".into()));
        }
    }
    Ok(plan)
}

/// Adds everything below the local directory `top` to `plan`, iteratively.
fn walk_local(
    top: &Path,
    remote_top: &RemotePath,
    plan: &mut UploadPlan,
) -> Result<(), ClientError> {
    let mut pending = vec![(top.to_owned(), remote_top.clone())];
    while let Some((directory, remote)) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&directory)
            .map_err(|error| ClientError::local(&directory, error))?
            .collect::<Result<_, _>>()
            .map_err(|error| ClientError::local(&directory, error))?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                plan.skipped.push((path, "name is not valid UTF-8".into()));
                continue;
            };
            if qftp_proto::is_partial_name(&name) {
                continue;
            }
            let file_type = entry
                .file_type()
                .map_err(|error| ClientError::local(&path, error))?;
            let remote_path = remote
                .join(&name)
                .map_err(|error| ClientError::Usage(error.to_string()))?;
            if file_type.is_dir() {
                plan.directories.push(remote_path.to_string());
                pending.push((path, remote_path));
            } else if file_type.is_file() {
                let size = entry
                    .metadata()
                    .map_err(|error| ClientError::local(&path, error))?
                    .len();
                plan.files.push(UploadJob {
                    local: path,
                    remote: remote_path.to_string(),
                    size,
                });
            } else if file_type.is_symlink() {
                plan.skipped.push((path, "symlink skipped".into()));
            } else {
                plan.skipped.push((path, "not a regular file".into()));
            }
        }
    }
    Ok(())
}

/// Expands `get` arguments: `sources` are remote paths (resolved against the
/// current directory), `destination` the local target.
pub async fn plan_download(
    client: &Client,
    sources: &[RemotePath],
    destination: &Path,
    recursive: bool,
) -> Result<DownloadPlan, ClientError> {
    let target_is_dir = destination.is_dir();
    if sources.len() > 1 && !target_is_dir {
        return Err(ClientError::Usage(format!(
            "{}: not a directory (several sources need a directory)",
            destination.display()
        )));
    }
    let mut plan = DownloadPlan::default();
    for source in sources {
        let entry = client.stat(&source.to_string()).await?;
        let name = source.file_name().unwrap_or("home").to_owned();
        let root = if target_is_dir {
            destination.join(&name)
        } else {
            destination.to_owned()
        };
        match entry.kind {
            EntryKind::File => plan.files.push(DownloadJob {
                remote: source.to_string(),
                local: root,
                size: entry.size,
            }),
            EntryKind::Directory => {
                if !recursive {
                    return Err(ClientError::Usage(format!(
                        "{source}: is a directory (use -r)"
                    )));
                }
                plan.directories.push(root.clone());
                let mut failure = None;
                client
                    .walk(&source.to_string(), false, |entries| {
                        for entry in entries {
                            let local = match safe_local_join(&root, &entry.name) {
                                Ok(local) => local,
                                Err(error) => {
                                    failure.get_or_insert(error);
                                    continue;
                                }
                            };
                            match entry.kind {
                                EntryKind::Directory => plan.directories.push(local),
                                EntryKind::File => match join_remote(source, &entry.name) {
                                    Ok(remote) => plan.files.push(DownloadJob {
                                        remote,
                                        local,
                                        size: entry.size,
                                    }),
                                    Err(error) => {
                                        failure.get_or_insert(error);
                                    }
                                },
                                _ => plan.skipped.push((entry.name, "not a regular file".into())),
                            }
                        }
                    })
                    .await?;
                if let Some(error) = failure {
                    return Err(error);
                }
            }
            _ => plan
                .skipped
                .push((source.to_string(), "not a regular file".into())),
        }
    }
    Ok(plan)
}

/// Joins a relative path from the server under `root`, refusing anything
/// that could step outside it (a hostile server must not write elsewhere).
pub fn safe_local_join(root: &Path, relative: &str) -> Result<PathBuf, ClientError> {
    let mut path = root.to_owned();
    for component in relative.split('/') {
        if component.is_empty() || component == "." || component == ".." || component.contains('\0')
        {
            return Err(ClientError::Protocol(format!(
                "the server sent an unsafe path {relative:?}"
            )));
        }
        path.push(component);
    }
    Ok(path)
}

/// How many small files (at most [`qftp_proto::SMALL_FILE_MAX`]) may be in
/// flight in the place of one larger file. A small file costs a round trip
/// and a few file-system calls, not bandwidth, so a tree of them is bound by
/// latency unless many are in flight.
const SMALL_FILES_PER_SLOT: usize = 4;

/// The share of a transfer slot that a file of `size` bytes takes.
fn weight(size: u64) -> usize {
    if size <= qftp_proto::SMALL_FILE_MAX {
        1
    } else {
        SMALL_FILES_PER_SLOT
    }
}

/// Runs `work` on every item with at most `concurrency` larger files, or
/// [`SMALL_FILES_PER_SLOT`] times as many small ones, in flight.
async fn run_parallel<T, F, Fut>(items: Vec<(T, u64)>, concurrency: usize, work: F) -> BatchReport
where
    T: Send + 'static,
    F: Fn(usize, T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (String, Result<transfer::TransferOutcome, ClientError>)>
        + Send,
{
    let started = Instant::now();
    let slots = concurrency.max(1) * SMALL_FILES_PER_SLOT;
    let queue = Arc::new(Mutex::new(
        items.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let permits = Arc::new(tokio::sync::Semaphore::new(slots));
    let work = Arc::new(work);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..slots {
        let queue = Arc::clone(&queue);
        let work = Arc::clone(&work);
        let permits = Arc::clone(&permits);
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let next = queue.lock().expect("queue lock").pop_front();
                let Some((job, (item, size))) = next else {
                    break;
                };
                let Ok(_permit) = permits.acquire_many(weight(size) as u32).await else {
                    break;
                };
                results.push(work(job, item).await);
            }
            results
        });
    }
    let mut report = BatchReport::default();
    while let Some(results) = workers.join_next().await {
        for (label, result) in results.unwrap_or_default() {
            match result {
                Ok(outcome) => {
                    report.succeeded += 1;
                    report.transferred += outcome.transferred;
                    report.resumed += outcome.resumed;
                }
                Err(error) => report.failed.push((label, error)),
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// Creates the plan's remote directories, then uploads its files.
pub async fn upload(
    client: &Client,
    plan: UploadPlan,
    concurrency: usize,
    options: TransferOptions,
    observer: SharedObserver,
) -> Result<BatchReport, ClientError> {
    for directory in &plan.directories {
        client.mkdir(directory, true).await?;
    }
    let client = client.clone();
    let files = plan.files.into_iter().map(|file| {
        let size = file.size;
        (file, size)
    });
    Ok(
        run_parallel(files.collect(), concurrency, move |job, file: UploadJob| {
            let client = client.clone();
            let observer = Arc::clone(&observer);
            let options = options.clone();
            async move {
                let result = transfer::upload(
                    &client,
                    &file.local,
                    &file.remote,
                    &options,
                    observer.as_ref(),
                    job,
                )
                .await;
                (file.local.display().to_string(), result)
            }
        })
        .await,
    )
}

/// Creates the plan's local directories, then downloads its files.
pub async fn download(
    client: &Client,
    plan: DownloadPlan,
    concurrency: usize,
    options: TransferOptions,
    observer: SharedObserver,
) -> Result<BatchReport, ClientError> {
    for directory in &plan.directories {
        std::fs::create_dir_all(directory).map_err(|error| ClientError::local(directory, error))?;
    }
    let client = client.clone();
    let files = plan.files.into_iter().map(|file| {
        let size = file.size;
        (file, size)
    });
    Ok(run_parallel(
        files.collect(),
        concurrency,
        move |job, file: DownloadJob| {
            let client = client.clone();
            let observer = Arc::clone(&observer);
            let options = options.clone();
            async move {
                let result = transfer::download(
                    &client,
                    &file.remote,
                    &file.local,
                    &options,
                    observer.as_ref(),
                    job,
                )
                .await;
                (file.remote, result)
            }
        },
    )
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_relative_paths_are_refused() {
        let root = Path::new("/tmp/dest");
        assert_eq!(
            safe_local_join(root, "a/b.txt").unwrap(),
            root.join("a/b.txt")
        );
        for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", ""] {
            assert!(safe_local_join(root, bad).is_err(), "{bad}");
        }
    }
}
