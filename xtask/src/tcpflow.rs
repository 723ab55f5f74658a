//! `cargo xtask tcpflow` (hidden): a plain TCP flow, the reference of the
//! bottleneck and fairness scenarios of the link bench.
//!
//! `tcpflow sink --listen ADDR` accepts connections and throws their bytes
//! away; every [`SAMPLE_INTERVAL`] it prints one line per open connection,
//! `tcpflow sample ID UNIX_MS BYTES` (bytes received so far, at that wall
//! clock time), and `tcpflow done ID UNIX_MS BYTES` when a connection ends.
//! Those lines are the measurement: bytes that arrived, not bytes handed to
//! a send buffer. `tcpflow send --to ADDR --bytes N` connects with the
//! congestion control asked for (Cubic by default, whatever the system's
//! default is), writes `N` zero bytes, closes its side and waits for the
//! sink to close. Both end by themselves after `--max-secs`.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::process;

/// How often the sink reports each connection's bytes.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Size of one read or write.
const CHUNK: usize = 256 << 10;

/// Arguments of `cargo xtask tcpflow`.
#[derive(Debug, Args)]
pub struct TcpflowArgs {
    /// Which end of the flow.
    #[command(subcommand)]
    role: Role,
}

/// The two ends of a flow.
#[derive(Debug, Subcommand)]
enum Role {
    /// Accept connections, discard their bytes, report them.
    Sink {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// End after this many seconds.
        #[arg(long, default_value_t = 3600)]
        max_secs: u64,
    },
    /// Send zero bytes to a sink.
    Send {
        /// The sink's address.
        #[arg(long)]
        to: SocketAddr,
        /// Bytes to send.
        #[arg(long)]
        bytes: u64,
        /// The TCP congestion control of the connection.
        #[arg(long, default_value = "cubic")]
        congestion: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        max_secs: u64,
    },
}

/// Runs one end of the flow.
pub fn run(arguments: &TcpflowArgs) -> anyhow::Result<()> {
    match &arguments.role {
        Role::Sink { listen, max_secs } => sink(*listen, Duration::from_secs(*max_secs)),
        Role::Send {
            to,
            bytes,
            congestion,
            max_secs,
        } => send(*to, *bytes, congestion, Duration::from_secs(*max_secs)),
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// One accepted connection as the reporter sees it.
struct Connection {
    id: u64,
    bytes: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
}

/// The sink: an accepting thread, a reading thread per connection, and
/// this thread reporting every connection's bytes until the end.
fn sink(listen: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let (sender, receiver) = std::sync::mpsc::channel::<Connection>();
    std::thread::spawn(move || {
        for (id, stream) in (1u64..).zip(listener.incoming()) {
            let Ok(mut stream) = stream else { continue };
            let bytes = Arc::new(AtomicU64::new(0));
            let done = Arc::new(AtomicBool::new(false));
            let connection = Connection {
                id,
                bytes: Arc::clone(&bytes),
                done: Arc::clone(&done),
            };
            if sender.send(connection).is_err() {
                return;
            }
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; CHUNK];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(read) => {
                            bytes.fetch_add(read as u64, Ordering::Relaxed);
                        }
                        Err(error) if error.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                done.store(true, Ordering::SeqCst);
            });
        }
    });
    println!("tcpflow ready {listen}");
    std::io::stdout().flush().context("writing to stdout")?;
    let deadline = Instant::now() + limit;
    let mut open: Vec<Connection> = Vec::new();
    while Instant::now() < deadline && !process::interrupted() {
        std::thread::sleep(SAMPLE_INTERVAL);
        open.extend(receiver.try_iter());
        let now = unix_ms();
        let mut out = std::io::stdout().lock();
        open.retain(|connection| {
            let bytes = connection.bytes.load(Ordering::Relaxed);
            if connection.done.load(Ordering::SeqCst) {
                let _ = writeln!(out, "tcpflow done {} {now} {bytes}", connection.id);
                false
            } else {
                let _ = writeln!(out, "tcpflow sample {} {now} {bytes}", connection.id);
                true
            }
        });
        out.flush().context("writing to stdout")?;
    }
    Ok(())
}

/// The sender: `bytes` zeros, then a clean close, within `limit`.
fn send(to: SocketAddr, bytes: u64, congestion: &str, limit: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(10))
        .with_context(|| format!("connecting to {to}"))?;
    rustix::net::sockopt::set_tcp_congestion(&stream, congestion)
        .with_context(|| format!("setting the congestion control {congestion}"))?;
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .context("setting a write timeout")?;
    let buffer = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < bytes {
        if start.elapsed() > limit {
            bail!("sent {sent} of {bytes} bytes in {} s", limit.as_secs());
        }
        process::check_interrupted()?;
        let length = (bytes - sent).min(CHUNK as u64) as usize;
        match stream.write(&buffer[..length]) {
            Ok(written) => sent += written as u64,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) => {}
            Err(error) => return Err(error).context("sending"),
        }
    }
    stream
        .shutdown(Shutdown::Write)
        .context("closing the sending side")?;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .context("setting a read timeout")?;
    let mut byte = [0u8; 1];
    loop {
        if start.elapsed() > limit {
            bail!("the sink did not close within {} s", limit.as_secs());
        }
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => bail!("the sink sent data"),
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) => {}
            Err(error) => return Err(error).context("waiting for the sink to close"),
        }
    }
    println!(
        "tcpflow sent {sent} bytes in {:.3} s ({congestion})",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
