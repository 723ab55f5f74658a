//! Routing data streams to transfers by the transfer id the client chose.
//!
//! [`TransferTable`] holds the transfers open on one connection. A transfer
//! claims its id ([`TransferTable::claim`]) and receives its data stream and
//! commit through an [`Inbox`]; a stream that arrives before the request
//! naming it (a small upload sends both at once) is parked for
//! `EARLY_WAIT`, at most as many as the connection may stream at once; a
//! stream for an id that ended or is unknown is stopped.
//!
//! This module moves streams and commits only: it reads no bytes, touches
//! no file and knows no session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qftp_proto::{DataHeader, ErrorKind, HashBytes};
use tokio::sync::{Semaphore, oneshot};

use crate::error::{RequestError, RequestResult};

/// Error codes used when a data stream is stopped or reset.
pub mod stream_code {
    /// The stream did not start with a valid header.
    pub const BAD_HEADER: u32 = 1;
    /// The header names no open transfer.
    pub const UNKNOWN_TRANSFER: u32 = 2;
    /// The stream carried more bytes than the file's declared size.
    pub const TOO_LONG: u32 = qftp_transport::pump::STOP_TOO_LONG;
    /// The transfer failed on this side.
    pub const FAILED: u32 = qftp_transport::pump::STOP_FAILED;
}

/// A `PutCommit` on its way to the upload it names.
#[derive(Debug)]
pub(crate) struct Commit {
    /// The request to answer.
    pub request_id: u64,
    /// The hash the client declares for the whole file.
    pub hash: HashBytes,
}

/// Where a running upload waits for its data stream and its commit.
#[derive(Debug)]
pub(crate) struct Inbox {
    /// Takes the data stream, once.
    pub stream: Option<oneshot::Sender<(DataHeader, quinn::RecvStream)>>,
    /// Takes the commit, once (small uploads have none).
    pub commit: Option<oneshot::Sender<Commit>>,
}

/// What the table knows of one transfer id.
#[derive(Debug)]
enum Entry {
    /// A transfer is running (downloads have no inbox).
    Open(Option<Inbox>),
    /// A data stream that arrived before the request naming it: a small
    /// upload sends both at once, on separate streams that may be read in
    /// either order.
    Early(DataHeader, quinn::RecvStream, Instant),
    /// A transfer that ended before its data stream arrived; the stream is
    /// stopped as soon as it does.
    Ended(Instant),
}

/// How long a data stream may wait for its request, and an ended
/// transfer's id for its data stream.
const EARLY_WAIT: Duration = Duration::from_secs(10);

/// The transfers open on one connection, by the ids the client chose.
#[derive(Debug)]
pub struct TransferTable {
    open: Mutex<HashMap<u64, Entry>>,
    downloads: Arc<Semaphore>,
    max_early: usize,
}

impl TransferTable {
    /// A table allowing `max_downloads` downloads to stream at once; at most
    /// as many data streams may wait for their requests.
    pub fn new(max_downloads: usize) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            downloads: Arc::new(Semaphore::new(max_downloads.max(1))),
            max_early: max_downloads.max(1),
        }
    }

    /// Claims `transfer_id` for a transfer starting now, handing it a data
    /// stream that arrived early; refused while the id is in use.
    pub(crate) fn claim(
        self: &Arc<Self>,
        transfer_id: u64,
        mut inbox: Option<Inbox>,
    ) -> RequestResult<TransferSlot> {
        let mut open = self.open.lock().expect("transfer table lock");
        Self::expire(&mut open, Instant::now());
        match open.remove(&transfer_id) {
            Some(Entry::Open(running)) => {
                open.insert(transfer_id, Entry::Open(running));
                return Err(RequestError::new(
                    ErrorKind::Protocol,
                    format!("transfer id {transfer_id} is already in use"),
                ));
            }
            Some(Entry::Early(header, mut recv, _)) => {
                match inbox.as_mut().and_then(|inbox| inbox.stream.take()) {
                    Some(sender) => {
                        if let Err((_, mut recv)) = sender.send((header, recv)) {
                            let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                        }
                    }
                    None => {
                        let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                    }
                }
            }
            Some(Entry::Ended(_)) | None => {}
        }
        open.insert(transfer_id, Entry::Open(inbox));
        Ok(TransferSlot {
            table: Arc::clone(self),
            transfer_id,
        })
    }

    /// Hands a data stream to the upload it names; keeps it a moment when
    /// its request has not been read yet; stops it otherwise.
    pub fn deliver_stream(self: &Arc<Self>, header: DataHeader, mut recv: quinn::RecvStream) {
        let transfer_id = header.transfer_id;
        let mut open = self.open.lock().expect("transfer table lock");
        match open.get_mut(&transfer_id) {
            Some(Entry::Open(Some(inbox))) if inbox.stream.is_some() => {
                let sender = inbox.stream.take().expect("checked above");
                if let Err((_, mut recv)) = sender.send((header, recv)) {
                    let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                }
            }
            Some(Entry::Ended(_)) => {
                open.remove(&transfer_id);
                let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
            }
            Some(_) => {
                let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
            }
            None => {
                Self::expire(&mut open, Instant::now());
                let waiting = open
                    .values()
                    .filter(|entry| matches!(entry, Entry::Early(..)))
                    .count();
                if waiting >= self.max_early {
                    let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                    return;
                }
                let since = Instant::now();
                open.insert(transfer_id, Entry::Early(header, recv, since));
                drop(open);
                // Stop the stream if no request claims it in time.
                let table = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(EARLY_WAIT).await;
                    if let Some(table) = table.upgrade() {
                        let mut open = table.open.lock().expect("transfer table lock");
                        Self::expire(&mut open, since + EARLY_WAIT);
                    }
                });
            }
        }
    }

    /// Waits for one of the connection's download slots.
    pub(crate) async fn download_slot(&self) -> RequestResult<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.downloads)
            .acquire_owned()
            .await
            .map_err(|_| RequestError::new(ErrorKind::Internal, "server error: limiter closed"))
    }

    /// Drops early streams and ended ids older than [`EARLY_WAIT`] at `now`.
    fn expire(open: &mut HashMap<u64, Entry>, now: Instant) {
        open.retain(|_, entry| match entry {
            Entry::Early(_, recv, since) if now.duration_since(*since) >= EARLY_WAIT => {
                let _ = recv.stop(stream_code::UNKNOWN_TRANSFER.into());
                false
            }
            Entry::Ended(since) => now.duration_since(*since) < EARLY_WAIT,
            _ => true,
        });
    }

    /// The sender for the commit of upload `transfer_id`, once.
    pub(crate) fn take_commit(&self, transfer_id: u64) -> Option<oneshot::Sender<Commit>> {
        match self
            .open
            .lock()
            .expect("transfer table lock")
            .get_mut(&transfer_id)
        {
            Some(Entry::Open(Some(inbox))) => inbox.commit.take(),
            _ => None,
        }
    }

    /// Ends `transfer_id`; whether it was running.
    pub(crate) fn forget(&self, transfer_id: u64) -> bool {
        let mut open = self.open.lock().expect("transfer table lock");
        match open.remove(&transfer_id) {
            Some(Entry::Open(Some(inbox))) if inbox.stream.is_some() => {
                // Its data stream may still be on the way.
                open.insert(transfer_id, Entry::Ended(Instant::now()));
                true
            }
            Some(Entry::Open(_)) => true,
            Some(other) => {
                open.insert(transfer_id, other);
                false
            }
            None => false,
        }
    }
}

/// Keeps a transfer id claimed while the transfer runs.
#[derive(Debug)]
pub(crate) struct TransferSlot {
    table: Arc<TransferTable>,
    transfer_id: u64,
}

impl Drop for TransferSlot {
    fn drop(&mut self) {
        self.table.forget(self.transfer_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox() -> (
        Inbox,
        oneshot::Receiver<(DataHeader, quinn::RecvStream)>,
        oneshot::Receiver<Commit>,
    ) {
        let (stream, stream_receiver) = oneshot::channel();
        let (commit, commit_receiver) = oneshot::channel();
        let inbox = Inbox {
            stream: Some(stream),
            commit: Some(commit),
        };
        (inbox, stream_receiver, commit_receiver)
    }

    #[test]
    fn an_id_is_claimed_once_while_its_transfer_runs() {
        let table = Arc::new(TransferTable::new(4));
        let slot = table.claim(7, None).unwrap();
        let error = table.claim(7, None).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Protocol);
        assert!(
            error.message.contains("7 is already in use"),
            "{}",
            error.message
        );
        // Another id is independent.
        let other = table.claim(8, None).unwrap();
        drop(slot);
        table.claim(7, None).unwrap();
        drop(other);
    }

    #[test]
    fn a_commit_is_handed_over_once() {
        let table = Arc::new(TransferTable::new(1));
        let (inbox, _stream, mut commit_receiver) = inbox();
        let _slot = table.claim(3, Some(inbox)).unwrap();
        let sender = table.take_commit(3).expect("the upload's commit sender");
        assert!(table.take_commit(3).is_none());
        assert!(table.take_commit(4).is_none());
        sender
            .send(Commit {
                request_id: 11,
                hash: [5; 32],
            })
            .unwrap();
        let commit = commit_receiver.try_recv().unwrap();
        assert_eq!((commit.request_id, commit.hash), (11, [5; 32]));
    }

    #[test]
    fn an_upload_ended_before_its_stream_keeps_its_id_a_while() {
        let table = Arc::new(TransferTable::new(1));
        let (inbox, _stream, _commit) = inbox();
        let slot = table.claim(9, Some(inbox)).unwrap();
        // Still waiting for its data stream: the id is remembered as ended,
        // so a late stream is stopped rather than parked.
        drop(slot);
        assert!(!table.forget(9), "an ended id is no running transfer");
        let open = table.open.lock().unwrap();
        assert!(matches!(open.get(&9), Some(Entry::Ended(_))));
        drop(open);
        // The id may be used again at once.
        let _again = table.claim(9, None).unwrap();
        assert!(table.take_commit(9).is_none());
    }

    #[test]
    fn ended_ids_are_forgotten_after_the_early_wait() {
        let mut open = HashMap::new();
        let then = Instant::now();
        open.insert(1, Entry::Ended(then));
        open.insert(2, Entry::Open(None));
        TransferTable::expire(&mut open, then + EARLY_WAIT / 2);
        assert_eq!(open.len(), 2);
        TransferTable::expire(&mut open, then + EARLY_WAIT);
        assert!(!open.contains_key(&1));
        assert!(open.contains_key(&2));
    }

    #[tokio::test]
    async fn downloads_wait_for_a_slot() {
        let table = TransferTable::new(1);
        let first = table.download_slot().await.unwrap();
        assert_eq!(table.downloads.available_permits(), 0);
        drop(first);
        let _second = table.download_slot().await.unwrap();
    }
}
