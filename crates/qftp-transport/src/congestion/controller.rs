//! The delivery-rate controller: its phases and its answers to loss, ECN
//! marks and queueing delay (the model is described in [`super`]).

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, ControllerMetrics};

use super::min_rtt::MinRtt;
use super::rate::{expected_bytes, percent_of, rate};
use super::round_max::RoundMax;

/// Loss above this share of a round's bytes (in thousandths) is congestion...
pub const LOSS_THRESHOLD_PER_MILLE: u64 = 30;
/// ...and only when the round lost at least this many packets.
pub const MIN_LOST_PACKETS: u64 = 3;
/// A round whose smallest round trip exceeds the minimum by more than this
/// share of it (in percent) found a standing queue: congestion...
pub const QUEUE_DELAY_PERCENT: u64 = 90;
/// A loss in a round whose smallest round trip exceeds the minimum by more
/// than this share (in percent) is an overflowing buffer, not chance...
pub const LOSS_QUEUE_PERCENT: u64 = 50;
/// ...provided the excess is also above this (timer and ACK-delay noise).
const QUEUE_DELAY_FLOOR: Duration = Duration::from_millis(2);
/// A queue that outlives this many rounds after the window was cut is not
/// this flow's: the minimum round trip is measured afresh.
const QUEUE_PERSIST_ROUNDS: u32 = 4;
/// The window after congestion, in percent of the window before, by signal.
const LOSS_CUT_PERCENT: u64 = 70;
const ECN_CUT_PERCENT: u64 = 80;
const QUEUE_CUT_PERCENT: u64 = 85;
/// The window during a minimum-RTT probe, in percent of the product...
const PROBE_RTT_PERCENT: u64 = 50;
/// ...held for at least this long and until a packet sent in the probe is
/// acknowledged.
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// The additive increase is a datagram per round, and one more for every
/// this many rounds since the last cut...
const INCREASE_ROUNDS: u64 = 32;
/// ...up to this many datagrams per round.
const MAX_INCREASE_PACKETS: u64 = 1024;
/// The window never drops below this many datagrams.
const MIN_WINDOW_PACKETS: u64 = 4;
/// Startup ends when bandwidth grew less than this factor (in quarters:
/// 5/4) for [`FULL_PIPE_ROUNDS`] rounds in a row.
const FULL_PIPE_ROUNDS: u32 = 3;
/// Startup keeps at most this many bandwidth-delay products in flight.
const STARTUP_GAIN: u64 = 3;
/// Steady state keeps at most this many products in flight (plus the ACK
/// burst allowance).
const STEADY_GAIN: u64 = 2;
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

/// A minimum-RTT probe under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbeRtt {
    entered: Instant,
    /// The window to return to.
    prior_window: u64,
    /// The smallest round trip of a packet sent during the probe.
    min_rtt: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Startup,
    Steady,
    ProbeRtt(ProbeRtt),
}

/// See the module documentation of [`super`].
#[derive(Debug, Clone)]
pub struct DeliveryRate {
    mtu: u64,
    initial_window: u64,
    window: u64,
    mode: Mode,
    /// The smallest round trip of the last [`super::MIN_RTT_WINDOW`].
    min_rtt: MinRtt,

    /// When the current round started (an acknowledgement time).
    round_started: Instant,
    acked_in_round: u64,
    lost_in_round: u64,
    /// Whether an ECN congestion mark arrived in this round.
    marked_in_round: bool,
    /// Whether any acknowledgement of this round came while the sender had
    /// nothing to send (its rate sample then understates the path).
    app_limited_in_round: bool,
    /// Whether a minimum-RTT probe held the window down in this round (its
    /// rate sample then says nothing about the path).
    probed_in_round: bool,
    /// The smallest round trip in this round of a packet sent after the
    /// last answer to congestion: the queue that persisted all round.
    round_min_rtt: Option<Duration>,

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

    /// Losses and marks of packets sent before this were answered already.
    answered_until: Option<Instant>,
    /// Rounds since the window was last cut; the additive increase grows
    /// with it.
    rounds_since_cut: u64,
    /// Acknowledged bytes times increase not yet turned into window.
    increase_credit: u128,
    /// Rounds in a row that found a standing queue, and the window before
    /// the first of them was cut.
    queued_rounds: u32,
    window_before_queue: u64,
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
            min_rtt: MinRtt::new(now),
            round_started: now,
            acked_in_round: 0,
            lost_in_round: 0,
            marked_in_round: false,
            app_limited_in_round: false,
            probed_in_round: false,
            round_min_rtt: None,
            bandwidth: RoundMax::new(),
            full_bandwidth: 0,
            rounds_without_growth: 0,
            burst_started: None,
            burst_bytes: 0,
            acked_in_batch: 0,
            extra_acked: RoundMax::new(),
            answered_until: None,
            rounds_since_cut: 0,
            increase_credit: 0,
            queued_rounds: 0,
            window_before_queue: 0,
        }
    }

    fn min_window(&self) -> u64 {
        MIN_WINDOW_PACKETS * self.mtu
    }

    /// The estimated bottleneck bandwidth in bytes per second.
    pub fn bandwidth(&self) -> u64 {
        self.bandwidth.max()
    }

    /// The smallest round trip of the last [`super::MIN_RTT_WINDOW`].
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.get()
    }

    /// Whether the controller is still in startup.
    pub fn in_startup(&self) -> bool {
        self.mode == Mode::Startup
    }

    /// Whether a minimum-RTT probe holds the window down.
    pub fn probing_min_rtt(&self) -> bool {
        matches!(self.mode, Mode::ProbeRtt(_))
    }

    /// One acknowledged packet of `bytes`, sent at `sent`.
    pub fn acked(&mut self, now: Instant, sent: Instant, bytes: u64, app_limited: bool) {
        let sample = now.saturating_duration_since(sent);
        if !sample.is_zero() {
            self.min_rtt.update(sample, now);
            if self.answered_until.is_none_or(|answered| sent > answered) {
                self.round_min_rtt = Some(self.round_min_rtt.map_or(sample, |old| old.min(sample)));
            }
            if let Mode::ProbeRtt(probe) = &mut self.mode {
                if sent >= probe.entered {
                    probe.min_rtt = Some(probe.min_rtt.map_or(sample, |old| old.min(sample)));
                }
            }
        }
        self.acked_in_round += bytes;
        self.acked_in_batch += bytes;
        self.app_limited_in_round |= app_limited;
        match self.mode {
            Mode::Startup if !app_limited => {
                let cap = self.startup_cap();
                if self.window < cap {
                    self.window = self.window.saturating_add(bytes).min(cap);
                }
            }
            Mode::Steady if !app_limited => self.grow(bytes),
            _ => {}
        }
        if sent >= self.round_started {
            self.end_round(now);
        }
        match self.mode {
            Mode::ProbeRtt(probe) => {
                if now >= probe.entered + PROBE_RTT_TIME {
                    if let Some(fresh) = probe.min_rtt {
                        self.leave_probe_rtt(now, probe.prior_window, fresh);
                    }
                }
            }
            Mode::Steady => {
                self.window = self.window.min(self.steady_cap());
                if self.min_rtt.expired(now) {
                    self.enter_probe_rtt(now, self.window);
                }
            }
            Mode::Startup => {}
        }
        self.window = self.window.max(self.min_window());
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
            let extra = (self.burst_bytes - expected).min(self.product());
            self.extra_acked.record(extra);
        }
    }

    /// Packets of `bytes` were declared lost, or (zero bytes) an ECN
    /// congestion mark arrived, the latest of them sent at `sent`;
    /// `persistent` when everything sent for a while was lost.
    pub fn lost(&mut self, sent: Instant, bytes: u64, persistent: bool) {
        // Losses and marks of packets sent before the last cut were
        // answered by it.
        if self.answered_until.is_none_or(|answered| sent > answered) {
            if bytes == 0 {
                self.marked_in_round = true;
            } else {
                self.lost_in_round += bytes;
            }
        }
        if persistent {
            self.window = self.min_window();
            self.mode = Mode::Startup;
            self.bandwidth.reset();
            self.extra_acked.reset();
            self.full_bandwidth = 0;
            self.rounds_without_growth = 0;
            self.burst_started = None;
            self.queued_rounds = 0;
        }
    }

    /// Closes the current round: takes its rate sample and judges it.
    fn end_round(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.round_started);
        let acked = std::mem::take(&mut self.acked_in_round);
        let lost = std::mem::take(&mut self.lost_in_round);
        let marked = std::mem::take(&mut self.marked_in_round);
        let app_limited = std::mem::take(&mut self.app_limited_in_round);
        let probing = self.probing_min_rtt();
        let probed = std::mem::replace(&mut self.probed_in_round, probing);
        let round_min_rtt = self.round_min_rtt.take();
        self.round_started = now;
        self.rounds_since_cut = self.rounds_since_cut.saturating_add(1);
        self.extra_acked.advance();

        if !elapsed.is_zero() && !probed {
            let sample = rate(acked, elapsed);
            if !app_limited || sample > self.bandwidth() {
                self.bandwidth.advance();
                self.bandwidth.record(sample);
            }
        }
        if self.probing_min_rtt() {
            return;
        }

        // A few losses in a small round say little: at 1 % random loss a
        // round of 50 packets loses one about a third of the time, and
        // treating that as congestion is how loss-based controllers collapse.
        let lossy = lost >= MIN_LOST_PACKETS * self.mtu
            && lost.saturating_mul(1000) > (acked + lost).saturating_mul(LOSS_THRESHOLD_PER_MILLE)
            && !(self.mode == Mode::Startup && self.bandwidth_grew());
        // With little in flight the peer delays its acknowledgements, which
        // would look like a queue: only rounds that kept the pipe busy say
        // anything about one.
        let queued = self.mode == Mode::Steady
            && !app_limited
            && round_min_rtt
                .is_some_and(|sample| sample > self.queue_threshold(QUEUE_DELAY_PERCENT));
        let overflowed = lost > 0
            && self.mode == Mode::Steady
            && !app_limited
            && round_min_rtt
                .is_some_and(|sample| sample > self.queue_threshold(LOSS_QUEUE_PERCENT));
        if lossy {
            self.cut(now, LOSS_CUT_PERCENT);
        } else if marked {
            self.cut(now, ECN_CUT_PERCENT);
        } else if overflowed {
            // Never below one product: chance losses can only drain the
            // queue this flow built itself, not empty the pipe.
            let floor = self.product();
            self.cut(now, LOSS_CUT_PERCENT);
            self.window = self.window.max(floor);
        }
        if queued {
            self.queued_rounds += 1;
            if self.queued_rounds == 1 {
                self.window_before_queue = self.window;
                if !lossy && !marked && !overflowed {
                    self.cut(now, QUEUE_CUT_PERCENT);
                }
            } else if self.queued_rounds > QUEUE_PERSIST_ROUNDS {
                // The cut did not drain the queue: another sender's, or a
                // longer path. Measure the minimum afresh, then go back.
                self.enter_probe_rtt(now, self.window_before_queue.max(self.window));
                return;
            }
        } else if round_min_rtt.is_some() {
            self.queued_rounds = 0;
        }

        if self.mode == Mode::Startup && !app_limited {
            let bandwidth = self.bandwidth();
            if self.bandwidth_grew() {
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

    /// Whether the bandwidth estimate grew by a quarter since startup last
    /// saw it grow: while it does, the pipe is not full and loss is chance.
    fn bandwidth_grew(&self) -> bool {
        self.bandwidth() >= self.full_bandwidth.saturating_add(self.full_bandwidth / 4)
    }

    /// Answers congestion: the window drops to `percent` of itself, startup
    /// ends, and what was sent before now is not judged again.
    fn cut(&mut self, now: Instant, percent: u64) {
        self.window = percent_of(self.window, percent).max(self.min_window());
        self.answered_until = Some(now);
        self.rounds_since_cut = 0;
        self.increase_credit = 0;
        if self.mode == Mode::Startup {
            self.mode = Mode::Steady;
        }
    }

    fn enter_probe_rtt(&mut self, now: Instant, prior_window: u64) {
        self.mode = Mode::ProbeRtt(ProbeRtt {
            entered: now,
            prior_window,
            min_rtt: None,
        });
        self.probed_in_round = true;
        self.window = percent_of(self.product(), PROBE_RTT_PERCENT).max(self.min_window());
    }

    fn leave_probe_rtt(&mut self, now: Instant, prior_window: u64, fresh: Duration) {
        self.min_rtt.restart(fresh, now);
        self.mode = Mode::Steady;
        self.queued_rounds = 0;
        self.answered_until = Some(now);
        self.window = prior_window.min(self.steady_cap());
    }

    /// How far startup may grow the window: [`STARTUP_GAIN`] times the
    /// bandwidth-delay product measured so far, which still lets the window
    /// double each round (the estimate trails the window by one round) but
    /// stops it running far past the pipe while three rounds confirm that
    /// the rate stopped growing.
    fn startup_cap(&self) -> u64 {
        if self.min_rtt.get().is_none() {
            return self.initial_window;
        }
        self.product()
            .saturating_mul(STARTUP_GAIN)
            .max(self.initial_window)
    }

    /// The estimated bandwidth-delay product: bandwidth × minimum RTT.
    fn product(&self) -> u64 {
        self.min_rtt
            .get()
            .map_or(0, |min_rtt| expected_bytes(self.bandwidth(), min_rtt))
    }

    /// [`STEADY_GAIN`] products plus the ACK burst allowance.
    fn steady_cap(&self) -> u64 {
        if self.min_rtt.get().is_none() {
            return self.window;
        }
        self.product()
            .saturating_mul(STEADY_GAIN)
            .saturating_add(self.extra_acked.max())
            .max(self.min_window())
    }

    /// The round trip above which a round found a queue of `percent` of
    /// the minimum round trip (at least [`QUEUE_DELAY_FLOOR`]).
    fn queue_threshold(&self, percent: u64) -> Duration {
        let min_rtt = self.min_rtt.get().unwrap_or(Duration::MAX);
        let excess = min_rtt.saturating_mul(u32::try_from(percent).unwrap_or(u32::MAX)) / 100;
        min_rtt.saturating_add(excess.max(QUEUE_DELAY_FLOOR))
    }

    /// In steady state the window regains one product by every byte
    /// acknowledged; above that it grows additively, by a datagram more in
    /// each round since the last cut.
    fn grow(&mut self, bytes: u64) {
        let product = self.product();
        if self.window < product {
            self.window = self.window.saturating_add(bytes).min(product);
            return;
        }
        let increase =
            (1 + self.rounds_since_cut / INCREASE_ROUNDS).min(MAX_INCREASE_PACKETS) * self.mtu;
        self.increase_credit += u128::from(bytes) * u128::from(increase);
        let window = u128::from(self.window.max(1));
        let grown = self.increase_credit / window;
        self.increase_credit -= grown * window;
        self.window = self
            .window
            .saturating_add(u64::try_from(grown).unwrap_or(u64::MAX));
    }
}

impl Controller for DeliveryRate {
    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        _rtt: &quinn_proto::RttEstimator,
    ) {
        self.acked(now, sent, bytes, app_limited);
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
