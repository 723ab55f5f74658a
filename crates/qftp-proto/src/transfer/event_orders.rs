//! Every machine against many event orders: the happy path of each
//! transfer, shuffled, cut, doubled and salted with wrong events by a
//! small deterministic generator. Whatever the order, a receiving end
//! commits only after exactly the declared bytes arrived and the declared
//! hash was verified, and a sending end declares its hash only after the
//! whole stream went out.

use crate::message::{HashBytes, ResumePoint};
use crate::transfer::{
    DownloadReceiver, DownloadSender, ReceiveAction, ReceiveEvent, SendAction, SendEvent,
    SmallUploadReceiver, TransferError, UploadReceiver, UploadSender,
};

const FILE: HashBytes = [0x11; 32];
const PREFIX: HashBytes = [0x22; 32];
const WRONG: HashBytes = [0x33; 32];
const SIZE: u64 = 10;
const KEPT: u64 = 4;
/// Mutated orders tried per happy path.
const ROUNDS: usize = 3000;

/// A xorshift generator: the same orders on every run.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// The partial a resumed download offers.
const ASKED: Option<ResumePoint> = Some(ResumePoint {
    offset: KEPT,
    prefix_hash: PREFIX,
});

/// The order tried in `round`: `path` itself in round 0, after that `path`
/// with up to four random changes: swaps, cuts, doubles, and events from
/// `salt` put in or put instead.
fn order<E: Copy>(round: usize, path: &[E], salt: &[E], generator: &mut Generator) -> Vec<E> {
    let mut events = path.to_vec();
    if round == 0 {
        return events;
    }
    for _ in 0..generator.below(5) {
        let at = generator.below(events.len().max(1));
        match generator.below(5) {
            0 if at + 1 < events.len() => events.swap(at, at + 1),
            1 if !events.is_empty() => {
                events.remove(at);
            }
            2 if !events.is_empty() => events.insert(at, events[at]),
            3 if !events.is_empty() => events[at] = salt[generator.below(salt.len())],
            _ => events.insert(at.min(events.len()), salt[generator.below(salt.len())]),
        }
    }
    events
}

/// What the driver would have seen of one receiving machine, kept apart
/// from the machine to check it.
#[derive(Default)]
struct ReceiveModel {
    stream: Option<(u64, u64)>,
    moved: u64,
    declared: Option<HashBytes>,
    commits: usize,
}

impl ReceiveModel {
    fn observe(&mut self, event: ReceiveEvent, result: &Result<ReceiveAction, TransferError>) {
        let Ok(action) = result else { return };
        match (event, action) {
            (_, ReceiveAction::AcceptStream { start, length, .. }) => {
                self.stream = Some((*start, *length));
                self.moved = 0;
            }
            (ReceiveEvent::Bytes(bytes), ReceiveAction::AcceptBytes) => self.moved += bytes,
            (ReceiveEvent::CommitRequested { hash }, _) => self.declared = Some(hash),
            (ReceiveEvent::HashComputed(computed), ReceiveAction::Commit(verified)) => {
                let (start, length) = self.stream.expect("a commit without a data stream");
                assert_eq!(start + length, SIZE, "the stream covers the file's end");
                assert_eq!(self.moved, length, "every byte and no more arrived");
                assert_eq!(verified.as_bytes(), &computed);
                assert_eq!(Some(computed), self.declared, "the declared hash matched");
                self.commits += 1;
                assert_eq!(self.commits, 1, "one commit per transfer");
            }
            _ => {}
        }
    }
}

/// Feeds `events` to a receiving machine through `handle`, checking the
/// model and that a failed machine stays failed; returns the commit count.
fn run_receiver(
    events: &[ReceiveEvent],
    declared: Option<HashBytes>,
    mut handle: impl FnMut(ReceiveEvent) -> Result<ReceiveAction, TransferError>,
) -> usize {
    let mut model = ReceiveModel {
        declared,
        ..ReceiveModel::default()
    };
    let mut failed = false;
    for &event in events {
        let result = handle(event);
        assert!(
            !(failed && result.is_ok()),
            "a failed machine took {event:?}"
        );
        failed |= result.is_err();
        model.observe(event, &result);
    }
    model.commits
}

fn receive_salt() -> Vec<ReceiveEvent> {
    let mut salt = vec![
        ReceiveEvent::PartialFound { length: 0 },
        ReceiveEvent::PartialFound { length: KEPT },
        ReceiveEvent::PartialFound { length: SIZE + 1 },
        ReceiveEvent::Ready {
            size: SIZE,
            offset: KEPT,
        },
        ReceiveEvent::Ready {
            size: SIZE,
            offset: SIZE + 1,
        },
        ReceiveEvent::PrefixHashed(PREFIX),
        ReceiveEvent::PrefixHashed(WRONG),
        ReceiveEvent::StreamFinished,
        ReceiveEvent::CommitRequested { hash: FILE },
        ReceiveEvent::CommitRequested { hash: WRONG },
        ReceiveEvent::HashComputed(FILE),
        ReceiveEvent::HashComputed(WRONG),
        ReceiveEvent::Committed,
        ReceiveEvent::Aborted,
    ];
    for offset in [0, 1, KEPT, SIZE, SIZE + 1] {
        salt.push(ReceiveEvent::HeaderArrived { offset });
    }
    for bytes in [0, 1, 3, 6, SIZE] {
        salt.push(ReceiveEvent::Bytes(bytes));
    }
    salt
}

#[test]
fn no_order_commits_without_every_byte_and_a_verified_hash() {
    use ReceiveEvent::*;
    let tail = [
        Bytes(3),
        Bytes(3),
        StreamFinished,
        CommitRequested { hash: FILE },
        HashComputed(FILE),
        Committed,
    ];
    let resumed_upload: Vec<_> = [PartialFound { length: KEPT }, PrefixHashed(PREFIX)]
        .into_iter()
        .chain([HeaderArrived { offset: KEPT }])
        .chain(tail)
        .collect();
    let fresh_upload = [
        PartialFound { length: 0 },
        HeaderArrived { offset: 0 },
        Bytes(SIZE),
        StreamFinished,
        CommitRequested { hash: FILE },
        HashComputed(FILE),
        Committed,
    ];
    let small = [
        HeaderArrived { offset: 0 },
        Bytes(4),
        Bytes(6),
        StreamFinished,
        HashComputed(FILE),
        Committed,
    ];
    let resumed_download: Vec<_> = [
        Ready {
            size: SIZE,
            offset: KEPT,
        },
        HeaderArrived { offset: KEPT },
    ]
    .into_iter()
    .chain(tail)
    .collect();
    let salt = receive_salt();
    let mut generator = Generator(0x9e37_79b9_7f4a_7c15);
    let mut commits = [0usize; 4];
    for round in 0..ROUNDS {
        let mut order = |path: &[ReceiveEvent]| order(round, path, &salt, &mut generator);
        let events = order(&resumed_upload);
        let mut upload = UploadReceiver::open(SIZE, true).unwrap();
        commits[0] += run_receiver(&events, None, |event| upload.handle(event));

        let events = order(&fresh_upload);
        let mut upload = UploadReceiver::open(SIZE, false).unwrap();
        commits[1] += run_receiver(&events, None, |event| upload.handle(event));

        let events = order(&small);
        let mut small = SmallUploadReceiver::open(SIZE, FILE).unwrap();
        commits[2] += run_receiver(&events, Some(FILE), |event| small.handle(event));

        let events = order(&resumed_download);
        let mut download = DownloadReceiver::new(ASKED);
        commits[3] += run_receiver(&events, None, |event| download.handle(event));
    }
    // Some orders must get through, or the checks above prove nothing.
    for (machine, count) in commits.iter().enumerate() {
        assert!(*count > ROUNDS / 20, "machine {machine}: {count} commits");
    }
}

/// Feeds `events` to a sending machine, checking that its hash is declared
/// only after the whole rest of the file went out; returns the declarations.
fn run_sender(
    events: &[SendEvent],
    first: Option<SendAction>,
    mut handle: impl FnMut(SendEvent) -> Result<SendAction, TransferError>,
) -> usize {
    let mut stream = None;
    let mut moved = 0;
    let mut declared = 0;
    let mut failed = false;
    let mut observe = |event: Option<SendEvent>, action: &SendAction| match (event, action) {
        (_, SendAction::Start { start, length, .. }) => {
            assert_eq!(start + length, SIZE);
            stream = Some(*length);
            moved = 0;
        }
        (Some(SendEvent::Bytes(bytes)), SendAction::SendBytes) => moved += bytes,
        (Some(SendEvent::HashComputed(computed)), SendAction::SendHash { hash }) => {
            assert_eq!(&computed, hash);
            assert_eq!(
                Some(moved),
                stream,
                "declared before the stream was complete"
            );
            declared += 1;
        }
        _ => {}
    };
    if let Some(action) = first {
        observe(None, &action);
    }
    for &event in events {
        let result = handle(event);
        assert!(
            !(failed && result.is_ok()),
            "a failed machine took {event:?}"
        );
        failed |= result.is_err();
        if let Ok(action) = &result {
            observe(Some(event), action);
        }
    }
    declared
}

#[test]
fn no_order_declares_a_hash_before_the_whole_stream_went_out() {
    use SendEvent::*;
    let mut salt = vec![
        Ready {
            offset: KEPT,
            prefix_hash: Some(PREFIX),
        },
        Ready {
            offset: SIZE + 1,
            prefix_hash: Some(PREFIX),
        },
        PrefixHashed(PREFIX),
        PrefixHashed(WRONG),
        StreamFinished,
        HashComputed(FILE),
        Done {
            bytes_received: SIZE - KEPT,
            resumed: KEPT,
        },
    ];
    salt.extend([0, 1, 3, 6, SIZE].map(Bytes));
    let upload = [
        Ready {
            offset: KEPT,
            prefix_hash: Some(PREFIX),
        },
        PrefixHashed(PREFIX),
        Bytes(3),
        Bytes(3),
        StreamFinished,
        HashComputed(FILE),
        Done {
            bytes_received: SIZE - KEPT,
            resumed: KEPT,
        },
    ];
    let download = [
        PrefixHashed(PREFIX),
        Bytes(6),
        StreamFinished,
        HashComputed(FILE),
    ];
    let mut generator = Generator(0x2545_f491_4f6c_dd1d);
    let mut declared = [0usize; 2];
    for round in 0..ROUNDS {
        let mut order = |path: &[SendEvent]| order(round, path, &salt, &mut generator);
        let events = order(&upload);
        let mut sender = UploadSender::new(SIZE, true).unwrap();
        declared[0] += run_sender(&events, None, |event| sender.handle(event));

        let events = order(&download);
        let (mut sender, first) = DownloadSender::open(SIZE, ASKED);
        declared[1] += run_sender(&events, Some(first), |event| sender.handle(event));
    }
    for (machine, count) in declared.iter().enumerate() {
        assert!(
            *count > ROUNDS / 20,
            "machine {machine}: {count} declarations"
        );
    }
}
