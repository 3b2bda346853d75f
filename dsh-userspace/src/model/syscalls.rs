//! How syscalls are accounted per container (`dsh agent --syscalls`), and
//! what one sampling window says about a container's rates.
use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

/// Any program on a syscall hook costs every syscall of every task on the
/// host (the floor, about an empty program's run). `Sampled` pays it only
/// for a short window out of every period; `Exact` always; `Off` never.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyscallAccounting {
    /// Counted in short windows; rates and totals are estimates.
    #[default]
    Sampled,
    /// Every syscall counted, always.
    Exact,
    /// Not counted: no per-syscall program is attached.
    Off,
}

impl SyscallAccounting {
    pub const NAMES: [&str; 3] = ["sampled", "exact", "off"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sampled => "sampled",
            Self::Exact => "exact",
            Self::Off => "off",
        }
    }
}

impl fmt::Display for SyscallAccounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyscallAccounting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sampled" => Ok(Self::Sampled),
            "exact" => Ok(Self::Exact),
            "off" => Ok(Self::Off),
            _ => Err(format!("expected one of {}", Self::NAMES.join(", "))),
        }
    }
}

/// What the counters of one container moved by during one sampling window
/// (they move only while the programs are attached).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyscallWindow {
    pub calls: u64,
    pub errors: u64,
    /// How long the programs were attached.
    pub attached: Duration,
    /// The time this window stands for (from one window's start to the next).
    pub period: Duration,
}

impl SyscallWindow {
    /// Calls and errors per second while attached: the estimate of the rate
    /// over the whole period.
    pub fn rates(&self) -> (f64, f64) {
        let secs = self.attached.as_secs_f64();
        if secs <= 0.0 {
            return (0.0, 0.0);
        }
        (self.calls as f64 / secs, self.errors as f64 / secs)
    }

    /// The counts scaled up to the whole period (for estimated totals).
    /// `n` counted in the window, scaled to the period.
    pub fn scale(&self, n: u64) -> u64 {
        let secs = self.attached.as_secs_f64();
        if secs <= 0.0 {
            return 0;
        }
        (n as f64 * self.period.as_secs_f64() / secs).round() as u64
    }

    pub fn scaled(&self) -> (u64, u64) {
        let secs = self.attached.as_secs_f64();
        if secs <= 0.0 {
            return (0, 0);
        }
        let scale = self.period.as_secs_f64() / secs;
        (
            (self.calls as f64 * scale).round() as u64,
            (self.errors as f64 * scale).round() as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_estimates_the_rate_and_the_period_total() {
        let w = SyscallWindow {
            calls: 20_000,
            errors: 500,
            attached: Duration::from_millis(1000),
            period: Duration::from_secs(10),
        };
        assert_eq!(w.rates(), (20_000.0, 500.0));
        assert_eq!(w.scaled(), (200_000, 5_000));
        let empty = SyscallWindow {
            attached: Duration::ZERO,
            ..w
        };
        assert_eq!(empty.rates(), (0.0, 0.0));
        assert_eq!(empty.scaled(), (0, 0));
    }

    #[test]
    fn modes_parse_and_print_the_same_names() {
        for name in SyscallAccounting::NAMES {
            let mode: SyscallAccounting = name.parse().unwrap();
            assert_eq!(mode.to_string(), name);
            assert_eq!(serde_json::to_value(mode).unwrap(), name);
        }
        assert!("always".parse::<SyscallAccounting>().is_err());
    }
}
