//! Measuring one run, shared by the loopback scenarios ([`crate::bench`])
//! and the network-link ones ([`crate::link`]): timing a run with bounded
//! repeats under foreign load ([`timed_run`]), the CPU other people's
//! processes used meanwhile ([`cpu`]), the peak memory of the processes
//! under test ([`memory`]), and the resulting sample and the median of
//! several ([`sample`]).
//!
//! It knows nothing of scenarios, tools, servers or reports: the caller
//! says how to prepare and how to time a run, and puts the samples where
//! they belong.

pub mod cpu;
pub mod memory;
pub mod sample;
pub mod timed_run;

pub use sample::{Sample, median};
pub use timed_run::{ATTEMPTS, TimedOut, flush_file_systems, measure};
