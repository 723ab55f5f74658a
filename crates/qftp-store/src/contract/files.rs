//! Checks of [`HomeFiles`] and [`OpenUpload`](crate::OpenUpload): upload and commit, resume
//! from a kept partial, mkdir, list, rename, remove and read semantics,
//! and their charges in the ledger.

use std::time::{Duration, SystemTime};

use qftp_proto::path::RemotePath;
use qftp_proto::{EntryInfo, EntryKind, ErrorKind, hash};

use crate::error::FileError;
use crate::files::{EntryPages, HomeFiles, UploadStart};
use crate::ledger::QuotaLedger;

fn path(text: &str) -> RemotePath {
    RemotePath::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn kind(result: Result<impl std::fmt::Debug, FileError>) -> ErrorKind {
    match result {
        Ok(value) => panic!("expected a refusal, got {value:?}"),
        Err(error) => error.kind(),
    }
}

async fn all(mut pages: Box<dyn EntryPages>) -> Vec<EntryInfo> {
    let mut entries = Vec::new();
    while let Some(page) = pages.next_page().await.expect("next page") {
        entries.extend(page);
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

async fn names(home: &dyn HomeFiles, directory: &str) -> Vec<String> {
    let pages = home.list(&path(directory)).await.expect("list");
    all(pages)
        .await
        .into_iter()
        .map(|entry| entry.name)
        .collect()
}

/// Uploads `data` to `target` in one go and commits it.
pub async fn put(home: &dyn HomeFiles, target: &str, data: &[u8]) {
    let mut upload = home
        .begin_upload(UploadStart {
            path: path(target),
            size: data.len() as u64,
            resume: false,
            lease: Duration::from_secs(3600),
        })
        .await
        .expect("begin_upload");
    assert_eq!(upload.resume_point(), 0, "a new upload starts at 0");
    upload.continue_at(0).await.expect("continue_at");
    upload.append(data).await.expect("append");
    let digest = *blake3::hash(data).as_bytes();
    let verified = hash::verify(&digest, &digest).expect("equal hashes");
    upload
        .commit(verified, SystemTime::now())
        .await
        .expect("commit");
}

/// The namespace rules, in an empty `home` charged to `ledger` as `user`.
pub async fn namespace(home: &dyn HomeFiles, ledger: &dyn QuotaLedger, user: &str) {
    assert!(
        names(home, "/").await.is_empty(),
        "the check needs an empty home"
    );
    home.mkdir(&path("a"), false).await.expect("mkdir");
    assert_eq!(
        kind(home.mkdir(&path("a"), false).await),
        ErrorKind::AlreadyExists
    );
    home.mkdir(&path("a"), true)
        .await
        .expect("mkdir -p of an existing one");
    home.mkdir(&path("a/b/c"), true).await.expect("mkdir -p");
    assert_eq!(
        kind(home.mkdir(&path("x/y"), false).await),
        ErrorKind::NotFound,
        "mkdir without parents needs the parent"
    );

    put(home, "a/file", b"hello, store").await;
    let info = home.stat(&path("a/file")).await.expect("stat");
    assert_eq!(info.kind, EntryKind::File);
    assert_eq!(info.size, 12);
    assert_eq!(names(home, "a").await, vec!["b", "file"]);
    assert_eq!(
        kind(home.list(&path("a/file")).await),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        home.read_at(&path("a/file"), 7, 100)
            .await
            .expect("read_at"),
        b"store",
        "read_at reads from the offset to the end"
    );
    assert!(
        home.read_at(&path("a/file"), 12, 100)
            .await
            .expect("read_at")
            .is_empty(),
        "read_at at the end reads nothing"
    );

    home.rename(&path("a/file"), &path("a/b/moved"))
        .await
        .expect("rename");
    assert_eq!(kind(home.stat(&path("a/file")).await), ErrorKind::NotFound);
    assert_eq!(names(home, "a/b").await, vec!["c", "moved"]);
    put(home, "other", b"replaced soon").await;
    home.rename(&path("a/b/moved"), &path("other"))
        .await
        .expect("rename over a file");
    assert_eq!(home.stat(&path("other")).await.expect("stat").size, 12);
    assert!(
        home.rename(&path("a"), &path("a/b/c/inside"))
            .await
            .is_err(),
        "a directory cannot move beneath itself"
    );
    assert!(
        home.rename(&path("other"), &path("a")).await.is_err(),
        "a rename never replaces a directory"
    );

    let walked: Vec<String> = all(home.walk(&path("/"), true).await.expect("walk"))
        .await
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    assert_eq!(
        walked,
        vec!["a", "a/b", "a/b/c", "other"],
        "walk gives relative paths"
    );

    assert_eq!(
        kind(home.remove(&path("a"), false).await),
        ErrorKind::DirectoryNotEmpty
    );
    home.remove(&path("a"), true).await.expect("remove -r");
    home.remove(&path("other"), false).await.expect("remove");
    assert_eq!(
        kind(home.remove(&path("other"), false).await),
        ErrorKind::NotFound
    );
    assert!(names(home, "/").await.is_empty(), "everything was removed");
    let measured = home.measure().await.expect("measure");
    assert_eq!(measured.entries, 0, "an empty home measures nothing");
    let usage = ledger.usage(user).await.expect("usage");
    assert_eq!(
        usage.used, measured,
        "the ledger agrees with the measurement"
    );
    assert_eq!(usage.reserved, 0);
}

/// An interrupted upload keeps its partial, offers it for a resume with
/// the right prefix hash, and completes; the partial is never visible.
pub async fn resume(home: &dyn HomeFiles, ledger: &dyn QuotaLedger, user: &str) {
    let data: Vec<u8> = (0..300_000u32).map(|index| (index % 251) as u8).collect();
    let start = UploadStart {
        path: path("resumed"),
        size: data.len() as u64,
        resume: true,
        lease: Duration::from_secs(3600),
    };
    let mut first = home
        .begin_upload(start.clone())
        .await
        .expect("begin_upload");
    first.continue_at(0).await.expect("continue_at");
    first.append(&data[..200_000]).await.expect("append");
    first.abort(true).await.expect("abort, keeping the partial");
    assert_eq!(
        kind(home.stat(&path("resumed")).await),
        ErrorKind::NotFound,
        "a partial is not visible"
    );
    assert!(
        ledger.usage(user).await.expect("usage").used.bytes >= 200_000,
        "a kept partial is charged"
    );

    let mut second = home.begin_upload(start).await.expect("begin_upload");
    let offset = second.resume_point();
    assert!(
        offset <= 200_000,
        "the resume point is within what was written"
    );
    let prefix = second.prefix_hash(offset).await.expect("prefix_hash");
    assert_eq!(
        &prefix,
        blake3::hash(&data[..offset as usize]).as_bytes(),
        "the prefix hash is the BLAKE3 of the kept bytes"
    );
    assert_eq!(
        kind(second.prefix_hash(offset + 1).await),
        ErrorKind::Protocol,
        "no prefix hash past the resume point"
    );
    second.continue_at(offset).await.expect("continue_at");
    second
        .append(&data[offset as usize..])
        .await
        .expect("append");
    let digest = *blake3::hash(&data).as_bytes();
    second
        .commit(
            hash::verify(&digest, &digest).expect("equal"),
            SystemTime::now(),
        )
        .await
        .expect("commit");
    let read = home
        .read_at(&path("resumed"), 0, data.len() + 1)
        .await
        .expect("read_at");
    assert_eq!(read.len(), data.len());
    assert!(read == data, "the resumed file is the whole file");
    let usage = ledger.usage(user).await.expect("usage");
    assert_eq!(
        usage.used.bytes,
        data.len() as u64,
        "only the file stays charged"
    );
    assert_eq!(usage.reserved, 0);

    let mut short = home
        .begin_upload(UploadStart {
            path: path("short"),
            size: 10,
            resume: false,
            lease: Duration::from_secs(3600),
        })
        .await
        .expect("begin_upload");
    short.continue_at(0).await.expect("continue_at");
    short.append(b"12345").await.expect("append");
    let digest = *blake3::hash(b"12345").as_bytes();
    assert_eq!(
        kind(
            short
                .commit(
                    hash::verify(&digest, &digest).expect("equal"),
                    SystemTime::now()
                )
                .await
        ),
        ErrorKind::IntegrityMismatch,
        "a partial shorter than declared is not committed"
    );
    assert_eq!(kind(home.stat(&path("short")).await), ErrorKind::NotFound);
}
