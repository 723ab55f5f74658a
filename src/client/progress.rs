//! Progress bars for transfers: one per file in flight and one for the
//! total, drawn on stderr only when it is a terminal. They watch transfers
//! through the library's [`TransferObserver`]; they start none.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use qftp_client::ClientError;
use qftp_client::transfer::{TransferObserver, TransferOutcome};
use qftp_proto::size::format_size;

/// Files smaller than this get no bar of their own (they finish before a
/// bar could be read); they still count in the total.
const OWN_BAR_MIN_BYTES: u64 = 1024 * 1024;

/// Terminal progress for a batch of transfers.
#[derive(Debug)]
pub struct ProgressBars {
    multi: MultiProgress,
    total: ProgressBar,
    files: Mutex<HashMap<usize, ProgressBar>>,
    files_total: usize,
    files_done: AtomicUsize,
}

/// Whether progress should be drawn: stderr is a terminal and not `quiet`.
pub fn should_draw(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

impl ProgressBars {
    /// Bars for `files_total` files of `bytes_total` bytes; drawn only if `draw`.
    pub fn new(files_total: usize, bytes_total: u64, draw: bool) -> Self {
        let target = if draw {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(bytes_total));
        total.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        total.set_prefix("total");
        total.set_message(format!("0/{files_total} files"));
        total.enable_steady_tick(Duration::from_millis(200));
        Self {
            multi,
            total,
            files: Mutex::new(HashMap::new()),
            files_total,
            files_done: AtomicUsize::new(0),
        }
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// Removes the bars from the terminal.
    pub fn finish(&self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Drop for ProgressBars {
    /// A batch dropped midway (Ctrl-C) leaves no bar on the terminal.
    fn drop(&mut self) {
        for bar in self.files.lock().expect("progress lock").values() {
            bar.finish_and_clear();
        }
        self.finish();
    }
}

fn file_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

impl TransferObserver for ProgressBars {
    fn started(&self, job: usize, label: &str, size: u64, resumed: u64) {
        if resumed > 0 {
            self.println(&format!("resuming {label} at {}", format_size(resumed)));
            self.total
                .set_length(self.total.length().unwrap_or(0).saturating_sub(resumed));
        }
        if size < OWN_BAR_MIN_BYTES {
            return;
        }
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new(size - resumed));
        bar.set_style(file_style());
        bar.set_prefix("file");
        bar.set_message(label.to_owned());
        self.files.lock().expect("progress lock").insert(job, bar);
    }

    fn advanced(&self, job: usize, bytes: u64) {
        self.total.inc(bytes);
        if let Some(bar) = self.files.lock().expect("progress lock").get(&job) {
            bar.inc(bytes);
        }
    }

    fn finished(&self, job: usize, result: Result<&TransferOutcome, &ClientError>) {
        if let Some(bar) = self.files.lock().expect("progress lock").remove(&job) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if result.is_ok() {
            let done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
            self.total
                .set_message(format!("{done}/{} files", self.files_total));
        }
    }
}
