//! Listing the two trees of a sync: the local walk (without following
//! links, leaving out partial files), the BLAKE3 of local files for
//! `--checksum`, and the remote tree from one streamed `Walk` request. It
//! compares nothing; that is [`super::plan`].

use std::collections::BTreeSet;
use std::path::Path;

use qftp_proto::{EntryKind, HashBytes, Timestamp};

use crate::connection::Client;
use crate::error::ClientError;

use super::excludes::Excludes;
use super::tree::{Node, Tree};

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
pub(crate) async fn hash_local_files(
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

/// Scans a local tree off the async workers.
pub(crate) async fn scan_local(
    root: &Path,
    excludes: &Excludes,
) -> Result<Option<Tree>, ClientError> {
    let root = root.to_owned();
    let excludes = excludes.clone();
    tokio::task::spawn_blocking(move || local_tree(&root, &excludes))
        .await
        .map_err(|error| ClientError::Protocol(format!("scanning thread failed: {error}")))?
}
