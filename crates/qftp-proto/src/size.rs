//! Byte sizes as people write them: `500MiB`, `10GiB`, `1.5 GB`, `unlimited`.

use std::fmt;

/// A size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size {input:?}: expected a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB, PB, PiB, EB, EiB) or \"unlimited\""
)]
pub struct SizeError {
    input: String,
}

/// A quota: a number of bytes, or no limit at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// At most this many bytes.
    Bytes(u64),
    /// No limit.
    Unlimited,
}

impl Quota {
    /// The limit in bytes, or `None` when unlimited.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Quota::Bytes(bytes) => Some(bytes),
            Quota::Unlimited => None,
        }
    }
}

impl std::str::FromStr for Quota {
    type Err = SizeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        if trimmed.eq_ignore_ascii_case("unlimited") || trimmed.eq_ignore_ascii_case("none") {
            return Ok(Quota::Unlimited);
        }
        parse_size(trimmed).map(Quota::Bytes)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quota::Bytes(bytes) => f.write_str(&format_size(*bytes)),
            Quota::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// Reads a size such as `4096`, `500MiB`, `1.5GB` or `10 GiB`.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let error = || SizeError {
        input: input.to_owned(),
    };
    let trimmed = input.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
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
        _ => return Err(error()),
    };
    if number.is_empty() || number.matches('.').count() > 1 {
        return Err(error());
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(error());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| error())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(error)?;
    if !fraction.is_empty() {
        // Exact decimal arithmetic on at most 9 fractional digits.
        let digits = &fraction[..fraction.len().min(9)];
        let scale = 10u128.pow(digits.len() as u32);
        let value: u128 = digits.parse().map_err(|_| error())?;
        let extra = value * u128::from(multiplier) / scale;
        bytes = bytes
            .checked_add(u64::try_from(extra).map_err(|_| error())?)
            .ok_or_else(error)?;
    }
    Ok(bytes)
}

/// Writes a size with a binary unit, e.g. `1.5 MiB` or `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() < 0.005 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_read() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("10 GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("0.5KiB").unwrap(), 512);
        assert_eq!("unlimited".parse::<Quota>().unwrap(), Quota::Unlimited);
        assert_eq!("10MiB".parse::<Quota>().unwrap(), Quota::Bytes(10 << 20));
    }

    #[test]
    fn nonsense_is_refused() {
        for input in [
            "",
            "MiB",
            "ten",
            "1.2.3",
            "5 parsecs",
            "-1",
            "99999999999999999999",
            "20000000TiB",
        ] {
            assert!(parse_size(input).is_err(), "{input} should be refused");
        }
    }

    #[test]
    fn sizes_are_written_readably() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1 KiB");
        assert_eq!(format_size(1536), "1.50 KiB");
        assert_eq!(format_size(10 << 20), "10 MiB");
        assert_eq!(parse_size(&format_size(3 << 30)).unwrap(), 3 << 30);
        // Every unit that is written can be read back.
        assert_eq!(parse_size(&format_size(5 << 50)).unwrap(), 5 << 50);
        assert_eq!(parse_size(&format_size(3 << 60)).unwrap(), 3 << 60);
    }
}
