//! Length-prefixed frames: a 4-byte big-endian payload length, then the payload.
//!
//! The length is checked against the receiver's limit before any buffer is
//! allocated for the payload, so a hostile peer cannot make the receiver
//! reserve more than the limit. A QUIC stream is a byte stream; these frames
//! are how the control stream and the data-stream headers mark where one
//! message ends and the next begins.

use serde::{Serialize, de::DeserializeOwned};

use crate::codec::{self, CodecError};

/// The size of the length prefix in bytes.
pub const LENGTH_PREFIX: usize = 4;

/// A frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced a payload larger than the limit.
    #[error("frame of {announced} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The length in the prefix.
        announced: u64,
        /// The receiver's limit.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({missing} bytes missing)")]
    Truncated {
        /// How many bytes were still expected.
        missing: usize,
    },
    /// The payload is not a valid message.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Reads the payload length from a prefix and checks it against `limit`.
pub fn payload_length(prefix: [u8; LENGTH_PREFIX], limit: usize) -> Result<usize, FrameError> {
    let announced = u32::from_be_bytes(prefix);
    let length = usize::try_from(announced).map_err(|_| FrameError::TooLarge {
        announced: u64::from(announced),
        limit,
    })?;
    if length > limit {
        return Err(FrameError::TooLarge {
            announced: u64::from(announced),
            limit,
        });
    }
    Ok(length)
}

/// Encodes `message` as one frame (prefix and payload), refusing to produce
/// a frame the peer would reject.
pub fn encode<T: Serialize>(message: &T, limit: usize) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0; LENGTH_PREFIX];
    codec::append_to(message, &mut frame)?;
    let payload = frame.len() - LENGTH_PREFIX;
    if payload > limit || u32::try_from(payload).is_err() {
        return Err(FrameError::TooLarge {
            announced: payload as u64,
            limit,
        });
    }
    frame[..LENGTH_PREFIX].copy_from_slice(&(payload as u32).to_be_bytes());
    Ok(frame)
}

/// Decodes one payload (without its prefix) as a message.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    Ok(codec::from_bytes(payload)?)
}

/// An incremental frame splitter: push bytes as they arrive, take whole
/// payloads out.
///
/// The buffer never holds more than one prefix plus `limit` payload bytes
/// beyond what the caller pushed in one call, and a too-large prefix is
/// reported as soon as its four bytes are in.
#[derive(Debug)]
pub struct FrameDecoder {
    limit: usize,
    buffer: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder that refuses payloads longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            buffer: Vec::new(),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Takes the next complete payload, if one is buffered.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(prefix) = self.buffer.first_chunk::<LENGTH_PREFIX>() else {
            return Ok(None);
        };
        let length = payload_length(*prefix, self.limit)?;
        if self.buffer.len() < LENGTH_PREFIX + length {
            return Ok(None);
        }
        let payload = self.buffer[LENGTH_PREFIX..LENGTH_PREFIX + length].to_vec();
        self.buffer.drain(..LENGTH_PREFIX + length);
        Ok(Some(payload))
    }

    /// Takes and decodes the next complete message, if one is buffered.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.next_payload()? {
            Some(payload) => decode(&payload).map(Some),
            None => Ok(None),
        }
    }

    /// Checks that the stream ended on a frame boundary.
    ///
    /// Whole frames still buffered (not yet taken out) count as complete;
    /// only what follows the last of them can be truncated.
    pub fn finish(&self) -> Result<(), FrameError> {
        let mut rest = self.buffer.as_slice();
        while !rest.is_empty() {
            let Some(prefix) = rest.first_chunk::<LENGTH_PREFIX>() else {
                return Err(FrameError::Truncated {
                    missing: LENGTH_PREFIX - rest.len(),
                });
            };
            let frame = LENGTH_PREFIX + payload_length(*prefix, self.limit)?;
            if rest.len() < frame {
                return Err(FrameError::Truncated {
                    missing: frame - rest.len(),
                });
            }
            rest = &rest[frame..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ClientFrame, Request};

    fn sample() -> ClientFrame {
        ClientFrame {
            id: 7,
            request: Request::List {
                path: "/photos/2024".into(),
            },
        }
    }

    #[test]
    fn frames_round_trip_byte_by_byte() {
        let mut wire = encode(&sample(), 1024).unwrap();
        wire.extend(encode(&sample(), 1024).unwrap());
        let mut decoder = FrameDecoder::new(1024);
        let mut decoded = Vec::new();
        for byte in wire {
            decoder.push(&[byte]);
            while let Some(message) = decoder.next_message::<ClientFrame>().unwrap() {
                decoded.push(message);
            }
        }
        assert_eq!(decoded, vec![sample(), sample()]);
        decoder.finish().unwrap();
    }

    #[test]
    fn oversized_prefix_is_refused_before_the_payload_arrives() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&u32::MAX.to_be_bytes());
        let error = decoder.next_payload().unwrap_err();
        assert!(
            matches!(error, FrameError::TooLarge { announced, limit: 1024 } if announced == u64::from(u32::MAX))
        );
    }

    #[test]
    fn encoder_refuses_frames_above_the_limit() {
        let big = ClientFrame {
            id: 1,
            request: Request::List {
                path: "x".repeat(2000),
            },
        };
        assert!(matches!(
            encode(&big, 1024),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_frame_is_reported() {
        let wire = encode(&sample(), 1024).unwrap();
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&wire[..wire.len() - 3]);
        assert!(decoder.next_payload().unwrap().is_none());
        assert!(matches!(
            decoder.finish(),
            Err(FrameError::Truncated { missing: 3 })
        ));
    }

    #[test]
    fn finish_counts_frames_still_buffered_as_complete() {
        // Found by fuzz/ (target `frames`): one whole frame plus the first
        // byte of the next, asked before taking the frame out, made the
        // missing-byte count underflow.
        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&[0, 0, 0, 1, 0x24, 0x15]);
        assert!(matches!(
            decoder.finish(),
            Err(FrameError::Truncated { missing: 3 })
        ));
        assert_eq!(decoder.next_payload().unwrap(), Some(vec![0x24]));
        assert!(matches!(
            decoder.finish(),
            Err(FrameError::Truncated { missing: 3 })
        ));

        let mut decoder = FrameDecoder::new(1024);
        decoder.push(&[0, 0, 0, 1, 0x24]);
        decoder.finish().unwrap();
    }

    #[test]
    fn garbage_payload_is_an_error_not_a_panic() {
        for seed in 0u32..2000 {
            // A small deterministic generator, enough to vary lengths and bytes.
            let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
            let length = (state % 64) as usize;
            let payload: Vec<u8> = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = decode::<ClientFrame>(&payload);
            let _ = decode::<crate::message::ServerFrame>(&payload);
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let wire = encode(&sample(), 1024).unwrap();
        let mut payload = wire[LENGTH_PREFIX..].to_vec();
        payload.push(0);
        assert!(decode::<ClientFrame>(&payload).is_err());
    }
}
