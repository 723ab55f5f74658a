//! A deterministic link simulator for the controller's tests: senders
//! share one FIFO bottleneck, paced the way quinn paces them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::controller::DeliveryRate;
use super::rate::expected_bytes;

/// The datagram size of every simulated packet.
pub(super) const PACKET: u64 = 1200;
/// Delivery is counted in slots of this length.
pub(super) const SLOT: Duration = Duration::from_millis(100);

/// A bottleneck of `rate` bytes per second with a FIFO of `buffer` bytes,
/// a round trip of `rtt` (after `rtt_step`'s time, its length), random loss
/// after the queue, and ECN marks on packets that find more than
/// `mark_above` bytes queued.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    pub rate: u64,
    pub rtt: Duration,
    pub buffer: u64,
    pub loss_per_mille: u64,
    pub mark_above: Option<u64>,
    pub rtt_step: Option<(Duration, Duration)>,
}

impl Link {
    /// `megabits` per second and a round trip of `rtt`, a buffer of one
    /// bandwidth-delay product, no loss, no marks.
    pub(super) fn new(megabits: u64, rtt: Duration) -> Self {
        let rate = megabits * 125_000;
        Self {
            rate,
            rtt,
            buffer: expected_bytes(rate, rtt),
            loss_per_mille: 0,
            mark_above: None,
            rtt_step: None,
        }
    }

    /// 100 Mbit/s, 50 ms, a buffer of one bandwidth-delay product.
    pub(super) fn typical(loss_per_mille: u64) -> Self {
        Self {
            loss_per_mille,
            ..Self::new(100, Duration::from_millis(50))
        }
    }

    pub(super) fn product(&self) -> u64 {
        expected_bytes(self.rate, self.rtt)
    }

    fn rtt_at(&self, now: Duration) -> Duration {
        match self.rtt_step {
            Some((at, rtt)) if now >= at => rtt,
            _ => self.rtt,
        }
    }
}

/// What the simulator needs of a congestion controller.
pub(super) trait Sender {
    fn window(&self) -> u64;
    /// One batch of one acknowledgement.
    fn acked(&mut self, now: Instant, sent: Instant, bytes: u64);
    fn lost(&mut self, now: Instant, sent: Instant, bytes: u64);
    /// An acknowledgement that reported an ECN congestion mark.
    fn marked(&mut self, now: Instant, sent: Instant);
}

impl Sender for DeliveryRate {
    fn window(&self) -> u64 {
        quinn::congestion::Controller::window(self)
    }

    fn acked(&mut self, now: Instant, sent: Instant, bytes: u64) {
        DeliveryRate::acked(self, now, sent, bytes, false);
        self.batch_done(now);
    }

    fn lost(&mut self, _now: Instant, sent: Instant, bytes: u64) {
        DeliveryRate::lost(self, sent, bytes, false);
    }

    fn marked(&mut self, _now: Instant, sent: Instant) {
        DeliveryRate::lost(self, sent, 0, false);
    }
}

/// NewReno, the loss-based competitor: slow start, then a datagram more
/// per round trip, half the window on a loss or mark (once per round).
#[derive(Debug, Clone)]
pub(super) struct Reno {
    window: u64,
    threshold: u64,
    recovery_start: Option<Instant>,
}

impl Reno {
    pub(super) fn new() -> Self {
        Self {
            window: 10 * PACKET,
            threshold: u64::MAX,
            recovery_start: None,
        }
    }

    fn congestion(&mut self, now: Instant, sent: Instant) {
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return;
        }
        self.recovery_start = Some(now);
        self.window = (self.window / 2).max(2 * PACKET);
        self.threshold = self.window;
    }
}

impl Sender for Reno {
    fn window(&self) -> u64 {
        self.window
    }

    fn acked(&mut self, _now: Instant, sent: Instant, bytes: u64) {
        if self.recovery_start.is_some_and(|start| sent <= start) {
            return;
        }
        if self.window < self.threshold {
            self.window += bytes;
        } else {
            self.window += PACKET * bytes / self.window;
        }
    }

    fn lost(&mut self, now: Instant, sent: Instant, _bytes: u64) {
        self.congestion(now, sent);
    }

    fn marked(&mut self, now: Instant, sent: Instant) {
        self.congestion(now, sent);
    }
}

/// One sender on the link, starting at `start`.
pub(super) struct Flow<'a> {
    pub sender: &'a mut dyn Sender,
    pub start: Duration,
}

/// What one flow did.
#[derive(Debug, Default, Clone)]
pub(super) struct FlowOutcome {
    /// Bytes acknowledged in each [`SLOT`] of the run.
    pub delivered: Vec<u64>,
    pub sent: u64,
    pub lost: u64,
    pub marked: u64,
    /// Bytes sent, and lost, in the second half.
    pub late_sent: u64,
    pub late_lost: u64,
    /// Largest and mean round trip measured in the second half.
    pub late_max_rtt: Duration,
    pub late_mean_rtt: Duration,
    /// Mean and smallest window over the acknowledgements of the second
    /// half.
    pub late_mean_window: u64,
    pub late_min_window: u64,
}

impl FlowOutcome {
    /// Bytes acknowledged from `from` to `to` (rounded to slots).
    pub(super) fn delivered_between(&self, from: Duration, to: Duration) -> u64 {
        let first = slot_of(from);
        let last = slot_of(to).min(self.delivered.len());
        self.delivered[first.min(last)..last].iter().sum()
    }
}

fn slot_of(at: Duration) -> usize {
    usize::try_from(at.as_nanos() / SLOT.as_nanos()).unwrap_or(usize::MAX)
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Ack {
        sent: Duration,
        marked: bool,
    },
    Lost {
        sent: Duration,
    },
    /// The pacer may let the flow send again, or the flow starts.
    Wake,
}

/// Per-flow state of the simulator: quinn's pacer and RTT smoothing.
struct Pacing {
    in_flight: u64,
    tokens: u64,
    refilled: Duration,
    smoothed_rtt: Duration,
    wake_at: Option<Duration>,
}

/// The burst the pacer lets out at once (quinn: the window's share of
/// 2 ms, between 10 and 256 datagrams).
fn pacer_capacity(window: u64, smoothed_rtt: Duration) -> u64 {
    let nanos = smoothed_rtt.as_nanos().max(1);
    let capacity = u128::from(window) * 2_000_000 / nanos;
    u64::try_from(capacity)
        .unwrap_or(u64::MAX)
        .clamp(10 * PACKET, 256 * PACKET)
}

/// Runs `flows` over `link` for `length` of simulated time. Every packet is
/// acknowledged on its own; a loss is noticed an eighth of a round trip
/// after its acknowledgement would have come (quinn's time threshold).
/// Senders are paced as quinn paces: a token bucket refilled at 5/4 of the
/// window per smoothed round trip. Deterministic for a given `seed`.
pub(super) fn run(
    link: Link,
    flows: &mut [Flow<'_>],
    length: Duration,
    seed: u64,
) -> Vec<FlowOutcome> {
    let start = Instant::now();
    let half = length / 2;
    let mut random = seed | 1;
    let mut next_random = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random
    };
    let slots = slot_of(length) + 1;
    let mut outcomes = vec![
        FlowOutcome {
            delivered: vec![0; slots],
            ..FlowOutcome::default()
        };
        flows.len()
    ];
    let mut pacing: Vec<Pacing> = flows
        .iter()
        .map(|flow| Pacing {
            in_flight: 0,
            tokens: 10 * PACKET,
            refilled: flow.start,
            smoothed_rtt: link.rtt,
            wake_at: Some(flow.start),
        })
        .collect();
    let mut late_windows = vec![(0u128, 0u128); flows.len()];
    let mut late_rtts = vec![(0u128, 0u128); flows.len()];
    let mut events: BinaryHeap<Reverse<(Duration, u64, usize, Event)>> = BinaryHeap::new();
    let mut sequence = 0u64;
    for (index, flow) in flows.iter().enumerate() {
        sequence += 1;
        events.push(Reverse((flow.start, sequence, index, Event::Wake)));
    }
    let packet_time = Duration::from_nanos(PACKET * 1_000_000_000 / link.rate);
    let mut queue_free_at = Duration::ZERO;
    let mut steps = 0u64;
    while let Some(Reverse((now, _, index, event))) = events.pop() {
        if now >= length {
            break;
        }
        steps += 1;
        assert!(steps < 100_000_000, "simulation did not end");
        let flow = &mut flows[index];
        let state = &mut pacing[index];
        let outcome = &mut outcomes[index];
        match event {
            Event::Ack { sent, marked } => {
                state.in_flight -= PACKET;
                let rtt = now - sent;
                state.smoothed_rtt = (state.smoothed_rtt * 7 + rtt) / 8;
                if marked {
                    outcome.marked += PACKET;
                    flow.sender.marked(start + now, start + sent);
                }
                flow.sender.acked(start + now, start + sent, PACKET);
                outcome.delivered[slot_of(now)] += PACKET;
                if now >= half {
                    outcome.late_max_rtt = outcome.late_max_rtt.max(rtt);
                    let (sum, count) = &mut late_rtts[index];
                    *sum += rtt.as_nanos();
                    *count += 1;
                    let window = flow.sender.window();
                    let (sum, count) = &mut late_windows[index];
                    *sum += u128::from(window);
                    *count += 1;
                    outcome.late_min_window = if *count == 1 {
                        window
                    } else {
                        outcome.late_min_window.min(window)
                    };
                }
            }
            Event::Lost { sent } => {
                state.in_flight -= PACKET;
                outcome.lost += PACKET;
                if now >= half {
                    outcome.late_lost += PACKET;
                }
                flow.sender.lost(start + now, start + sent, PACKET);
            }
            Event::Wake => {
                if state.wake_at != Some(now) {
                    continue;
                }
                state.wake_at = None;
            }
        }
        // Send what the window and the pacer allow.
        let window = flow.sender.window();
        let refill = u128::from(window) * 5 / 4 * now.saturating_sub(state.refilled).as_nanos()
            / state.smoothed_rtt.as_nanos().max(1);
        state.refilled = now;
        let capacity = pacer_capacity(window, state.smoothed_rtt);
        state.tokens = u64::try_from(u128::from(state.tokens) + refill)
            .unwrap_or(u64::MAX)
            .min(capacity);
        let rtt = link.rtt_at(now);
        let mut burst = 0u64;
        while state.in_flight + PACKET <= window && state.tokens >= PACKET {
            burst += 1;
            assert!(burst <= 1_000_000, "a send burst did not end");
            state.in_flight += PACKET;
            state.tokens -= PACKET;
            outcome.sent += PACKET;
            if now >= half {
                outcome.late_sent += PACKET;
            }
            sequence += 1;
            let waiting = queue_free_at.saturating_sub(now);
            let queued = expected_bytes(link.rate, waiting);
            let event = if queued + PACKET > link.buffer {
                (now + rtt + rtt / 8, Event::Lost { sent: now })
            } else {
                queue_free_at = queue_free_at.max(now) + packet_time;
                if next_random() % 1000 < link.loss_per_mille {
                    (queue_free_at + rtt + rtt / 8, Event::Lost { sent: now })
                } else {
                    let marked = link.mark_above.is_some_and(|above| queued > above);
                    (queue_free_at + rtt, Event::Ack { sent: now, marked })
                }
            };
            events.push(Reverse((event.0, sequence, index, event.1)));
        }
        if state.in_flight + PACKET <= window && state.wake_at.is_none() {
            // Blocked by the pacer: quinn waits until four fifths of the
            // burst have come back.
            let missing = capacity.max(PACKET) - state.tokens;
            let wait = state.smoothed_rtt.as_nanos() * u128::from(missing) * 4
                / (u128::from(window.max(1)) * 5 / 4 * 5);
            let wake = now + Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX).max(1));
            state.wake_at = Some(wake);
            sequence += 1;
            events.push(Reverse((wake, sequence, index, Event::Wake)));
        }
    }
    for (index, outcome) in outcomes.iter_mut().enumerate() {
        let (sum, count) = late_windows[index];
        outcome.late_mean_window = u64::try_from(sum / count.max(1)).unwrap_or(u64::MAX);
        let (sum, count) = late_rtts[index];
        outcome.late_mean_rtt =
            Duration::from_nanos(u64::try_from(sum / count.max(1)).unwrap_or(u64::MAX));
    }
    outcomes
}

/// Jain's fairness index of `shares`: 1 when all are equal, 1/n when one
/// has everything.
pub(super) fn jain_index(shares: &[f64]) -> f64 {
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|share| share * share).sum();
    sum * sum / (shares.len() as f64 * squares).max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_index_is_one_for_equal_shares_and_one_over_n_for_a_monopoly() {
        assert!((jain_index(&[3.0, 3.0]) - 1.0).abs() < 1e-9);
        assert!((jain_index(&[1.0, 0.0]) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn reno_alone_fills_a_link_with_a_buffer_of_one_product() {
        let link = Link::new(20, Duration::from_millis(40));
        let mut reno = Reno::new();
        let length = Duration::from_secs(30);
        let outcomes = run(
            link,
            &mut [Flow {
                sender: &mut reno,
                start: Duration::ZERO,
            }],
            length,
            1,
        );
        let delivered = outcomes[0].delivered_between(length / 2, length);
        let used = delivered as f64 / (link.rate as f64 * (length / 2).as_secs_f64());
        assert!(used > 0.9, "reno used {used:.3} of the link");
    }
}
