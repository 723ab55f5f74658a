//! Bad networks: put, get and sync through the impairing relay (latency,
//! loss, reordering, duplicates), a path cut shorter than the idle timeout
//! that the transfer rides out, and one longer that ends in a clean error
//! and a rerun that resumes.
//!
//! `QFTP_STRESS_NETWORK_MIB` sets the size of each transfer (default 4).
//! Each scenario prints one `reliability: {json}` line to stderr.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::relay::{Impairment, Relay};
use crate::support::{
    TestClient, TestServer, file_hash, snapshot, text, wait_bounded, wait_until, write_random,
};

/// The longest any one `qftp` command may take before it counts as hung.
const COMMAND_LIMIT: Duration = Duration::from_secs(240);
/// The client's idle timeout in the long-cut scenario, in seconds.
const SHORT_IDLE_SECS: u64 = 4;
/// How long the short cut lasts: well under the client's default idle
/// timeout (20 s) and the server's (60 s).
const SHORT_CUT: Duration = Duration::from_secs(3);

/// Bytes per transfer: `QFTP_STRESS_NETWORK_MIB` MiB, 4 by default.
fn transfer_size() -> usize {
    let mib = std::env::var("QFTP_STRESS_NETWORK_MIB")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .filter(|mib| *mib > 0)
        .unwrap_or(4);
    mib * 1024 * 1024
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 test path")
}

/// A wide-area link: 25 ms each way (a 50 ms round trip) and an Ethernet
/// MTU, so a file travels in thousands of datagrams as it would between
/// machines (on loopback qftp would otherwise use 64 KiB datagrams).
fn rtt_50ms() -> Impairment {
    Impairment {
        delay: Duration::from_millis(25),
        mtu: Some(1472),
        ..Default::default()
    }
}

/// [`rtt_50ms`] limited to a rate that moves `size` bytes in about four
/// seconds, so a cut can land mid-transfer in either direction.
fn slow_link(size: usize) -> Impairment {
    Impairment {
        rate: Some((size as u64 / 4).max(256 * 1024)),
        ..rtt_50ms()
    }
}

/// A server with user alice, a relay in front of it, and a client logged
/// in through the relay.
struct Setup {
    server: TestServer,
    relay: Relay,
    client: TestClient,
    local: tempfile::TempDir,
}

/// The relay listens on loopback, where both ends would pick quinn's BBR;
/// a lossy path is what qftp's own controller is for, so these runs use it
/// (and so exercise it through loss, reordering, duplicates and cuts).
const CONGESTION: [(&str, &str); 1] = [("QFTP_CONGESTION", "delivery-rate")];

impl Setup {
    fn new(impairment: Impairment) -> Self {
        let started = Instant::now();
        let server = TestServer::start_with("", &CONGESTION);
        server.add_user("alice", "alice-pw-1", None);
        let relay = Relay::start(server.address, impairment);
        let client = TestClient::with_environment(&CONGESTION);
        let login = client.try_login_at(
            &relay.address.to_string(),
            &server.fingerprint,
            "alice",
            "alice-pw-1",
        );
        assert!(
            login.status.success(),
            "login through the relay: {}",
            text(&login.stderr)
        );
        eprintln!("setup: {:.1} s", started.elapsed().as_secs_f64());
        Self {
            server,
            relay,
            client,
            local: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn home(&self) -> PathBuf {
        self.server.home("alice")
    }

    /// A path in the local scratch directory.
    fn local(&self, name: &str) -> PathBuf {
        self.local.path().join(name)
    }
}

/// How a finished `qftp` process went.
struct Finished {
    status: ExitStatus,
    stderr: String,
}

/// A `qftp` process running in the background with its output in files,
/// so nothing blocks on a full pipe and the wait can be bounded.
struct Running {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Running {
    fn start(client: &TestClient, arguments: &[&str], environment: &[(&str, &str)]) -> Self {
        let scratch = tempfile::tempdir().expect("temp dir");
        let stdout = scratch.path().join("stdout");
        let stderr = scratch.path().join("stderr");
        let mut command: Command = client.command(arguments);
        for (name, value) in environment {
            command.env(name, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("starting qftp");
        Self {
            child: Some(child),
            stdout,
            stderr,
            _scratch: scratch,
        }
    }

    /// Whether the process has ended.
    fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("polling qftp").is_some(),
            None => true,
        }
    }

    /// Waits for the end for at most `limit`; a process still running then
    /// is killed and reported as hung.
    fn finish(mut self, limit: Duration) -> Result<Finished, String> {
        let mut child = self.child.take().expect("a running process");
        let status = wait_bounded(&mut child, limit);
        let read = |path: &Path| text(&std::fs::read(path).unwrap_or_default());
        let stderr = read(&self.stderr);
        match status {
            Some(status) => Ok(Finished { status, stderr }),
            None => Err(format!(
                "hung: still running after {} s; stdout {:?}; stderr {stderr:?}",
                limit.as_secs(),
                read(&self.stdout),
            )),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One scenario's tally, printed as the `reliability:` line. A scenario
/// dropped without [`Scenario::finish`] (a panic midway) still prints its
/// line, counting the panic as a failure.
struct Scenario {
    name: &'static str,
    rounds: u32,
    failures: u32,
    data_lost: u32,
    problems: Vec<String>,
    reported: bool,
}

impl Scenario {
    fn new(name: &'static str) -> Self {
        eprintln!("scenario: {name}");
        Self {
            name,
            rounds: 0,
            failures: 0,
            data_lost: 0,
            problems: Vec::new(),
            reported: false,
        }
    }

    fn fail(&mut self, problem: String) {
        eprintln!("problem: {problem}");
        self.failures += 1;
        self.problems.push(problem);
    }

    /// Records a file that ended missing or corrupt.
    fn lose(&mut self, problem: String) {
        eprintln!("data lost: {problem}");
        self.data_lost += 1;
        self.problems.push(problem);
    }

    /// Runs `qftp ARGUMENTS` as one round that must succeed; its stderr.
    fn run_ok(&mut self, client: &TestClient, arguments: &[&str]) -> Option<String> {
        self.rounds += 1;
        let started = Instant::now();
        let outcome = Running::start(client, arguments, &[]).finish(COMMAND_LIMIT);
        eprintln!(
            "qftp {arguments:?}: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        match outcome {
            Ok(done) if done.status.success() => Some(done.stderr),
            Ok(done) => {
                self.fail(format!(
                    "qftp {arguments:?} failed ({}): {}",
                    done.status, done.stderr
                ));
                None
            }
            Err(hung) => {
                self.fail(format!("qftp {arguments:?} {hung}"));
                None
            }
        }
    }

    /// Checks that `actual` exists with the bytes of `expected`.
    fn verify_file(&mut self, expected: &Path, actual: &Path) {
        if !actual.is_file() {
            self.lose(format!("{} is missing", actual.display()));
        } else if file_hash(actual) != file_hash(expected) {
            self.lose(format!(
                "{} differs from {}",
                actual.display(),
                expected.display()
            ));
        }
    }

    /// Checks that the tree under `actual` equals the one under `expected`;
    /// every file missing or different counts as lost data.
    fn verify_tree(&mut self, expected: &Path, actual: &Path) {
        let want = snapshot(expected);
        let got = if actual.is_dir() {
            snapshot(actual)
        } else {
            BTreeMap::new()
        };
        for (path, content) in &want {
            match (content, got.get(path)) {
                (Some(_), found) if found != Some(content) => {
                    self.lose(format!(
                        "{path} missing or different under {}",
                        actual.display()
                    ));
                }
                (None, found) if found != Some(&None) => {
                    self.fail(format!(
                        "directory {path} missing under {}",
                        actual.display()
                    ));
                }
                _ => {}
            }
        }
        for path in got.keys().filter(|path| !want.contains_key(*path)) {
            self.fail(format!(
                "{path} appeared under {} unasked",
                actual.display()
            ));
        }
    }

    fn line(&self) -> String {
        let name = self.name.replace('\\', "\\\\").replace('"', "\\\"");
        format!(
            "reliability: {{\"scenario\":\"{name}\",\"rounds\":{},\"failures\":{},\"data_lost\":{}}}",
            self.rounds, self.failures, self.data_lost
        )
    }

    /// Prints the line, then fails the test if anything went wrong.
    fn finish(mut self) {
        self.reported = true;
        eprintln!("{}", self.line());
        assert!(
            self.failures == 0 && self.data_lost == 0 && self.problems.is_empty(),
            "{}:\n{}",
            self.name,
            self.problems.join("\n")
        );
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if !self.reported {
            self.failures += 1;
            eprintln!("{}", self.line());
        }
    }
}

/// A tree of about `total` bytes: a few big files, many small ones, an
/// empty file and an empty directory.
fn make_tree(root: &Path, total: usize) {
    write_random(&root.join("big-one.bin"), total / 2, 301);
    write_random(&root.join("nested/deeper/big-two.bin"), total / 4, 302);
    for index in 0..24 {
        write_random(
            &root.join(format!("small/part-{index:02}.dat")),
            (total / 4) / 24 + index * 13,
            400 + index as u64,
        );
    }
    std::fs::write(root.join("nested/empty.txt"), b"").expect("empty file");
    std::fs::create_dir_all(root.join("empty-dir")).expect("empty dir");
}

/// The resumed amount in a summary line, e.g. "1 MiB resumed".
fn resumed_part(stderr: &str) -> Option<String> {
    let line = stderr.lines().find(|line| line.contains(" resumed"))?;
    let before = line.split(" resumed").next()?;
    Some(before.rsplit(", ").next()?.to_owned())
}

/// Waits until `partial` holds at least `at_least` bytes, or `process` ends.
fn wait_for_partial(partial: &Path, at_least: u64, process: &mut Running) -> bool {
    wait_until(Duration::from_secs(90), || {
        process.has_exited()
            || std::fs::metadata(partial).is_ok_and(|metadata| metadata.len() >= at_least)
    }) && std::fs::metadata(partial).is_ok_and(|metadata| metadata.len() >= at_least)
}

#[test]
fn put_get_and_sync_complete_through_latency_loss_reordering_and_duplicates() {
    let size = transfer_size();
    let setup = Setup::new(
        Impairment {
            loss: 0.01,
            reorder: 0.05,
            reorder_delay: Duration::from_millis(15),
            duplicate: 0.02,
            ..rtt_50ms()
        }
        .losing_within(60),
    );
    let mut scenario =
        Scenario::new("network put/get/sync, 50 ms RTT + 1% loss + reorder + duplicates");
    let client = &setup.client;

    let source = setup.local("mixed.bin");
    write_random(&source, size, 201);
    scenario.run_ok(client, &["put", "--quiet", path_str(&source)]);
    scenario.verify_file(&source, &setup.home().join("mixed.bin"));
    let back = setup.local("mixed-back.bin");
    scenario.run_ok(client, &["get", "--quiet", "mixed.bin", path_str(&back)]);
    scenario.verify_file(&source, &back);

    let tree = setup.local("tree");
    make_tree(&tree, size);
    scenario.run_ok(client, &["sync", path_str(&tree), "/synced"]);
    scenario.verify_tree(&tree, &setup.home().join("synced"));
    let pulled = setup.local("pulled");
    scenario.run_ok(client, &["sync", "--pull", "/synced", path_str(&pulled)]);
    scenario.verify_tree(&tree, &pulled);

    let counts = setup.relay.counts();
    eprintln!("impairment: {counts:?}");
    if counts.dropped == 0 || counts.reordered == 0 || counts.duplicated == 0 {
        scenario.fail(format!("the path was not as bad as asked: {counts:?}"));
    }
    scenario.finish();
}

#[test]
fn put_and_get_complete_through_five_percent_loss() {
    let size = transfer_size();
    let setup = Setup::new(
        Impairment {
            loss: 0.05,
            ..rtt_50ms()
        }
        .losing_within(60),
    );
    let mut scenario = Scenario::new("network put/get, 50 ms RTT + 5% loss");
    let client = &setup.client;

    let source = setup.local("lossy.bin");
    write_random(&source, size, 202);
    scenario.run_ok(client, &["put", "--quiet", path_str(&source)]);
    scenario.verify_file(&source, &setup.home().join("lossy.bin"));
    let back = setup.local("lossy-back.bin");
    scenario.run_ok(client, &["get", "--quiet", "lossy.bin", path_str(&back)]);
    scenario.verify_file(&source, &back);

    let counts = setup.relay.counts();
    eprintln!("impairment: {counts:?}");
    if counts.dropped == 0 {
        scenario.fail(format!("the path lost nothing: {counts:?}"));
    }
    scenario.finish();
}

/// Runs `qftp ARGUMENTS` (a transfer into `partial` over a slow link), cuts the
/// path once a quarter of `size` arrived, waits `cut_for`, restores it and
/// returns how the process ended.
fn transfer_across_a_cut(
    setup: &Setup,
    arguments: &[&str],
    environment: &[(&str, &str)],
    partial: &Path,
    size: usize,
    cut_for: Duration,
) -> Result<Finished, String> {
    let mut running = Running::start(&setup.client, arguments, environment);
    let started = wait_for_partial(partial, (size / 4) as u64, &mut running);
    setup.relay.cut();
    let before = setup.relay.counts();
    std::thread::sleep(cut_for);
    setup.relay.restore();
    let severed = setup.relay.counts().severed - before.severed;
    eprintln!(
        "cut {} s: {severed} datagrams severed",
        cut_for.as_secs_f32()
    );
    let finished = running.finish(COMMAND_LIMIT);
    if !started {
        return Err(format!(
            "{} never reached a quarter of the file before the cut ({:?})",
            partial.display(),
            finished.as_ref().map(|done| &done.stderr)
        ));
    }
    if severed == 0 {
        return Err("the cut severed nothing: the transfer was not running".into());
    }
    finished
}

#[test]
fn a_short_path_cut_mid_transfer_is_ridden_out() {
    let size = transfer_size();
    let setup = Setup::new(slow_link(size));
    let mut scenario = Scenario::new("network path cut 3 s mid-transfer, 50 ms RTT");

    let source = setup.local("cut.bin");
    write_random(&source, size, 203);
    scenario.rounds += 1;
    match transfer_across_a_cut(
        &setup,
        &["put", "--quiet", path_str(&source)],
        &[],
        &crate::support::server_partial(&setup.home(), "/cut.bin"),
        size,
        SHORT_CUT,
    ) {
        Ok(done) if done.status.success() => {}
        Ok(done) => scenario.fail(format!(
            "put across a cut: {}: {}",
            done.status, done.stderr
        )),
        Err(problem) => scenario.fail(format!("put across a cut: {problem}")),
    }
    scenario.verify_file(&source, &setup.home().join("cut.bin"));

    let back = setup.local("cut-back.bin");
    scenario.rounds += 1;
    match transfer_across_a_cut(
        &setup,
        &["get", "--quiet", "cut.bin", path_str(&back)],
        &[],
        &setup.local(".cut-back.bin.qftp-part"),
        size,
        SHORT_CUT,
    ) {
        Ok(done) if done.status.success() => {}
        Ok(done) => scenario.fail(format!(
            "get across a cut: {}: {}",
            done.status, done.stderr
        )),
        Err(problem) => scenario.fail(format!("get across a cut: {problem}")),
    }
    scenario.verify_file(&source, &back);
    scenario.finish();
}

/// Checks a transfer that outlived its idle timeout: a non-zero exit with
/// one clear line, no panic, nothing under `final_name`, `partial` kept.
fn check_clean_failure(
    scenario: &mut Scenario,
    what: &str,
    outcome: Result<Finished, String>,
    final_name: &Path,
    partial: &Path,
) {
    match outcome {
        Err(problem) => scenario.fail(format!("{what}: {problem}")),
        Ok(done) => {
            let lines: Vec<&str> = done
                .stderr
                .lines()
                .filter(|line| !line.trim().is_empty())
                .collect();
            eprintln!("{what} ended with {}: {:?}", done.status, done.stderr);
            if done.status.success() {
                scenario.fail(format!("{what} succeeded through a dead path"));
            }
            if done.status.code().is_none() {
                scenario.fail(format!("{what} died by a signal: {}", done.status));
            }
            if done.stderr.contains("panicked") || done.stderr.contains("RUST_BACKTRACE") {
                scenario.fail(format!("{what} panicked: {}", done.stderr));
            }
            if lines.len() != 1 || !lines[0].starts_with("qftp: ") {
                scenario.fail(format!(
                    "{what}: expected one `qftp: ...` line, got {:?}",
                    done.stderr
                ));
            }
        }
    }
    if final_name.exists() {
        scenario.fail(format!(
            "{what}: {} appeared although the transfer failed",
            final_name.display()
        ));
    }
    if !std::fs::metadata(partial).is_ok_and(|metadata| metadata.len() > 0) {
        scenario.fail(format!(
            "{what}: the partial {} was not kept",
            partial.display()
        ));
    }
}

/// Runs a transfer again through the healthy path; it must succeed and
/// report resumed bytes.
fn rerun_resumes(scenario: &mut Scenario, client: &TestClient, what: &str, arguments: &[&str]) {
    if let Some(stderr) = scenario.run_ok(client, arguments) {
        match resumed_part(&stderr) {
            Some(resumed) if resumed != "0 B" => {
                eprintln!("{what} rerun resumed {resumed}");
            }
            other => scenario.fail(format!("{what} rerun did not resume ({other:?}): {stderr}")),
        }
    }
}

#[test]
fn a_path_cut_past_the_idle_timeout_fails_cleanly_and_a_rerun_resumes() {
    let size = transfer_size();
    let setup = Setup::new(slow_link(size));
    let mut scenario = Scenario::new(
        "network path cut past the idle timeout: clean error, then resume, 50 ms RTT",
    );
    let idle = SHORT_IDLE_SECS.to_string();
    let environment = [("QFTP_IDLE_TIMEOUT", idle.as_str())];
    // Long enough that the client's idle timeout certainly ran out.
    let long_cut = Duration::from_secs(SHORT_IDLE_SECS * 2 + 2);
    let client = &setup.client;

    // An upload.
    let source = setup.local("outage.bin");
    write_random(&source, size, 204);
    let stored = setup.home().join("outage.bin");
    let server_partial = crate::support::server_partial(&setup.home(), "/outage.bin");
    scenario.rounds += 1;
    let outcome = transfer_across_a_cut(
        &setup,
        &["put", "--quiet", path_str(&source)],
        &environment,
        &server_partial,
        size,
        long_cut,
    );
    check_clean_failure(&mut scenario, "put", outcome, &stored, &server_partial);
    rerun_resumes(&mut scenario, client, "put", &["put", path_str(&source)]);
    scenario.verify_file(&source, &stored);

    // A download of what was just stored.
    let target = setup.local("outage-back.bin");
    let local_partial = setup.local(".outage-back.bin.qftp-part");
    scenario.rounds += 1;
    let outcome = transfer_across_a_cut(
        &setup,
        &["get", "--quiet", "outage.bin", path_str(&target)],
        &environment,
        &local_partial,
        size,
        long_cut,
    );
    check_clean_failure(&mut scenario, "get", outcome, &target, &local_partial);
    rerun_resumes(
        &mut scenario,
        client,
        "get",
        &["get", "outage.bin", path_str(&target)],
    );
    scenario.verify_file(&source, &target);
    scenario.finish();
}

#[test]
fn an_unknown_congestion_controller_is_refused_with_the_names_it_knows() {
    let server = TestServer::start();
    server.add_user("alice", "alice-pw-1", None);
    let client = TestClient::with_environment(&[("QFTP_CONGESTION", "reno")]);
    let login = client.try_login(&server, "alice", "alice-pw-1");
    assert!(!login.status.success());
    let stderr = text(&login.stderr);
    assert!(
        stderr.contains("QFTP_CONGESTION") && stderr.contains("delivery-rate, bbr, cubic"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
