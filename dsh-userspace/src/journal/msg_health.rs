//! A health line's conditions as a block stores them: a mirror of the
//! condition `HealthReason`s (shares in 1/10,000, windows in ms). Add
//! variants at the end only: postcard stores them by position.
use std::net::SocketAddr;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::model::{
    health::{Health, HealthReason, StallResource},
    tcp::ConnectFailure,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Condition {
    PidsRefused {
        count: u64,
        limit: Option<u64>,
        window_ms: i64,
    },
    FdLimit {
        count: u64,
        limit: Option<u64>,
        window_ms: i64,
    },
    Stalled {
        /// 0 memory, 1 I/O.
        resource: u8,
        some: u16,
        full: u16,
        memory: u16,
    },
    ConnectsFailing {
        /// Failures per second, in 1/100.
        per_s: u32,
        share: u16,
        /// 0 unknown, 1 refused, 2 timed out, 3 unreachable, 4 reset.
        how: u8,
    },
    Retransmits {
        ratio: u16,
    },
    ListenOverflows {
        /// Overflows per second, in 1/100.
        per_s: u32,
        port: Option<u16>,
    },
    /// `ConnectsFailing` with its commonest destination.
    ConnectsFailingTo {
        per_s: u32,
        share: u16,
        how: u8,
        to: SocketAddr,
    },
}

fn hundredths(r: f64) -> u32 {
    (r.max(0.0) * 100.0).round().min(f64::from(u32::MAX)) as u32
}

fn from_hundredths(n: u32) -> f64 {
    f64::from(n) / 100.0
}

const FAILURES: [Option<ConnectFailure>; 5] = [
    None,
    Some(ConnectFailure::Refused),
    Some(ConnectFailure::TimedOut),
    Some(ConnectFailure::Unreachable),
    Some(ConnectFailure::Reset),
];

fn share(r: f64) -> u16 {
    (r.clamp(0.0, 1.0) * 10_000.0).round() as u16
}

fn ratio(s: u16) -> f64 {
    f64::from(s) / 10_000.0
}

pub(super) fn health_code(h: Health) -> u8 {
    match h {
        Health::Good => 0,
        Health::Warning => 1,
        Health::UnHealthy => 2,
    }
}

/// An unknown code (a newer writer's) reads as Warning: neither good nor the worst.
pub(super) fn health_of(code: u8) -> Health {
    match code {
        0 => Health::Good,
        2 => Health::UnHealthy,
        _ => Health::Warning,
    }
}

impl Condition {
    /// The stored form of a condition; None for the reasons no health line
    /// carries (told by their own lines).
    pub(super) fn store(r: &HealthReason) -> Option<Self> {
        Some(match r {
            HealthReason::PidsRefused {
                count,
                limit,
                window,
            } => Condition::PidsRefused {
                count: *count,
                limit: *limit,
                window_ms: window.as_millis() as i64,
            },
            HealthReason::FdLimit {
                count,
                limit,
                window,
            } => Condition::FdLimit {
                count: *count,
                limit: *limit,
                window_ms: window.as_millis() as i64,
            },
            HealthReason::Stalled {
                resource,
                some,
                full,
                memory,
            } => Condition::Stalled {
                resource: match resource {
                    StallResource::Memory => 0,
                    StallResource::Io => 1,
                },
                some: share(*some),
                full: share(*full),
                memory: share(*memory),
            },
            HealthReason::ConnectsFailing {
                per_s,
                share: s,
                how,
                to,
            } => {
                let (per_s, s) = (hundredths(*per_s), share(*s));
                let how = FAILURES.iter().position(|f| f == how).unwrap_or(0) as u8;
                match to {
                    Some(to) => Condition::ConnectsFailingTo {
                        per_s,
                        share: s,
                        how,
                        to: *to,
                    },
                    None => Condition::ConnectsFailing {
                        per_s,
                        share: s,
                        how,
                    },
                }
            }
            HealthReason::Retransmits { ratio } => Condition::Retransmits {
                ratio: share(*ratio),
            },
            HealthReason::ListenOverflows { per_s, port } => Condition::ListenOverflows {
                per_s: hundredths(*per_s),
                port: *port,
            },
            _ => return None,
        })
    }

    pub(super) fn load(&self) -> HealthReason {
        match self {
            Condition::PidsRefused {
                count,
                limit,
                window_ms,
            } => HealthReason::PidsRefused {
                count: *count,
                limit: *limit,
                window: SignedDuration::from_millis(*window_ms),
            },
            Condition::FdLimit {
                count,
                limit,
                window_ms,
            } => HealthReason::FdLimit {
                count: *count,
                limit: *limit,
                window: SignedDuration::from_millis(*window_ms),
            },
            Condition::Stalled {
                resource,
                some,
                full,
                memory,
            } => HealthReason::Stalled {
                resource: if *resource == 0 {
                    StallResource::Memory
                } else {
                    StallResource::Io
                },
                some: ratio(*some),
                full: ratio(*full),
                memory: ratio(*memory),
            },
            Condition::ConnectsFailing { per_s, share, how } => HealthReason::ConnectsFailing {
                per_s: from_hundredths(*per_s),
                share: ratio(*share),
                how: FAILURES.get(usize::from(*how)).copied().flatten(),
                to: None,
            },
            Condition::ConnectsFailingTo {
                per_s,
                share,
                how,
                to,
            } => HealthReason::ConnectsFailing {
                per_s: from_hundredths(*per_s),
                share: ratio(*share),
                how: FAILURES.get(usize::from(*how)).copied().flatten(),
                to: Some(*to),
            },
            Condition::Retransmits { ratio: r } => HealthReason::Retransmits { ratio: ratio(*r) },
            Condition::ListenOverflows { per_s, port } => HealthReason::ListenOverflows {
                per_s: from_hundredths(*per_s),
                port: *port,
            },
        }
    }
}
