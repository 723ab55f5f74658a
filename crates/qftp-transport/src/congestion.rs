//! qftp's congestion controller: a delivery-rate model that tells random
//! loss from congestion.
//!
//! Why our own: loss-based controllers (quinn's default Cubic, NewReno)
//! cut the window on every loss, so a path that drops 1 % of packets at
//! random never gets far: through 50 ms and 1 % loss a 256 MiB put with
//! Cubic had moved 23 MB after 60 s. quinn 0.11's BBR does not collapse,
//! but it enters packet conservation in every round trip that saw a loss;
//! on that path it took 2.3 s where this controller takes 1.9 s, the same
//! as without loss (both with the network windows of [`crate::tuning`]).
//!
//! The model, in the spirit of BBR's second version:
//! * Each round trip (from the moment a round starts until a packet sent
//!   after that moment is acknowledged) yields a delivery-rate sample:
//!   bytes acknowledged during the round divided by its length. The
//!   bandwidth estimate is the largest sample of the last
//!   [`FILTER_ROUNDS`] rounds that gave one (a round limited by the
//!   application only counts when it beats the estimate).
//! * **Startup** grows the window by every acknowledged byte (doubling per
//!   round, but to at most three bandwidth-delay products) until the
//!   bandwidth estimate stops growing by a quarter for three rounds, or a
//!   round loses more than the loss threshold.
//! * **Steady**: the window is twice the estimated bandwidth-delay product
//!   (bandwidth × minimum RTT) plus the burst of acknowledgements seen
//!   beyond that rate (ACK aggregation, at most one product). Twice the
//!   product lets the rate estimate find more capacity by itself, and
//!   bounds the queue the sender can build to about one product.
//! * **Loss** only counts as congestion when a round loses more than
//!   [`LOSS_THRESHOLD_PER_MILLE`] of its bytes and at least
//!   [`MIN_LOST_PACKETS`] packets; losses of packets sent before the last
//!   cut are not counted again. Such a round cuts the window to 70 % and
//!   sets a ceiling on it, which holds for four rounds and then rises by an
//!   eighth per round without excess loss. Persistent congestion
//!   (everything lost for a while) drops to the minimum window and starts
//!   over.
//!
//! The controller is deterministic given its inputs; the unit tests drive
//! it with synthetic acknowledgements and losses.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics};

/// Rounds over which the bandwidth and ACK-burst maxima are kept.
pub const FILTER_ROUNDS: usize = 10;
/// Loss above this share of a round's bytes (in thousandths) is congestion...
pub const LOSS_THRESHOLD_PER_MILLE: u64 = 20;
/// ...and only when the round lost at least this many packets.
pub const MIN_LOST_PACKETS: u64 = 3;
/// The window never drops below this many datagrams.
const MIN_WINDOW_PACKETS: u64 = 4;
/// Startup ends when bandwidth grew less than this factor (in quarters:
/// 5/4) for [`FULL_PIPE_ROUNDS`] rounds in a row.
const FULL_PIPE_ROUNDS: u32 = 3;
/// Startup keeps at most this many bandwidth-delay products in flight.
const STARTUP_GAIN: u64 = 3;
/// After a lossy round the ceiling holds for this many rounds...
const CEILING_HOLD_ROUNDS: u32 = 4;
/// ...then rises by 1/this per round without excess loss.
const CEILING_GROWTH_DIVISOR: u64 = 8;
/// The datagram size the initial window is counted in (QUIC's minimum).
const BASE_DATAGRAM: u64 = 1200;
/// Initial window in base datagrams.
const INITIAL_WINDOW_PACKETS: u64 = 200;

/// Builds [`DeliveryRate`] controllers; hand it to
/// `TransportConfig::congestion_controller_factory`.
#[derive(Debug, Clone)]
pub struct DeliveryRateConfig {
    initial_window: u64,
}

impl Default for DeliveryRateConfig {
    fn default() -> Self {
        Self {
            initial_window: INITIAL_WINDOW_PACKETS * BASE_DATAGRAM,
        }
    }
}

impl ControllerFactory for DeliveryRateConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(DeliveryRate::new(self.initial_window, current_mtu, now))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Steady,
}

/// The largest value recorded in each of the last [`FILTER_ROUNDS`] slots;
/// [`RoundMax::advance`] opens a new slot and forgets the oldest.
#[derive(Debug, Clone)]
struct RoundMax {
    slots: [u64; FILTER_ROUNDS],
    current: usize,
}

impl RoundMax {
    fn new() -> Self {
        Self {
            slots: [0; FILTER_ROUNDS],
            current: 0,
        }
    }

    fn advance(&mut self) {
        self.current = (self.current + 1) % FILTER_ROUNDS;
        self.slots[self.current] = 0;
    }

    fn record(&mut self, value: u64) {
        let slot = &mut self.slots[self.current];
        *slot = (*slot).max(value);
    }

    fn max(&self) -> u64 {
        self.slots.iter().copied().max().unwrap_or(0)
    }

    fn reset(&mut self) {
        self.slots = [0; FILTER_ROUNDS];
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct DeliveryRate {
    mtu: u64,
    initial_window: u64,
    window: u64,
    mode: Mode,
    /// The smallest round trip seen; `None` before the first sample.
    min_rtt: Option<Duration>,

    /// When the current round started (an acknowledgement time).
    round_started: Instant,
    acked_in_round: u64,
    lost_in_round: u64,
    /// Whether any acknowledgement of this round came while the sender had
    /// nothing to send (its rate sample then understates the path).
    app_limited_in_round: bool,

    /// Delivery-rate samples, bytes per second, one slot per round that
    /// gave a usable sample (rounds limited by the application only count
    /// when they beat the estimate, so idle spells do not erase it).
    bandwidth: RoundMax,
    /// Bandwidth at the last time it grew by a quarter, and rounds since.
    full_bandwidth: u64,
    rounds_without_growth: u32,

    /// ACK aggregation: bytes acknowledged beyond the estimated rate since
    /// `burst_started`, and the largest such excess per round.
    burst_started: Option<Instant>,
    burst_bytes: u64,
    acked_in_batch: u64,
    extra_acked: RoundMax,

    /// Ceiling on the window after a lossy round, if any, and the rounds
    /// left before it starts to rise.
    ceiling: Option<u64>,
    ceiling_hold: u32,
    /// When the window was last cut for loss.
    last_cut: Option<Instant>,
}

impl DeliveryRate {
    /// A controller for a path whose datagrams are `mtu` bytes, starting
    /// with an `initial_window` of bytes in flight.
    pub fn new(initial_window: u64, mtu: u16, now: Instant) -> Self {
        let mtu = u64::from(mtu);
        let initial_window = initial_window.max(MIN_WINDOW_PACKETS * mtu);
        Self {
            mtu,
            initial_window,
            window: initial_window,
            mode: Mode::Startup,
            min_rtt: None,
            round_started: now,
            acked_in_round: 0,
            lost_in_round: 0,
            app_limited_in_round: false,
            bandwidth: RoundMax::new(),
            full_bandwidth: 0,
            rounds_without_growth: 0,
            burst_started: None,
            burst_bytes: 0,
            acked_in_batch: 0,
            extra_acked: RoundMax::new(),
            ceiling: None,
            ceiling_hold: 0,
            last_cut: None,
        }
    }

    fn min_window(&self) -> u64 {
        MIN_WINDOW_PACKETS * self.mtu
    }

    /// The estimated bottleneck bandwidth in bytes per second.
    pub fn bandwidth(&self) -> u64 {
        self.bandwidth.max()
    }

    /// Whether the controller is still in startup.
    pub fn in_startup(&self) -> bool {
        self.mode == Mode::Startup
    }

    /// One acknowledged packet of `bytes`, sent at `sent`; `min_rtt` is the
    /// path's smallest round trip so far.
    pub fn acked(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        min_rtt: Duration,
    ) {
        if !min_rtt.is_zero() {
            self.min_rtt = Some(self.min_rtt.map_or(min_rtt, |old| old.min(min_rtt)));
        }
        self.acked_in_round += bytes;
        self.acked_in_batch += bytes;
        self.app_limited_in_round |= app_limited;
        if self.mode == Mode::Startup && !app_limited {
            let cap = self.startup_cap();
            if self.window < cap {
                self.window = self.window.saturating_add(bytes).min(cap);
            }
        }
        if sent >= self.round_started {
            self.end_round(now);
        }
        if self.mode == Mode::Steady {
            self.steer(bytes);
        }
        self.apply_ceiling();
    }

    /// The end of one batch of acknowledgements (all with the same `now`).
    pub fn batch_done(&mut self, now: Instant) {
        let batch = std::mem::take(&mut self.acked_in_batch);
        let bandwidth = self.bandwidth();
        let Some(started) = self.burst_started else {
            self.burst_started = Some(now);
            self.burst_bytes = 0;
            return;
        };
        self.burst_bytes += batch;
        let expected = expected_bytes(bandwidth, now.saturating_duration_since(started));
        if self.burst_bytes <= expected || bandwidth == 0 {
            // Acknowledgements arrive no faster than the rate: a new burst
            // may start here.
            self.burst_started = Some(now);
            self.burst_bytes = 0;
        } else {
            // Capped at one bandwidth-delay product: bounded by the window
            // instead, the allowance fed on itself (a larger window let
            // larger bursts through, which raised the window) and reached
            // ten products on the 50 ms test link.
            let product = self
                .min_rtt
                .map_or(0, |min_rtt| expected_bytes(bandwidth, min_rtt));
            let extra = (self.burst_bytes - expected).min(product);
            self.extra_acked.record(extra);
        }
    }

    /// Packets of `bytes` were declared lost (zero bytes: an ECN congestion
    /// mark), the latest of them sent at `sent`; `persistent` when
    /// everything sent for a while was lost.
    pub fn lost(&mut self, sent: Instant, bytes: u64, persistent: bool) {
        // Losses among packets sent before the last cut were answered by it.
        if self.last_cut.is_none_or(|cut| sent > cut) {
            self.lost_in_round += if bytes == 0 { self.mtu } else { bytes };
        }
        if persistent {
            self.window = self.min_window();
            self.mode = Mode::Startup;
            self.bandwidth.reset();
            self.extra_acked.reset();
            self.full_bandwidth = 0;
            self.rounds_without_growth = 0;
            self.ceiling = None;
            self.burst_started = None;
        }
    }

    /// Closes the current round: takes its rate sample and judges its loss.
    fn end_round(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.round_started);
        let acked = std::mem::take(&mut self.acked_in_round);
        let lost = std::mem::take(&mut self.lost_in_round);
        let app_limited = std::mem::take(&mut self.app_limited_in_round);
        self.round_started = now;
        self.extra_acked.advance();

        if !elapsed.is_zero() {
            let sample = rate(acked, elapsed);
            if !app_limited || sample > self.bandwidth() {
                self.bandwidth.advance();
                self.bandwidth.record(sample);
            }
        }

        // A few losses in a small round say little: at 1 % random loss a
        // round of 50 packets loses one about a third of the time, and
        // treating that as congestion is how loss-based controllers collapse.
        let congested = lost >= MIN_LOST_PACKETS * self.mtu
            && lost.saturating_mul(1000) > (acked + lost).saturating_mul(LOSS_THRESHOLD_PER_MILLE);
        if congested {
            let cut = (self.window / 10 * 7).max(self.min_window());
            self.last_cut = Some(now);
            self.window = cut;
            self.ceiling = Some(cut);
            self.ceiling_hold = CEILING_HOLD_ROUNDS;
            self.mode = Mode::Steady;
            return;
        }
        if self.ceiling_hold > 0 {
            self.ceiling_hold -= 1;
        } else if let Some(ceiling) = self.ceiling {
            let raised = ceiling.saturating_add((ceiling / CEILING_GROWTH_DIVISOR).max(self.mtu));
            self.ceiling = (raised < 2 * self.target().max(self.window)).then_some(raised);
        }

        if self.mode == Mode::Startup && !app_limited {
            let bandwidth = self.bandwidth();
            if bandwidth >= self.full_bandwidth.saturating_add(self.full_bandwidth / 4) {
                self.full_bandwidth = bandwidth;
                self.rounds_without_growth = 0;
            } else {
                self.rounds_without_growth += 1;
                if self.rounds_without_growth >= FULL_PIPE_ROUNDS {
                    self.mode = Mode::Steady;
                }
            }
        }
    }

    /// How far startup may grow the window: [`STARTUP_GAIN`] times the
    /// bandwidth-delay product measured so far, which still lets the window
    /// double each round (the estimate trails the window by one round) but
    /// stops it running far past the pipe while three rounds confirm that
    /// the rate stopped growing.
    fn startup_cap(&self) -> u64 {
        let Some(min_rtt) = self.min_rtt else {
            return self.initial_window;
        };
        expected_bytes(self.bandwidth(), min_rtt)
            .saturating_mul(STARTUP_GAIN)
            .max(self.initial_window)
    }

    /// Twice the bandwidth-delay product plus the ACK burst allowance.
    fn target(&self) -> u64 {
        let Some(min_rtt) = self.min_rtt else {
            return self.window;
        };
        let product = expected_bytes(self.bandwidth(), min_rtt);
        product
            .saturating_mul(2)
            .saturating_add(self.extra_acked.max())
            .max(self.min_window())
    }

    /// In steady state the window moves towards the target: up by the bytes
    /// just acknowledged, down at once.
    fn steer(&mut self, bytes: u64) {
        let target = self.target();
        self.window = if self.window < target {
            self.window.saturating_add(bytes).min(target)
        } else {
            target
        };
    }

    fn apply_ceiling(&mut self) {
        if let Some(ceiling) = self.ceiling {
            self.window = self.window.min(ceiling);
        }
        self.window = self.window.max(self.min_window());
    }
}

/// Bytes per second for `bytes` over `elapsed`.
fn rate(bytes: u64, elapsed: Duration) -> u64 {
    let nanos = elapsed.as_nanos().max(1);
    u64::try_from(u128::from(bytes) * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
}

/// Bytes a rate of `per_second` delivers in `elapsed`.
fn expected_bytes(per_second: u64, elapsed: Duration) -> u64 {
    u64::try_from(u128::from(per_second) * elapsed.as_nanos() / 1_000_000_000).unwrap_or(u64::MAX)
}

impl Controller for DeliveryRate {
    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &quinn_proto::RttEstimator,
    ) {
        self.acked(now, sent, bytes, app_limited, rtt.min());
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        _in_flight: u64,
        _app_limited: bool,
        _largest_packet_num_acked: Option<u64>,
    ) {
        self.batch_done(now);
    }

    fn on_congestion_event(
        &mut self,
        _now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.lost(sent, lost_bytes, is_persistent_congestion);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = u64::from(new_mtu);
        self.window = self.window.max(self.min_window());
    }

    fn window(&self) -> u64 {
        self.window
    }

    fn metrics(&self) -> ControllerMetrics {
        let mut metrics = ControllerMetrics::default();
        metrics.congestion_window = self.window;
        metrics.pacing_rate = Some(self.bandwidth().saturating_mul(8));
        metrics
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        self.initial_window
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    const MTU: u16 = 1200;
    const PACKET: u64 = MTU as u64;

    /// A bottleneck of `rate` bytes per second with a FIFO of `buffer`
    /// bytes, a fixed round trip, and random loss after the queue.
    #[derive(Clone, Copy)]
    struct Link {
        rate: u64,
        rtt: Duration,
        buffer: u64,
        loss_per_mille: u64,
    }

    impl Link {
        /// 100 Mbit/s, 50 ms, a buffer of one bandwidth-delay product.
        fn typical(loss_per_mille: u64) -> Self {
            let rate = 12_500_000;
            let rtt = Duration::from_millis(50);
            Self {
                rate,
                rtt,
                buffer: expected_bytes(rate, rtt),
                loss_per_mille,
            }
        }

        fn product(&self) -> u64 {
            expected_bytes(self.rate, self.rtt)
        }
    }

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Event {
        Ack { sent: Duration },
        Lost { sent: Duration },
    }

    #[derive(Debug, Default)]
    struct Outcome {
        /// Bytes acknowledged in the second half of the run.
        late_delivered: u64,
        sent: u64,
        lost: u64,
        /// Bytes sent, and lost, in the second half.
        late_sent: u64,
        late_lost: u64,
        /// Largest round trip measured in the second half.
        late_max_rtt: Duration,
        /// Mean window over the acknowledgements of the second half.
        late_mean_window: u64,
    }

    /// Runs `controller` against `link` for `length` of simulated time.
    /// Every packet is acknowledged on its own; a loss is noticed an eighth
    /// of a round trip after its acknowledgement would have come (quinn's
    /// time threshold). Deterministic for a given `seed`.
    fn simulate(controller: &mut DeliveryRate, link: Link, length: Duration, seed: u64) -> Outcome {
        let start = Instant::now();
        let half = length / 2;
        let mut random = seed | 1;
        let mut next_random = move || {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            random
        };
        let mut events: BinaryHeap<Reverse<(Duration, u64, Event)>> = BinaryHeap::new();
        let mut sequence = 0u64;
        let mut now = Duration::ZERO;
        let mut queue_free_at = Duration::ZERO;
        let mut in_flight = 0u64;
        let mut min_rtt = Duration::MAX;
        let mut outcome = Outcome::default();
        let mut window_sum = 0u128;
        let mut window_samples = 0u128;
        let packet_time = Duration::from_nanos(PACKET * 1_000_000_000 / link.rate);
        let mut steps = 0u64;
        while now < length {
            steps += 1;
            assert!(steps < 50_000_000, "simulation did not end");
            while in_flight + PACKET <= controller.window() {
                in_flight += PACKET;
                outcome.sent += PACKET;
                if now >= half {
                    outcome.late_sent += PACKET;
                }
                sequence += 1;
                let waiting = queue_free_at.saturating_sub(now);
                let queued = expected_bytes(link.rate, waiting);
                let event = if queued + PACKET > link.buffer {
                    (now + link.rtt + link.rtt / 8, Event::Lost { sent: now })
                } else {
                    queue_free_at = queue_free_at.max(now) + packet_time;
                    if next_random() % 1000 < link.loss_per_mille {
                        (
                            queue_free_at + link.rtt + link.rtt / 8,
                            Event::Lost { sent: now },
                        )
                    } else {
                        (queue_free_at + link.rtt, Event::Ack { sent: now })
                    }
                };
                events.push(Reverse((event.0, sequence, event.1)));
            }
            let Some(Reverse((at, _, event))) = events.pop() else {
                break;
            };
            now = at;
            in_flight -= PACKET;
            match event {
                Event::Ack { sent } => {
                    let rtt = now - sent;
                    min_rtt = min_rtt.min(rtt);
                    controller.acked(start + now, start + sent, PACKET, false, min_rtt);
                    controller.batch_done(start + now);
                    if now >= half {
                        outcome.late_delivered += PACKET;
                        outcome.late_max_rtt = outcome.late_max_rtt.max(rtt);
                        window_sum += u128::from(controller.window());
                        window_samples += 1;
                    }
                }
                Event::Lost { sent } => {
                    outcome.lost += PACKET;
                    if now >= half {
                        outcome.late_lost += PACKET;
                    }
                    controller.lost(start + sent, PACKET, false);
                }
            }
        }
        outcome.late_mean_window = (window_sum / window_samples.max(1)) as u64;
        outcome
    }

    fn utilisation(link: Link, outcome: &Outcome, length: Duration) -> f64 {
        outcome.late_delivered as f64 / (link.rate as f64 * (length / 2).as_secs_f64())
    }

    fn fresh() -> DeliveryRate {
        DeliveryRate::new(INITIAL_WINDOW_PACKETS * BASE_DATAGRAM, MTU, Instant::now())
    }

    #[test]
    fn one_percent_random_loss_keeps_the_path_full() {
        let link = Link::typical(10);
        let length = Duration::from_secs(20);
        let mut controller = fresh();
        let outcome = simulate(&mut controller, link, length, 7);
        let used = utilisation(link, &outcome, length);
        assert!(used > 0.9, "used {used:.3} of the path: {outcome:?}");
        assert!(!controller.in_startup());
    }

    #[test]
    fn one_percent_random_loss_does_not_collapse_a_small_pipe() {
        // 2 Mbit/s and 50 ms: ten packets per round trip, so most losses
        // are alone in their round and must not each cut the window.
        let rate = 250_000;
        let rtt = Duration::from_millis(50);
        let link = Link {
            rate,
            rtt,
            buffer: expected_bytes(rate, rtt),
            loss_per_mille: 10,
        };
        let length = Duration::from_secs(60);
        let outcome = simulate(&mut fresh(), link, length, 13);
        let used = utilisation(link, &outcome, length);
        assert!(used > 0.85, "used {used:.3}: {outcome:?}");
    }

    #[test]
    fn a_clean_path_is_filled_and_the_queue_stays_bounded() {
        // A buffer of four products: a loss-based sender would fill it and
        // quintuple the round trip; this one keeps at most one product queued.
        let mut link = Link::typical(0);
        link.buffer = 4 * link.product();
        let length = Duration::from_secs(10);
        let mut controller = fresh();
        let outcome = simulate(&mut controller, link, length, 1);
        let used = utilisation(link, &outcome, length);
        assert!(used > 0.95, "used {used:.3}: {outcome:?}");
        assert!(
            outcome.late_max_rtt <= link.rtt * 21 / 10,
            "round trip grew to {:?}: {outcome:?}",
            outcome.late_max_rtt
        );
        assert_eq!(outcome.lost, 0);
        let product = link.product();
        assert!(
            (product * 3 / 2..=product * 3).contains(&outcome.late_mean_window),
            "window {} for a product of {product}",
            outcome.late_mean_window
        );
        let bandwidth = controller.bandwidth();
        assert!(
            (link.rate * 9 / 10..=link.rate * 11 / 10).contains(&bandwidth),
            "estimated {bandwidth} B/s for {} B/s",
            link.rate
        );
    }

    #[test]
    fn loss_above_the_threshold_is_taken_as_congestion() {
        let length = Duration::from_secs(20);
        let clean = simulate(&mut fresh(), Link::typical(0), length, 3);
        let lossy_link = Link::typical(60);
        let lossy = simulate(&mut fresh(), lossy_link, length, 3);
        assert!(
            lossy.late_mean_window < clean.late_mean_window / 4,
            "6 % loss kept a window of {} against {} without loss",
            lossy.late_mean_window,
            clean.late_mean_window
        );
    }

    #[test]
    fn a_shallow_buffer_is_not_overrun_round_after_round() {
        // Congestive loss: a buffer of a tenth of the product overflows as
        // soon as more than 1.1 products are in flight.
        let mut link = Link::typical(0);
        link.buffer = link.product() / 10;
        let length = Duration::from_secs(20);
        let mut controller = fresh();
        let outcome = simulate(&mut controller, link, length, 5);
        // Startup overshoots once; what matters is the steady state.
        let loss = outcome.late_lost as f64 / outcome.late_sent as f64;
        let used = utilisation(link, &outcome, length);
        // A sender that ignored this loss would lose (2 - 1.1) / 2 = 45 % of
        // what it sends at twice the product; this one hovers near its 2 %
        // threshold.
        assert!(loss < 0.03, "lost {:.2} % of what was sent", loss * 100.0);
        assert!(used > 0.6, "used {used:.3}: {outcome:?}");
    }

    #[test]
    fn persistent_congestion_starts_over_from_the_minimum_window() {
        let link = Link::typical(0);
        let mut controller = fresh();
        simulate(&mut controller, link, Duration::from_secs(3), 9);
        assert!(!controller.in_startup());
        controller.lost(Instant::now() + Duration::from_secs(60), PACKET, true);
        assert_eq!(controller.window(), MIN_WINDOW_PACKETS * PACKET);
        assert!(controller.in_startup());
        assert_eq!(controller.bandwidth(), 0);
    }

    #[test]
    fn idle_rounds_do_not_erase_the_bandwidth_estimate() {
        let link = Link::typical(0);
        let mut controller = fresh();
        simulate(&mut controller, link, Duration::from_secs(3), 11);
        let estimate = controller.bandwidth();
        let window = controller.window();
        let mut now = Instant::now() + Duration::from_secs(10);
        for _ in 0..50 {
            let sent = now;
            now += link.rtt;
            controller.acked(now, sent, PACKET, true, link.rtt);
            controller.batch_done(now);
        }
        assert_eq!(controller.bandwidth(), estimate);
        // The ACK-burst allowance may lapse; twice the product stays.
        let floor = 2 * expected_bytes(estimate, link.rtt);
        assert!(
            (floor..=window).contains(&controller.window()),
            "window {} (was {window}, floor {floor})",
            controller.window()
        );
    }

    #[test]
    fn the_round_filter_keeps_the_largest_of_its_last_slots() {
        let mut filter = RoundMax::new();
        filter.record(5);
        filter.advance();
        filter.record(3);
        assert_eq!(filter.max(), 5);
        for _ in 1..FILTER_ROUNDS {
            filter.advance();
        }
        assert_eq!(filter.max(), 3, "the 5 has aged out");
        filter.advance();
        assert_eq!(filter.max(), 0, "the 3 has aged out too");
        filter.record(9);
        filter.reset();
        assert_eq!(filter.max(), 0);
    }

    #[test]
    fn mtu_changes_keep_the_window_above_its_floor() {
        let mut controller = DeliveryRate::new(1, MTU, Instant::now());
        assert_eq!(controller.window(), MIN_WINDOW_PACKETS * PACKET);
        controller.on_mtu_update(9000);
        assert_eq!(controller.window(), MIN_WINDOW_PACKETS * 9000);
    }
}
