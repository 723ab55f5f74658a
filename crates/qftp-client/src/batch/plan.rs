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

use super::placement::{Existing, Placement, ends_with_slash, place};

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
#[derive(Debug, Default)]
pub struct UploadPlan {
    /// Remote directories, parents before children.
    pub directories: Vec<String>,
    /// Files.
    pub files: Vec<UploadJob>,
    /// Local entries left out, with the reason (symlinks, special files).
    pub skipped: Vec<(PathBuf, String)>,
    /// Sources that could not be planned (missing, unreadable), as the
    /// user named them, with why; the others go on.
    pub failed: Vec<(String, ClientError)>,
}

/// A download plan: the local directory everything lands beneath, the
/// directories to create there first, then files.
#[derive(Debug, Default)]
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
    /// Sources that could not be planned (missing, unreachable), with why;
    /// the others go on.
    pub failed: Vec<(String, ClientError)>,
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
/// remote target (already resolved against the current directory), which
/// the user wrote with a trailing `/` when `trailing_slash`. Where the
/// sources land follows [`placement`]. With several sources, one that
/// cannot be read is reported in [`UploadPlan::failed`] and the others go
/// on; a single source's error is the plan's.
pub async fn plan_upload(
    client: &Client,
    sources: &[PathBuf],
    destination: &RemotePath,
    trailing_slash: bool,
    recursive: bool,
) -> Result<UploadPlan, ClientError> {
    let existing = match client.stat(&destination.to_string()).await {
        Ok(entry) if entry.kind == EntryKind::Directory => Existing::Directory,
        Ok(_) => Existing::Other,
        Err(error) if error.server_kind() == Some(qftp_proto::ErrorKind::NotFound) => {
            Existing::Missing
        }
        Err(error) => return Err(error),
    };
    let placement = place(sources.len(), trailing_slash, existing)
        .map_err(|error| ClientError::Usage(format!("{destination}: {error}")))?;
    let mut plan = UploadPlan::default();
    match placement {
        Placement::Inside { create: true } => plan.directories.push(destination.to_string()),
        Placement::As if existing == Existing::Missing && !destination.parent().is_root() => {
            plan.directories.push(destination.parent().to_string());
        }
        Placement::Inside { create: false } | Placement::As => {}
    }
    for source in sources {
        let root = match placement {
            Placement::Inside { .. } => name_of(source).and_then(|name| {
                destination
                    .join(&name)
                    .map_err(|error| ClientError::Usage(error.to_string()))
            }),
            Placement::As => Ok(destination.clone()),
        };
        match root.and_then(|root| plan_local_source(source, &root, recursive, &mut plan)) {
            Ok(()) => {}
            Err(error) if sources.len() > 1 => {
                plan.failed.push((source.display().to_string(), error));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(plan)
}

/// Adds the local `source`, to be uploaded as `root`, to `plan`.
fn plan_local_source(
    source: &Path,
    root: &RemotePath,
    recursive: bool,
    plan: &mut UploadPlan,
) -> Result<(), ClientError> {
    let metadata = std::fs::metadata(source).map_err(|error| ClientError::local(source, error))?;
    if metadata.is_file() {
        plan.files.push(UploadJob {
            local: source.to_owned(),
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
        walk_local(source, root, plan)?;
    } else {
        plan.skipped
            .push((source.to_owned(), "not a regular file or directory".into()));
    }
    Ok(())
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
/// current directory), `destination` the local target as the user wrote it
/// (a trailing `/` names a directory). Where the sources land follows
/// [`placement`]. Names the server sends that are not safe to write are
/// refused here, one by one. With several sources, one that cannot be
/// reached is reported in [`DownloadPlan::failed`] and the others go on.
pub async fn plan_download(
    client: &Client,
    sources: &[RemotePath],
    destination: &Path,
    recursive: bool,
) -> Result<DownloadPlan, ClientError> {
    let existing = match std::fs::metadata(destination) {
        Ok(metadata) if metadata.is_dir() => Existing::Directory,
        Ok(_) => Existing::Other,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Existing::Missing,
        // `file/`: a file asked to be a directory.
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => Existing::Other,
        Err(error) => return Err(ClientError::local(destination, error)),
    };
    let trailing_slash = ends_with_slash(&destination.to_string_lossy());
    let placement = place(sources.len(), trailing_slash, existing)
        .map_err(|error| ClientError::Usage(format!("{}: {error}", destination.display())))?;
    let mut plan = DownloadPlan {
        destination: destination.to_owned(),
        create_destination: placement == Placement::Inside { create: true },
        ..DownloadPlan::default()
    };
    for source in sources {
        match plan_remote_source(client, source, placement, destination, recursive, &mut plan).await
        {
            Ok(()) => {}
            Err(error) if sources.len() > 1 => plan.failed.push((source.to_string(), error)),
            Err(error) => return Err(error),
        }
    }
    Ok(plan)
}

/// Adds the remote `source` to `plan`, placed as `placement` says.
async fn plan_remote_source(
    client: &Client,
    source: &RemotePath,
    placement: Placement,
    destination: &Path,
    recursive: bool,
    plan: &mut DownloadPlan,
) -> Result<(), ClientError> {
    let entry = client.stat(&source.to_string()).await?;
    let name = source.file_name().unwrap_or("home");
    let name = LocalName::parse(name)
        .map_err(|reason| ClientError::Usage(format!("{source}: {reason}")))?;
    let top = match placement {
        Placement::Inside { .. } => Some(name),
        Placement::As => None,
    };
    match entry.kind {
        EntryKind::File => {
            let local = match top {
                Some(name) => name,
                None => {
                    let unusable = || {
                        ClientError::Usage(format!(
                            "{}: not a usable file name",
                            destination.display()
                        ))
                    };
                    let file_name = destination
                        .file_name()
                        .and_then(|name| name.to_str())
                        .ok_or_else(unusable)?;
                    let local = LocalName::parse(file_name).map_err(|_| unusable())?;
                    // The file lands in the destination's parent, created
                    // with its own parents when missing.
                    plan.destination = destination
                        .parent()
                        .filter(|parent| !parent.as_os_str().is_empty())
                        .unwrap_or(Path::new("."))
                        .to_owned();
                    plan.create_destination = true;
                    local
                }
            };
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
            // Into the destination under the source's name, or as the
            // destination itself (created with its parents).
            match &top {
                Some(name) => plan.directories.push(name.clone()),
                None => plan.create_destination = true,
            }
            walk_remote(client, source, top.as_ref(), plan).await?;
        }
        _ => plan
            .skipped
            .push((source.to_string(), "not a regular file".into())),
    }
    Ok(())
}

/// Adds everything below the remote directory `source` to `plan`, beneath
/// `top` (or the destination itself).
async fn walk_remote(
    client: &Client,
    source: &RemotePath,
    top: Option<&LocalName>,
    plan: &mut DownloadPlan,
) -> Result<(), ClientError> {
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
                let local = match top {
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
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
