//! Timing one run of a tool on a shared machine.
//!
//! Before each attempt the caller's preparation runs (untimed), then the
//! machine is given a bounded wait to go quiet; the run is timed while
//! the CPU other people's processes use is sampled ([`super::cpu`]), and
//! an attempt during which they used more than [`super::cpu::RETRY_CORES`]
//! is repeated, at most [`ATTEMPTS`] times in all. A failed run is a sample
//! without time; only an interruption ends the measurement.
//!
//! What is run, and how its output is checked, is the caller's.

use std::process::Command;
use std::time::Duration;

use super::cpu;
use super::sample::Sample;
use crate::process;

/// Most runs made for one sample (runs under foreign load are repeated).
pub const ATTEMPTS: u32 = 3;

/// The error of a timed run stopped at its time limit; [`measure`] records
/// it as a time-out rather than a failure.
#[derive(Debug)]
pub struct TimedOut(pub String);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for TimedOut {}

/// Times one run, repeating it (bounded) when other people's processes
/// used the machine meanwhile (waiting at most `quiet_wait` for quiet before
/// each attempt). A failed run is a sample without time (a [`TimedOut`]
/// error makes it a time-out); only interruption ends the benchmark.
pub fn measure(
    quiet_wait: Duration,
    round: u32,
    label: &str,
    prepare: &mut dyn FnMut() -> anyhow::Result<()>,
    timed: &mut dyn FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Sample> {
    let failed = |attempts: u32, note: String, timed_out: bool| {
        eprintln!(
            "  {label}: {}: {note}",
            if timed_out { "TIMED OUT" } else { "FAILED" }
        );
        Sample {
            timed_out,
            ..Sample::failed(round, attempts, note)
        }
    };
    for attempt in 1..=ATTEMPTS {
        if let Err(error) = prepare() {
            process::check_interrupted()?;
            return Ok(failed(attempt, format!("preparing: {error:#}"), false));
        }
        cpu::wait_quiet(quiet_wait)?;
        let before = cpu::snapshot();
        let result = timed();
        let foreign = cpu::foreign_cores(&before, &cpu::snapshot());
        process::check_interrupted()?;
        let elapsed = match result {
            Ok(elapsed) => elapsed,
            Err(error) => {
                let timed_out = error.downcast_ref::<TimedOut>().is_some();
                return Ok(failed(attempt, format!("{error:#}"), timed_out));
            }
        };
        if foreign > cpu::RETRY_CORES && attempt < ATTEMPTS {
            eprintln!(
                "  {label}: {:.2} s under {foreign:.2} foreign cores; repeating",
                elapsed.as_secs_f64()
            );
            continue;
        }
        eprintln!(
            "  {label}: {:.2} s (foreign {foreign:.2} cores)",
            elapsed.as_secs_f64()
        );
        return Ok(Sample {
            round,
            seconds: Some(elapsed.as_secs_f64()),
            foreign_cores: Some(foreign),
            attempts: attempt,
            note: None,
            timed_out: false,
        });
    }
    unreachable!("the last attempt always returns")
}

/// Flushes every file system (`sync`), so no earlier writes are flushed
/// during a timed run; part of the preparation of a run, never timed.
pub fn flush_file_systems() -> anyhow::Result<()> {
    process::run_ok(
        &mut Command::new("sync"),
        None,
        process::SHORT_COMMAND_LIMIT,
        "sync",
    )?;
    Ok(())
}
