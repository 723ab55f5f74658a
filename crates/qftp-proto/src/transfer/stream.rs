//! One data stream's progress against the length agreed for it.
//!
//! Both ends count the same way: a stream covers `start..size` of the file
//! and must move exactly `size - start` bytes, no more (refused as soon as
//! the chunk that overshoots is counted) and no fewer (refused when the
//! stream ends).

use crate::transfer::error::TransferError;
use crate::transfer::event::TransferSummary;
use crate::transfer::limits;

/// The part of a file one data stream carries and how much of it has moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpan {
    start: u64,
    length: u64,
    moved: u64,
}

impl StreamSpan {
    /// The span from `start` to the end of a file of `size` bytes.
    pub fn new(size: u64, start: u64) -> Result<Self, TransferError> {
        Ok(Self {
            start,
            length: limits::remaining(size, start)?,
            moved: 0,
        })
    }

    /// The span of a whole file of `size` bytes.
    pub fn whole(size: u64) -> Self {
        Self {
            start: 0,
            length: size,
            moved: 0,
        }
    }

    /// The file offset of the stream's first byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The bytes the stream must carry.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// The bytes counted so far.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// Counts `bytes` more; more than the length in total is refused.
    pub fn advance(&mut self, bytes: u64) -> Result<(), TransferError> {
        match self.moved.checked_add(bytes) {
            Some(moved) if moved <= self.length => {
                self.moved = moved;
                Ok(())
            }
            // A count past `u64::MAX` is past any length.
            moved => Err(TransferError::TooLong {
                moved: moved.unwrap_or(u64::MAX),
                expected: self.length,
            }),
        }
    }

    /// What the stream moved, once it is complete: the whole file's size,
    /// the bytes it carried and the bytes before its start.
    pub fn summary(&self) -> TransferSummary {
        TransferSummary {
            size: self.start + self.length,
            transferred: self.length,
            resumed: self.start,
        }
    }

    /// Checks, when the stream ends, that every byte came.
    pub fn finish(&self) -> Result<(), TransferError> {
        if self.moved != self.length {
            return Err(TransferError::Short {
                moved: self.moved,
                expected: self.length,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_moves_exactly_its_length() {
        let mut span = StreamSpan::new(10, 4).unwrap();
        assert_eq!((span.start(), span.length()), (4, 6));
        assert_eq!(
            span.finish(),
            Err(TransferError::Short {
                moved: 0,
                expected: 6
            })
        );
        span.advance(5).unwrap();
        assert_eq!(
            span.advance(2),
            Err(TransferError::TooLong {
                moved: 7,
                expected: 6
            })
        );
        assert_eq!(span.moved(), 5);
        span.advance(1).unwrap();
        span.finish().unwrap();
        assert!(StreamSpan::new(10, 11).is_err());
        assert!(StreamSpan::new(10, 10).unwrap().finish().is_ok());
    }

    #[test]
    fn counting_never_wraps() {
        let mut span = StreamSpan::new(u64::MAX, 0).unwrap();
        span.advance(u64::MAX).unwrap();
        assert!(span.advance(u64::MAX).is_err());
    }
}
