//! The S3 file store against real servers: one PostgreSQL and one
//! SeaweedFS for this test binary (qftp-testbed), a database and a key
//! prefix per test; several store instances on one database and bucket
//! play the nodes of a cluster.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use object_store::ObjectStore as _;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use qftp_proto::path::RemotePath;
use qftp_proto::{ErrorKind, hash};
use qftp_store::{
    FileError, FileStore as _, HomeFiles, OpenUpload, QuotaLedger as _, UploadStart, contract,
};
use qftp_store_pg::{PgOptions, PgStore};
use qftp_store_s3::danger::BeforeDatabaseCommit;
use qftp_store_s3::{Bucket, PART_SIZE, S3Options, S3Store, SweepRules};

/// The shared bucket, with the key prefix `prefix`.
fn bucket(prefix: &str) -> Bucket {
    let seaweed = qftp_testbed::shared_seaweed();
    Bucket {
        endpoint: seaweed.endpoint(),
        region: qftp_testbed::Seaweed::REGION.to_owned(),
        name: seaweed.bucket().to_owned(),
        prefix: prefix.to_owned(),
        access_key_id: seaweed.credentials().access_key_id.clone(),
        secret_access_key: seaweed.credentials().secret_access_key.clone(),
    }
}

/// A direct client of the shared bucket, to look at objects.
fn objects() -> object_store::aws::AmazonS3 {
    let seaweed = qftp_testbed::shared_seaweed();
    AmazonS3Builder::new()
        .with_endpoint(seaweed.endpoint())
        .with_region(qftp_testbed::Seaweed::REGION)
        .with_bucket_name(seaweed.bucket())
        .with_access_key_id(&seaweed.credentials().access_key_id)
        .with_secret_access_key(&seaweed.credentials().secret_access_key)
        .with_allow_http(true)
        .build()
        .expect("a client of the test bucket")
}

/// The keys under `prefix/blobs/`.
async fn blob_keys(prefix: &str) -> Vec<Path> {
    use futures::StreamExt as _;
    let folder = Path::from(format!("{prefix}/blobs"));
    let mut listing = objects().list(Some(&folder));
    let mut keys = Vec::new();
    while let Some(meta) = listing.next().await {
        keys.push(meta.expect("a listed object").location);
    }
    keys
}

/// One node: a ledger and a file store on the database at `url`.
async fn node(url: &str, prefix: &str, options: S3Options) -> (Arc<PgStore>, S3Store) {
    let ledger = Arc::new(
        PgStore::connect(url, PgOptions::default())
            .await
            .unwrap_or_else(|error| panic!("connecting to {url}: {error}")),
    );
    let files = S3Store::connect(Arc::clone(&ledger), &bucket(prefix), options)
        .await
        .unwrap_or_else(|error| panic!("opening the file store: {error}"));
    (ledger, files)
}

/// A fresh database `name` and its URL.
fn database(name: &str) -> String {
    qftp_testbed::shared_postgres()
        .create_database(name)
        .unwrap_or_else(|error| panic!("creating database {name}: {error}"))
}

fn path(text: &str) -> RemotePath {
    RemotePath::parse(text).expect("a valid path")
}

/// Deterministic content of `length` bytes.
fn content(length: usize, seed: u8) -> Vec<u8> {
    (0..length)
        .map(|index| ((index * 31 + usize::from(seed)) % 251) as u8)
        .collect()
}

fn verified(data: &[u8]) -> qftp_proto::VerifiedHash {
    let digest = *blake3::hash(data).as_bytes();
    hash::verify(&digest, &digest).expect("equal hashes")
}

/// Appends `data` in pieces of 1 MiB.
async fn append_all(upload: &mut Box<dyn OpenUpload>, data: &[u8]) {
    for piece in data.chunks(1 << 20) {
        upload.append(piece).await.expect("append");
    }
}

/// The whole file `target` read through `home`, in 4 MiB ranges.
async fn read_whole(home: &dyn HomeFiles, target: &str, length: usize) -> Vec<u8> {
    let mut read = Vec::with_capacity(length);
    while read.len() < length {
        let piece = home
            .read_at(&path(target), read.len() as u64, 4 << 20)
            .await
            .expect("read_at");
        assert!(!piece.is_empty(), "the file ends early at {}", read.len());
        read.extend(piece);
    }
    read
}

fn start(target: &str, size: usize, lease: Duration) -> UploadStart {
    UploadStart {
        path: path(target),
        size: size as u64,
        resume: true,
        lease,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_contract() {
    let url = database("s3_files_contract");
    let (ledger, files) = node(&url, "files_contract", S3Options::default()).await;
    let user = contract::add_user(&*ledger, "namespace", None).await;
    let home = files.home(&user).await.expect("home");
    contract::files::namespace(&*home, &*ledger, "namespace").await;
    let user = contract::add_user(&*ledger, "resumer", None).await;
    let home = files.home(&user).await.expect("home");
    contract::files::resume(&*home, &*ledger, "resumer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_dropped_on_one_node_resumes_from_its_parts_on_another() {
    let url = database("s3_resume_across_nodes");
    let (ledger_a, files_a) = node(&url, "resume_across_nodes", S3Options::default()).await;
    let (ledger_b, files_b) = node(&url, "resume_across_nodes", S3Options::default()).await;
    let user = contract::add_user(&*ledger_a, "traveller", None).await;
    let part = PART_SIZE as usize;
    let data = content(3 * part + 5 * (1 << 20) + 123, 7);
    let lease = Duration::from_secs(3600);

    let home_a = files_a.home(&user).await.expect("home on A");
    let mut first = home_a
        .begin_upload(start("big", data.len(), lease))
        .await
        .expect("begin on A");
    first.continue_at(0).await.expect("continue_at");
    append_all(&mut first, &data[..3 * part + (1 << 20)]).await;
    drop(first);

    let home_b = files_b.home(&user).await.expect("home on B");
    let mut second = home_b
        .begin_upload(start("big", data.len(), lease))
        .await
        .expect("begin on B");
    assert_eq!(
        second.resume_point(),
        3 * PART_SIZE,
        "B resumes after A's three whole parts"
    );
    let prefix = second
        .prefix_hash(3 * PART_SIZE)
        .await
        .expect("prefix_hash on B");
    assert_eq!(
        &prefix,
        blake3::hash(&data[..3 * part]).as_bytes(),
        "the prefix hash merged from the stored chaining values is the BLAKE3 of the parts"
    );
    second
        .continue_at(3 * PART_SIZE)
        .await
        .expect("continue_at");
    append_all(&mut second, &data[3 * part..]).await;
    second
        .commit(verified(&data), SystemTime::now())
        .await
        .expect("commit on B");

    let read = read_whole(&*home_a, "big", data.len()).await;
    assert!(read == data, "the file reads back byte-identical through A");
    let usage = ledger_b.usage("traveller").await.expect("usage");
    assert_eq!(
        usage.used.bytes,
        data.len() as u64,
        "only the file is charged"
    );
    assert_eq!(usage.reserved, 0, "no reservation is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_racing_under_a_quota_for_one_land_exactly_one() {
    let url = database("s3_quota_race");
    let (ledger_a, files_a) = node(&url, "quota_race", S3Options::default()).await;
    let (ledger_b, files_b) = node(&url, "quota_race", S3Options::default()).await;
    let size = 3 << 20;
    let user = contract::add_user(&*ledger_a, "racer", Some(size as u64 * 3 / 2)).await;
    let mut racing = Vec::new();
    for (index, files) in [files_a, files_b].into_iter().enumerate() {
        let user = user.clone();
        racing.push(tokio::spawn(async move {
            let home = files.home(&user).await.expect("home");
            let data = content(size, index as u8);
            let mut upload = home
                .begin_upload(start(
                    &format!("racer-{index}"),
                    size,
                    Duration::from_secs(3600),
                ))
                .await?;
            upload.continue_at(0).await?;
            upload.append(&data).await?;
            upload.commit(verified(&data), SystemTime::now()).await
        }));
    }
    let mut landed = 0;
    for task in racing {
        match task.await.expect("an uploading task") {
            Ok(()) => landed += 1,
            Err(error) => assert!(
                matches!(error.kind(), ErrorKind::QuotaExceeded { .. }),
                "the loser is refused for the quota, not {error}"
            ),
        }
    }
    assert_eq!(landed, 1, "exactly one upload lands");
    let usage = ledger_b.usage("racer").await.expect("usage");
    assert_eq!(usage.used.bytes, size as u64, "one file is charged");
    assert!(usage.used.bytes <= usage.quota.expect("a quota"));
    assert_eq!(usage.reserved, 0, "no reservation is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_the_object_and_the_commit_leaves_only_an_orphan_the_sweep_removes() {
    let url = database("s3_crash_sweep");
    let prefix = "crash_sweep";
    let reached = Arc::new(tokio::sync::Notify::new());
    let pause = {
        let reached = Arc::clone(&reached);
        BeforeDatabaseCommit(Arc::new(move || {
            reached.notify_one();
            Box::pin(std::future::pending())
        }))
    };
    let crashing = S3Options {
        before_database_commit: Some(pause),
        ..S3Options::default()
    };
    let (ledger, files) = node(&url, prefix, crashing).await;
    let (_, survivor) = node(&url, prefix, S3Options::default()).await;
    let user = contract::add_user(&*ledger, "crasher", None).await;
    let home = survivor.home(&user).await.expect("home");
    contract::files::put(&*home, "kept", b"a file that stays").await;
    let before = ledger.usage("crasher").await.expect("usage");

    let crashing_home = files.home(&user).await.expect("home");
    let data = content(PART_SIZE as usize + 4096, 3);
    let mut upload = crashing_home
        .begin_upload(start("lost", data.len(), Duration::from_secs(1)))
        .await
        .expect("begin");
    upload.continue_at(0).await.expect("continue_at");
    append_all(&mut upload, &data).await;
    let commit = upload.commit(verified(&data), SystemTime::now());
    tokio::select! {
        result = commit => panic!("the commit ended past the pause: {result:?}"),
        () = reached.notified() => {}
    }
    // The commit future is dropped here, at the pause: the node "crashed".
    assert_eq!(
        blob_keys(prefix).await.len(),
        2,
        "the completed object exists beside the kept file's"
    );
    assert_eq!(
        home.stat(&path("lost"))
            .await
            .map_err(|error| error.kind())
            .err(),
        Some(ErrorKind::NotFound),
        "the file is not visible"
    );
    assert_eq!(
        ledger.usage("crasher").await.expect("usage").used,
        before.used,
        "nothing was charged"
    );

    let stray = Path::from(format!("{prefix}/blobs/00000000000000000000000000000000"));
    objects()
        .put(&stray, b"named by nothing".to_vec().into())
        .await
        .expect("a stray object");

    let rules = SweepRules {
        abandoned_after: Duration::ZERO,
        orphan_grace: Duration::ZERO,
    };
    let mut swept = qftp_store_s3::SweepReport::default();
    for _ in 0..300 {
        let report = survivor.sweep(rules).await.expect("sweep");
        swept.uploads_aborted += report.uploads_aborted;
        swept.orphans_deleted += report.orphans_deleted;
        if blob_keys(prefix).await.len() == 1 {
            break;
        }
        // The crashed node's lease must expire first.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        blob_keys(prefix).await.len(),
        1,
        "only the kept file's blob remains"
    );
    assert!(
        swept.uploads_aborted >= 1 && swept.orphans_deleted >= 1,
        "{swept:?}"
    );
    let after = ledger.usage("crasher").await.expect("usage");
    assert_eq!(after.used, before.used, "the quota is unchanged");
    assert_eq!(
        after.reserved, 0,
        "the crashed upload's reservation is gone"
    );
    assert_eq!(
        home.read_at(&path("kept"), 0, 100).await.expect("read_at"),
        b"a file that stays",
        "the sweep leaves named blobs alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_after_another_node_took_the_upload_over_is_lease_lost() {
    let url = database("s3_lease_lost");
    let (ledger, files_a) = node(&url, "lease_lost", S3Options::default()).await;
    let (_, files_b) = node(&url, "lease_lost", S3Options::default()).await;
    let user = contract::add_user(&*ledger, "slow", None).await;
    let data = content(1000, 1);
    let home_a = files_a.home(&user).await.expect("home");
    let mut stale = home_a
        .begin_upload(start("contested", data.len(), Duration::from_millis(500)))
        .await
        .expect("begin on A");
    stale.continue_at(0).await.expect("continue_at");
    stale.append(&data).await.expect("append");

    let home_b = files_b.home(&user).await.expect("home");
    let mut attempts = 0;
    let mut taken = loop {
        match home_b
            .begin_upload(start("contested", data.len(), Duration::from_secs(3600)))
            .await
        {
            Ok(upload) => break upload,
            Err(error) if error.kind() == ErrorKind::Busy && attempts < 100 => attempts += 1,
            Err(error) => panic!("B never takes the expired upload over: {error}"),
        }
    };
    let committed = stale.commit(verified(&data), SystemTime::now()).await;
    assert!(
        matches!(committed, Err(FileError::LeaseLost { .. })),
        "A's commit after the take-over is refused: {committed:?}"
    );
    taken.continue_at(0).await.expect("continue_at");
    taken.append(&data).await.expect("append");
    taken
        .commit(verified(&data), SystemTime::now())
        .await
        .expect("B commits");
    assert_eq!(
        home_a
            .read_at(&path("contested"), 0, 2000)
            .await
            .expect("read_at"),
        data
    );
}
