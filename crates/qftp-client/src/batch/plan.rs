//! Expanding `put` and `get` arguments into per-file jobs: the local walk
//! of an upload, the remote walk of a download (refusing, one by one, names
//! the server sends that are not safe to write). It transfers nothing;
//! [`super::run`] does.

use std::path::{Path, PathBuf};

use qftp_proto::EntryKind;
use qftp_proto::path::RemotePath;

use crate::connection::Client;
use crate::destination::LocalName;
use crate::error::ClientError;
use crate::refusal::Refusal;

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
    /// Where it lands, beneath the plan's destination.
    pub local: LocalName,
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

/// A download plan: the local directory everything lands beneath, the
/// directories to create there first, then files.
#[derive(Debug, Default, Clone)]
pub struct DownloadPlan {
    /// The local directory the user named (or the one holding the file
    /// the user named); nothing is written outside it.
    pub destination: PathBuf,
    /// Whether `destination` itself is to be created.
    pub create_destination: bool,
    /// Directories beneath it, parents before children.
    pub directories: Vec<LocalName>,
    /// Files.
    pub files: Vec<DownloadJob>,
    /// Remote entries left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Entries the server sent under a name that is not safe to write.
    pub refused: Vec<(String, Refusal)>,
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
/// current directory), `destination` the local target. Names the server
/// sends that are not safe to write are refused here, one by one.
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
    let mut plan = DownloadPlan {
        destination: destination.to_owned(),
        ..DownloadPlan::default()
    };
    for source in sources {
        let entry = client.stat(&source.to_string()).await?;
        let name = source.file_name().unwrap_or("home");
        let name = LocalName::parse(name)
            .map_err(|reason| ClientError::Usage(format!("{source}: {reason}")))?;
        match entry.kind {
            EntryKind::File if target_is_dir => plan.files.push(DownloadJob {
                remote: source.to_string(),
                local: name,
                size: entry.size,
            }),
            EntryKind::File => {
                let unusable = || {
                    ClientError::Usage(format!("{}: not a usable file name", destination.display()))
                };
                let file_name = destination
                    .file_name()
                    .and_then(|name| name.to_str())
                    .ok_or_else(unusable)?;
                let local = LocalName::parse(file_name).map_err(|_| unusable())?;
                plan.destination = destination
                    .parent()
                    .filter(|parent| !parent.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_owned();
                plan.files.push(DownloadJob {
                    remote: source.to_string(),
                    local,
                    size: entry.size,
                });
            }
            EntryKind::Directory => {
                if !recursive {
                    return Err(ClientError::Usage(format!(
                        "{source}: is a directory (use -r)"
                    )));
                }
                // Into an existing directory under the source's name, or
                // as the new directory `destination` itself.
                let top = if target_is_dir {
                    plan.directories.push(name.clone());
                    Some(name)
                } else {
                    plan.create_destination = true;
                    None
                };
                let mut failure = None;
                client
                    .walk(&source.to_string(), false, |entries| {
                        for entry in entries {
                            let local = match LocalName::parse(&entry.name) {
                                Ok(local) => local,
                                Err(reason) => {
                                    plan.refused.push((entry.name, reason));
                                    continue;
                                }
                            };
                            let local = match &top {
                                Some(top) => top.join(&local),
                                None => local,
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
