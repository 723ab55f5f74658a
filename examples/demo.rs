//! A self-contained qftp demonstration: starts a server on loopback in a
//! temporary directory, creates a user, logs in, uploads a generated tree
//! in parallel with progress bars, downloads it back, verifies every BLAKE3
//! hash and prints the summaries.
//!
//! Run it with `cargo run --release --example demo`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use qftp::client::progress::{ProgressBars, should_draw};
use qftp_client::batch;
use qftp_client::transfer::TransferOptions;
use qftp_client::{Client, ConnectOptions, Trust};
use qftp_proto::path::RemotePath;
use qftp_proto::size::format_size;
use qftp_server::config::{ServerConfig, ServerRoot};
use qftp_server::server::Server;
use qftp_server::userdb::UserDb;

const USER: &str = "demo";
const PASSWORD: &str = "correct horse battery staple";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let workspace = tempfile::tempdir().context("creating a temporary directory")?;
    let root = ServerRoot::new(workspace.path().join("server"));
    prepare_server_root(&root)?;
    let server = Server::bind(root, ServerConfig::default(), "127.0.0.1:0".parse()?)?;
    let address = server.local_addr()?;
    let fingerprint = server.fingerprint();
    println!("server listening on {address}, certificate {fingerprint}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let source = workspace.path().join("source");
    let files = generate_tree(&source)?;
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    println!(
        "generated {} files, {} in {}",
        files.len(),
        format_size(total),
        source.display()
    );

    let options = ConnectOptions::new(address.to_string(), Trust::Pinned(fingerprint));
    let client = Client::connect(&options).await?;
    client.login(USER, PASSWORD).await?;
    println!("logged in as {USER} (certificate pinned by fingerprint)");

    let plan = batch::plan_upload(
        &client,
        std::slice::from_ref(&source),
        &RemotePath::root(),
        false,
        true,
    )
    .await?;
    let progress = ProgressBars::new(plan.files.len(), total, should_draw(false));
    let report = batch::upload(
        &client,
        plan,
        8,
        TransferOptions::default(),
        progress.clone(),
    )
    .await?;
    progress.finish();
    println!("upload:   {}", report.summary());
    anyhow::ensure!(
        report.failed.is_empty(),
        "some uploads failed: {:?}",
        report.failed
    );

    let restored = workspace.path().join("restored");
    std::fs::create_dir(&restored)?;
    let remote = RemotePath::parse("/source")?;
    let plan = batch::plan_download(&client, &[remote], &restored, true).await?;
    let progress = ProgressBars::new(plan.files.len(), total, should_draw(false));
    let report = batch::download(
        &client,
        plan,
        8,
        TransferOptions::default(),
        progress.clone(),
    )
    .await?;
    progress.finish();
    println!("download: {}", report.summary());
    anyhow::ensure!(
        report.failed.is_empty(),
        "some downloads failed: {:?}",
        report.failed
    );

    for (relative, _) in &files {
        let original = blake3::hash(&std::fs::read(source.join(relative))?);
        let copy = blake3::hash(&std::fs::read(restored.join("source").join(relative))?);
        anyhow::ensure!(
            original == copy,
            "{} differs after the round trip",
            relative.display()
        );
    }
    println!(
        "verified: all {} files are byte-identical after the round trip (BLAKE3)",
        files.len()
    );
    let usage = client.disk_usage().await?;
    println!("quota: {} used on the server", format_size(usage.used));

    client.close().await;
    let _ = stop.send(());
    serving.await?;
    Ok(())
}

/// What `qftp-server init` and `qftp-server user add` would do, in-process.
fn prepare_server_root(root: &ServerRoot) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.certs_dir())?;
    qftp_server::certs::generate_self_signed(&root.cert_file(), &root.key_file(), &[], false)?;
    let database = UserDb::open(&root.database())?;
    let password_hash = qftp_server::auth::hash_password(PASSWORD)?;
    database.add_user(USER, &password_hash, Some(2 << 30), None)?;
    std::fs::create_dir_all(root.homes_dir(&ServerConfig::default()).join(USER))?;
    Ok(())
}

/// A tree of big and small files in nested directories, with Unicode names.
fn generate_tree(top: &Path) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    let mut files = Vec::new();
    let mut layout: Vec<(PathBuf, u64)> = (0..3)
        .map(|index| (PathBuf::from(format!("videos/clip-{index}.bin")), 48 << 20))
        .collect();
    for index in 0..240u64 {
        let directory = ["docs", "docs/2024", "照片", "src/lib"][index as usize % 4];
        layout.push((
            PathBuf::from(format!("{directory}/file-{index:03}.dat")),
            1024 + index * 509,
        ));
    }
    layout.push((PathBuf::from("empty.txt"), 0));
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for (relative, size) in layout {
        let path = top.join(&relative);
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        let mut content = Vec::with_capacity(size as usize);
        while (content.len() as u64) < size {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            content.extend_from_slice(&state.to_le_bytes());
        }
        content.truncate(size as usize);
        std::fs::write(&path, content)?;
        files.push((relative, size));
    }
    Ok(files)
}
