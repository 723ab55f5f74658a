//! CPU used by other people's processes, from `/proc` (Linux only).
//!
//! The machine is shared, so before each timed run the benchmark waits
//! (bounded) for other users' processes to go idle, and it records how many
//! cores they used during the run ("foreign" load). Foreign time is the
//! machine's user and system time (`/proc/stat`) minus that of this
//! benchmark's processes (`cargo xtask` and its descendants: the server,
//! the `qftp`, `cp` and peers under test, counted with their reaped
//! children), minus kernel threads (which flush the benchmark's writes),
//! and minus orphans: processes born during the run that init adopted by
//! its end, and the children init reaped meanwhile (lftp leaves its ssh
//! behind, a closed ssh session its sftp-server; the peers script does not
//! count init's reaped children as foreign either; a zombie not yet reaped
//! has an empty command line and counts like a kernel thread). Counting
//! other processes one by one instead would charge a build's whole
//! compiler run to the moment its parent reaps it. On systems without
//! `/proc` every figure reads as zero.
//!
//! It measures and waits for quiet; when to wait, and repeating a run that
//! was disturbed, is [`super::timed_run`]'s.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::process;

/// Foreign load (cores) below which the machine counts as quiet.
pub const QUIET_CORES: f64 = 0.10;

/// Foreign load (cores, averaged over a run) above which a run is repeated.
pub const RETRY_CORES: f64 = 0.15;

/// How long each look at the machine's load lasts while waiting for quiet.
const QUIET_WINDOW: Duration = Duration::from_secs(2);

/// CPU time of one process, in clock ticks.
#[derive(Debug, Clone, Copy)]
struct ProcessCpu {
    parent: u32,
    /// Own user and system time.
    own: u64,
    /// Own time plus that of reaped children.
    total: u64,
    /// False for kernel threads (empty command line).
    user: bool,
}

/// The CPU times of the machine and of all processes at one moment.
#[derive(Debug)]
pub struct Snapshot {
    at: Instant,
    /// User, nice and system ticks of all CPUs (`/proc/stat`).
    machine: u64,
    processes: HashMap<u32, ProcessCpu>,
    mine: HashSet<u32>,
}

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, else 100).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

fn read_process(pid: u32) -> Option<ProcessCpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let user = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| !line.is_empty());
    // The command name may hold spaces and parentheses; fields follow the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let number = |index: usize| fields.get(index)?.parse::<u64>().ok();
    let own = number(11)? + number(12)?;
    Some(ProcessCpu {
        parent: u32::try_from(number(1)?).ok()?,
        own,
        total: own + number(13)? + number(14)?,
        user,
    })
}

/// User, nice and system ticks of all CPUs so far.
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return 0;
    };
    line.split_whitespace()
        .skip(1)
        .take(3)
        .filter_map(|value| value.parse::<u64>().ok())
        .sum()
}

/// Takes a snapshot; this process and its descendants count as mine.
pub fn snapshot() -> Snapshot {
    let machine = machine_ticks();
    let mut processes = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse().ok())
            else {
                continue;
            };
            if let Some(cpu) = read_process(pid) {
                processes.insert(pid, cpu);
            }
        }
    }
    let mut mine = HashSet::from([std::process::id()]);
    // Each pass adds a generation of descendants; the process count bounds it.
    for _ in 0..=processes.len() {
        let before = mine.len();
        for (pid, cpu) in &processes {
            if mine.contains(&cpu.parent) {
                mine.insert(*pid);
            }
        }
        if mine.len() == before {
            break;
        }
    }
    Snapshot {
        at: Instant::now(),
        machine,
        processes,
        mine,
    }
}

/// Cores used on average by other people's processes between two snapshots.
pub fn foreign_cores(before: &Snapshot, after: &Snapshot) -> f64 {
    let wall = after.at.duration_since(before.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    let delta = |pid: &u32, now: u64, then: fn(&ProcessCpu) -> u64| {
        before
            .processes
            .get(pid)
            .map_or(now, |previous| now.saturating_sub(then(previous)))
    };
    let mut accounted = 0;
    for (pid, cpu) in &after.processes {
        if after.mine.contains(pid) || before.mine.contains(pid) {
            // With reaped children: the qftp or cp run just ended.
            accounted += delta(pid, cpu.total, |cpu| cpu.total);
        } else if *pid == 1 {
            // init reaps orphans, such as the ssh processes lftp leaves
            // behind: its reaped children's time is not counted as foreign
            // (as in the peers script), its own time is.
            accounted += delta(pid, cpu.total - cpu.own, |cpu| cpu.total - cpu.own);
        } else if cpu.parent == 1 && !before.processes.contains_key(pid) {
            // Born during the run and orphaned by its end: lftp's ssh and
            // sh, the sftp-server of a closed ssh session.
            accounted += cpu.total;
        } else if !cpu.user {
            accounted += delta(pid, cpu.own, |cpu| cpu.own);
        }
    }
    let foreign = after
        .machine
        .saturating_sub(before.machine)
        .saturating_sub(accounted);
    foreign as f64 / ticks_per_second() / wall
}

/// Waits until other people's processes use less than [`QUIET_CORES`], for
/// at most `limit`; returns the last load seen, which is above the
/// threshold when the wait gave up.
pub fn wait_quiet(limit: Duration) -> anyhow::Result<f64> {
    let deadline = Instant::now() + limit;
    let mut announced = false;
    loop {
        let before = snapshot();
        process::sleep(QUIET_WINDOW)?;
        let load = foreign_cores(&before, &snapshot());
        if load < QUIET_CORES {
            return Ok(load);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "  machine still busy ({load:.2} foreign cores) after {} s; measuring anyway",
                limit.as_secs()
            );
            return Ok(load);
        }
        if !announced {
            eprintln!(
                "  foreign load {load:.2} cores; waiting up to {} s",
                limit.as_secs()
            );
            announced = true;
        }
    }
}
