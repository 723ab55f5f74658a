//! Moving one file's bytes between the disk and a data stream.
//!
//! Disk work runs on a blocking thread; the async side only moves chunks.
//! Between them sits a channel of at most [`QUEUED_CHUNKS`] chunks of
//! [`CHUNK_BYTES`], so a stream never holds more than about a megabyte in
//! memory however large the file. BLAKE3 hashing happens on the disk thread
//! as the bytes pass, so there is no second pass over the file.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// Bytes handed between the disk thread and the stream at a time.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Chunks queued between them, per stream.
pub const QUEUED_CHUNKS: usize = 4;

/// A received file's pages are handed to the kernel's writeback every this
/// many bytes.
pub const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// Starts the disk writes of a file being received while it is still
/// arriving, so the fsync that makes it durable at the end waits only for
/// the last few megabytes instead of the whole file.
///
/// `POSIX_FADV_DONTNEED` on a range of dirty pages starts their writeback
/// and returns (what `sync_file_range(SYNC_FILE_RANGE_WRITE)` does, without
/// unsafe code); pages still dirty or under writeback stay cached, so only
/// the just-written range is ever passed. The advice is a hint: an error
/// only means the fsync at the end does all the work, as without it.
#[derive(Debug)]
struct Writeback {
    /// Start of the range written since the last hand-over.
    from: u64,
    /// End of what was written.
    to: u64,
}

impl Writeback {
    fn from(offset: u64) -> Self {
        Self {
            from: offset,
            to: offset,
        }
    }

    fn wrote(&mut self, file: &File, bytes: u64) {
        self.to += bytes;
        let length = self.to - self.from;
        if length >= WRITEBACK_STEP {
            let _ = rustix::fs::fadvise(
                file,
                self.from,
                std::num::NonZeroU64::new(length),
                rustix::fs::Advice::DontNeed,
            );
            self.from = self.to;
        }
    }
}

/// Stream error code: the stream carried more bytes than declared.
pub const STOP_TOO_LONG: u32 = 3;
/// Stream error code: this side failed and gave up on the stream.
pub const STOP_FAILED: u32 = 4;

/// A shared byte-rate limit: every stream that uses it together moves at
/// most `bytes_per_second`.
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_second: u64,
    state: std::sync::Mutex<(std::time::Instant, u64)>,
}

impl RateLimit {
    /// A limit of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second: bytes_per_second.max(1),
            state: std::sync::Mutex::new((std::time::Instant::now(), 0)),
        }
    }

    /// Accounts for `bytes` and waits until moving them keeps within the limit.
    pub async fn consume(&self, bytes: u64) {
        let due = {
            let mut state = self.state.lock().expect("rate limit lock");
            state.1 += bytes;
            state.0
                + std::time::Duration::from_secs_f64(state.1 as f64 / self.bytes_per_second as f64)
        };
        tokio::time::sleep_until(due.into()).await;
    }
}

/// How a stream is paced and when it counts as stalled.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions<'a> {
    /// A shared rate limit, if any.
    pub rate_limit: Option<&'a RateLimit>,
    /// How long the stream may make no progress at all (no byte received,
    /// or no byte accepted by the peer's flow control) before it is cut. A
    /// peer that trickles or stops mid-file cannot hold a transfer forever
    /// while keep-alives hold the connection open.
    pub stall_timeout: Duration,
}

impl StreamOptions<'_> {
    /// No rate limit, and the given stall timeout.
    pub fn unlimited(stall_timeout: Duration) -> Self {
        Self {
            rate_limit: None,
            stall_timeout,
        }
    }
}

/// A file could not be moved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PumpError {
    /// Reading or writing the local file failed.
    #[error("{0}")]
    Disk(#[source] io::Error),
    /// The stream failed or was reset by the peer.
    #[error("data stream failed: {0}")]
    Stream(String),
    /// The stream carried more than the declared size.
    #[error("the data stream carried more bytes than declared")]
    TooLong,
    /// The stream ended early.
    #[error("the data stream ended after {received} of {expected} bytes")]
    Short {
        /// Bytes that arrived.
        received: u64,
        /// Bytes that were due.
        expected: u64,
    },
    /// The file got shorter while it was being sent.
    #[error("the file shrank while it was being sent")]
    Shrank,
    /// The receiver gave up on the stream.
    #[error("the transfer was cancelled")]
    Cancelled,
    /// No progress for the stall timeout.
    #[error("the data stream stalled for {} s", .0.as_secs())]
    Stalled(Duration),
}

/// Feeds the first `length` bytes of `file` into `hasher`.
pub fn hash_prefix(file: &File, length: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut position = 0;
    while position < length {
        let want = (length - position).min(CHUNK_BYTES as u64) as usize;
        let read = file.read_at(&mut buffer[..want], position)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while being read",
            ));
        }
        hasher.update(&buffer[..read]);
        position += read as u64;
    }
    Ok(())
}

/// Sends `length` bytes of `file` starting at `offset` on `send`, hashing
/// them into `hasher`, calling `progress` with each chunk's size.
/// Does not finish the stream.
pub async fn send_file(
    file: File,
    offset: u64,
    length: u64,
    hasher: blake3::Hasher,
    send: &mut quinn::SendStream,
    options: StreamOptions<'_>,
    mut progress: impl FnMut(u64),
) -> Result<blake3::Hasher, PumpError> {
    let (chunks, mut queue) = mpsc::channel::<Result<Bytes, PumpError>>(QUEUED_CHUNKS);
    let reader = tokio::task::spawn_blocking(move || -> Option<blake3::Hasher> {
        let mut hasher = hasher;
        let mut file = file;
        if let Err(error) = file.seek(SeekFrom::Start(offset)) {
            let _ = chunks.blocking_send(Err(PumpError::Disk(error)));
            return None;
        }
        let mut remaining = length;
        while remaining > 0 {
            let mut buffer = vec![0u8; remaining.min(CHUNK_BYTES as u64) as usize];
            let read = match file.read(&mut buffer) {
                Ok(0) => {
                    let _ = chunks.blocking_send(Err(PumpError::Shrank));
                    return None;
                }
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    let _ = chunks.blocking_send(Err(PumpError::Disk(error)));
                    return None;
                }
            };
            buffer.truncate(read);
            hasher.update(&buffer);
            remaining -= read as u64;
            if chunks.blocking_send(Ok(Bytes::from(buffer))).is_err() {
                return None;
            }
        }
        Some(hasher)
    });
    let mut failure = None;
    while let Some(chunk) = queue.recv().await {
        match chunk {
            Ok(chunk) => {
                let size = chunk.len() as u64;
                if let Some(limit) = options.rate_limit {
                    limit.consume(size).await;
                }
                match tokio::time::timeout(options.stall_timeout, send.write_chunk(chunk)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        failure = Some(PumpError::Stream(error.to_string()));
                        break;
                    }
                    Err(_) => {
                        let _ = send.reset(STOP_FAILED.into());
                        failure = Some(PumpError::Stalled(options.stall_timeout));
                        break;
                    }
                }
                progress(size);
            }
            Err(error) => {
                let _ = send.reset(STOP_FAILED.into());
                failure = Some(error);
                break;
            }
        }
    }
    drop(queue);
    let hasher = reader.await.ok().flatten();
    match (failure, hasher) {
        (Some(error), _) => Err(error),
        (None, Some(hasher)) => Ok(hasher),
        (None, None) => Err(PumpError::Disk(io::Error::other(
            "the reader thread failed",
        ))),
    }
}

/// Receives exactly `expected` bytes from `recv` into `file` at `offset`
/// (truncating anything after it), hashing them into `hasher`. A stream
/// that carries more is stopped, and so is one whose `cancel` completes.
/// Returns the file and the hasher; the file is written but not yet synced.
/// When this returns, the disk thread has finished: nothing more is written.
#[allow(clippy::too_many_arguments)]
pub async fn receive_file(
    recv: &mut quinn::RecvStream,
    file: File,
    offset: u64,
    expected: u64,
    hasher: blake3::Hasher,
    options: StreamOptions<'_>,
    cancel: impl std::future::Future<Output = ()>,
    mut progress: impl FnMut(u64),
) -> Result<(File, blake3::Hasher), PumpError> {
    let (chunks, queue) = mpsc::channel::<Bytes>(QUEUED_CHUNKS);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<(File, blake3::Hasher)> {
        let mut queue = queue;
        let mut hasher = hasher;
        let mut file = file;
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut writeback = Writeback::from(offset);
        while let Some(chunk) = queue.blocking_recv() {
            hasher.update(&chunk);
            file.write_all(&chunk)?;
            writeback.wrote(&file, chunk.len() as u64);
        }
        Ok((file, hasher))
    });
    let mut received = 0u64;
    let mut pending = BytesMut::with_capacity(CHUNK_BYTES);
    tokio::pin!(cancel);
    let outcome: Result<(), PumpError> = async {
        loop {
            let read = tokio::select! {
                read = tokio::time::timeout(options.stall_timeout, recv.read_chunk(CHUNK_BYTES, true)) => match read {
                    Ok(read) => read,
                    Err(_) => {
                        let _ = recv.stop(STOP_FAILED.into());
                        return Err(PumpError::Stalled(options.stall_timeout));
                    }
                },
                () = &mut cancel => {
                    let _ = recv.stop(STOP_FAILED.into());
                    return Err(PumpError::Cancelled);
                }
            };
            let chunk = match read {
                Ok(Some(chunk)) => chunk.bytes,
                Ok(None) => break,
                Err(error) => return Err(PumpError::Stream(error.to_string())),
            };
            received += chunk.len() as u64;
            if received > expected {
                let _ = recv.stop(STOP_TOO_LONG.into());
                return Err(PumpError::TooLong);
            }
            if let Some(limit) = options.rate_limit {
                limit.consume(chunk.len() as u64).await;
            }
            progress(chunk.len() as u64);
            pending.extend_from_slice(&chunk);
            if pending.len() >= CHUNK_BYTES && chunks.send(pending.split().freeze()).await.is_err()
            {
                break;
            }
        }
        if !pending.is_empty() {
            let _ = chunks.send(pending.split().freeze()).await;
        }
        Ok(())
    }
    .await;
    drop(chunks);
    let written = writer
        .await
        .map_err(|_| PumpError::Disk(io::Error::other("the writer thread failed")))?
        .map_err(PumpError::Disk);
    outcome?;
    let (file, hasher) = written?;
    if received != expected {
        return Err(PumpError::Short { received, expected });
    }
    Ok((file, hasher))
}

/// Receives a whole small file of exactly `expected` bytes into memory (the
/// caller bounds `expected`), with the same stall, cancel and too-long rules
/// as [`receive_file`]. Small files skip the disk thread: the caller writes
/// them in the same blocking step that commits them.
pub async fn receive_small(
    recv: &mut quinn::RecvStream,
    expected: usize,
    stall_timeout: Duration,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<Vec<u8>, PumpError> {
    let mut body = Vec::with_capacity(expected);
    tokio::pin!(cancel);
    loop {
        // One byte more than due is enough to tell a stream that is too long.
        let room = expected - body.len() + 1;
        let read = tokio::select! {
            read = tokio::time::timeout(stall_timeout, recv.read_chunk(room, true)) => match read {
                Ok(read) => read,
                Err(_) => {
                    let _ = recv.stop(STOP_FAILED.into());
                    return Err(PumpError::Stalled(stall_timeout));
                }
            },
            () = &mut cancel => {
                let _ = recv.stop(STOP_FAILED.into());
                return Err(PumpError::Cancelled);
            }
        };
        match read {
            Ok(Some(chunk)) => {
                if body.len() + chunk.bytes.len() > expected {
                    let _ = recv.stop(STOP_TOO_LONG.into());
                    return Err(PumpError::TooLong);
                }
                body.extend_from_slice(&chunk.bytes);
            }
            Ok(None) if body.len() == expected => return Ok(body),
            Ok(None) => {
                return Err(PumpError::Short {
                    received: body.len() as u64,
                    expected: expected as u64,
                });
            }
            Err(error) => return Err(PumpError::Stream(error.to_string())),
        }
    }
}
