//! Crash loops: `qftp` clients and the server SIGKILLed at random moments
//! while trees and files travel, then the same commands run again.
//!
//! After every crash a file under its final name is absent, its previous
//! version or the new one, byte for byte (BLAKE3); anything half-written
//! exists only under a hidden `.NAME.qftp-part` name. After the rerun
//! everything is present and identical, and the quota ledger the server
//! reports matches what `qftp-server user rescan` finds on disk.
//!
//! Rounds come from `QFTP_STRESS_CRASH_ROUNDS` (client loop) and
//! `QFTP_STRESS_SERVER_CRASH_ROUNDS` (server loop); every random choice
//! comes from one seed, printed at the start and taken from
//! `QFTP_STRESS_SEED` when set, so a failing run can be replayed. Each loop
//! prints one `reliability: {...}` line that a stress harness collects, and
//! fails at the end with every failed round listed.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qftp_client::{Client, ConnectOptions, Trust};
use qftp_proto::Usage;
use qftp_proto::size::format_size;

use crate::support::{TestClient, TestServer, text, wait_bounded, write_random};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const USER: &str = "alice";
const PASSWORD: &str = "alice-pw-1";
/// Room for both trees of the client loop with every change they go
/// through, so no round is refused for space; the ledger still counts.
const QUOTA: &str = "512MiB";
/// Longest a rerun may take before it counts as hung (generous: the
/// machine is shared and the binaries may be a debug build).
const RERUN_LIMIT: Duration = Duration::from_secs(300);
/// Longest a client may take to end after its server crashed (its own
/// idle timeout is 20 s; the restarted server resets it sooner).
const CLIENT_EXIT_LIMIT: Duration = Duration::from_secs(90);
/// How long the ledger may take to agree with the disk, for a commit that
/// was still in flight when a client died.
const SETTLE_AFTER_KILL: Duration = Duration::from_secs(30);
/// The same when nothing can be in flight (every client has ended).
const SETTLE_AT_REST: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------- randomness

/// splitmix64: tiny, and the same sequence for the same seed.
#[derive(Debug)]
struct Rng {
    state: u64,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// True with `chance` percent probability.
    fn percent(&mut self, chance: u64) -> bool {
        self.next_u64() % 100 < chance
    }

    /// An index below `len` (which must not be 0).
    fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % len as u64) as usize
    }

    /// A file size: some empty, most small, some of a few MiB.
    fn file_size(&mut self) -> u64 {
        match self.range(0, 99) {
            0..=7 => 0,
            8..=69 => self.range(1, 64 * KIB),
            70..=87 => self.range(256 * KIB, 2 * MIB),
            _ => self.range(3 * MIB, 6 * MIB),
        }
    }
}

/// The seed of this run: `QFTP_STRESS_SEED` (decimal or 0x-hex), else the clock.
fn stress_seed() -> u64 {
    match std::env::var("QFTP_STRESS_SEED") {
        Ok(value) => {
            let value = value.trim();
            let parsed = match value.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => value.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("QFTP_STRESS_SEED={value:?} is not a number"))
        }
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 40)
        }
    }
}

/// A round count from the environment, else `default`.
fn rounds_from_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number of rounds")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------- trees

/// One entry found below a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Dir,
    File { size: u64, hash: blake3::Hash },
    Other,
}

/// Relative path → entry, for everything below a directory.
type Tree = BTreeMap<String, Found>;

/// Everything below `root` (nothing when it does not exist). A file that
/// vanishes while being read (a partial renamed into place by a commit
/// still in flight) is left out.
fn scan(root: &Path) -> Tree {
    let mut found = Tree::new();
    let mut pending = vec![root.to_owned()];
    while let Some(directory) = pending.pop() {
        let entries = match std::fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => panic!("listing {}: {error}", directory.display()),
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let relative = path
                .strip_prefix(root)
                .expect("below the root")
                .to_string_lossy()
                .into_owned();
            let Ok(metadata) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if metadata.is_dir() {
                found.insert(relative, Found::Dir);
                pending.push(path);
            } else if metadata.is_file() {
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        let size = bytes.len() as u64;
                        let hash = blake3::hash(&bytes);
                        found.insert(relative, Found::File { size, hash });
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => panic!("reading {}: {error}", path.display()),
                }
            } else {
                found.insert(relative, Found::Other);
            }
        }
    }
    found
}

/// Whether the last component of `relative` is a partial file's name,
/// `.NAME.qftp-part`.
fn is_partial(relative: &str) -> bool {
    if relative == ".qftp-partials" || relative.starts_with(".qftp-partials/") {
        return true;
    }
    let name = relative.rsplit('/').next().unwrap_or(relative);
    name.len() > ".qftp-part".len() + 1 && name.starts_with('.') && name.ends_with(".qftp-part")
}

/// `tree` without partial files: what a transfer's source really holds.
fn without_partials(tree: Tree) -> Tree {
    tree.into_iter()
        .filter(|(path, found)| {
            !(matches!(found, Found::File { .. } | Found::Dir) && is_partial(path))
        })
        .collect()
}

/// The regular files (not partials) of `tree`.
fn files(tree: &Tree) -> Vec<String> {
    tree.iter()
        .filter(|(path, found)| matches!(found, Found::File { .. }) && !is_partial(path))
        .map(|(path, _)| path.clone())
        .collect()
}

fn describe(found: Option<&Found>) -> String {
    match found {
        None => "none".into(),
        Some(Found::Dir) => "a directory".into(),
        Some(Found::Other) => "neither file nor directory".into(),
        Some(Found::File { size, hash }) => format!("{size} B, BLAKE3 {}", &hash.to_hex()[..12]),
    }
}

/// What the checks of one round found.
#[derive(Debug, Default)]
struct Findings {
    problems: Vec<String>,
    /// Files found partial or corrupt under their final name, or missing
    /// or different after a completed rerun.
    lost: usize,
}

impl Findings {
    fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    fn lost(&mut self, problem: String) {
        self.lost += 1;
        self.problems.push(problem);
    }
}

/// After a crash: every file under a final name is the source's version or
/// the one that was there before; half-written bytes only in partials.
/// Answers how the crash left things, for the round's line: how many
/// changed source files had already landed, and how many partials there were.
fn check_crashed(
    stage: &str,
    destination: &Tree,
    source: &Tree,
    before: &Tree,
    findings: &mut Findings,
) -> String {
    let (mut landed, mut partials) = (0, 0);
    for (path, found) in destination {
        match found {
            Found::Dir => {}
            Found::Other => {
                findings.problem(format!("{stage}: {path} is neither a file nor a directory"))
            }
            Found::File { .. } if is_partial(path) => partials += 1,
            Found::File { .. } => {
                if source.get(path) == Some(found) {
                    if before.get(path) != Some(found) {
                        landed += 1;
                    }
                    continue;
                }
                if before.get(path) == Some(found) {
                    continue;
                }
                findings.lost(format!(
                    "{stage}: {path} ({}) is neither the source ({}) nor the previous version ({})",
                    describe(Some(found)),
                    describe(source.get(path)),
                    describe(before.get(path))
                ));
            }
        }
    }
    let changed = source
        .iter()
        .filter(|(path, found)| {
            matches!(found, Found::File { .. }) && before.get(path.as_str()) != Some(*found)
        })
        .count();
    format!("{landed} of {changed} changed files landed, {partials} partials")
}

/// After a completed rerun: every source file is there and identical, no
/// new partial is left behind, and a mirror (`sync --delete`) holds nothing
/// else; otherwise anything else must be what was there before.
fn check_complete(
    stage: &str,
    destination: &Tree,
    source: &Tree,
    before: &Tree,
    mirror: bool,
    findings: &mut Findings,
) {
    for (path, found) in source {
        let there = destination.get(path);
        match found {
            Found::File { .. } if there == Some(found) => {}
            Found::File { .. } => findings.lost(format!(
                "{stage}: {path} ({}) is {}",
                describe(Some(found)),
                match there {
                    None => "missing".to_owned(),
                    Some(other) => format!("different: {}", describe(Some(other))),
                }
            )),
            Found::Dir if there == Some(&Found::Dir) => {}
            Found::Dir => findings.problem(format!("{stage}: directory {path} is missing")),
            Found::Other => {}
        }
    }
    for (path, found) in destination {
        if source.contains_key(path) {
            continue;
        }
        if matches!(found, Found::File { .. }) && is_partial(path) {
            if !before.contains_key(path) {
                findings.problem(format!("{stage}: partial file {path} was left behind"));
            }
        } else if mirror {
            findings.problem(format!(
                "{stage}: {path} is not in the source but is still there"
            ));
        } else if found != &Found::Dir && before.get(path) != Some(found) {
            findings.problem(format!(
                "{stage}: {path} ({}) is neither in the source nor what was there before",
                describe(Some(found))
            ));
        }
    }
}

// ---------------------------------------------------------------- processes

/// A started command whose output goes to anonymous files, read back when
/// it has ended.
#[derive(Debug)]
struct Running {
    child: Child,
    output: std::fs::File,
}

impl Running {
    fn start(command: &mut Command) -> Self {
        let output = tempfile::tempfile().expect("a file for the output");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(output.try_clone().expect("output file")))
            .stderr(Stdio::from(output.try_clone().expect("output file")))
            .spawn()
            .expect("starting a command");
        Self { child, output }
    }

    /// Waits at most `limit`; the status (`None` when it had to be killed)
    /// and everything it printed.
    fn finish(mut self, limit: Duration) -> (Option<ExitStatus>, String) {
        let status = wait_bounded(&mut self.child, limit);
        let mut printed = Vec::new();
        let _ = self.output.rewind();
        let _ = self.output.read_to_end(&mut printed);
        (status, text(&printed))
    }
}

/// The last lines of a command's output, for a failure message.
fn tail(output: &str) -> String {
    let lines: Vec<_> = output.lines().collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

/// Runs `command` to completion within [`RERUN_LIMIT`]; a problem unless
/// it ended successfully.
fn run_to_completion(what: &str, command: &mut Command) -> Result<(), String> {
    match Running::start(command).finish(RERUN_LIMIT) {
        (Some(status), _) if status.success() => Ok(()),
        (Some(status), output) => Err(format!("{what} failed ({status}): {}", tail(&output))),
        (None, output) => Err(format!(
            "{what} did not end within {RERUN_LIMIT:?} and was killed: {}",
            tail(&output)
        )),
    }
}

// ---------------------------------------------------------------- the ledger

/// The usage the server reports, in exact bytes, over a fresh connection.
fn server_usage(server: &TestServer) -> Result<Usage, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let fingerprint = server
            .fingerprint
            .parse()
            .map_err(|error| format!("fingerprint: {error}"))?;
        let options = ConnectOptions::new(server.host(), Trust::Pinned(fingerprint));
        let client = Client::connect(&options)
            .await
            .map_err(|error| format!("connect: {error}"))?;
        let usage = async {
            client.login(USER, PASSWORD).await?;
            client.disk_usage().await
        }
        .await
        .map_err(|error| format!("disk usage: {error}"));
        client.close().await;
        usage
    })
}

/// What a rescan counts: the same measure `qftp-server user rescan` uses.
fn disk_usage(server: &TestServer) -> Result<u64, String> {
    let limits = qftp_server::jail::JailLimits::default();
    qftp_server::jail::Jail::open(&server.home(USER), USER, limits)
        .and_then(|jail| jail.disk_usage())
        .map(|usage| usage.bytes)
        .map_err(|error| format!("measuring the home: {error}"))
}

/// The server's ledger must match the disk: exactly (its reported bytes
/// against the rescan's measure), and as printed by `qftp df` and by
/// `qftp-server user rescan`. A figure still moving (a dead client's commit
/// in flight) gets time to settle. The admin rescan writes the database, so
/// it runs only when no upload holds a reservation and so none can commit
/// in between.
fn check_ledger(
    stage: &str,
    settle: Duration,
    server: &TestServer,
    client: &TestClient,
    findings: &mut Findings,
) {
    let deadline = Instant::now() + settle;
    let usage = loop {
        let measured = server_usage(server).and_then(|first| {
            let disk = disk_usage(server)?;
            let second = server_usage(server)?;
            Ok((first, disk, second))
        });
        let late = Instant::now() >= deadline;
        match measured {
            Ok((first, disk, second)) if first.used == disk && second.used == disk => break second,
            Ok((_, disk, second)) if late => {
                findings.problem(format!(
                    "{stage}: ledger drift: the server counts {} B used ({} B reserved), the home holds {disk} B",
                    second.used, second.reserved
                ));
                let listing: Vec<String> = scan(&server.home(USER))
                    .iter()
                    .filter_map(|(path, found)| match found {
                        Found::File { size, .. } => Some(format!("{path} {size}")),
                        _ => None,
                    })
                    .collect();
                eprintln!(
                    "crash: {stage}: the home at the drift: {}",
                    listing.join(", ")
                );
                // Set the ledger right, so that the next rounds find their
                // own drift rather than this one again.
                let _ = server.admin(&["user", "rescan", USER]).output();
                return;
            }
            Err(error) if late => {
                findings.problem(format!("{stage}: cannot read the ledger: {error}"));
                return;
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    let expected = format_size(usage.used);

    let output = client.run(&["df"]);
    let df = text(&output.stdout);
    let shown = df
        .strip_prefix("used ")
        .and_then(|rest| rest.split(" of ").next());
    if !output.status.success() || shown != Some(expected.as_str()) {
        findings.problem(format!(
            "{stage}: `qftp df` says {:?}, expected used {expected}{}",
            df.trim(),
            text(&output.stderr)
        ));
    }

    if usage.reserved != 0 {
        // A killed client's upload keeps its reservation until the server
        // notices the silence; the exact comparison above already held.
        return;
    }
    let output = server
        .admin(&["user", "rescan", USER])
        .output()
        .expect("running qftp-server user rescan");
    let printed = text(&output.stdout);
    // "alice: used OLD → NEW"
    let figures = printed
        .trim()
        .strip_prefix(&format!("{USER}: used "))
        .and_then(|rest| rest.split_once(" → "));
    let agrees = figures.is_some_and(|(old, new)| old == expected && new == expected);
    if !output.status.success() || !agrees {
        findings.problem(format!(
            "{stage}: the ledger says {expected} but `qftp-server user rescan` printed {:?}{}",
            printed.trim(),
            text(&output.stderr)
        ));
    }
}

// ---------------------------------------------------------------- reporting

/// Prints the harness's line and fails with every failed round listed.
fn report(scenario: &str, rounds: usize, failed: &[String], data_lost: usize) {
    eprintln!(
        "reliability: {{\"scenario\":{},\"rounds\":{rounds},\"failures\":{},\"data_lost\":{data_lost}}}",
        serde_json::to_string(scenario).expect("a JSON string"),
        failed.len()
    );
    assert!(
        failed.is_empty() && data_lost == 0,
        "{scenario}: {} of {rounds} rounds failed, {data_lost} files lost:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// A server with the quota'd user, and a client logged in to it.
fn quota_user() -> (TestServer, TestClient) {
    let server = TestServer::start();
    server.add_user(USER, PASSWORD, Some(QUOTA));
    let client = TestClient::new();
    client.login(&server, USER, PASSWORD);
    (server, client)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 test path")
}

// ---------------------------------------------------------------- client loop

/// What a client round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// `qftp put -r tree /`: the local tree to `/tree`.
    Put,
    /// `qftp get -r /tree down`: `/tree` to `down/tree`.
    Get,
    /// `qftp sync --delete tree /synced`.
    SyncPush,
    /// `qftp sync --delete --pull /synced pulled`.
    SyncPull,
}

impl Operation {
    const ALL: [Self; 4] = [Self::Put, Self::SyncPush, Self::Get, Self::SyncPull];

    fn name(self) -> &'static str {
        match self {
            Self::Put => "put -r",
            Self::Get => "get -r",
            Self::SyncPush => "sync push",
            Self::SyncPull => "sync pull",
        }
    }

    /// Whether the destination must end up exactly the source.
    fn mirrors(self) -> bool {
        matches!(self, Self::SyncPush | Self::SyncPull)
    }
}

/// The client loop's server, client and local directories.
struct ClientWorld {
    server: TestServer,
    client: TestClient,
    _local: tempfile::TempDir,
    tree: PathBuf,
    down: PathBuf,
    pulled: PathBuf,
}

impl ClientWorld {
    fn new(rng: &mut Rng) -> Self {
        let (server, client) = quota_user();
        let local = tempfile::tempdir().expect("temp dir");
        let tree = local.path().join("tree");
        let down = local.path().join("down");
        let pulled = local.path().join("pulled");
        std::fs::create_dir_all(&down).expect("creating the download directory");
        make_tree(&tree, rng);
        Self {
            server,
            client,
            _local: local,
            tree,
            down,
            pulled,
        }
    }

    fn arguments(&self, operation: Operation, jobs: u64) -> Vec<String> {
        let jobs = jobs.to_string();
        let words: Vec<&str> = match operation {
            Operation::Put => vec![
                "put",
                "-r",
                "--quiet",
                "-j",
                &jobs,
                path_str(&self.tree),
                "/",
            ],
            Operation::Get => vec![
                "get",
                "-r",
                "--quiet",
                "-j",
                &jobs,
                "/tree",
                path_str(&self.down),
            ],
            Operation::SyncPush => vec![
                "sync",
                "--delete",
                "--quiet",
                "-j",
                &jobs,
                path_str(&self.tree),
                "/synced",
            ],
            Operation::SyncPull => vec![
                "sync",
                "--delete",
                "--pull",
                "--quiet",
                "-j",
                &jobs,
                "/synced",
                path_str(&self.pulled),
            ],
        };
        words.into_iter().map(str::to_owned).collect()
    }

    fn command(&self, arguments: &[String]) -> Command {
        let words: Vec<&str> = arguments.iter().map(String::as_str).collect();
        self.client.command(&words)
    }

    fn source(&self, operation: Operation) -> PathBuf {
        match operation {
            Operation::Put | Operation::SyncPush => self.tree.clone(),
            Operation::Get => self.server.home(USER).join("tree"),
            Operation::SyncPull => self.server.home(USER).join("synced"),
        }
    }

    fn destination(&self, operation: Operation) -> PathBuf {
        match operation {
            Operation::Put => self.server.home(USER).join("tree"),
            Operation::SyncPush => self.server.home(USER).join("synced"),
            Operation::Get => self.down.join("tree"),
            Operation::SyncPull => self.pulled.clone(),
        }
    }
}

/// The client loop's local tree: empty files, small ones and a few of some
/// MiB (about 25 MiB in all), in nested directories with non-ASCII names.
fn make_tree(root: &Path, rng: &mut Rng) {
    const DIRECTORIES: [&str; 6] = ["", "docs", "docs/2024", "media/été", "deep/a/b/c", "logs"];
    for index in 0..36u64 {
        let directory = DIRECTORIES[index as usize % DIRECTORIES.len()];
        let name = format!("file-{index:02}.bin");
        let relative = if directory.is_empty() {
            name
        } else {
            format!("{directory}/{name}")
        };
        let size = match index {
            _ if index % 12 == 0 => 0,
            _ if index % 9 == 4 => rng.range(3 * MIB, 6 * MIB),
            _ if index % 5 == 2 => rng.range(256 * KIB, 2 * MIB),
            _ => rng.range(1, 64 * KIB),
        };
        write_random(&root.join(relative), size as usize, rng.next_u64());
    }
}

/// Rewrites three files with other sizes, deletes one and adds one, so the
/// next transfers overwrite (growing and shrinking) and delete.
fn change_tree(root: &Path, round: usize, rng: &mut Rng) -> String {
    let present = files(&scan(root));
    let mut done = Vec::new();
    for _ in 0..3 {
        let path = &present[rng.index(present.len())];
        let old = std::fs::metadata(root.join(path)).map_or(0, |metadata| metadata.len());
        let mut size = rng.file_size();
        if size == old {
            size += 1;
        }
        write_random(&root.join(path), size as usize, rng.next_u64());
        done.push(format!("rewrote {path} ({old} → {size} B)"));
    }
    if present.len() > 12 {
        let path = &present[rng.index(present.len())];
        if std::fs::remove_file(root.join(path)).is_ok() {
            done.push(format!("deleted {path}"));
        }
    }
    let added = format!("added/round-{round:03}.bin");
    write_random(&root.join(&added), rng.file_size() as usize, rng.next_u64());
    done.push(format!("added {added}"));
    done.join(", ")
}

#[test]
fn clients_killed_during_put_get_and_sync_leave_whole_files_and_a_true_ledger() {
    let scenario = "client SIGKILL during put/get/sync, then rerun";
    let seed = stress_seed();
    let rounds = rounds_from_env("QFTP_STRESS_CRASH_ROUNDS", 6);
    eprintln!(
        "crash: client loop, {rounds} rounds, seed {seed} (QFTP_STRESS_SEED={seed} replays it)"
    );
    let mut rng = Rng::new(seed);
    let world = ClientWorld::new(&mut rng);
    let (server, client) = (&world.server, &world.client);

    // Each operation once to completion: the starting state, and how long
    // each takes here, so the kills can land before, during and after the
    // data flows.
    let mut estimates = Vec::new();
    for operation in Operation::ALL {
        let started = Instant::now();
        let arguments = world.arguments(operation, 8);
        if let Err(problem) = run_to_completion(operation.name(), &mut world.command(&arguments)) {
            panic!("setting up: {problem}");
        }
        estimates.push(started.elapsed());
    }
    eprintln!(
        "crash: client loop, full runs took {}",
        Operation::ALL
            .iter()
            .zip(&estimates)
            .map(|(operation, took)| format!("{} {} ms", operation.name(), took.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut setup = Findings::default();
    check_ledger(
        "after the setup",
        SETTLE_AT_REST,
        server,
        client,
        &mut setup,
    );
    assert!(setup.problems.is_empty(), "{:?}", setup.problems);

    let mut failed = Vec::new();
    let mut data_lost = 0;
    let (mut killed_running, mut ended_before_kill) = (0, 0);
    for round in 1..=rounds {
        let mut findings = Findings::default();
        let mut changes = Vec::new();
        if round > 1 && rng.percent(40) {
            changes.push(change_tree(&world.tree, round, &mut rng));
        }
        if rng.percent(25) {
            // A removal on the server: the ledger moves down.
            let area = if rng.percent(50) { "tree" } else { "synced" };
            let present = files(&scan(&server.home(USER).join(area)));
            if !present.is_empty() {
                let path = format!("/{area}/{}", present[rng.index(present.len())]);
                let output = client.run(&["rm", &path]);
                if output.status.success() {
                    changes.push(format!("removed {path} on the server"));
                } else {
                    findings.problem(format!("qftp rm {path} failed: {}", text(&output.stderr)));
                }
            }
        }
        let index = rng.index(Operation::ALL.len());
        let operation = Operation::ALL[index];
        let jobs = [1, 4, 8, 16][rng.index(4)];
        let longest = estimates[index].as_millis() as u64 * 6 / 5;
        let delay = Duration::from_millis(rng.range(0, longest.max(1)));
        let arguments = world.arguments(operation, jobs);
        let source = without_partials(scan(&world.source(operation)));
        let destination = world.destination(operation);
        let before = scan(&destination);

        let mut child = world
            .command(&arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting qftp");
        std::thread::sleep(delay);
        let ended = matches!(child.try_wait(), Ok(Some(_)));
        let _ = child.kill();
        let _ = child.wait();
        if ended {
            ended_before_kill += 1;
        } else {
            killed_running += 1;
        }

        let left = check_crashed(
            "after the kill",
            &scan(&destination),
            &source,
            &before,
            &mut findings,
        );
        check_ledger(
            "after the kill",
            SETTLE_AFTER_KILL,
            server,
            client,
            &mut findings,
        );
        match run_to_completion("the rerun", &mut world.command(&arguments)) {
            Ok(()) => check_complete(
                "after the rerun",
                &scan(&destination),
                &source,
                &before,
                operation.mirrors(),
                &mut findings,
            ),
            Err(problem) => findings.problem(problem),
        }
        check_ledger(
            "after the rerun",
            SETTLE_AFTER_KILL,
            server,
            client,
            &mut findings,
        );

        let what = format!(
            "{} -j {jobs}, killed after {} ms{} ({left}){}",
            operation.name(),
            delay.as_millis(),
            if ended {
                ", when it had already ended"
            } else {
                ""
            },
            if changes.is_empty() {
                String::new()
            } else {
                format!("; before it: {}", changes.join("; "))
            }
        );
        let verdict = if findings.problems.is_empty() {
            "ok".to_owned()
        } else {
            format!("FAILED: {}", findings.problems.join("; "))
        };
        eprintln!("crash: client round {round}/{rounds}: {what}: {verdict}");
        if !findings.problems.is_empty() {
            failed.push(format!("round {round} (seed {seed}): {what}: {verdict}"));
        }
        data_lost += findings.lost;
    }
    eprintln!(
        "crash: client loop, {killed_running} kills while running, {ended_before_kill} after the command had ended"
    );
    report(scenario, rounds, &failed, data_lost);
}

// ---------------------------------------------------------------- server loop

/// How a server round starts its ten uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Uploads {
    /// Ten `qftp put` processes, one file each.
    Processes,
    /// One `qftp put -j 10` with the ten files.
    Parallel,
}

const SERVER_FILES: usize = 10;

fn server_file(index: usize) -> String {
    format!("file{index:02}.bin")
}

/// Writes the round's ten files: two small (or empty) and eight of a few MiB.
fn write_batch(directory: &Path, rng: &mut Rng) {
    for index in 0..SERVER_FILES {
        let size = if index % 5 == 0 {
            rng.range(0, 4 * KIB)
        } else {
            rng.range(MIB, 4 * MIB)
        };
        write_random(
            &directory.join(server_file(index)),
            size as usize,
            rng.next_u64(),
        );
    }
}

fn start_uploads(client: &TestClient, directory: &Path, mode: Uploads) -> Vec<Running> {
    let sources: Vec<PathBuf> = (0..SERVER_FILES)
        .map(|index| directory.join(server_file(index)))
        .collect();
    match mode {
        Uploads::Processes => sources
            .iter()
            .enumerate()
            .map(|(index, source)| {
                let target = format!("/up/{}", server_file(index));
                Running::start(&mut client.command(&["put", "--quiet", path_str(source), &target]))
            })
            .collect(),
        Uploads::Parallel => {
            let mut arguments = vec!["put", "--quiet", "-j", "10"];
            arguments.extend(sources.iter().map(|source| path_str(source)));
            arguments.push("/up");
            vec![Running::start(&mut client.command(&arguments))]
        }
    }
}

/// Waits for the uploads, all together at most `limit`; the problems of
/// those that failed or had to be killed.
fn finish_uploads(uploads: Vec<Running>, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    uploads
        .into_iter()
        .enumerate()
        .filter_map(|(index, upload)| {
            let left = deadline.saturating_duration_since(Instant::now());
            match upload.finish(left) {
                (Some(status), _) if status.success() => None,
                (Some(status), output) => Some(format!(
                    "upload {index} failed ({status}): {}",
                    tail(&output)
                )),
                (None, _) => Some(format!(
                    "upload {index} did not end within {limit:?} and was killed"
                )),
            }
        })
        .collect()
}

#[test]
fn a_server_killed_during_ten_uploads_restarts_with_whole_files_and_a_true_ledger() {
    let scenario = "server SIGKILL during 10 concurrent uploads, then restart and rerun";
    let seed = stress_seed();
    let rounds = rounds_from_env("QFTP_STRESS_SERVER_CRASH_ROUNDS", 3);
    eprintln!(
        "crash: server loop, {rounds} rounds, seed {seed} (QFTP_STRESS_SEED={seed} replays it)"
    );
    // Its own stream of choices, so the two loops do not mirror each other.
    let mut rng = Rng::new(seed ^ 0x5EED_0F5E_4E4E_C4A5);
    let (mut server, client) = quota_user();
    client.ok(&["mkdir", "-p", "/up"]);
    let local = tempfile::tempdir().expect("temp dir");
    let batch = local.path().join("batch");
    write_batch(&batch, &mut rng);
    let destination = server.home(USER).join("up");

    // Both ways once to completion: the starting state and the timing.
    let mut estimate = Duration::ZERO;
    for mode in [Uploads::Processes, Uploads::Parallel] {
        let started = Instant::now();
        let problems = finish_uploads(start_uploads(&client, &batch, mode), RERUN_LIMIT);
        assert!(problems.is_empty(), "setting up: {problems:?}");
        estimate = estimate.max(started.elapsed());
    }
    eprintln!(
        "crash: server loop, ten full uploads took up to {} ms",
        estimate.as_millis()
    );

    let mut failed = Vec::new();
    let mut data_lost = 0;
    let mut rounds_run = 0;
    let first_mode = rng.index(2);
    for round in 1..=rounds {
        rounds_run = round;
        let mut findings = Findings::default();
        let mut changes = Vec::new();
        if round > 1 {
            write_batch(&batch, &mut rng);
        }
        if rng.percent(30) {
            for _ in 0..rng.range(1, 3) {
                let path = format!("/up/{}", server_file(rng.index(SERVER_FILES)));
                if destination.join(&path["/up/".len()..]).exists() {
                    let output = client.run(&["rm", &path]);
                    if output.status.success() {
                        changes.push(format!("removed {path}"));
                    } else {
                        findings
                            .problem(format!("qftp rm {path} failed: {}", text(&output.stderr)));
                    }
                }
            }
        }
        let mode = if (round + first_mode) % 2 == 0 {
            Uploads::Processes
        } else {
            Uploads::Parallel
        };
        let longest = estimate.as_millis() as u64 * 6 / 5;
        let delay = Duration::from_millis(rng.range(0, longest.max(1)));
        let source = scan(&batch);
        let before = scan(&destination);

        let uploads = start_uploads(&client, &batch, mode);
        std::thread::sleep(delay);
        server.kill();
        // With the server dead, its disk is frozen: check it as it was left.
        let left = check_crashed(
            "after the crash",
            &scan(&destination),
            &source,
            &before,
            &mut findings,
        );
        let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.restart()));
        let restarted = restarted.is_ok();
        if !restarted {
            findings.problem("the server did not restart".to_owned());
        }
        // The restarted server resets the old connections, so the clients
        // end soon; one that started late may finish its upload instead.
        let mut outcome = finish_uploads(uploads, CLIENT_EXIT_LIMIT);
        outcome.retain(|problem| problem.contains("did not end"));
        for problem in outcome {
            findings.problem(format!("after the crash: {problem}"));
        }
        if restarted {
            check_ledger(
                "after the restart",
                SETTLE_AT_REST,
                &server,
                &client,
                &mut findings,
            );
            let problems = finish_uploads(start_uploads(&client, &batch, mode), RERUN_LIMIT);
            if problems.is_empty() {
                check_complete(
                    "after the rerun",
                    &scan(&destination),
                    &source,
                    &before,
                    true,
                    &mut findings,
                );
            }
            for problem in problems {
                findings.problem(format!("the rerun: {problem}"));
            }
            check_ledger(
                "after the rerun",
                SETTLE_AT_REST,
                &server,
                &client,
                &mut findings,
            );
        }

        let what = format!(
            "{} uploads, server killed after {} ms ({left}){}",
            match mode {
                Uploads::Processes => "10 processes of single",
                Uploads::Parallel => "one -j 10 process of 10",
            },
            delay.as_millis(),
            if changes.is_empty() {
                String::new()
            } else {
                format!("; before it: {}", changes.join(", "))
            }
        );
        let verdict = if findings.problems.is_empty() {
            "ok".to_owned()
        } else {
            format!("FAILED: {}", findings.problems.join("; "))
        };
        eprintln!("crash: server round {round}/{rounds}: {what}: {verdict}");
        if !findings.problems.is_empty() {
            failed.push(format!("round {round} (seed {seed}): {what}: {verdict}"));
        }
        data_lost += findings.lost;
        if !restarted {
            break;
        }
    }
    report(scenario, rounds_run, &failed, data_lost);
}
