//! A UDP relay between a client and a server that impairs the path,
//! standing in for a bad network on loopback (this kernel has no netem).
//!
//! Per direction it limits the rate, delays datagrams, drops a fraction of
//! them, holds some back so later ones overtake them, sends some twice and
//! drops those larger than the link's MTU; a switch cuts the path both ways
//! and restores it; another gives the client a new source port towards the
//! server, as a NAT that rebinds would. Every random choice comes from a seeded
//! generator whose seed is logged (set `QFTP_RELAY_SEED` to replay one).
//! Queues are bounded: a datagram that finds its direction's queue full (or,
//! on a rate-limited link, more than [`RATE_BUFFER`] of backlog ahead of it)
//! is dropped, as a router's full buffer would. It serves one client at a
//! time.

use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Datagrams waiting in one direction, at most.
const QUEUE_DATAGRAMS: usize = 16_384;
/// Bytes waiting in one direction, at most.
const QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// The most backlog a rate-limited link queues, in time to send it.
pub const RATE_BUFFER: Duration = Duration::from_millis(250);

/// What the relay does to each datagram in one direction.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// One-way delay (half the round trip when both directions have it).
    pub delay: Duration,
    /// Probability of dropping a datagram, 0.0 to 1.0.
    pub loss: f64,
    /// Probability of holding a datagram back by an extra random delay of up
    /// to `reorder_delay`, so later datagrams overtake it.
    pub reorder: f64,
    /// The longest extra delay of a held-back datagram.
    pub reorder_delay: Duration,
    /// Probability of sending a datagram twice.
    pub duplicate: f64,
    /// The link's rate in bytes per second; `None` for no limit.
    pub rate: Option<u64>,
    /// The largest datagram the link carries; larger ones are dropped.
    pub mtu: Option<usize>,
    /// The generator's seed; `None` takes `QFTP_RELAY_SEED` or a fresh one.
    pub seed: Option<u64>,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
            duplicate: 0.0,
            rate: None,
            mtu: None,
            seed: None,
        }
    }
}

/// What happened to the datagrams so far, both directions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sent on to the other side (duplicates included).
    pub forwarded: u64,
    /// Dropped by the loss probability.
    pub dropped: u64,
    /// Sent a second time.
    pub duplicated: u64,
    /// Delivered after a datagram that arrived later than it.
    pub reordered: u64,
    /// Dropped because the path was cut.
    pub severed: u64,
    /// Times the relay moved to a new source port towards the server.
    pub rebound: u64,
    /// Dropped because a queue was full.
    pub overflowed: u64,
    /// Dropped for being larger than the MTU.
    pub oversized: u64,
}

/// The relay's counters, shared with its thread.
#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    severed: AtomicU64,
    rebound: AtomicU64,
    overflowed: AtomicU64,
    oversized: AtomicU64,
}

/// A running relay; stops when dropped.
pub struct Relay {
    /// Where clients connect.
    pub address: SocketAddr,
    /// Datagrams dropped by the loss probability so far.
    pub dropped: Arc<AtomicU64>,
    counters: Arc<Counters>,
    cut: Arc<AtomicBool>,
    rebind: Arc<tokio::sync::Notify>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying between a new loopback port and `server`, with the
    /// same impairment both ways.
    pub fn start(server: SocketAddr, impairment: Impairment) -> Self {
        Self::start_asymmetric(server, impairment, impairment)
    }

    /// Starts relaying with one impairment towards the server and another
    /// towards the client. The seed is taken from `to_server`.
    pub fn start_asymmetric(
        server: SocketAddr,
        to_server: Impairment,
        to_client: Impairment,
    ) -> Self {
        let seed = to_server.seed.unwrap_or_else(seed_from_environment);
        let (forward_rng, backward_rng) = direction_rngs(seed);
        let (ready_sender, ready) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dropped = Arc::new(AtomicU64::new(0));
        let counters = Arc::new(Counters::default());
        let cut = Arc::new(AtomicBool::new(false));
        let rebind = Arc::new(tokio::sync::Notify::new());
        let shared = Shared {
            dropped: Arc::clone(&dropped),
            counters: Arc::clone(&counters),
            cut: Arc::clone(&cut),
            rebind: Arc::clone(&rebind),
            server,
        };
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("relay runtime");
            runtime.block_on(async move {
                let front = UdpSocket::bind("127.0.0.1:0").await.expect("relay front");
                let back = UdpSocket::bind("127.0.0.1:0").await.expect("relay back");
                back.connect(server).await.expect("relay back connect");
                ready_sender
                    .send(front.local_addr().expect("relay address"))
                    .expect("ready");
                let forward = Direction::new(to_server, forward_rng);
                let backward = Direction::new(to_client, backward_rng);
                tokio::select! {
                    () = relay(front, back, forward, backward, shared) => {}
                    _ = stopped => {}
                }
            });
        });
        let address = ready.recv().expect("relay started");
        eprintln!(
            "relay {address} -> {server}: seed {seed:#018x} (replay with QFTP_RELAY_SEED={seed}); \
             to server {to_server:?}; to client {to_client:?}"
        );
        Self {
            address,
            dropped,
            counters,
            cut,
            rebind,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Cuts the path: from now on every datagram, either way, is lost.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Restores a cut path.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// From now on, sends the client's datagrams to the server from a new
    /// source port, as a NAT whose mapping expired would: the server sees
    /// the same connection arrive from another address.
    pub fn change_source_port(&self) {
        self.rebind.notify_one();
    }

    /// What happened to the datagrams so far.
    pub fn counts(&self) -> Counts {
        let counters = &self.counters;
        Counts {
            forwarded: counters.forwarded.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            duplicated: counters.duplicated.load(Ordering::Relaxed),
            reordered: counters.reordered.load(Ordering::Relaxed),
            severed: counters.severed.load(Ordering::Relaxed),
            rebound: counters.rebound.load(Ordering::Relaxed),
            overflowed: counters.overflowed.load(Ordering::Relaxed),
            oversized: counters.oversized.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        eprintln!("relay {} stopped: {:?}", self.address, self.counts());
    }
}

/// A seed from `QFTP_RELAY_SEED`, else from the clock and a counter.
fn seed_from_environment() -> u64 {
    if let Some(seed) = std::env::var("QFTP_RELAY_SEED")
        .ok()
        .and_then(|text| text.trim().parse().ok())
    {
        return seed;
    }
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    SplitMix(nanos ^ STARTED.fetch_add(1, Ordering::Relaxed).rotate_left(32)).next()
}

/// SplitMix64: spreads one seed into well-mixed seeds for the generators.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }
}

/// Xorshift64*: the relay's deterministic random choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Xorshift must not start at zero.
        Self(if seed == 0 {
            0x2545_f491_4f6c_dd1d
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `probability`.
    fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.unit() < probability
    }
}

/// The random choices for one datagram.
struct Fate {
    lost: bool,
    held: bool,
    extra: f64,
    twice: bool,
}

impl Fate {
    /// Draws every choice for every datagram, so the sequence of decisions
    /// depends only on the seed and the datagram count.
    fn draw(rng: &mut Rng, impairment: &Impairment) -> Self {
        Self {
            lost: rng.chance(impairment.loss),
            held: rng.chance(impairment.reorder),
            extra: rng.unit(),
            twice: rng.chance(impairment.duplicate),
        }
    }
}

/// Seeds the relay draws from, for both directions, as [`Relay::start`] does.
fn direction_rngs(seed: u64) -> (Rng, Rng) {
    let mut seeds = SplitMix(seed);
    let forward = Rng::new(seeds.next());
    let backward = Rng::new(seeds.next());
    (forward, backward)
}

impl Impairment {
    /// The same impairment with a seed under which each direction drops at
    /// least one of its first `within` datagrams. A test that asserts the
    /// path lost something then holds by construction rather than by odds:
    /// with large loopback datagrams a transfer crosses only a few hundred,
    /// and 1 % loss over 300 of them drops none about one time in twenty.
    /// The search starts at the logged seed (`QFTP_RELAY_SEED` replays it)
    /// and is bounded.
    pub fn losing_within(self, within: usize) -> Self {
        assert!(self.loss > 0.0, "a path without loss never loses");
        let loses = |rng: &mut Rng| (0..within).any(|_| Fate::draw(rng, &self).lost);
        let start = self.seed.unwrap_or_else(seed_from_environment);
        let seed = (0..100_000u64)
            .map(|step| start.wrapping_add(step))
            .find(|&seed| {
                let (mut forward, mut backward) = direction_rngs(seed);
                loses(&mut forward) && loses(&mut backward)
            })
            .expect("a seed that loses within the window, among 100000 tried");
        Self {
            seed: Some(seed),
            ..self
        }
    }
}

/// The counters and the cut switch, as the relay's task sees them.
struct Shared {
    dropped: Arc<AtomicU64>,
    counters: Arc<Counters>,
    cut: Arc<AtomicBool>,
    rebind: Arc<tokio::sync::Notify>,
    server: SocketAddr,
}

impl Shared {
    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

/// A datagram waiting for its time.
struct Pending {
    due: Instant,
    /// Arrival order in its direction; ties in `due` keep it.
    sequence: u64,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.sequence == other.sequence
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Reversed, so the max-heap yields the earliest datagram first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.sequence).cmp(&(self.due, self.sequence))
    }
}

/// One direction: its impairment, generator and queue.
struct Direction {
    impairment: Impairment,
    rng: Rng,
    queue: BinaryHeap<Pending>,
    queued_bytes: usize,
    next_sequence: u64,
    /// When a rate-limited link has finished sending what it queued.
    link_free_at: Instant,
    /// The highest arrival number delivered so far, for counting overtakes.
    delivered_up_to: Option<u64>,
}

impl Direction {
    fn new(impairment: Impairment, rng: Rng) -> Self {
        Self {
            impairment,
            rng,
            queue: BinaryHeap::new(),
            queued_bytes: 0,
            next_sequence: 0,
            link_free_at: Instant::now(),
            delivered_up_to: None,
        }
    }

    /// Decides the fate of a datagram that just arrived.
    fn arrive(&mut self, data: &[u8], shared: &Shared) {
        if shared.is_cut() {
            shared.counters.severed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let impairment = self.impairment;
        if impairment.mtu.is_some_and(|mtu| data.len() > mtu) {
            shared.counters.oversized.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Fate {
            lost,
            held,
            extra,
            twice,
        } = Fate::draw(&mut self.rng, &impairment);
        if lost {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = Instant::now();
        let mut due = now;
        if let Some(rate) = impairment.rate {
            // The datagram waits for the link, then takes its time on it.
            let start = self.link_free_at.max(now);
            if start - now > RATE_BUFFER {
                shared.counters.overflowed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.link_free_at =
                start + Duration::from_secs_f64(data.len() as f64 / rate.max(1) as f64);
            due = self.link_free_at;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        due += impairment.delay;
        if held {
            due += impairment.reorder_delay.mul_f64(0.25 + 0.75 * extra);
        }
        let copies = if twice { 2 } else { 1 };
        for copy in 0..copies {
            if self.queue.len() >= QUEUE_DATAGRAMS || self.queued_bytes + data.len() > QUEUE_BYTES {
                shared.counters.overflowed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if copy == 1 {
                shared.counters.duplicated.fetch_add(1, Ordering::Relaxed);
            }
            self.queued_bytes += data.len();
            self.queue.push(Pending {
                // The copy trails the original by a hair, as a duplicating
                // link would deliver it.
                due: due + Duration::from_micros(200 * copy),
                sequence,
                data: data.to_vec(),
            });
        }
    }

    /// When the next datagram is due.
    fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|pending| pending.due)
    }

    /// Takes the next datagram if it is due, counting overtakes.
    fn take_due(&mut self, now: Instant, shared: &Shared) -> Option<Vec<u8>> {
        if self.queue.peek()?.due > now {
            return None;
        }
        let pending = self.queue.pop()?;
        self.queued_bytes -= pending.data.len();
        match self.delivered_up_to {
            Some(highest) if pending.sequence < highest => {
                shared.counters.reordered.fetch_add(1, Ordering::Relaxed);
            }
            Some(highest) if pending.sequence == highest => {}
            _ => self.delivered_up_to = Some(pending.sequence),
        }
        Some(pending.data)
    }
}

/// Moves datagrams both ways until the sockets fail or the task is dropped.
async fn relay(
    front: UdpSocket,
    mut back: UdpSocket,
    mut forward: Direction,
    mut backward: Direction,
    shared: Shared,
) {
    let mut from_client = vec![0u8; 65536];
    let mut from_server = vec![0u8; 65536];
    let mut client: Option<SocketAddr> = None;
    loop {
        let next_due = match (forward.next_due(), backward.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            received = front.recv_from(&mut from_client) => {
                let Ok((length, source)) = received else { return };
                client = Some(source);
                forward.arrive(&from_client[..length], &shared);
            }
            received = back.recv(&mut from_server) => {
                // A refused send to the server surfaces here; keep going.
                let Ok(length) = received else { continue };
                backward.arrive(&from_server[..length], &shared);
            }
            () = shared.rebind.notified() => {
                let moved = UdpSocket::bind("127.0.0.1:0").await.expect("relay back, moved");
                moved.connect(shared.server).await.expect("relay back connect, moved");
                eprintln!(
                    "relay: source port towards the server {:?} -> {:?}",
                    back.local_addr().ok(),
                    moved.local_addr().ok()
                );
                back = moved;
                shared.counters.rebound.fetch_add(1, Ordering::Relaxed);
            }
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                while let Some(datagram) = forward.take_due(now, &shared) {
                    if shared.is_cut() {
                        shared.counters.severed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let _ = back.send(&datagram).await;
                        shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                while let Some(datagram) = backward.take_due(now, &shared) {
                    match client {
                        Some(_) if shared.is_cut() => {
                            shared.counters.severed.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(client) => {
                            let _ = front.send_to(&datagram, client).await;
                            shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

#[test]
fn the_relay_generator_replays_from_its_seed_and_stays_in_range() {
    let draw = |seed: u64| {
        let mut rng = Rng::new(SplitMix(seed).next());
        (0..1000).map(|_| rng.unit()).collect::<Vec<_>>()
    };
    let first = draw(42);
    assert_eq!(first, draw(42), "the same seed gives the same choices");
    assert_ne!(first, draw(43), "another seed gives other choices");
    assert!(first.iter().all(|value| (0.0..1.0).contains(value)));
    let mut rng = Rng::new(7);
    let hits = (0..100_000).filter(|_| rng.chance(0.05)).count();
    assert!(
        (4_000..6_000).contains(&hits),
        "5% came out as {hits} in 100000"
    );
    assert!(!(0..1000).any(|_| rng.chance(0.0)));
}

#[test]
fn a_seed_losing_within_a_window_drops_there_in_both_directions() {
    let impairment = Impairment {
        loss: 0.01,
        reorder: 0.05,
        seed: Some(5_223_334_107_387_073_040),
        ..Default::default()
    }
    .losing_within(40);
    let (mut forward, mut backward) = direction_rngs(impairment.seed.unwrap());
    for rng in [&mut forward, &mut backward] {
        let drops = (0..40)
            .filter(|_| Fate::draw(rng, &impairment).lost)
            .count();
        assert!(drops > 0, "the chosen seed drops within 40 datagrams");
    }
}
