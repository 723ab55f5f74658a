//! Human sizes and quotas on hostile text.
//!
//! Input layout: the whole input is the text to parse (read as UTF-8,
//! lossily); its first eight bytes, little-endian, are also a byte count to
//! format.
//!
//! Checked: `parse_size` and `Quota` parsing never panic; what parses
//! ignores surrounding blanks, agrees with a plain integer parse for bare
//! digits and is at least the whole number times its unit; `format_size`
//! writes a number and a binary unit, exactly for under 1 KiB, and what it
//! writes parses back within its rounding (half a percent, plus a byte for
//! the truncated fraction) for every size below the few that round up to
//! 16 EiB; `Quota` display and parsing round-trip the same way.

use qftp_proto::size::{Quota, format_size, parse_size};

/// Sizes from here up are written as "16.00 EiB" (rounded up), which is
/// more than a `u64` holds and so cannot be read back.
pub const FIRST_UNREADABLE: u64 = u64::MAX - u64::MAX / 400;

/// The whole check; see the module docs for the input layout.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_text(&text);
    let mut count = [0u8; 8];
    let take = data.len().min(8);
    count[..take].copy_from_slice(&data[..take]);
    check_format(u64::from_le_bytes(count));
}

fn check_text(text: &str) {
    let parsed = parse_size(text);
    let quota = text.parse::<Quota>();
    let trimmed = text.trim();
    let unlimited =
        trimmed.eq_ignore_ascii_case("unlimited") || trimmed.eq_ignore_ascii_case("none");
    match (&quota, &parsed) {
        (Ok(Quota::Unlimited), _) => assert!(unlimited),
        (Ok(Quota::Bytes(bytes)), Ok(parsed)) => assert_eq!(bytes, parsed),
        (Err(_), Err(_)) => assert!(!unlimited),
        _ => panic!("{text:?}: quota {quota:?}, size {parsed:?}"),
    }
    let Ok(bytes) = parsed else {
        return;
    };
    assert_eq!(parse_size(&format!(" \t{text} \n")), Ok(bytes));
    if !trimmed.is_empty() && trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
        assert_eq!(trimmed.parse::<u64>().ok(), Some(bytes));
    }
    // The whole part times the unit is a lower bound; the fraction adds
    // less than one unit.
    let number_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(number_end);
    let multiplier = unit_multiplier(unit.trim()).expect("a parsed size has a known unit");
    let whole = number.split('.').next().unwrap_or("");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().unwrap()
    };
    let low = whole * u128::from(multiplier);
    assert!(u128::from(bytes) >= low, "{text:?} gave {bytes}");
    assert!(
        u128::from(bytes) < low + u128::from(multiplier).max(1),
        "{text:?} gave {bytes}"
    );
    check_format(bytes);
}

fn unit_multiplier(unit: &str) -> Option<u64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        "p" | "pb" => 1_000_000_000_000_000,
        "pib" => 1 << 50,
        "e" | "eb" => 1_000_000_000_000_000_000,
        "eib" => 1 << 60,
        _ => return None,
    })
}

fn check_format(bytes: u64) {
    let text = format_size(bytes);
    let (number, unit) = text.split_once(' ').expect("a number and a unit");
    assert!(
        ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"].contains(&unit),
        "{text}"
    );
    assert!(!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
    if bytes < 1024 {
        assert_eq!(text, format!("{bytes} B"));
    }
    let quota_text = Quota::Bytes(bytes).to_string();
    assert_eq!(quota_text, text);
    if bytes >= FIRST_UNREADABLE {
        return;
    }
    let back = parse_size(&text).unwrap_or_else(|error| panic!("{bytes}: {error}"));
    let difference = back.abs_diff(bytes);
    assert!(
        difference <= bytes / 200 + 1,
        "{bytes} written as {text:?} reads back as {back}"
    );
    assert_eq!(quota_text.parse::<Quota>(), Ok(Quota::Bytes(back)));
    assert_eq!("unlimited".parse::<Quota>(), Ok(Quota::Unlimited));
    assert_eq!(
        Quota::Unlimited.to_string().parse::<Quota>(),
        Ok(Quota::Unlimited)
    );
}
