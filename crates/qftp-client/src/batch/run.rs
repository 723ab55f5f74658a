//! Running the jobs of a plan with a bounded number in flight on one
//! connection, each file on its own stream, and what a batch reports.
//! Which files to send is [`super::plan`]'s business.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::connection::Client;
use crate::destination::{Destination, LocalName};
use crate::error::ClientError;
use crate::refusal::Refusal;
use crate::transfer::{self, SharedObserver, TransferOptions};

use super::plan::{DownloadJob, DownloadPlan, UploadJob, UploadPlan};

/// How a batch went.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Files that arrived, verified.
    pub succeeded: usize,
    /// Files that failed, with why.
    pub failed: Vec<(String, ClientError)>,
    /// Entries not written because their name or place was unsafe (a
    /// hostile server), with why; the rest of the batch went on.
    pub refused: Vec<(String, Refusal)>,
    /// Bytes that travelled.
    pub transferred: u64,
    /// Bytes that were already in place from earlier attempts.
    pub resumed: u64,
    /// Wall time of the batch.
    pub elapsed: Duration,
}

impl BatchReport {
    /// One line: files, bytes, time, average rate, resumed bytes.
    pub fn summary(&self) -> String {
        use qftp_proto::size::format_size;
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.transferred as f64 / seconds
        } else {
            0.0
        };
        let mut line = format!(
            "{} file{} transferred, {} in {:.2} s ({}/s), {} resumed",
            self.succeeded,
            if self.succeeded == 1 { "" } else { "s" },
            format_size(self.transferred),
            seconds,
            format_size(rate as u64),
            format_size(self.resumed),
        );
        if !self.failed.is_empty() {
            line.push_str(&format!(", {} failed", self.failed.len()));
        }
        if !self.refused.is_empty() {
            line.push_str(&format!(", {} refused", self.refused.len()));
        }
        line
    }
}

/// How many small files (at most [`qftp_proto::SMALL_FILE_MAX`]) may be in
/// flight in the place of one larger file. A small file costs a round trip
/// and a few file-system calls, not bandwidth, so a tree of them is bound by
/// latency unless many are in flight.
const SMALL_FILES_PER_SLOT: usize = 4;

/// The share of a transfer slot that a file of `size` bytes takes.
fn weight(size: u64) -> usize {
    if size <= qftp_proto::SMALL_FILE_MAX {
        1
    } else {
        SMALL_FILES_PER_SLOT
    }
}

/// Runs `work` on every item with at most `concurrency` larger files, or
/// [`SMALL_FILES_PER_SLOT`] times as many small ones, in flight.
async fn run_parallel<T, F, Fut>(items: Vec<(T, u64)>, concurrency: usize, work: F) -> BatchReport
where
    T: Send + 'static,
    F: Fn(usize, T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (String, Result<transfer::TransferOutcome, ClientError>)>
        + Send,
{
    let started = Instant::now();
    let slots = concurrency.max(1) * SMALL_FILES_PER_SLOT;
    let queue = Arc::new(Mutex::new(
        items.into_iter().enumerate().collect::<VecDeque<_>>(),
    ));
    let permits = Arc::new(tokio::sync::Semaphore::new(slots));
    let work = Arc::new(work);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..slots {
        let queue = Arc::clone(&queue);
        let work = Arc::clone(&work);
        let permits = Arc::clone(&permits);
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let next = queue.lock().expect("queue lock").pop_front();
                let Some((job, (item, size))) = next else {
                    break;
                };
                let Ok(_permit) = permits.acquire_many(weight(size) as u32).await else {
                    break;
                };
                results.push(work(job, item).await);
            }
            results
        });
    }
    let mut report = BatchReport::default();
    while let Some(results) = workers.join_next().await {
        for (label, result) in results.unwrap_or_default() {
            match result {
                Ok(outcome) => {
                    report.succeeded += 1;
                    report.transferred += outcome.transferred;
                    report.resumed += outcome.resumed;
                }
                Err(ClientError::Refused { name, reason }) => report.refused.push((name, reason)),
                Err(error) => report.failed.push((label, error)),
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// Creates the plan's remote directories, then uploads its files.
pub async fn upload(
    client: &Client,
    plan: UploadPlan,
    concurrency: usize,
    options: TransferOptions,
    observer: SharedObserver,
) -> Result<BatchReport, ClientError> {
    for result in super::directories::create_remote(client, &plan.directories).await {
        result?;
    }
    let client = client.clone();
    let files = plan.files.into_iter().map(|file| {
        let size = file.size;
        (file, size)
    });
    let mut report = run_parallel(files.collect(), concurrency, move |job, file: UploadJob| {
        let client = client.clone();
        let observer = Arc::clone(&observer);
        let options = options.clone();
        async move {
            let result = transfer::upload(
                &client,
                &file.local,
                &file.remote,
                &options,
                observer.as_ref(),
                job,
            )
            .await;
            (file.local.display().to_string(), result)
        }
    })
    .await;
    report.failed.splice(0..0, plan.failed);
    Ok(report)
}

/// Opens the plan's destination, creates its directories there, then
/// downloads its files beneath it.
pub async fn download(
    client: &Client,
    plan: DownloadPlan,
    concurrency: usize,
    options: TransferOptions,
    observer: SharedObserver,
) -> Result<BatchReport, ClientError> {
    let destination = Arc::new(Destination::open(
        &plan.destination,
        plan.create_destination,
    )?);
    let mut report = download_beneath(
        client,
        destination,
        &plan.directories,
        plan.files,
        concurrency,
        options,
        observer,
    )
    .await?;
    report.refused.splice(0..0, plan.refused);
    report.failed.splice(0..0, plan.failed);
    Ok(report)
}

/// Checks that `files` fit on the destination's file system, creates
/// `directories` beneath `destination`, then downloads `files` there. A
/// directory refused as unsafe is reported, and the files below it are
/// refused in turn when they are reached.
pub async fn download_beneath(
    client: &Client,
    destination: Arc<Destination>,
    directories: &[LocalName],
    files: Vec<DownloadJob>,
    concurrency: usize,
    options: TransferOptions,
    observer: SharedObserver,
) -> Result<BatchReport, ClientError> {
    // Before any partial file exists: the whole of every file, since a
    // replaced file stays beside its new copy until the rename.
    let needed = files
        .iter()
        .fold(0u64, |total, file| total.saturating_add(file.size));
    destination.check_free_space(needed)?;
    let mut refused = Vec::new();
    for directory in directories {
        match destination.create_dir_all(directory) {
            Ok(()) => {}
            Err(ClientError::Refused { name, reason }) => refused.push((name, reason)),
            Err(error) => return Err(error),
        }
    }
    let client = client.clone();
    let files = files.into_iter().map(|file| {
        let size = file.size;
        (file, size)
    });
    let mut report = run_parallel(
        files.collect(),
        concurrency,
        move |job, file: DownloadJob| {
            let client = client.clone();
            let observer = Arc::clone(&observer);
            let options = options.clone();
            let destination = Arc::clone(&destination);
            async move {
                let result = transfer::download_beneath(
                    &client,
                    &file.remote,
                    &destination,
                    &file.local,
                    &options,
                    observer.as_ref(),
                    job,
                )
                .await;
                (file.remote, result)
            }
        },
    )
    .await;
    report.refused.splice(0..0, refused);
    Ok(report)
}
