//! Load: many `qftp` processes transferring at once, and many idle
//! authenticated connections, with the server's memory watched throughout.
//!
//! The scale comes from the environment so that a stress harness can run the
//! long version: `QFTP_STRESS_LOAD_CLIENTS` clients of
//! `QFTP_STRESS_LOAD_FILES` files each, and `QFTP_STRESS_IDLE_CONNECTIONS`
//! idle connections. Each scenario prints one `reliability: {json}` line on
//! stderr. Timings on a shared machine are noise, so nothing here asserts a
//! duration; every wait is bounded and every process is stopped by its handle.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qftp_client::{Client, ConnectOptions, Trust};

use crate::support::{
    TestClient, TestServer, file_hash, text, wait_bounded, wait_until, write_random,
};

const KIB: u64 = 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// How long one `qftp` process may take before it counts as hung.
const PROCESS_LIMIT: Duration = Duration::from_secs(600);

/// A count from the environment, or `default` when unset.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => match value.trim().parse() {
            Ok(count) if count > 0 => count,
            _ => panic!("{name} must be a positive whole number, not {value:?}"),
        },
        Err(_) => default,
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`), if readable.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn rss_bytes(pid: u32) -> u64 {
    status_kib(pid, "VmRSS").expect("reading the server's VmRSS") * KIB
}

fn hwm_bytes(pid: u32) -> u64 {
    status_kib(pid, "VmHWM").expect("reading the server's VmHWM") * KIB
}

/// Mebibytes with one decimal, as the harness expects.
fn mib(bytes: u64) -> f64 {
    (bytes as f64 / MIB * 10.0).round() / 10.0
}

/// Samples a process's resident set every 50 ms on a thread of its own.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, usize)>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            // Bounded even if nobody stops it: one hour of samples at most.
            let deadline = Instant::now() + Duration::from_secs(3600);
            let (mut peak, mut samples) = (0, 0);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match status_kib(pid, "VmRSS") {
                    Some(kib) => {
                        peak = peak.max(kib * KIB);
                        samples += 1;
                    }
                    None => break,
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (peak, samples)
        });
        Self { stop, thread }
    }

    /// The highest sample and the number of samples taken.
    fn finish(self) -> (u64, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the RSS sampler panicked")
    }
}

/// Waits up to `limit` for the resident set to stop shrinking (no change
/// of 1 MiB or more for two seconds) and returns the last reading.
fn settled_rss(pid: u32, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    let mut last = rss_bytes(pid);
    let mut steady_since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = rss_bytes(pid);
        if now.abs_diff(last) >= 1024 * KIB {
            steady_since = Instant::now();
            last = now;
        } else if steady_since.elapsed() >= Duration::from_secs(2) {
            return now;
        }
    }
    rss_bytes(pid)
}

/// How many file descriptors a process holds.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn emit(line: &serde_json::Value) {
    eprintln!("reliability: {line}");
}

/// Runs `command` with its output in `log`, feeding `input` on stdin;
/// a failure or a process still running after `limit` (then killed) is
/// described in the error.
fn run_logged(
    mut command: Command,
    input: Option<&str>,
    log: &Path,
    limit: Duration,
) -> Result<(), String> {
    let output = File::create(log).expect("creating a log file");
    command
        .stdout(output.try_clone().expect("cloning the log file"))
        .stderr(output)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command.spawn().expect("starting qftp");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing stdin");
    }
    let status = wait_bounded(&mut child, limit);
    let logged = std::fs::read(log)
        .map(|bytes| text(&bytes))
        .unwrap_or_default();
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("exited with {status}: {logged}")),
        None => Err(format!(
            "still running after {} s, killed: {logged}",
            limit.as_secs()
        )),
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 test path")
}

/// One client of the load scenario: its files and where they go.
struct LoadClient {
    index: usize,
    user: String,
    /// Local `client-NNN/` directory holding the files to upload.
    source: PathBuf,
    /// Local directory the files are downloaded into (as `client-NNN/`).
    download: PathBuf,
    /// File names and their BLAKE3.
    files: Vec<(String, blake3::Hash)>,
}

impl LoadClient {
    fn directory_name(&self) -> String {
        format!("client-{:03}", self.index)
    }
}

/// Logs in, uploads the client's directory, downloads it back (three `qftp`
/// processes, one after the other); returns the failed steps' descriptions.
fn drive_client(client: &LoadClient, host: &str, fingerprint: &str, work: &Path) -> Vec<String> {
    let config = TestClient::new();
    let name = client.directory_name();
    let mut failures = Vec::new();
    let mut step = |what: &str, arguments: &[&str], input: Option<&str>| {
        let log = work.join(format!("{name}-{what}.log"));
        let command = config.command(arguments);
        match run_logged(command, input, &log, PROCESS_LIMIT) {
            Ok(()) => true,
            Err(error) => {
                failures.push(format!("{name} {what}: {error}"));
                false
            }
        }
    };
    let target = format!("{}@{host}", client.user);
    let password = format!("{}\n", password_of(&client.user));
    let logged_in = step(
        "login",
        &[
            "login",
            &target,
            "--password-stdin",
            "--fingerprint",
            fingerprint,
        ],
        Some(&password),
    );
    if logged_in {
        let uploaded = step(
            "put",
            &[
                "put",
                "-r",
                "-j",
                "4",
                "--quiet",
                path_str(&client.source),
                "/",
            ],
            None,
        );
        if uploaded {
            step(
                "get",
                &[
                    "get",
                    "-r",
                    "-j",
                    "4",
                    "--quiet",
                    &name,
                    path_str(&client.download),
                ],
                None,
            );
        }
    }
    failures
}

fn password_of(user: &str) -> String {
    format!("{user}-load-pw")
}

/// Entries of `directory` other than `expected` (partials, strays); a
/// missing directory yields nothing (its files then count as lost).
fn strays(directory: &Path, expected: &[(String, blake3::Hash)]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.expect("reading a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !expected.iter().any(|(file, _)| file == name))
        .map(|name| directory.join(name).display().to_string())
        .collect()
}

fn matches(path: &Path, expected: &blake3::Hash) -> bool {
    path.is_file() && file_hash(path) == *expected
}

#[test]
fn many_clients_upload_and_download_at_once() {
    let clients = env_count("QFTP_STRESS_LOAD_CLIENTS", 20);
    let files_per_client = env_count("QFTP_STRESS_LOAD_FILES", 5);
    // A few users, each well under the default 64 connections per user
    // (every client holds one connection at a time).
    let users: Vec<String> = (0..clients.div_ceil(32).max(3).min(clients))
        .map(|index| format!("load{index}"))
        .collect();

    let server = TestServer::start();
    for user in &users {
        server.add_user(user, &password_of(user), None);
    }
    let local = tempfile::tempdir().expect("temp dir");
    let plan: Vec<LoadClient> = (0..clients)
        .map(|index| {
            let source = local.path().join("up").join(format!("client-{index:03}"));
            let files = (0..files_per_client)
                .map(|file| {
                    let name = format!("file-{file:03}.bin");
                    let seed = (index * 10_000 + file) as u64 + 1;
                    // 64 to 256 KiB, varying from file to file.
                    let size = 64 * 1024 + (seed.wrapping_mul(7919) % (192 * 1024 + 1)) as usize;
                    let path = source.join(&name);
                    write_random(&path, size, seed);
                    (name, file_hash(&path))
                })
                .collect();
            let download = local.path().join("down").join(format!("{index:03}"));
            std::fs::create_dir_all(&download).expect("creating a download directory");
            LoadClient {
                index,
                user: users[index % users.len()].clone(),
                source,
                download,
                files,
            }
        })
        .collect();
    let logs = local.path().join("logs");
    std::fs::create_dir_all(&logs).expect("creating the log directory");

    let pid = server.pid();
    let rss_idle = settled_rss(pid, Duration::from_secs(10));
    let sampler = RssSampler::start(pid);
    let started = Instant::now();
    let plan = Arc::new(plan);
    let workers: Vec<_> = (0..clients)
        .map(|index| {
            let plan = Arc::clone(&plan);
            let host = server.host();
            let fingerprint = server.fingerprint.clone();
            let logs = logs.clone();
            std::thread::spawn(move || drive_client(&plan[index], &host, &fingerprint, &logs))
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("a client thread panicked"))
        .collect();
    let elapsed = started.elapsed();
    let (sampled_peak, samples) = sampler.finish();
    let rss_peak = sampled_peak.max(hwm_bytes(pid));
    let rss_after = settled_rss(pid, Duration::from_secs(15));

    let mut data_lost = 0;
    let mut leftovers = Vec::new();
    for client in plan.iter() {
        let name = client.directory_name();
        let stored = server.home(&client.user).join(&name);
        let fetched = client.download.join(&name);
        for (file, hash) in &client.files {
            data_lost += usize::from(!matches(&stored.join(file), hash));
            data_lost += usize::from(!matches(&fetched.join(file), hash));
        }
        leftovers.extend(strays(&stored, &client.files));
        leftovers.extend(strays(&fetched, &client.files));
    }

    let rounds = clients * files_per_client;
    emit(&serde_json::json!({
        "scenario": format!("load: {clients} clients x {files_per_client} files up and down"),
        "rounds": rounds,
        "failures": failures.len(),
        "data_lost": data_lost,
        "server_rss_peak_mib": mib(rss_peak),
        "server_rss_idle_mib": mib(rss_idle),
        "server_rss_after_mib": mib(rss_after),
        "clients": clients,
        "users": users.len(),
        "processes": clients * 3,
        "leftovers": leftovers.len(),
        "rss_samples": samples,
        "seconds": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
    }));
    assert!(
        failures.is_empty(),
        "{} of {} processes failed:\n{}",
        failures.len(),
        clients * 3,
        failures.join("\n")
    );
    assert_eq!(data_lost, 0, "files missing or different after the run");
    assert!(
        leftovers.is_empty(),
        "partial or stray files: {leftovers:?}"
    );
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Makes sure this process (and the server it starts, which inherits the
/// limit) may open `needed` files: raises the soft limit with `prlimit`
/// when that tool is present and the hard limit allows it.
fn ensure_open_files(needed: u64) -> Result<(), String> {
    let current = open_files_limit().ok_or("cannot read the open files limit")?;
    if current >= needed {
        return Ok(());
    }
    let _ = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={needed}:"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match open_files_limit() {
        Some(raised) if raised >= needed => Ok(()),
        _ => Err(format!(
            "the open files limit is {current} and could not be raised to {needed}"
        )),
    }
}

/// Connects and authenticates with the session token.
async fn open_authenticated(options: &ConnectOptions, token: &str) -> Result<Client, String> {
    let client = Client::connect(options)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    client
        .authenticate(token)
        .await
        .map_err(|error| format!("authenticate: {error}"))?;
    Ok(client)
}

/// What one round of idle connections showed.
struct IdleRound {
    failures: Vec<String>,
    /// Connections that answered WhoAmI while all were open.
    alive: usize,
    rss_with: u64,
    fds_with: usize,
    rss_after: u64,
    fds_after: usize,
    seconds_to_open: f64,
}

/// Opens `count` connections authenticated with `token`, checks that each
/// answers while all are open, then closes them all.
fn idle_round(
    runtime: &tokio::runtime::Runtime,
    options: &Arc<ConnectOptions>,
    token: &Arc<String>,
    count: usize,
    pid: u32,
    fds_before: usize,
) -> IdleRound {
    let started = Instant::now();
    let (open, mut failures) = runtime.block_on(async {
        // A bounded number of handshakes at a time; every connection is kept.
        let handshakes = Arc::new(tokio::sync::Semaphore::new(16));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..count {
            let (options, token, handshakes) = (
                Arc::clone(options),
                Arc::clone(token),
                Arc::clone(&handshakes),
            );
            tasks.spawn(async move {
                let _permit = handshakes.acquire_owned().await.expect("semaphore");
                tokio::time::timeout(
                    Duration::from_secs(120),
                    open_authenticated(&options, &token),
                )
                .await
                .unwrap_or_else(|_| Err("no answer within 120 s".into()))
            });
        }
        let mut open = Vec::new();
        let mut failures = Vec::new();
        while let Some(result) = tasks.join_next().await {
            match result.expect("a connection task panicked") {
                Ok(client) => open.push(client),
                Err(error) => failures.push(error),
            }
        }
        (open, failures)
    });
    // With every connection open, each must still answer.
    let (alive, answer_failures) = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for client in &open {
            let client = client.clone();
            tasks.spawn(async move {
                tokio::time::timeout(Duration::from_secs(60), client.who_am_i())
                    .await
                    .map_err(|_| "WhoAmI: no answer within 60 s".to_owned())?
                    .map_err(|error| format!("WhoAmI: {error}"))
            });
        }
        let mut alive = 0;
        let mut failures = Vec::new();
        while let Some(result) = tasks.join_next().await {
            match result.expect("a WhoAmI task panicked") {
                Ok((user, _)) if user == "idle" => alive += 1,
                Ok((user, _)) => failures.push(format!("WhoAmI answered {user:?}")),
                Err(error) => failures.push(error),
            }
        }
        (alive, failures)
    });
    failures.extend(answer_failures);
    let seconds_to_open = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let rss_with = settled_rss(pid, Duration::from_secs(10));
    let fds_with = open_fds(pid);
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for client in open {
            tasks.spawn(async move { client.close().await });
        }
        while tasks.join_next().await.is_some() {}
    });
    // Every authenticated session holds its home directory open, so the
    // server's descriptors show when the sessions are really gone.
    wait_until(Duration::from_secs(30), || open_fds(pid) <= fds_before);
    let rss_after = settled_rss(pid, Duration::from_secs(30));
    IdleRound {
        failures,
        alive,
        rss_with,
        fds_with,
        rss_after,
        fds_after: open_fds(pid),
        seconds_to_open,
    }
}

#[test]
fn many_idle_connections_are_held_and_released() {
    let connections = env_count("QFTP_STRESS_IDLE_CONNECTIONS", 200);
    // Each connection is one UDP socket here and one home directory handle
    // in the server (which inherits this limit); leave room for the rest.
    if let Err(reason) = ensure_open_files(2 * connections as u64 + 512) {
        eprintln!("skipping the idle connections scenario: {reason}");
        return;
    }
    let headroom = connections + 16;
    let server = TestServer::start_with_config(&format!(
        "max_connections = {headroom}\nmax_connections_per_user = {headroom}"
    ));
    server.add_user("idle", &password_of("idle"), None);
    let pid = server.pid();
    let fingerprint = server.fingerprint.parse().expect("server fingerprint");
    let mut options = ConnectOptions::new(server.host(), Trust::Pinned(fingerprint));
    options.connect_timeout = Duration::from_secs(60);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // One password login (one argon2 hash); every connection then
    // authenticates with its token.
    let token = runtime.block_on(async {
        let client = Client::connect(&options).await.expect("connecting");
        let (token, _) = client
            .login("idle", &password_of("idle"))
            .await
            .expect("logging in");
        client.close().await;
        token
    });
    let rss_before = settled_rss(pid, Duration::from_secs(10));
    let fds_before = open_fds(pid);

    let options = Arc::new(options);
    let token = Arc::new(token);
    // Two rounds: the second shows whether the first's memory is reused.
    let first = idle_round(&runtime, &options, &token, connections, pid, fds_before);
    let second = idle_round(&runtime, &options, &token, connections, pid, fds_before);
    let rss_peak = hwm_bytes(pid);

    // The server must still serve a new client normally.
    let client = TestClient::new();
    client.login(&server, "idle", &password_of("idle"));
    let local = tempfile::tempdir().expect("temp dir");
    let source = local.path().join("after.bin");
    write_random(&source, 100_000, 7);
    client.ok(&["put", "--quiet", path_str(&source)]);
    let back = local.path().join("back.bin");
    client.ok(&["get", "--quiet", "after.bin", path_str(&back)]);
    let round_trip = matches(&back, &file_hash(&source));

    let failures: Vec<&String> = first.failures.iter().chain(&second.failures).collect();
    let growth = first.rss_with.saturating_sub(rss_before);
    emit(&serde_json::json!({
        "scenario": format!("load: {connections} idle connections"),
        "rounds": 2 * connections,
        "failures": failures.len(),
        "data_lost": usize::from(!round_trip),
        "server_rss_peak_mib": mib(rss_peak),
        "server_rss_idle_mib": mib(rss_before),
        "server_rss_before_mib": mib(rss_before),
        "server_rss_with_mib": mib(first.rss_with),
        "server_rss_after_mib": mib(first.rss_after),
        "server_rss_with_again_mib": mib(second.rss_with),
        "server_rss_after_again_mib": mib(second.rss_after),
        "kib_per_connection": ((growth / KIB) as f64 / connections as f64).round(),
        "alive": first.alive + second.alive,
        "server_fds_before": fds_before,
        "server_fds_with": first.fds_with,
        "server_fds_after": second.fds_after,
        "seconds_to_open": first.seconds_to_open,
    }));
    assert!(
        failures.is_empty(),
        "{} of {} connections failed: {:?}",
        failures.len(),
        2 * connections,
        &failures[..failures.len().min(10)]
    );
    assert_eq!(first.alive, connections);
    assert_eq!(second.alive, connections);
    assert!(round_trip, "a new client's round trip after the load");
    // Closed connections give back their sessions (each holds a directory
    // handle); a few descriptors of slack for the server's own files.
    for round in [&first, &second] {
        assert!(
            round.fds_after <= fds_before + 4,
            "the server holds {} descriptors after the connections closed, {fds_before} before",
            round.fds_after
        );
    }
    // Memory. Measured (debug build): about 125-140 KiB per idle connection,
    // and the resident set does NOT fall back after they close (200: 10 ->
    // 37 -> 37 MiB; 1,000: 10 -> 129 -> 129 MiB): glibc's malloc keeps the
    // freed heap for reuse. So "back to the baseline" cannot be asserted;
    // what must hold is that the memory is reused rather than leaked: with
    // 300 connections three rounds measured 48.0, 49.2 and 49.3 MiB. A leak
    // of even half the per-connection cost would put the second round at
    // least half the first round's growth above the first; 8 MiB absorb
    // allocator noise. Closing must not make things grow either.
    let reuse_bound = first.rss_with + growth / 2 + 8 * 1024 * KIB;
    assert!(
        second.rss_with <= reuse_bound && second.rss_after <= reuse_bound,
        "server RSS grew from one round of {connections} connections to the next: \
         before {} MiB, first round {} MiB (after closing {} MiB), second round {} MiB \
         (after closing {} MiB), bound {} MiB",
        mib(rss_before),
        mib(first.rss_with),
        mib(first.rss_after),
        mib(second.rss_with),
        mib(second.rss_after),
        mib(reuse_bound)
    );
}
