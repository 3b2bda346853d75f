//! Bytes, durations and rates as operators read them: a leaf every layer
//! may use (it imports nothing from dsh).
use jiff::SignedDuration;

/// Compact duration as operators read it: `45s`, `3m`, `12h`, `2d`.
pub fn duration(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A run time or CPU time in a sentence, with two units: `0.3s`, `45s`,
/// `2m14s`, `3h2m`, `2d4h`.
pub fn duration_precise(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 10.0 {
        return format!("{secs:.1}s");
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `n` scaled to the largest binary unit that keeps it >= 1: (value, unit
/// index: 0 = Ki, 1 = Mi, ...); None below 1 KiB.
fn scaled(n: u64) -> Option<(f64, usize)> {
    if n < 1024 {
        return None;
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < 5 {
        v /= 1024.0;
        unit += 1;
    }
    Some((v, unit))
}

/// Binary units with one decimal: `512B`, `1.5KiB`, `32.0MiB`, `2.0GiB`.
/// `31,002`: a count with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    match scaled(n) {
        None => format!("{n}B"),
        Some((v, u)) => format!("{v:.1}{}", UNITS[u]),
    }
}

/// Bytes in a sentence: `512B`, `1.5KiB`, `41MiB` (one decimal below 10).
pub fn bytes_compact(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    match scaled(n) {
        None => format!("{n}B"),
        Some((v, u)) if v < 10.0 => format!("{v:.1}{}", UNITS[u]),
        Some((v, u)) => format!("{v:.0}{}", UNITS[u]),
    }
}

/// Short binary units for table cells: `512B`, `1.5Ki`, `12Mi`, `2.0Gi`
/// (one decimal below 10, none above), so `used/limit` fits its column.
pub fn bytes_short(n: u64) -> String {
    const UNITS: [&str; 5] = ["Ki", "Mi", "Gi", "Ti", "Pi"];
    match scaled(n) {
        None => format!("{n}B"),
        Some((v, u)) if v < 10.0 => format!("{v:.1}{}", UNITS[u]),
        Some((v, u)) => format!("{v:.0}{}", UNITS[u]),
    }
}

/// A rate in a table cell: `950`, `12.5k`, `3.2M` (per second).
pub fn per_s(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(31_002), "31,002");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_are_compact() {
        let d = SignedDuration::from_secs;
        assert_eq!(duration(d(45)), "45s");
        assert_eq!(duration(d(200)), "3m");
        assert_eq!(duration(d(12 * 3600 + 5)), "12h");
        assert_eq!(duration(d(2 * 86_400 + 7)), "2d");
        assert_eq!(duration(d(-3)), "0s");
    }

    #[test]
    fn exit_summary_units() {
        assert_eq!(duration_precise(0.34), "0.3s");
        assert_eq!(duration_precise(45.2), "45s");
        assert_eq!(duration_precise(134.0), "2m14s");
        assert_eq!(duration_precise(3.0 * 3600.0 + 125.0), "3h2m");
        assert_eq!(duration_precise(2.0 * 86_400.0 + 4.0 * 3600.0), "2d4h");
        assert_eq!(bytes_compact(41 << 20), "41MiB");
        assert_eq!(bytes_compact(1536), "1.5KiB");
        assert_eq!(bytes_compact(100), "100B");
    }

    #[test]
    fn bytes_are_binary() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(32 << 20), "32.0MiB");
        assert_eq!(bytes(3 << 30), "3.0GiB");
        assert_eq!(bytes_short(12 << 20), "12Mi");
        assert_eq!(bytes_short(1536 << 20), "1.5Gi");
        assert_eq!(bytes_short(100), "100B");
    }

    #[test]
    fn rates_are_compact() {
        assert_eq!(per_s(950.4), "950");
        assert_eq!(per_s(12_500.0), "12.5k");
        assert_eq!(per_s(3_200_000.0), "3.2M");
    }
}
