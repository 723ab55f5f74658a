//! Progress bars for transfers: one per file in flight and one for the
//! total, drawn on stderr only when it is a terminal. They watch transfers
//! through the library's [`TransferObserver`]; they start none.
//!
//! Every line has the same columns ([`super::bar_layout`]): the name, the
//! bar, the percentage, the byte counts, the time left and the rate, fitted
//! to the terminal's width so that a line never wraps. A file's bar and the
//! total count the same bytes: a resumed file starts at the bytes already
//! in place, and those count as done in the total too.
//!
//! [`clear_all`] takes every bar off the terminal at once, for Ctrl-C
//! ([`super::interrupt`]), before the transfers' tasks have ended.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use qftp_client::ClientError;
use qftp_client::transfer::{TransferObserver, TransferOutcome};
use qftp_proto::size::format_size;

use super::bar_layout::{Columns, display_width, fit_name};

/// Files smaller than this get no bar of their own (they finish before a
/// bar could be read); they still count in the total.
const OWN_BAR_MIN_BYTES: u64 = 1024 * 1024;

/// The width assumed when the terminal does not say.
const DEFAULT_WIDTH: usize = 80;

/// The bars being drawn now, so that [`clear_all`] can reach them.
static DRAWN: Mutex<Vec<Weak<ProgressBars>>> = Mutex::new(Vec::new());

/// Terminal progress for a batch of transfers.
#[derive(Debug)]
pub struct ProgressBars {
    multi: MultiProgress,
    total: ProgressBar,
    lines: Mutex<Lines>,
    files_total: usize,
    files_done: AtomicUsize,
}

/// The file bars and the layout all bars share.
#[derive(Debug)]
struct Lines {
    /// Each file bar with its full name, by job.
    files: HashMap<usize, (ProgressBar, String)>,
    /// The widest name drawn so far, in columns.
    longest_name: usize,
    /// The columns every line uses now.
    columns: Columns,
    /// Set by [`ProgressBars::clear`]: nothing is drawn any more.
    cleared: bool,
}

/// Whether progress should be drawn: stderr is a terminal and not `quiet`.
pub fn should_draw(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// Takes every progress bar of this process off the terminal and keeps
/// them off, even while their transfers still report.
pub fn clear_all() {
    let drawn = std::mem::take(&mut *DRAWN.lock().expect("progress registry lock"));
    for bars in drawn.iter().filter_map(Weak::upgrade) {
        bars.clear();
    }
}

/// The terminal's width in columns (stderr's, where the bars go).
fn terminal_width() -> usize {
    match console::Term::stderr().size_checked() {
        Some((_rows, columns)) if columns > 0 => usize::from(columns),
        _ => DEFAULT_WIDTH,
    }
}

/// The indicatif style of a line with `columns`.
fn style(columns: &Columns) -> ProgressStyle {
    let mut template = String::from("{prefix}");
    if let Some(bar) = columns.bar {
        template.push_str(&format!(" [{{bar:{bar}}}]"));
    }
    template.push_str(" {percent:>3}%");
    if columns.bytes {
        template.push_str(" {bytes:>11}/{total_bytes:<11}");
    }
    if columns.eta {
        template.push_str(" ETA {eta_precise}");
    }
    if columns.rate {
        template.push_str(" {binary_bytes_per_sec:>13}");
    }
    ProgressStyle::with_template(&template)
        .expect("valid template")
        .progress_chars("=> ")
}

impl ProgressBars {
    /// Bars for `files_total` files of `bytes_total` bytes; drawn only if `draw`.
    pub fn new(files_total: usize, bytes_total: u64, draw: bool) -> Arc<Self> {
        let target = if draw {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(bytes_total));
        // The widest the total's name gets, so that it never has to shrink.
        let longest_name = display_width(&total_name(files_total, files_total));
        let columns = Columns::fit(terminal_width(), longest_name);
        total.set_style(style(&columns));
        total.set_prefix(fit_name(&total_name(0, files_total), columns.name));
        total.enable_steady_tick(Duration::from_millis(200));
        let bars = Arc::new(Self {
            multi,
            total,
            lines: Mutex::new(Lines {
                files: HashMap::new(),
                longest_name,
                columns,
                cleared: false,
            }),
            files_total,
            files_done: AtomicUsize::new(0),
        });
        if draw {
            let mut drawn = DRAWN.lock().expect("progress registry lock");
            drawn.retain(|bars| bars.strong_count() > 0);
            drawn.push(Arc::downgrade(&bars));
        }
        bars
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
        let mut lines = self.lines.lock().expect("progress lock");
        for (bar, _) in lines.files.values() {
            bar.finish_and_clear();
        }
        lines.files.clear();
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }

    /// Removes the bars from the terminal and draws nothing from now on.
    fn clear(&self) {
        let mut lines = self.lines.lock().expect("progress lock");
        lines.cleared = true;
        for (bar, _) in lines.files.values() {
            bar.disable_steady_tick();
            bar.finish_and_clear();
        }
        self.total.disable_steady_tick();
        self.total.finish_and_clear();
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }

    /// Fits every line again when a longer name arrives or the terminal's
    /// width changed, so that all lines keep the same columns.
    fn refit(&self, lines: &mut Lines, name: &str) {
        lines.longest_name = lines.longest_name.max(display_width(name));
        let columns = Columns::fit(terminal_width(), lines.longest_name);
        if columns == lines.columns {
            return;
        }
        lines.columns = columns;
        let style = style(&columns);
        for (bar, name) in lines.files.values() {
            bar.set_style(style.clone());
            bar.set_prefix(fit_name(name, columns.name));
        }
        self.total.set_style(style);
        let done = self.files_done.load(Ordering::Relaxed);
        self.total
            .set_prefix(fit_name(&total_name(done, self.files_total), columns.name));
    }
}

/// The name column of the total line: `total`, with the files done when
/// there are several.
fn total_name(done: usize, files_total: usize) -> String {
    if files_total > 1 {
        format!("total {done}/{files_total}")
    } else {
        "total".to_owned()
    }
}

impl Drop for ProgressBars {
    /// A batch dropped midway (Ctrl-C) leaves no bar on the terminal.
    fn drop(&mut self) {
        self.finish();
    }
}

impl TransferObserver for ProgressBars {
    fn started(&self, job: usize, label: &str, size: u64, resumed: u64) {
        if resumed > 0 {
            self.println(&format!("resuming {label} at {}", format_size(resumed)));
            self.total.inc(resumed);
        }
        if size < OWN_BAR_MIN_BYTES {
            return;
        }
        let mut lines = self.lines.lock().expect("progress lock");
        if lines.cleared {
            return;
        }
        self.refit(&mut lines, label);
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new(size));
        bar.set_style(style(&lines.columns));
        bar.set_prefix(fit_name(label, lines.columns.name));
        bar.set_position(resumed);
        lines.files.insert(job, (bar, label.to_owned()));
    }

    fn advanced(&self, job: usize, bytes: u64) {
        self.total.inc(bytes);
        if let Some((bar, _)) = self.lines.lock().expect("progress lock").files.get(&job) {
            bar.inc(bytes);
        }
    }

    fn finished(&self, job: usize, result: Result<&TransferOutcome, &ClientError>) {
        let mut lines = self.lines.lock().expect("progress lock");
        if let Some((bar, _)) = lines.files.remove(&job) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if result.is_ok() {
            let done = self.files_done.fetch_add(1, Ordering::Relaxed) + 1;
            self.total.set_prefix(fit_name(
                &total_name(done, self.files_total),
                lines.columns.name,
            ));
        }
    }
}
