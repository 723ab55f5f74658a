//! The numbers every transfer is checked against: how large a data-stream
//! header may be, how large a file may be, and which offsets make sense.
//!
//! Each is defined once here; the drivers on both ends read them from this
//! module instead of writing their own copies.

use crate::transfer::error::TransferError;

/// The largest payload of the frame that starts a data stream, in bytes.
///
/// A [`crate::message::DataHeader`] is two varints, at most 20 bytes
/// encoded; the limit leaves room without letting a peer make the
/// receiver buffer more than this before it knows which transfer a stream
/// belongs to.
pub const DATA_HEADER_MAX: usize = 64;

/// The largest file a transfer may declare: sizes and offsets are signed
/// 64-bit numbers on disk, so nothing larger can ever be stored.
pub const FILE_SIZE_MAX: u64 = i64::MAX as u64;

/// Checks a declared file size against [`FILE_SIZE_MAX`].
pub fn check_size(size: u64) -> Result<u64, TransferError> {
    if size > FILE_SIZE_MAX {
        return Err(TransferError::TooLarge {
            size,
            max: FILE_SIZE_MAX,
        });
    }
    Ok(size)
}

/// Checks a small upload's declared size against [`crate::SMALL_FILE_MAX`].
pub fn check_small_size(size: u64) -> Result<u64, TransferError> {
    if size > crate::SMALL_FILE_MAX {
        return Err(TransferError::TooLargeForSmall {
            size,
            max: crate::SMALL_FILE_MAX,
        });
    }
    Ok(size)
}

/// Whether a file of `size` bytes goes by small upload (one exchange,
/// never resumed) rather than by `PutOpen`.
pub fn is_small(size: u64) -> bool {
    size <= crate::SMALL_FILE_MAX
}

/// The bytes still to move when a file of `size` bytes continues at
/// `offset`; an offset past the end is an error.
pub fn remaining(size: u64, offset: u64) -> Result<u64, TransferError> {
    size.checked_sub(offset)
        .ok_or(TransferError::OffsetPastSize { offset, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::DataHeader;

    #[test]
    fn the_largest_header_fits_the_limit() {
        let header = DataHeader {
            transfer_id: u64::MAX,
            offset: u64::MAX,
        };
        let encoded = crate::codec::to_bytes(&header).unwrap();
        assert!(encoded.len() <= DATA_HEADER_MAX, "{} bytes", encoded.len());
        assert!(crate::frame::encode(&header, DATA_HEADER_MAX).is_ok());
    }

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(check_size(FILE_SIZE_MAX), Ok(FILE_SIZE_MAX));
        assert_eq!(
            check_size(FILE_SIZE_MAX + 1),
            Err(TransferError::TooLarge {
                size: FILE_SIZE_MAX + 1,
                max: FILE_SIZE_MAX
            })
        );
        assert_eq!(
            check_small_size(crate::SMALL_FILE_MAX),
            Ok(crate::SMALL_FILE_MAX)
        );
        assert!(check_small_size(crate::SMALL_FILE_MAX + 1).is_err());
        assert!(is_small(0) && is_small(crate::SMALL_FILE_MAX));
        assert!(!is_small(crate::SMALL_FILE_MAX + 1));
    }

    #[test]
    fn an_offset_past_the_size_leaves_nothing_to_move() {
        assert_eq!(remaining(10, 0), Ok(10));
        assert_eq!(remaining(10, 10), Ok(0));
        assert_eq!(
            remaining(10, 11),
            Err(TransferError::OffsetPastSize {
                offset: 11,
                size: 10
            })
        );
    }
}
