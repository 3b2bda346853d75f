//! Pressure stall information (PSI) of one cgroup: the share of wall time
//! some (or all) of its tasks waited for CPU, memory or I/O. Read from the
//! cgroup's cgroup2 directory, which hybrid hosts have too.
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Files, StatsError};

/// One line of a `*.pressure` file: stall shares (0..1) over the last 10
/// and 60 s, and the cumulative stall time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    pub avg10: f64,
    pub avg60: f64,
    /// Cumulative stall time in microseconds (the `total` field).
    pub total_us: u64,
}

/// A resource's `some` (at least one task stalled) and `full` (every
/// non-idle task stalled) lines; cgroup `cpu.pressure` has `full` from 5.13.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    pub some: Stall,
    pub full: Stall,
}

/// The three resources' pressure; a resource is None where its file is
/// absent or unreadable (a kernel without PSI, or booted with `psi=0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub cpu: Option<Psi>,
    pub memory: Option<Psi>,
    pub io: Option<Psi>,
}

impl Pressure {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none() && self.io.is_none()
    }
}

/// Whether this kernel keeps pressure stall information: `on`, or why
/// not. Without it no container has stall figures and no stall reason.
pub fn host_psi() -> &'static str {
    match std::fs::read_to_string("/proc/pressure/cpu") {
        Ok(_) => "on",
        // Without CONFIG_PSI, or built in but off by default
        // (CONFIG_PSI_DEFAULT_DISABLED, Debian's kernels) and not booted psi=1.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "off: the kernel has no PSI or it is disabled (boot with psi=1); no stall figures or reasons"
        }
        // EOPNOTSUPP: built in but disabled (psi=0, or CONFIG_PSI_DEFAULT_DISABLED).
        Err(_) => "off: disabled at boot (psi=0); boot with psi=1 for stall figures and reasons",
    }
}

/// Reads the three files of `dir`. PSI is an extra: a file that cannot be
/// read (EOPNOTSUPP with `psi=0`, a directory gone) leaves its resource None
/// and is no error; malformed content is.
pub(super) fn read_pressure(r: &mut impl Files, dir: &Path) -> Result<Pressure, StatsError> {
    let mut one = |name: &'static str| match r.parse(dir, name, parse_psi) {
        Ok(p) => Ok(p),
        Err(StatsError::Malformed { path, line }) => Err(StatsError::Malformed { path, line }),
        Err(_) => Ok(None),
    };
    Ok(Pressure {
        cpu: one("cpu.pressure")?,
        memory: one("memory.pressure")?,
        io: one("io.pressure")?,
    })
}

/// `some avg10=1.23 avg60=0.50 avg300=0.10 total=12345` and a `full` line
/// alike (Documentation/accounting/psi.rst); unknown keys are skipped.
pub(super) fn parse_psi(t: &str) -> Result<Psi, String> {
    let mut psi = Psi::default();
    for line in t.lines() {
        let mut it = line.split_whitespace();
        let stall = match it.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(line.to_owned());
            };
            let share = || {
                v.parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .map(|p| p / 100.0)
                    .ok_or_else(|| line.to_owned())
            };
            match k {
                "avg10" => stall.avg10 = share()?,
                "avg60" => stall.avg60 = share()?,
                "total" => stall.total_us = v.parse().map_err(|_| line.to_owned())?,
                _ => {}
            }
        }
    }
    Ok(psi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_lines_parse_into_shares() {
        let p = parse_psi(
            "some avg10=69.12 avg60=40.00 avg300=10.00 total=123456\n\
             full avg10=5.00 avg60=1.00 avg300=0.00 total=789\n",
        )
        .expect("parse");
        assert!((p.some.avg10 - 0.6912).abs() < 1e-9, "{p:?}");
        assert_eq!((p.some.total_us, p.full.total_us), (123456, 789));
        assert!((p.full.avg10 - 0.05).abs() < 1e-9);
        // cpu.pressure of a cgroup before 5.13: `some` only.
        let p = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n").expect("parse");
        assert_eq!((p.some.total_us, p.full), (7, Stall::default()));
        for bad in [
            "some avg10=x avg60=0 avg300=0 total=1",
            "some avg10=101.0 total=1",
            "some total=-1",
            "full avg10",
        ] {
            assert_eq!(parse_psi(bad), Err(bad.to_owned()));
        }
    }
}
