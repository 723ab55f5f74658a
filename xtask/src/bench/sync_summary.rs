//! The summary line `qftp sync` prints last (`sync: N sent, M unchanged, D
//! deleted, F failed; ...`), read back to check that a first sync sent
//! everything and a re-run nothing.
//!
//! It parses and compares; running `qftp sync` is [`super::qftp_runs`]'s.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};

/// What a `qftp sync` summary line says (`sync: N sent, M unchanged, D
/// deleted, F failed; ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSummary {
    pub sent: u64,
    pub unchanged: u64,
    pub failed: u64,
}

impl SyncSummary {
    /// Parses the last summary line in `text`.
    pub fn find(text: &str) -> Option<(Self, &str)> {
        let line = text.lines().rev().find(|line| line.starts_with("sync: "))?;
        let counts = line.strip_prefix("sync: ")?.split(';').next()?;
        let mut found = BTreeMap::new();
        for part in counts.split(',') {
            let mut words = part.split_whitespace();
            let number: u64 = words.next()?.parse().ok()?;
            found.insert(words.next()?, number);
        }
        let summary = Self {
            sent: *found.get("sent")?,
            unchanged: *found.get("unchanged")?,
            failed: *found.get("failed")?,
        };
        Some((summary, line))
    }
}

/// Fails unless the `qftp sync` summary in `log` has the expected counts.
pub fn check_summary(log: &Path, expected: SyncSummary) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    match SyncSummary::find(&text) {
        Some((summary, _)) if summary == expected => Ok(()),
        Some((_, line)) => bail!(
            "expected {} sent, {} unchanged, {} failed; got {line:?}",
            expected.sent,
            expected.unchanged,
            expected.failed
        ),
        None => bail!("no sync summary in {}", log.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_summary_is_parsed() {
        let text = "qftp: skipped x: symlink\n\
                    sync: 0 sent, 10000 unchanged, 0 deleted, 0 failed; 0 B in 0.91 s (0 B/s), 0 B resumed\n";
        let (summary, line) = SyncSummary::find(text).unwrap();
        assert_eq!(
            summary,
            SyncSummary {
                sent: 0,
                unchanged: 10_000,
                failed: 0
            }
        );
        assert!(line.starts_with("sync: 0 sent"));
        assert!(SyncSummary::find("sync: nothing\n").is_none());
        assert!(SyncSummary::find("").is_none());
    }
}
