//! The one place that knows how messages become bytes.
//!
//! qftp encodes with postcard: serde-native, compact (varints), and with a
//! documented, stable wire format. Swapping the encoding means changing this
//! module and [`crate::PROTOCOL_VERSION`], nothing else.

use serde::{Serialize, de::DeserializeOwned};

/// A message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes do not form a valid message of the expected type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message decoded, but bytes were left over after it.
    #[error("malformed message: {0} trailing bytes")]
    TrailingBytes(usize),
    /// The message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Encodes `message` into a fresh buffer.
pub fn to_bytes<T: Serialize>(message: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(message).map_err(|error| CodecError::Encode(error.to_string()))
}

/// Appends the encoding of `message` to `buffer`.
pub fn append_to<T: Serialize>(message: &T, buffer: &mut Vec<u8>) -> Result<(), CodecError> {
    let encoded = to_bytes(message)?;
    buffer.extend_from_slice(&encoded);
    Ok(())
}

/// Decodes exactly one message from `bytes`; leftover bytes are an error.
///
/// Decoding never allocates much more than `bytes.len()`: every length inside
/// a message is bounded by the input it claims to describe.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (message, rest) = postcard::take_from_bytes::<T>(bytes)
        .map_err(|error| CodecError::Malformed(error.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(message)
}
