//! Peak memory of the processes of a run, from `/proc` (Linux only).
//!
//! The kernel keeps each process's peak resident set size (`VmHWM` in
//! `/proc/PID/status`) and lets its owner reset it (writing `5` to
//! `/proc/PID/clear_refs`). A long-lived process, such as the benchmark's
//! server, is reset before a run and read after it. Processes that live
//! for one run only (the client, a peer's remote side started by sshd) are
//! found by a watcher thread that looks at `/proc` every
//! [`SAMPLE_INTERVAL`] and keeps the highest peak it saw: it can miss what
//! a process adds in its last interval, which for the tree scenarios it is
//! used for (seconds long, memory growing with the listing) is small.
//!
//! It only measures: which processes to watch, and where the figures go,
//! is the caller's business.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the watcher looks at `/proc`.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// The peak resident set size of `pid` in KiB, if it is running.
pub fn peak_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, "VmHWM:")
}

/// Resets the peak resident set size of `pid` to its current size.
pub fn reset_peak(pid: u32) -> std::io::Result<()> {
    fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// The value in KiB of a `Name:   123 kB` line of `/proc/PID/status`.
fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// What identifies a process to watch, from `/proc/PID`.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// Its parent.
    pub parent: u32,
    /// Its command name (`comm`).
    pub name: String,
    /// Its arguments.
    pub arguments: Vec<String>,
}

impl ProcessInfo {
    fn read(directory: &Path) -> Option<Self> {
        let stat = fs::read_to_string(directory.join("stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let name = stat.get(open + 1..close)?.to_owned();
        let parent = stat
            .get(close + 1..)?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let arguments = fs::read(directory.join("cmdline"))
            .ok()?
            .split(|byte| *byte == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect();
        Some(Self {
            parent,
            name,
            arguments,
        })
    }
}

/// Which processes a [`Watcher`] follows.
pub type Matcher = Arc<dyn Fn(&ProcessInfo) -> bool + Send + Sync>;

/// A thread that keeps the highest peak resident set size of the processes
/// that `matcher` selects, until [`Watcher::stop`].
#[derive(Debug)]
pub struct Watcher {
    done: Arc<AtomicBool>,
    peak: Arc<Mutex<Option<u64>>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching.
    pub fn start(matcher: Matcher) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new(None));
        let thread = {
            let done = Arc::clone(&done);
            let peak = Arc::clone(&peak);
            std::thread::spawn(move || {
                // Bounded by the run it watches: the caller stops it.
                while !done.load(Ordering::SeqCst) {
                    if let Some(seen) = scan(&matcher) {
                        let mut peak = peak.lock().expect("peak lock");
                        *peak = Some(peak.map_or(seen, |known: u64| known.max(seen)));
                    }
                    std::thread::sleep(SAMPLE_INTERVAL);
                }
            })
        };
        Self {
            done,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops the thread after one last look; returns the highest peak seen,
    /// in KiB.
    pub fn stop(mut self) -> Option<u64> {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        *self.peak.lock().expect("peak lock")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The highest peak resident set size among the processes `matcher`
/// selects right now.
fn scan(matcher: &Matcher) -> Option<u64> {
    let entries = fs::read_dir("/proc").ok()?;
    let mut highest = None;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(info) = ProcessInfo::read(&entry.path()) else {
            continue;
        };
        if matcher(&info)
            && let Some(peak) = peak_kib(pid)
        {
            highest = Some(highest.map_or(peak, |known: u64| known.max(peak)));
        }
    }
    highest
}

/// A size in KiB as MiB with one decimal.
pub fn format_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_status_field() {
        let status = "Name:\tqftp\nVmPeak:\t  20000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(1234));
        assert_eq!(status_field_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_a_peak_and_is_found_by_its_name() {
        assert!(peak_kib(std::process::id()).is_some_and(|kib| kib > 0));
        let me = std::process::id();
        let info = ProcessInfo::read(Path::new(&format!("/proc/{me}"))).expect("own /proc entry");
        assert!(!info.name.is_empty());
        let name = info.name.clone();
        let watcher = Watcher::start(Arc::new(move |info: &ProcessInfo| info.name == name));
        std::thread::sleep(SAMPLE_INTERVAL * 2);
        assert!(watcher.stop().is_some_and(|kib| kib > 0));
    }
}
