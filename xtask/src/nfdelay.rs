//! `cargo xtask nfdelay` (hidden): a userspace stand-in for `tc netem delay
//! D loss P`, for kernels built without netem.
//!
//! An iptables rule (`-t raw -A PREROUTING -i IF -j NFQUEUE --queue-num N`)
//! hands every packet arriving on an interface to netfilter queue `N`, where
//! this program takes it: with probability `--loss` it is dropped at once,
//! otherwise it is held for `--delay-ms` and then let through (verdict
//! ACCEPT). The delay is constant, so packets leave in the order they came.
//! Only metadata is copied from the kernel, never the payload.
//!
//! Bounds: at most `--max-pending` packets are held (beyond that a packet is
//! dropped and counted as overflow; the kernel's queue is capped at the same
//! length), and the program ends by itself after `--max-secs`. It ends early
//! on SIGTERM or Ctrl-C, lets the packets it still holds through, and prints
//! its counters as its last line, together with the kernel's own drop
//! counters for the queue.
//!
//! The nfq crate does not expose its netlink socket, which this program
//! needs twice: to enlarge its receive buffer (the default holds a few
//! hundred packets; when it is full the kernel drops packets, which would
//! add loss nobody asked for) and to sleep in poll() until a packet comes or
//! one is due. So it finds the socket that `Queue::open` added among its
//! file descriptors (`/proc/self/fd`) and takes a duplicate of it with
//! `pidfd_getfd` on itself, which needs no unsafe code.

use std::collections::{BTreeSet, VecDeque};
use std::io::{ErrorKind, Write as _};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use nfq::{Message, Queue, Verdict};

use crate::data::Generator;
use crate::process;

/// Longest sleep while nothing is held (to notice SIGTERM and the end).
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Receive buffer asked for the queue's socket (SO_RCVBUFFORCE, as root).
const SOCKET_BUFFER: usize = 64 << 20;

/// Most packets taken from the kernel in one pass before due ones are released.
const BATCH: usize = 4096;

/// Arguments of `cargo xtask nfdelay`.
#[derive(Debug, Args)]
pub struct NfdelayArgs {
    /// The netfilter queue to serve.
    #[arg(long, default_value_t = 0)]
    queue: u16,
    /// How long each packet is held, in milliseconds.
    #[arg(long, default_value_t = 25.0)]
    delay_ms: f64,
    /// Probability that a packet is dropped (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Seed of the drop decisions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most packets held at once.
    #[arg(long, default_value_t = 20_000)]
    max_pending: u32,
    /// The program ends by itself after this many seconds.
    #[arg(long, default_value_t = 7200)]
    max_secs: u64,
}

/// What happened to the packets.
#[derive(Debug, Default)]
struct Counters {
    seen: u64,
    lost: u64,
    overflow: u64,
    passed: u64,
    most_pending: usize,
}

/// Runs the impairer until its time is up or it is asked to stop.
pub fn run(arguments: &NfdelayArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&arguments.loss) {
        bail!("--loss must be between 0 and 1");
    }
    if !(0.0..=10_000.0).contains(&arguments.delay_ms) {
        bail!("--delay-ms must be between 0 and 10000");
    }
    let delay = Duration::from_secs_f64(arguments.delay_ms / 1000.0);
    let number = arguments.queue;
    let before = socket_descriptors();
    let mut queue = Queue::open().context("opening a netfilter queue socket (needs root)")?;
    let socket = queue_socket(&before)?;
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, SOCKET_BUFFER).is_err() {
        rustix::net::sockopt::set_socket_recv_buffer_size(&socket, SOCKET_BUFFER)
            .context("enlarging the queue's receive buffer")?;
    }
    queue
        .bind(number)
        .with_context(|| format!("binding netfilter queue {number}"))?;
    queue
        .set_copy_range(number, 0)
        .context("asking for packet metadata only")?;
    queue
        .set_queue_max_len(number, arguments.max_pending)
        .context("capping the kernel queue")?;
    queue
        .set_fail_open(number, false)
        .context("setting the queue to drop when full")?;
    queue.set_nonblocking(true);
    println!(
        "nfdelay ready: queue {number}, delay {} ms, loss {}, seed {}",
        arguments.delay_ms, arguments.loss, arguments.seed
    );
    let _ = std::io::stdout().flush();

    let started = Instant::now();
    let end = started + Duration::from_secs(arguments.max_secs);
    let mut random = Generator::new(arguments.seed);
    let mut pending: VecDeque<(Instant, Message)> = VecDeque::new();
    let mut counters = Counters::default();
    let limit = usize::try_from(arguments.max_pending).unwrap_or(usize::MAX);
    let result = (|| -> anyhow::Result<()> {
        while !process::interrupted() && Instant::now() < end {
            for _ in 0..BATCH {
                let mut message = match queue.recv() {
                    Ok(message) => message,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                    Err(error) => return Err(error).context("reading the netfilter queue"),
                };
                counters.seen += 1;
                let arrived = Instant::now();
                let drop = if random.chance(arguments.loss) {
                    counters.lost += 1;
                    true
                } else if pending.len() >= limit {
                    counters.overflow += 1;
                    true
                } else {
                    false
                };
                if drop {
                    message.set_verdict(Verdict::Drop);
                    queue.verdict(message).context("dropping a packet")?;
                } else {
                    pending.push_back((arrived + delay, message));
                    counters.most_pending = counters.most_pending.max(pending.len());
                }
            }
            let now = Instant::now();
            while pending.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, message)) = pending.pop_front() {
                    accept(&mut queue, message)?;
                    counters.passed += 1;
                }
            }
            let wait = pending.front().map_or(IDLE_WAIT, |(due, _)| {
                due.saturating_duration_since(now).min(IDLE_WAIT)
            });
            wait_readable(&socket, wait)?;
        }
        Ok(())
    })();
    // Whatever ended the loop, let through what is still held.
    while let Some((_, message)) = pending.pop_front() {
        if accept(&mut queue, message).is_ok() {
            counters.passed += 1;
        }
    }
    let percent = |part: u64| part as f64 * 100.0 / counters.seen.max(1) as f64;
    println!(
        "nfdelay exit after {:.1} s: queue {number}: {} packets, {} dropped at random ({:.3} %), \
         {} dropped as overflow, {} passed after {} ms, at most {} held at once; kernel: {}",
        started.elapsed().as_secs_f64(),
        counters.seen,
        counters.lost,
        percent(counters.lost),
        counters.overflow,
        counters.passed,
        arguments.delay_ms,
        counters.most_pending,
        kernel_drops(number),
    );
    let _ = std::io::stdout().flush();
    result
}

/// The socket descriptors of this process (`/proc/self/fd`).
fn socket_descriptors() -> BTreeSet<i32> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            std::fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// A duplicate of the one socket descriptor that is new since `before`.
fn queue_socket(before: &BTreeSet<i32>) -> anyhow::Result<OwnedFd> {
    let new: Vec<i32> = socket_descriptors().difference(before).copied().collect();
    let [descriptor] = new[..] else {
        bail!(
            "cannot tell the queue's socket among {} new sockets",
            new.len()
        );
    };
    let own = rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )
    .context("pidfd_open on this process")?;
    rustix::process::pidfd_getfd(&own, descriptor, rustix::process::PidfdGetfdFlags::empty())
        .context("duplicating the queue's socket (pidfd_getfd)")
}

/// Sleeps until `socket` has something to read or `wait` has passed.
fn wait_readable(socket: &OwnedFd, wait: Duration) -> anyhow::Result<()> {
    let timeout = rustix::event::Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let mut descriptors = [rustix::event::PollFd::new(
        socket,
        rustix::event::PollFlags::IN,
    )];
    match rustix::event::poll(&mut descriptors, Some(&timeout)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(error) => Err(error).context("waiting for the queue"),
    }
}

fn accept(queue: &mut Queue, mut message: Message) -> anyhow::Result<()> {
    message.set_verdict(Verdict::Accept);
    queue.verdict(message).context("releasing a packet")
}

/// The kernel's drop counters of queue `number` in this network namespace
/// (`/proc/net/netfilter/nfnetlink_queue`: queue full, socket buffer full).
fn kernel_drops(number: u16) -> String {
    let text = std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue").unwrap_or_default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&number.to_string().as_str()) && fields.len() >= 7 {
            return format!(
                "{} dropped as queue full, {} as socket buffer full",
                fields[5], fields[6]
            );
        }
    }
    "no counters".into()
}
