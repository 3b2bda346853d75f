//! Health levels and the reasons behind them (defaults from the contract).
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{
    container::Container,
    state::State,
    tcp::{self, ConnectFailure, TcpFinding, TcpRules},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Health {
    Good,
    Warning,
    UnHealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Good => "Good",
            Health::Warning => "Warning",
            Health::UnHealthy => "UnHealthy",
        }
    }
}

/// Why a container is not Good; `render::health` writes it as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthReason {
    /// In a failed state.
    State(State),
    OomKills {
        count: usize,
        window: SignedDuration,
    },
    CoreDumps {
        count: usize,
        window: SignedDuration,
    },
    CrashLoop {
        restarts: usize,
        window: SignedDuration,
    },
    /// Memory use over the warning share of its limit.
    Memory { ratio: f64 },
    /// Throttled in this share of CFS periods over the window.
    Throttled { ratio: f64, window: SignedDuration },
    Restarts {
        count: usize,
        window: SignedDuration,
    },
    /// Connects failing at this rate, this share of those begun; how most
    /// failed where the kernel programs counted them (else the namespace's
    /// AttemptFails: refused, timed out or unreachable).
    ConnectsFailing {
        per_s: f64,
        share: f64,
        how: Option<ConnectFailure>,
    },
    /// This share of the segments sent were retransmissions.
    Retransmits { ratio: f64 },
    /// Handshakes dropped at a full accept queue, at this rate; the port of
    /// the listener found full, when one was.
    ListenOverflows { per_s: f64, port: Option<u16> },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthRules {
    /// How far back an OOM kill, core dump or crash loop makes a container UnHealthy.
    pub unhealthy_window: SignedDuration,
    /// Restarts within `unhealthy_window` that make a crash loop.
    pub crash_loop_restarts: usize,
    /// Memory use above this fraction of the limit is a Warning.
    pub mem_warn_ratio: f64,
    /// Throttled periods above this fraction over `throttle_window` is a Warning.
    pub throttle_warn_ratio: f64,
    pub throttle_window: SignedDuration,
    /// Any restart within this window is a Warning.
    pub restart_warn_window: SignedDuration,
    /// Failing connects, retransmits, listen overflows.
    #[serde(default)]
    pub tcp: TcpRules,
}

impl Default for HealthRules {
    fn default() -> Self {
        Self {
            unhealthy_window: SignedDuration::from_mins(10),
            crash_loop_restarts: 3,
            mem_warn_ratio: 0.9,
            throttle_warn_ratio: 0.25,
            throttle_window: SignedDuration::from_mins(1),
            restart_warn_window: SignedDuration::from_hours(1),
            tcp: TcpRules::default(),
        }
    }
}

impl HealthRules {
    /// How long event times must be kept to evaluate these rules.
    pub fn lookback(&self) -> SignedDuration {
        self.unhealthy_window.max(self.restart_warn_window)
    }

    pub fn evaluate(&self, c: &Container, now: Timestamp) -> (Health, Vec<HealthReason>) {
        let mut unhealthy = Vec::new();
        let mut warning = Vec::new();
        let within = |times: &[Timestamp], w: SignedDuration| {
            times
                .iter()
                .filter(|t| now.duration_since(**t) <= w)
                .count()
        };
        if c.state == State::Error {
            unhealthy.push(HealthReason::State(c.state));
        }
        let window = self.unhealthy_window;
        let ooms = within(&c.oom_times, window);
        if ooms > 0 {
            unhealthy.push(HealthReason::OomKills {
                count: ooms,
                window,
            });
        }
        let cores = within(&c.core_times, window);
        if cores > 0 {
            unhealthy.push(HealthReason::CoreDumps {
                count: cores,
                window,
            });
        }
        let recent = within(&c.restart_times, window);
        if recent >= self.crash_loop_restarts {
            unhealthy.push(HealthReason::CrashLoop {
                restarts: recent,
                window,
            });
        }
        if let Some(s) = &c.sample.stats
            && let Some(limit) = s.mem_limit_bytes.filter(|l| *l > 0)
        {
            let ratio = s.mem_used_bytes() as f64 / limit as f64;
            if ratio > self.mem_warn_ratio {
                warning.push(HealthReason::Memory { ratio });
            }
        }
        if let Some(ratio) = throttled_ratio(c, now, self.throttle_window)
            && ratio > self.throttle_warn_ratio
        {
            warning.push(HealthReason::Throttled {
                ratio,
                window: self.throttle_window,
            });
        }
        let hour = within(&c.restart_times, self.restart_warn_window);
        if hour > 0 && recent < self.crash_loop_restarts {
            warning.push(HealthReason::Restarts {
                count: hour,
                window: self.restart_warn_window,
            });
        }
        let (tcp_unhealthy, tcp_warning) = tcp::evaluate(&self.tcp, &c.sample.tcp, now);
        unhealthy.extend(tcp_unhealthy.into_iter().map(tcp_reason));
        warning.extend(tcp_warning.into_iter().map(tcp_reason));
        if !unhealthy.is_empty() {
            unhealthy.extend(warning);
            (Health::UnHealthy, unhealthy)
        } else if !warning.is_empty() {
            (Health::Warning, warning)
        } else {
            (Health::Good, Vec::new())
        }
    }
}

fn tcp_reason(f: TcpFinding) -> HealthReason {
    match f {
        TcpFinding::ConnectsFailing { per_s, share, how } => {
            HealthReason::ConnectsFailing { per_s, share, how }
        }
        TcpFinding::Retransmits { ratio } => HealthReason::Retransmits { ratio },
        TcpFinding::ListenOverflows { per_s, port } => {
            HealthReason::ListenOverflows { per_s, port }
        }
    }
}

/// Fraction of CFS periods throttled over the window, from the samples kept.
pub fn throttled_ratio(c: &Container, now: Timestamp, window: SignedDuration) -> Option<f64> {
    let w = &c.sample.throttle_window;
    let last = w.back()?;
    let first = w.iter().find(|(t, ..)| now.duration_since(*t) <= window)?;
    let periods = last.1.checked_sub(first.1)?;
    let throttled = last.2.checked_sub(first.2)?;
    (periods > 0).then(|| throttled as f64 / periods as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{
        identity::{Identity, Runtime},
        stats::CgroupStats,
    };

    fn container(now: Timestamp) -> Container {
        let identity = Identity {
            runtime: Runtime::Docker,
            runtime_id: "a".repeat(64),
            pod_uid: None,
            cgroup: format!("/docker/{}", "a".repeat(64)),
        };
        let mut c = Container::new(identity, now);
        c.state = State::Running;
        c
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn running_quietly_is_good() {
        let c = container(now());
        assert_eq!(
            HealthRules::default().evaluate(&c, now()),
            (Health::Good, vec![])
        );
    }

    #[test]
    fn error_state_and_recent_oom_are_unhealthy() {
        let mut c = container(now());
        c.state = State::Error;
        c.oom_times.push(now() - SignedDuration::from_mins(2));
        let (h, why) = HealthRules::default().evaluate(&c, now());
        assert_eq!(h, Health::UnHealthy);
        assert_eq!(
            why,
            [
                HealthReason::State(State::Error),
                HealthReason::OomKills {
                    count: 1,
                    window: SignedDuration::from_mins(10)
                }
            ]
        );
    }

    #[test]
    fn old_oom_is_forgotten_but_restart_within_the_hour_warns() {
        let mut c = container(now());
        c.oom_times.push(now() - SignedDuration::from_mins(11));
        c.restart_times.push(now() - SignedDuration::from_mins(30));
        let (h, why) = HealthRules::default().evaluate(&c, now());
        assert_eq!(h, Health::Warning);
        assert_eq!(
            why,
            [HealthReason::Restarts {
                count: 1,
                window: SignedDuration::from_hours(1)
            }]
        );
    }

    #[test]
    fn three_restarts_in_ten_minutes_is_a_crash_loop() {
        let mut c = container(now());
        for m in [1, 3, 5] {
            c.restart_times.push(now() - SignedDuration::from_mins(m));
        }
        let (h, why) = HealthRules::default().evaluate(&c, now());
        assert_eq!(h, Health::UnHealthy);
        assert!(
            matches!(why[0], HealthReason::CrashLoop { restarts: 3, .. }),
            "{why:?}"
        );
    }

    #[test]
    fn memory_near_limit_and_throttling_warn() {
        let mut c = container(now());
        c.sample.stats = Some(CgroupStats {
            mem_anon_bytes: 95,
            mem_limit_bytes: Some(100),
            ..Default::default()
        });
        let t0 = now() - SignedDuration::from_secs(30);
        c.sample.throttle_window.push_back((t0, 100, 10));
        c.sample.throttle_window.push_back((now(), 200, 60));
        let (h, why) = HealthRules::default().evaluate(&c, now());
        assert_eq!(h, Health::Warning);
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(
            matches!(why[0], HealthReason::Memory { ratio } if ratio == 0.95)
                && matches!(why[1], HealthReason::Throttled { ratio, .. } if ratio == 0.5),
            "{why:?}"
        );
    }
}
