//! The resume decision, on both ends of both directions.
//!
//! A transfer continues from a partial file only when both sides hold the
//! same prefix: one side offers a length and the BLAKE3 of that many bytes,
//! the other hashes its own first bytes of that length and continues only
//! on an exact match. Anything else (no partial, a partial longer than the
//! file, a different prefix, an offer nobody asked for) falls back to
//! offset 0, which is always a valid start.
//!
//! * Upload: the server offers ([`upload_offer`]), the client checks
//!   ([`upload_check`], then [`start_after_compare`]) and opens its data
//!   stream at the result; the server accepts a stream at 0 or at its offer
//!   ([`check_upload_start`]).
//! * Download: the client offers ([`download_ask`]), the server checks
//!   ([`download_check`], then [`start_after_compare`]) and answers
//!   `GetReady` with the result; the client accepts only 0 or its own offer
//!   ([`check_download_offer`]).

use crate::hash;
use crate::message::{HashBytes, ResumePoint};
use crate::transfer::error::TransferError;

/// What to do with an offered prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeCheck {
    /// Nothing worth checking: send the whole file from offset 0.
    StartOver,
    /// Hash the first `offset` bytes of the local file and compare them
    /// with `expected`.
    Compare {
        /// The length of the offered prefix.
        offset: u64,
        /// The BLAKE3 the other side holds for it.
        expected: HashBytes,
    },
}

/// Server, upload: the offset to offer in `PutReady` for a partial file of
/// `partial_length` bytes (0 when there is none), when the client asked to
/// `resume` a file of `size` bytes.
pub fn upload_offer(resume: bool, partial_length: u64, size: u64) -> u64 {
    if resume && partial_length > 0 && partial_length <= size {
        partial_length
    } else {
        0
    }
}

/// Client, upload: what to do with `PutReady { offset, prefix_hash }` for a
/// file of `size` bytes, when the client did or did not ask to `resume`.
pub fn upload_check(
    resume: bool,
    size: u64,
    offset: u64,
    prefix_hash: Option<HashBytes>,
) -> ResumeCheck {
    match prefix_hash {
        Some(expected) if resume && offset > 0 && offset <= size => {
            ResumeCheck::Compare { offset, expected }
        }
        _ => ResumeCheck::StartOver,
    }
}

/// Server, upload: checks where the client's data stream starts, which must
/// be 0 or the `offered` offset.
pub fn check_upload_start(offered: u64, offset: u64) -> Result<u64, TransferError> {
    if offset == 0 || offset == offered {
        Ok(offset)
    } else {
        Err(TransferError::NotAResumePoint { offset, offered })
    }
}

/// Client, download: the length of the local partial to offer (and so to
/// hash), or `None` when there is nothing to offer.
pub fn download_ask(resume: bool, partial_length: u64) -> Option<u64> {
    (resume && partial_length > 0).then_some(partial_length)
}

/// Server, download: what to do with the client's offered `point` for a
/// file of `size` bytes.
pub fn download_check(point: Option<ResumePoint>, size: u64) -> ResumeCheck {
    match point {
        Some(point) if point.offset > 0 && point.offset <= size => ResumeCheck::Compare {
            offset: point.offset,
            expected: point.prefix_hash,
        },
        _ => ResumeCheck::StartOver,
    }
}

/// Either side: where to start once the local prefix of `offset` bytes
/// hashed to `computed`, against the `expected` hash the other side holds.
pub fn start_after_compare(offset: u64, expected: &HashBytes, computed: &HashBytes) -> u64 {
    match hash::verify(expected, computed) {
        Ok(_) => offset,
        Err(_) => 0,
    }
}

/// Client, download: checks the `offset` of `GetReady` for a file of `size`
/// bytes against what the client `asked` for.
pub fn check_download_offer(
    asked: Option<ResumePoint>,
    size: u64,
    offset: u64,
) -> Result<u64, TransferError> {
    if offset > size {
        return Err(TransferError::OffsetPastSize { offset, size });
    }
    match asked {
        _ if offset == 0 => Ok(0),
        Some(point) if point.offset == offset => Ok(offset),
        _ => Err(TransferError::UnaskedResume { offset }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: HashBytes = [3; 32];
    const OTHER: HashBytes = [4; 32];

    fn point(offset: u64) -> Option<ResumePoint> {
        Some(ResumePoint {
            offset,
            prefix_hash: PREFIX,
        })
    }

    #[test]
    fn an_upload_resumes_from_a_matching_prefix() {
        assert_eq!(upload_offer(true, 40, 100), 40);
        let check = upload_check(true, 100, 40, Some(PREFIX));
        assert_eq!(
            check,
            ResumeCheck::Compare {
                offset: 40,
                expected: PREFIX
            }
        );
        assert_eq!(start_after_compare(40, &PREFIX, &PREFIX), 40);
        assert_eq!(check_upload_start(40, 40), Ok(40));
    }

    #[test]
    fn an_upload_starts_over_when_the_prefix_differs() {
        assert_eq!(start_after_compare(40, &PREFIX, &OTHER), 0);
        assert_eq!(check_upload_start(40, 0), Ok(0));
    }

    #[test]
    fn an_upload_offers_nothing_unasked_or_past_the_end() {
        assert_eq!(upload_offer(false, 40, 100), 0);
        assert_eq!(upload_offer(true, 0, 100), 0);
        assert_eq!(upload_offer(true, 101, 100), 0);
        assert_eq!(upload_offer(true, 100, 100), 100);
        // A client that did not ask, or is offered more than its file,
        // starts over instead of trusting the offer.
        assert_eq!(
            upload_check(false, 100, 40, Some(PREFIX)),
            ResumeCheck::StartOver
        );
        assert_eq!(
            upload_check(true, 100, 101, Some(PREFIX)),
            ResumeCheck::StartOver
        );
        assert_eq!(upload_check(true, 100, 40, None), ResumeCheck::StartOver);
        assert_eq!(
            upload_check(true, 100, 0, Some(PREFIX)),
            ResumeCheck::StartOver
        );
    }

    #[test]
    fn an_upload_stream_starts_at_zero_or_at_the_offer() {
        assert_eq!(
            check_upload_start(40, 20),
            Err(TransferError::NotAResumePoint {
                offset: 20,
                offered: 40
            })
        );
        assert_eq!(
            check_upload_start(0, 20),
            Err(TransferError::NotAResumePoint {
                offset: 20,
                offered: 0
            })
        );
    }

    #[test]
    fn a_download_resumes_from_a_matching_prefix() {
        assert_eq!(download_ask(true, 40), Some(40));
        assert_eq!(
            download_check(point(40), 100),
            ResumeCheck::Compare {
                offset: 40,
                expected: PREFIX
            }
        );
        assert_eq!(check_download_offer(point(40), 100, 40), Ok(40));
    }

    #[test]
    fn a_download_is_not_resumed_unasked_or_past_the_end() {
        assert_eq!(download_ask(false, 40), None);
        assert_eq!(download_ask(true, 0), None);
        assert_eq!(download_check(point(101), 100), ResumeCheck::StartOver);
        assert_eq!(download_check(point(0), 100), ResumeCheck::StartOver);
        assert_eq!(download_check(None, 100), ResumeCheck::StartOver);
        assert_eq!(
            check_download_offer(None, 100, 40),
            Err(TransferError::UnaskedResume { offset: 40 })
        );
        assert_eq!(
            check_download_offer(point(30), 100, 40),
            Err(TransferError::UnaskedResume { offset: 40 })
        );
        assert_eq!(
            check_download_offer(point(140), 100, 140),
            Err(TransferError::OffsetPastSize {
                offset: 140,
                size: 100
            })
        );
        assert_eq!(check_download_offer(point(40), 100, 0), Ok(0));
        assert_eq!(check_download_offer(None, 100, 0), Ok(0));
    }
}
