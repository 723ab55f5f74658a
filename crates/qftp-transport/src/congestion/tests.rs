//! The controller against simulated links (see [`super::sim`]).

use std::time::{Duration, Instant};

use quinn::congestion::Controller;

use super::controller::DeliveryRate;
use super::min_rtt::MIN_RTT_WINDOW;
use super::rate::expected_bytes;
use super::sim::{Flow, FlowOutcome, Link, PACKET, Reno, jain_index, run};

const MTU: u16 = PACKET as u16;
/// The window [`fresh`] starts with (quinn's factory default).
const INITIAL_WINDOW: u64 = 200 * 1200;
const MIN_WINDOW: u64 = 4 * PACKET;

fn fresh() -> DeliveryRate {
    DeliveryRate::new(INITIAL_WINDOW, MTU, Instant::now())
}

/// `controller` alone on `link` for `length`.
fn simulate(controller: &mut DeliveryRate, link: Link, length: Duration, seed: u64) -> FlowOutcome {
    let mut flows = [Flow {
        sender: controller,
        start: Duration::ZERO,
    }];
    run(link, &mut flows, length, seed).remove(0)
}

/// The share of the link `outcome` used from `from` to `to`.
fn used_between(link: Link, outcome: &FlowOutcome, from: Duration, to: Duration) -> f64 {
    outcome.delivered_between(from, to) as f64 / (link.rate as f64 * (to - from).as_secs_f64())
}

fn utilisation(link: Link, outcome: &FlowOutcome, length: Duration) -> f64 {
    used_between(link, outcome, length / 2, length)
}

#[test]
fn one_percent_random_loss_keeps_the_path_full() {
    let link = Link::typical(10);
    let length = Duration::from_secs(20);
    let mut controller = fresh();
    let outcome = simulate(&mut controller, link, length, 7);
    let used = utilisation(link, &outcome, length);
    println!("1 % loss, 100 Mbit/s, 50 ms: used {used:.3}");
    assert!(used > 0.9, "used {used:.3} of the path: {outcome:?}");
    assert!(!controller.in_startup());
}

#[test]
fn two_percent_random_loss_keeps_a_long_path_full() {
    // The promise on lossy long links: 200 ms and 2 % loss.
    let link = Link {
        loss_per_mille: 20,
        ..Link::new(100, Duration::from_millis(200))
    };
    let length = Duration::from_secs(40);
    let outcome = simulate(&mut fresh(), link, length, 17);
    let used = utilisation(link, &outcome, length);
    println!("2 % loss, 100 Mbit/s, 200 ms: used {used:.3}");
    assert!(used > 0.9, "used {used:.3} of the path");
}

#[test]
fn two_percent_random_loss_keeps_the_typical_path_full() {
    let link = Link::typical(20);
    let length = Duration::from_secs(20);
    let outcome = simulate(&mut fresh(), link, length, 19);
    let used = utilisation(link, &outcome, length);
    println!("2 % loss, 100 Mbit/s, 50 ms: used {used:.3}");
    assert!(used > 0.9, "used {used:.3} of the path");
}

#[test]
fn one_percent_random_loss_does_not_collapse_a_small_pipe() {
    // 2 Mbit/s and 50 ms: ten packets per round trip, so most losses
    // are alone in their round and must not each cut the window.
    let link = Link {
        loss_per_mille: 10,
        ..Link::new(2, Duration::from_millis(50))
    };
    let length = Duration::from_secs(60);
    let outcome = simulate(&mut fresh(), link, length, 13);
    let used = utilisation(link, &outcome, length);
    println!("1 % loss, 2 Mbit/s, 50 ms: used {used:.3}");
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
    println!(
        "clean deep buffer: used {used:.3}, max rtt {:?}, mean window {:.2} products",
        outcome.late_max_rtt,
        outcome.late_mean_window as f64 / link.product() as f64
    );
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
fn a_stale_minimum_is_probed_at_half_the_product_not_four_packets() {
    // A clean path with a deep buffer: the flow keeps a standing queue, so
    // no sample refreshes the minimum and it expires every ten seconds.
    let mut link = Link::typical(0);
    link.buffer = 4 * link.product();
    let length = Duration::from_secs(24);
    let mut controller = fresh();
    let outcome = simulate(&mut controller, link, length, 31);
    let product = link.product();
    let used = utilisation(link, &outcome, length);
    println!(
        "min-RTT probe: smallest window {:.2} products, used {used:.3}, min rtt {:?}",
        outcome.late_min_window as f64 / product as f64,
        controller.min_rtt()
    );
    assert!(
        (product * 4 / 10..=product * 6 / 10).contains(&outcome.late_min_window),
        "smallest window {} for a product of {product}",
        outcome.late_min_window
    );
    assert!(used > 0.95, "used {used:.3}");
    let min_rtt = controller.min_rtt().expect("a minimum after a run");
    assert!(min_rtt < link.rtt * 11 / 10, "minimum {min_rtt:?}");
}

#[test]
fn loss_above_the_threshold_is_taken_as_congestion() {
    let length = Duration::from_secs(20);
    let clean = simulate(&mut fresh(), Link::typical(0), length, 3);
    let lossy = simulate(&mut fresh(), Link::typical(60), length, 3);
    println!(
        "6 % loss: mean window {} against {} without loss",
        lossy.late_mean_window, clean.late_mean_window
    );
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
    let outcome = simulate(&mut fresh(), link, length, 5);
    // Startup overshoots once; what matters is the steady state.
    let loss = outcome.late_lost as f64 / outcome.late_sent as f64;
    let used = utilisation(link, &outcome, length);
    println!("shallow buffer: lost {:.2} %, used {used:.3}", loss * 100.0);
    // A sender that ignored this loss would lose (2 - 1.1) / 2 = 45 % of
    // what it sends at twice the product; this one stays near its
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
    assert_eq!(controller.window(), MIN_WINDOW);
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
        controller.acked(now, sent, PACKET, true);
        controller.batch_done(now);
    }
    assert_eq!(controller.bandwidth(), estimate);
    // Idle acknowledgements neither grow the window nor shrink it below
    // one product.
    let floor = expected_bytes(estimate, link.rtt);
    assert!(
        (floor..=window).contains(&controller.window()),
        "window {} (was {window}, floor {floor})",
        controller.window()
    );
}

#[test]
fn delayed_acknowledgements_of_an_idle_sender_are_not_a_queue() {
    // With one packet in flight the peer acknowledges late; those round
    // trips say nothing about a queue and must not cut the window.
    let link = Link::typical(0);
    let mut controller = fresh();
    simulate(&mut controller, link, Duration::from_secs(3), 33);
    let window = controller.window();
    let mut now = Instant::now() + Duration::from_secs(10);
    for _ in 0..20 {
        let sent = now;
        now += link.rtt * 3;
        controller.acked(now, sent, PACKET, true);
        controller.batch_done(now);
    }
    assert_eq!(controller.window(), window);
    assert!(!controller.probing_min_rtt());
}

#[test]
fn mtu_changes_keep_the_window_above_its_floor() {
    let mut controller = DeliveryRate::new(1, MTU, Instant::now());
    assert_eq!(controller.window(), MIN_WINDOW);
    controller.on_mtu_update(9000);
    assert_eq!(controller.window(), 4 * 9000);
}

/// The shares of `outcomes` from `from` to `to`.
fn shares(outcomes: &[FlowOutcome], from: Duration, to: Duration) -> Vec<f64> {
    let delivered: Vec<f64> = outcomes
        .iter()
        .map(|outcome| outcome.delivered_between(from, to) as f64)
        .collect();
    let total: f64 = delivered.iter().sum();
    delivered
        .iter()
        .map(|bytes| bytes / total.max(1.0))
        .collect()
}

#[test]
fn two_flows_started_apart_converge_to_fair_shares() {
    // A buffer of one product, and a deep one of four, where neither flow
    // ever sees the path's minimum while the other keeps a queue.
    for buffer_products in [1, 4] {
        let mut link = Link::typical(0);
        link.buffer = buffer_products * link.product();
        let length = Duration::from_secs(60);
        let mut first = fresh();
        let mut second = fresh();
        let outcomes = run(
            link,
            &mut [
                Flow {
                    sender: &mut first,
                    start: Duration::ZERO,
                },
                Flow {
                    sender: &mut second,
                    start: Duration::from_secs(2),
                },
            ],
            length,
            21,
        );
        let late = shares(&outcomes, length / 2, length);
        let jain = jain_index(&late);
        let used: f64 = outcomes
            .iter()
            .map(|outcome| utilisation(link, outcome, length))
            .sum();
        let max_rtt = outcomes[0].late_max_rtt.max(outcomes[1].late_max_rtt);
        println!(
            "two flows, buffer of {buffer_products} products: shares {late:.3?}, \
             Jain {jain:.3}, used {used:.3}, max rtt {max_rtt:?}"
        );
        assert!(jain >= 0.95, "shares {late:?}, Jain index {jain:.3}");
        assert!(used > 0.9, "the two used {used:.3}");
    }
}

#[test]
fn a_reno_flow_gets_a_fair_share() {
    let link = Link::new(20, Duration::from_millis(40));
    let length = Duration::from_secs(60);
    let mut ours = fresh();
    let mut reno = Reno::new();
    let outcomes = run(
        link,
        &mut [
            Flow {
                sender: &mut ours,
                start: Duration::ZERO,
            },
            Flow {
                sender: &mut reno,
                start: Duration::from_secs(1),
            },
        ],
        length,
        23,
    );
    let late = shares(&outcomes, length / 2, length);
    let used: f64 = outcomes
        .iter()
        .map(|outcome| utilisation(link, outcome, length))
        .sum();
    println!("against Reno: our share {:.3}, used {used:.3}", late[0]);
    assert!(
        (0.35..=0.65).contains(&late[0]),
        "our share {:.3} against Reno",
        late[0]
    );
}

#[test]
fn a_longer_path_does_not_collapse_the_window() {
    let step = Duration::from_secs(10);
    let link = Link {
        rtt_step: Some((step, Duration::from_millis(100))),
        ..Link::new(100, Duration::from_millis(20))
    };
    let length = Duration::from_secs(40);
    let mut controller = fresh();
    let outcome = simulate(&mut controller, link, length, 25);
    let mut recovered = None;
    for second in 10..40 {
        let from = Duration::from_secs(second);
        let used = used_between(link, &outcome, from, from + Duration::from_secs(1));
        println!("longer path: second {second}: used {used:.3}");
        if recovered.is_none() && used > 0.8 {
            recovered = Some(second);
        }
    }
    let tail = used_between(link, &outcome, step * 3, length);
    println!(
        "longer path: recovered in second {recovered:?}, used {tail:.3} at the end, min rtt {:?}",
        controller.min_rtt()
    );
    // At the latest a few seconds after the old minimum expired.
    let deadline = (step + MIN_RTT_WINDOW).as_secs() + 3;
    assert!(
        recovered.is_some_and(|second| second <= deadline),
        "recovered in second {recovered:?}, not by {deadline}"
    );
    assert!(tail > 0.8, "used {tail:.3} of the longer path");
}

#[test]
fn ecn_marks_hold_the_queue_low() {
    let mut link = Link::typical(0);
    link.buffer = 4 * link.product();
    link.mark_above = Some(link.product() / 5);
    let length = Duration::from_secs(20);
    let outcome = simulate(&mut fresh(), link, length, 27);
    let used = utilisation(link, &outcome, length);
    println!(
        "ecn: used {used:.3}, mean rtt {:?}, max rtt {:?}, marked {} bytes",
        outcome.late_mean_rtt, outcome.late_max_rtt, outcome.marked
    );
    assert!(outcome.marked > 0);
    assert!(used > 0.9, "used {used:.3}");
    assert!(
        outcome.late_mean_rtt < link.rtt * 3 / 2,
        "mean round trip {:?} on a {:?} path",
        outcome.late_mean_rtt,
        link.rtt
    );
}

#[test]
fn neither_we_nor_reno_starve_on_other_links() {
    // The share depends on the link (Reno's sawtooth is shorter on small
    // products); what must hold everywhere is that neither side starves.
    for (megabits, millis) in [(10, 40), (20, 80), (100, 20)] {
        let link = Link::new(megabits, Duration::from_millis(millis));
        let length = Duration::from_secs(60);
        let mut ours = fresh();
        let mut reno = Reno::new();
        let outcomes = run(
            link,
            &mut [
                Flow {
                    sender: &mut ours,
                    start: Duration::ZERO,
                },
                Flow {
                    sender: &mut reno,
                    start: Duration::from_secs(1),
                },
            ],
            length,
            29,
        );
        let late = shares(&outcomes, length / 2, length);
        println!(
            "against Reno, {megabits} Mbit/s, {millis} ms: our share {:.3}",
            late[0]
        );
        assert!(
            (0.15..=0.85).contains(&late[0]),
            "our share {:.3} against Reno on {megabits} Mbit/s, {millis} ms",
            late[0]
        );
    }
}
