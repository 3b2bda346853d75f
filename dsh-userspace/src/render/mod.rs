//! Human output: the health table, log lines, compact numbers. Knows the
//! snapshot types, nothing about how they were collected.
pub mod fleet;
pub mod log;
pub mod table;
pub mod trace;

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
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    match scaled(n) {
        None => format!("{n}B"),
        Some((v, u)) => format!("{v:.1}{}", UNITS[u]),
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

/// Strings that come from containers (names, comm, paths) may hold terminal
/// control sequences; never let them reach the terminal raw.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn control_characters_are_neutralised() {
        assert_eq!(sanitize("web\x1b[2J\n"), "web?[2J?");
        assert_eq!(sanitize("café"), "café");
    }
}
