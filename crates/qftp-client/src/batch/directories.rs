//! Creating many remote directories without a round trip each.
//!
//! A tree of a thousand directories, created one request after another,
//! costs a thousand round trips before the first file moves: nothing on
//! loopback, most of a minute on a 50 ms path. The requests share one
//! control stream, so they can be in flight together; the only order that
//! matters is a parent before its children. [`create_remote`] therefore
//! sends the directories of one depth together (bounded), and the next depth
//! once they are answered.

use crate::connection::Client;
use crate::error::ClientError;

/// How many `mkdir` requests may wait for their answers at once.
const IN_FLIGHT: usize = 64;

/// The number of components of a remote path (`a/b/c` is 3, `/a` is 1).
fn depth(path: &str) -> usize {
    path.split('/').filter(|part| !part.is_empty()).count()
}

/// The indices of `paths` grouped by depth, shallowest first, each group
/// in the order given.
fn by_depth(paths: &[String]) -> Vec<Vec<usize>> {
    let mut levels: Vec<Vec<usize>> = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let level = depth(path);
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
        }
        levels[level].push(index);
    }
    levels.retain(|level| !level.is_empty());
    levels
}

/// Creates every directory of `paths` (with its parents), a parent before
/// its children, up to [`IN_FLIGHT`] requests at a time. Returns the
/// outcome of each path, in the order of `paths`.
pub async fn create_remote(client: &Client, paths: &[String]) -> Vec<Result<(), ClientError>> {
    let mut outcomes: Vec<Option<Result<(), ClientError>>> = paths.iter().map(|_| None).collect();
    for level in by_depth(paths) {
        for chunk in level.chunks(IN_FLIGHT) {
            // All of the chunk's requests are sent before the first answer
            // is awaited.
            let requests: Vec<_> = chunk
                .iter()
                .map(|&index| {
                    let client = client.clone();
                    let path = paths[index].clone();
                    tokio::spawn(async move { client.mkdir(&path, true).await })
                })
                .collect();
            for (&index, request) in chunk.iter().zip(requests) {
                let result = request.await.unwrap_or_else(|error| {
                    Err(ClientError::Protocol(format!(
                        "creating {} failed: {error}",
                        paths[index]
                    )))
                });
                outcomes[index] = Some(result);
            }
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every path belongs to one level"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_components() {
        assert_eq!(depth("a"), 1);
        assert_eq!(depth("/a/b/"), 2);
        assert_eq!(depth("a/b/c"), 3);
        assert_eq!(depth("/"), 0);
    }

    #[test]
    fn parents_come_in_an_earlier_level_than_their_children() {
        let paths: Vec<String> = ["d/a/x", "d", "d/a", "d/b", "d/b/y/z"]
            .iter()
            .map(|path| path.to_string())
            .collect();
        assert_eq!(
            by_depth(&paths),
            vec![vec![1], vec![2, 3], vec![0], vec![4]]
        );
    }
}
