//! How `qftp ls` prints entries: names, the long format, or JSON; which
//! entries it shows (dot entries only with `-a`); sizes in bytes or, with
//! `-h`, in human units; times in the local time zone or, with `--utc`,
//! in UTC marked as such. It asks the server nothing ([`super::ls`] does).

use jiff::tz::TimeZone;
use qftp_proto::size::format_size;
use qftp_proto::{EntryInfo, EntryKind, Timestamp};

/// How a listing is printed, as `ls`'s flags ask.
#[derive(Debug, Clone)]
pub struct ListingStyle {
    /// One line per entry with kind, permissions, size and time.
    pub long: bool,
    /// Entries whose names begin with a dot are shown too.
    pub all: bool,
    /// Sizes in human units (KiB, MiB, ...) instead of bytes.
    pub human: bool,
    /// The zone times are written in.
    pub clock: Clock,
}

/// The zone times are written in.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The local zone (`TZ`, else the system's), as `ls` does.
    Local(TimeZone),
    /// UTC, written with a `UTC` suffix so that it cannot be taken for
    /// local time.
    Utc,
}

impl Clock {
    /// UTC when `utc`, otherwise the local zone.
    pub fn new(utc: bool) -> Self {
        if utc {
            Clock::Utc
        } else {
            Clock::Local(TimeZone::system())
        }
    }

    /// `time` to the minute, as `YYYY-MM-DD HH:MM` (with ` UTC` in UTC).
    pub fn format(&self, time: Timestamp) -> String {
        match self {
            Clock::Utc => format!("{} UTC", time.to_utc_minutes()),
            Clock::Local(zone) => match jiff::Timestamp::from_second(time.secs) {
                Ok(instant) => instant
                    .to_zoned(zone.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string(),
                // Beyond the years jiff can name: still a time, in UTC.
                Err(_) => format!("{} UTC", time.to_utc_minutes()),
            },
        }
    }
}

impl ListingStyle {
    /// Whether `name` is listed: dot entries only with `-a`.
    pub fn shows(&self, name: &str) -> bool {
        self.all || !name.starts_with('.')
    }

    /// Writes one line for `entry`, under the name `name` (the entry's own
    /// name in a directory, the argument as typed for a file argument).
    pub fn write_entry(
        &self,
        out: &mut impl std::io::Write,
        entry: &EntryInfo,
        name: &str,
    ) -> std::io::Result<()> {
        let suffix = match entry.kind {
            EntryKind::Directory if !name.ends_with('/') => "/",
            _ => "",
        };
        if !self.long {
            return writeln!(out, "{name}{suffix}");
        }
        let kind = match entry.kind {
            EntryKind::Directory => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::File => '-',
            _ => '?',
        };
        let target = entry
            .link_target
            .as_ref()
            .map(|target| format!(" -> {target}"))
            .unwrap_or_default();
        let size = if self.human {
            format_size(entry.size)
        } else {
            entry.size.to_string()
        };
        writeln!(
            out,
            "{kind}{} {size:>10} {} {name}{suffix}{target}",
            permissions(entry.mode),
            self.clock.format(entry.mtime),
        )
    }
}

/// The JSON value of `entry`, found at the remote path `path`: sizes in
/// bytes and times in seconds since 1970 (UTC), whatever the style.
pub fn entry_json(entry: &EntryInfo, path: &str) -> serde_json::Value {
    serde_json::json!({
        "name": entry.name,
        "path": path,
        "kind": match entry.kind {
            EntryKind::File => "file",
            EntryKind::Directory => "directory",
            EntryKind::Symlink => "symlink",
            _ => "other",
        },
        "size": entry.size,
        "mtime": entry.mtime.secs,
        "mtime_nanos": entry.mtime.nanos,
        "mode": entry.mode & 0o7777,
        "link_target": entry.link_target,
    })
}

fn permissions(mode: u32) -> String {
    let mut text = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> EntryInfo {
        EntryInfo {
            name: name.to_owned(),
            kind: EntryKind::File,
            size,
            mtime: Timestamp {
                secs: 1_700_000_000,
                nanos: 0,
            },
            mode: 0o644,
            link_target: None,
            hash: None,
        }
    }

    fn line(style: &ListingStyle, entry: &EntryInfo) -> String {
        let mut out = Vec::new();
        style.write_entry(&mut out, entry, &entry.name).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn permissions_are_spelled_out() {
        assert_eq!(permissions(0o755), "rwxr-xr-x");
        assert_eq!(permissions(0o640), "rw-r-----");
    }

    #[test]
    fn sizes_are_bytes_unless_human() {
        let mut style = ListingStyle {
            long: true,
            all: false,
            human: false,
            clock: Clock::Utc,
        };
        let entry = file("big.bin", 3 * 1024 * 1024);
        assert_eq!(
            line(&style, &entry),
            "-rw-r--r--    3145728 2023-11-14 22:13 UTC big.bin\n"
        );
        style.human = true;
        assert!(line(&style, &entry).contains(&format_size(3 * 1024 * 1024)));
        assert!(!line(&style, &entry).contains("3145728"));
    }

    #[test]
    fn local_times_follow_the_zone() {
        let zone = TimeZone::fixed(jiff::tz::offset(5));
        let clock = Clock::Local(zone);
        let time = Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        };
        assert_eq!(clock.format(time), "2023-11-15 03:13");
        assert_eq!(Clock::Utc.format(time), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn dot_entries_need_all() {
        let mut style = ListingStyle {
            long: false,
            all: false,
            human: false,
            clock: Clock::Utc,
        };
        assert!(!style.shows(".profile"));
        assert!(style.shows("notes.txt"));
        style.all = true;
        assert!(style.shows(".profile"));
    }
}
