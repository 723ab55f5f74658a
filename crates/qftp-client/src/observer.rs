//! How a program follows transfers: [`TransferObserver`] receives each
//! file's start, progress and end (the `qftp` program draws progress bars
//! with it). The library draws nothing itself.

use std::sync::Arc;

use crate::error::ClientError;

/// Receives transfer events, e.g. to draw progress bars.
///
/// `job` identifies one file within a batch; events of different jobs
/// arrive from different tasks concurrently.
pub trait TransferObserver: Send + Sync {
    /// A file's transfer starts; `resumed` bytes are already in place.
    fn started(&self, job: usize, label: &str, size: u64, resumed: u64) {
        let _ = (job, label, size, resumed);
    }
    /// `bytes` more bytes moved.
    fn advanced(&self, job: usize, bytes: u64) {
        let _ = (job, bytes);
    }
    /// The file is done, or failed.
    fn finished(&self, job: usize, result: Result<&TransferOutcome, &ClientError>) {
        let _ = (job, result);
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl TransferObserver for Silent {}

/// How one file went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferOutcome {
    /// The file's size.
    pub size: u64,
    /// Bytes that travelled in this attempt.
    pub transferred: u64,
    /// Bytes that were already in place from an earlier attempt.
    pub resumed: u64,
}

/// Shares an observer between tasks.
pub type SharedObserver = Arc<dyn TransferObserver>;
