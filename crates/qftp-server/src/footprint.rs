//! What an entry in a home costs: the bytes charged to the quota and the
//! entries counted against the entry limit.
//!
//! One rule, used by everything that measures or changes a home (the
//! recount, removal, mkdir, links, uploads): a regular file costs its length,
//! a directory or a symlink costs [`crate::config::ResourceLimits::entry_cost`]
//! bytes (the block it holds on disk), and every entry, whatever its kind,
//! counts one against `max_entries_per_user`. The home itself costs nothing.
//! Partial uploads are files like any other: they cost their length and one
//! entry.

use cap_std::fs::Metadata;

/// Bytes and entries, as charged to a user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes charged to the byte quota.
    pub bytes: u64,
    /// Entries charged to the entry limit.
    pub entries: u64,
}

impl Footprint {
    /// Nothing.
    pub const ZERO: Footprint = Footprint {
        bytes: 0,
        entries: 0,
    };

    /// The cost of one entry described by `metadata`, with directories and
    /// symlinks costing `entry_cost` bytes.
    pub fn of(metadata: &Metadata, entry_cost: u64) -> Footprint {
        let bytes = if metadata.is_file() {
            metadata.len()
        } else if metadata.is_dir() || metadata.is_symlink() {
            entry_cost
        } else {
            // FIFOs, sockets and devices cannot be made through qftp; one
            // placed by an administrator costs an entry and no bytes.
            0
        };
        Footprint { bytes, entries: 1 }
    }

    /// A regular file of `length` bytes.
    pub fn file(length: u64) -> Footprint {
        Footprint {
            bytes: length,
            entries: 1,
        }
    }

    /// A directory or a symlink.
    pub fn node(entry_cost: u64) -> Footprint {
        Footprint {
            bytes: entry_cost,
            entries: 1,
        }
    }

    /// Both sums, saturating.
    pub fn saturating_add(self, other: Footprint) -> Footprint {
        Footprint {
            bytes: self.bytes.saturating_add(other.bytes),
            entries: self.entries.saturating_add(other.entries),
        }
    }

    /// Both differences, saturating at zero.
    pub fn saturating_sub(self, other: Footprint) -> Footprint {
        Footprint {
            bytes: self.bytes.saturating_sub(other.bytes),
            entries: self.entries.saturating_sub(other.entries),
        }
    }

    /// Both sums, or `None` on overflow.
    pub fn checked_add(self, other: Footprint) -> Option<Footprint> {
        Some(Footprint {
            bytes: self.bytes.checked_add(other.bytes)?,
            entries: self.entries.checked_add(other.entries)?,
        })
    }
}

impl std::ops::AddAssign for Footprint {
    fn add_assign(&mut self, other: Footprint) {
        *self = self.saturating_add(other);
    }
}

impl From<qftp_store::Footprint> for Footprint {
    fn from(footprint: qftp_store::Footprint) -> Footprint {
        Footprint {
            bytes: footprint.bytes,
            entries: footprint.entries,
        }
    }
}

impl From<Footprint> for qftp_store::Footprint {
    fn from(footprint: Footprint) -> qftp_store::Footprint {
        qftp_store::Footprint {
            bytes: footprint.bytes,
            entries: footprint.entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate() {
        let big = Footprint {
            bytes: u64::MAX,
            entries: 1,
        };
        assert_eq!(big.saturating_add(Footprint::file(1)).bytes, u64::MAX);
        assert_eq!(big.checked_add(Footprint::file(1)), None);
        assert_eq!(
            Footprint::file(3).saturating_sub(Footprint::node(4096)),
            Footprint::ZERO
        );
        let mut total = Footprint::ZERO;
        total += Footprint::file(10);
        total += Footprint::node(4096);
        assert_eq!(
            total,
            Footprint {
                bytes: 4106,
                entries: 2
            }
        );
    }

    #[test]
    fn kinds_cost_what_they_hold() {
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join("file"), b"hello").unwrap();
        std::fs::create_dir(temp.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("file", temp.path().join("link")).unwrap();
        let dir =
            cap_std::fs::Dir::open_ambient_dir(temp.path(), cap_std::ambient_authority()).unwrap();
        let cost = |name: &str| Footprint::of(&dir.symlink_metadata(name).unwrap(), 4096);
        assert_eq!(cost("file"), Footprint::file(5));
        assert_eq!(cost("dir"), Footprint::node(4096));
        assert_eq!(cost("link"), Footprint::node(4096));
    }
}
