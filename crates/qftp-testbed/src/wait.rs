//! Bounded waiting for a condition.

use std::time::{Duration, Instant};

/// How long a server may take to become ready on a loaded machine.
pub const READY_BOUND: Duration = Duration::from_secs(90);

/// What one look at a starting server found.
#[derive(Debug)]
pub enum Poll<T> {
    /// Ready, with its value.
    Ready(T),
    /// Not yet.
    Pending,
}

/// Calls `check` until it is ready, fails, or `bound` has passed (then
/// `None`). Between looks it pauses briefly: this is a poll of another
/// process, which offers nothing to wait on.
pub fn wait_until<T, E>(
    bound: Duration,
    mut check: impl FnMut() -> Result<Poll<T>, E>,
) -> Result<Option<T>, E> {
    let deadline = Instant::now() + bound;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Poll::Ready(value) = check()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
