//! Frames on quinn streams.
//!
//! A frame's length prefix is read and checked against the limit first; the
//! payload buffer is allocated only once the length is known to be within it.

use qftp_proto::frame::{self, FrameError, LENGTH_PREFIX};
use quinn::{ReadExactError, RecvStream, SendStream};
use serde::{Serialize, de::DeserializeOwned};

/// A frame could not be exchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FramedError {
    /// The bytes broke the framing or the message format.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream failed underneath.
    #[error("stream failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed underneath.
    #[error("stream failed: {0}")]
    Write(#[from] quinn::WriteError),
}

fn read_error(error: ReadExactError, missing: usize) -> FramedError {
    match error {
        ReadExactError::FinishedEarly(read) => FrameError::Truncated {
            missing: missing - read,
        }
        .into(),
        ReadExactError::ReadError(error) => error.into(),
    }
}

/// Reads one frame's payload; `Ok(None)` when the stream ended cleanly
/// before a new frame began.
pub async fn read_payload(
    recv: &mut RecvStream,
    limit: usize,
) -> Result<Option<Vec<u8>>, FramedError> {
    let mut prefix = [0u8; LENGTH_PREFIX];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(error) => return Err(read_error(error, LENGTH_PREFIX)),
    }
    let length = frame::payload_length(prefix, limit)?;
    let mut payload = vec![0u8; length];
    recv.read_exact(&mut payload)
        .await
        .map_err(|error| read_error(error, length))?;
    Ok(Some(payload))
}

/// Reads and decodes one message; `Ok(None)` at a clean end of stream.
pub async fn read_message<T: DeserializeOwned>(
    recv: &mut RecvStream,
    limit: usize,
) -> Result<Option<T>, FramedError> {
    match read_payload(recv, limit).await? {
        Some(payload) => Ok(Some(frame::decode(&payload)?)),
        None => Ok(None),
    }
}

/// Encodes and writes one message.
pub async fn write_message<T: Serialize>(
    send: &mut SendStream,
    message: &T,
    limit: usize,
) -> Result<(), FramedError> {
    let bytes = frame::encode(message, limit)?;
    send.write_all(&bytes).await?;
    Ok(())
}
