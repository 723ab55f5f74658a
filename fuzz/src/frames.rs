//! Frame splitting and message decoding on hostile bytes.
//!
//! Input layout: byte 0 picks the frame limit, byte 1 how the rest is cut
//! into pushes (0: one push; n: pieces of 1..=n bytes, from a small PRNG
//! seeded with n), and the rest is the byte stream a peer sent.
//!
//! Checked: the incremental [`FrameDecoder`] gives exactly the frames (and
//! the same ending) as a one-pass reference splitter over the bytes pushed
//! so far, whatever the split points; `finish` may be asked at any moment.
//! Every payload is decoded as each message type that travels on the wire;
//! whatever decodes re-encodes to a value that decodes equal, through the
//! codec and through a frame again.

use std::fmt::Debug;

use qftp_proto::frame::{self, FrameDecoder, FrameError, LENGTH_PREFIX};
use qftp_proto::{
    ClientFrame, ClientHello, DEFAULT_MAX_FRAME, DataHeader, HARD_MAX_FRAME, Request, Response,
    ServerFrame, ServerHello, Timestamp, codec,
};
use serde::{Serialize, de::DeserializeOwned};

/// The limits byte 0 chooses from: none at all, tiny, the data-header limit
/// both ends use, a small control limit, the default and the hard maximum.
pub const LIMITS: [usize; 6] = [0, 8, 64, 1024, DEFAULT_MAX_FRAME, HARD_MAX_FRAME];

/// How a stream ended, as `FrameDecoder::finish` should report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Clean,
    Truncated(usize),
    TooLarge,
}

/// The obvious one-pass splitter: every complete frame in `stream`, then
/// how the stream ends.
fn reference(stream: &[u8], limit: usize) -> (Vec<&[u8]>, Ending) {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        if rest.is_empty() {
            return (frames, Ending::Clean);
        }
        if rest.len() < LENGTH_PREFIX {
            return (frames, Ending::Truncated(LENGTH_PREFIX - rest.len()));
        }
        let length = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if length > limit {
            return (frames, Ending::TooLarge);
        }
        let total = LENGTH_PREFIX + length;
        if rest.len() < total {
            return (frames, Ending::Truncated(total - rest.len()));
        }
        frames.push(&rest[LENGTH_PREFIX..total]);
        rest = &rest[total..];
    }
}

fn ending_of(result: Result<(), FrameError>) -> Ending {
    match result {
        Ok(()) => Ending::Clean,
        Err(FrameError::Truncated { missing }) => Ending::Truncated(missing),
        Err(FrameError::TooLarge { .. }) => Ending::TooLarge,
        Err(other) => panic!("finish reported {other:?}"),
    }
}

/// Piece lengths for the pushes, from a xorshift generator.
struct Pieces {
    state: u32,
    max: u32,
}

impl Pieces {
    fn new(seed: u8) -> Self {
        Self {
            state: u32::from(seed).wrapping_mul(2_654_435_761) | 1,
            max: u32::from(seed),
        }
    }

    fn next(&mut self, remaining: usize) -> usize {
        if self.max == 0 {
            return remaining;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        (1 + (self.state % self.max) as usize).min(remaining)
    }
}

/// The whole check; see the module docs for the input layout.
pub fn check(data: &[u8]) {
    let [limit_choice, split_seed, stream @ ..] = data else {
        return;
    };
    let limit = LIMITS[usize::from(*limit_choice) % LIMITS.len()];
    let mut decoder = FrameDecoder::new(limit);
    let mut pieces = Pieces::new(*split_seed);
    let mut taken: Vec<Vec<u8>> = Vec::new();
    let mut pushed = 0;
    while pushed < stream.len() {
        let length = pieces.next(stream.len() - pushed);
        decoder.push(&stream[pushed..pushed + length]);
        pushed += length;

        let (expected, ending) = reference(&stream[..pushed], limit);
        // Asking before taking the buffered frames out must be harmless and
        // must already see how the bytes so far end.
        assert_eq!(
            ending_of(decoder.finish()),
            ending,
            "finish, frames still buffered"
        );

        loop {
            match decoder.next_payload() {
                Ok(Some(payload)) => {
                    assert!(payload.len() <= limit);
                    check_payload(&payload, limit);
                    taken.push(payload);
                }
                Ok(None) => break,
                Err(FrameError::TooLarge {
                    announced,
                    limit: reported,
                }) => {
                    assert_eq!(reported, limit);
                    assert!(announced > limit as u64);
                    assert_eq!(ending, Ending::TooLarge);
                    break;
                }
                Err(other) => panic!("next_payload reported {other:?}"),
            }
        }
        assert_eq!(taken.len(), expected.len(), "frames taken so far");
        for (got, want) in taken.iter().zip(&expected) {
            assert_eq!(got.as_slice(), *want);
        }
        assert_eq!(ending_of(decoder.finish()), ending, "finish after taking");
        if ending == Ending::TooLarge {
            // A reader closes the connection here; nothing more to split.
            return;
        }
    }
}

/// Decodes one payload as every message type the wire carries.
pub fn check_payload(payload: &[u8], limit: usize) {
    if let Some(hello) = round_trip::<ClientHello>(payload, limit) {
        let _ = hello.client.len();
    }
    if let Some(hello) = round_trip::<ServerHello>(payload, limit) {
        let _ = hello.max_frame;
    }
    if let Some(frame) = round_trip::<ClientFrame>(payload, limit) {
        visit_request(&frame.request);
    }
    if let Some(frame) = round_trip::<ServerFrame>(payload, limit) {
        visit_response(&frame.response);
    }
    round_trip::<DataHeader>(payload, limit);
}

/// Decodes `payload` as a `T`; when it is one, re-encodes it and checks that
/// the value survives the codec and a frame, and that the canonical encoding
/// is stable and no longer than what arrived.
fn round_trip<T>(payload: &[u8], limit: usize) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value = frame::decode::<T>(payload).ok()?;
    let encoded = codec::to_bytes(&value).expect("a decoded message encodes");
    let again: T = codec::from_bytes(&encoded).expect("a re-encoded message decodes");
    assert_eq!(again, value);
    assert_eq!(
        codec::to_bytes(&again).unwrap(),
        encoded,
        "encoding is stable"
    );
    assert!(
        encoded.len() <= payload.len(),
        "canonical form is no longer"
    );

    let framed = frame::encode(&value, limit).expect("fits the limit it arrived under");
    assert_eq!(&framed[LENGTH_PREFIX..], encoded.as_slice());
    let mut decoder = FrameDecoder::new(limit);
    decoder.push(&framed);
    assert_eq!(decoder.next_message::<T>().unwrap().as_ref(), Some(&value));
    decoder.finish().unwrap();
    Some(value)
}

/// The helpers a peer's message reaches after decoding.
fn visit_timestamp(stamp: Timestamp) {
    let text = stamp.to_utc_minutes();
    assert!(text.len() >= "YYYY-MM-DD HH:MM".len());
    if let Some(time) = stamp.to_system_time() {
        assert_eq!(Timestamp::from(time), stamp);
    } else {
        assert!(stamp.nanos >= 1_000_000_000 || stamp.secs.unsigned_abs() > 1 << 62);
    }
}

fn visit_request(request: &Request) {
    assert!(!request.kind().is_empty());
    match request {
        Request::PutOpen { mtime, .. } | Request::PutSmall { mtime, .. } => visit_timestamp(*mtime),
        Request::Symlink { target, .. } => {
            let _ = qftp_proto::path::link_target_stays_inside(0, target);
        }
        _ => {}
    }
}

fn visit_response(response: &Response) {
    match response {
        Response::LoggedIn { expires, .. } => visit_timestamp(*expires),
        Response::Identity { usage, .. } | Response::DiskUsage(usage) => {
            if let (Some(free), Some(quota)) = (usage.free(), usage.quota) {
                assert!(free <= quota);
            }
        }
        Response::Entry(entry) => visit_timestamp(entry.mtime),
        Response::Listing { entries, .. } | Response::Tree { entries, .. } => {
            for entry in entries {
                visit_timestamp(entry.mtime);
            }
        }
        Response::GetReady { mtime, .. } => visit_timestamp(*mtime),
        _ => {}
    }
}
