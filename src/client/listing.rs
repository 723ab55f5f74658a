//! How `qftp ls` prints entries: names, the long format, or JSON.

use qftp_proto::size::format_size;
use qftp_proto::{EntryInfo, EntryKind};

/// Writes `entries` to `out` in the format asked for.
pub fn print_listing(
    out: &mut impl std::io::Write,
    entries: &[EntryInfo],
    long: bool,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let values: Vec<_> = entries
            .iter()
            .map(|entry| {
                serde_json::json!({
                    "name": entry.name,
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
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&values)?)?;
        return Ok(());
    }
    for entry in entries {
        let suffix = match entry.kind {
            EntryKind::Directory => "/",
            _ => "",
        };
        if long {
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
            writeln!(
                out,
                "{kind}{} {:>10} {} {}{suffix}{target}",
                permissions(entry.mode),
                format_size(entry.size),
                entry.mtime.to_utc_minutes(),
                entry.name
            )?;
        } else {
            writeln!(out, "{}{suffix}", entry.name)?;
        }
    }
    Ok(())
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

    #[test]
    fn permissions_are_spelled_out() {
        assert_eq!(permissions(0o755), "rwxr-xr-x");
        assert_eq!(permissions(0o640), "rw-r-----");
    }
}
