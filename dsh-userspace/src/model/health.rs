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
    /// Forks refused at the cgroup's pids.max within the window (`limit`:
    /// pids.max as last read).
    PidsRefused {
        count: u64,
        limit: Option<u64>,
        window: SignedDuration,
    },
    /// Syscalls that failed with EMFILE or ENFILE within the window, as
    /// counted (in sampling windows by default); `limit`: the main
    /// process's soft RLIMIT_NOFILE.
    FdLimit {
        count: u64,
        limit: Option<u64>,
        window: SignedDuration,
    },
    /// Tasks stalled waiting for a resource: PSI `some` and `full` over the
    /// last 10 s, and the memory stall share beside it (is it thrashing?).
    Stalled {
        resource: StallResource,
        some: f64,
        full: f64,
        memory: f64,
    },
    /// Connects failing at this rate, this share of those begun; how most
    /// failed where the kernel programs counted them (else the namespace's
    /// AttemptFails: refused, timed out or unreachable).
    ConnectsFailing {
        per_s: f64,
        share: f64,
        how: Option<ConnectFailure>,
        /// The commonest destination, where the kernel kept them.
        #[serde(default)]
        to: Option<std::net::SocketAddr>,
    },
    /// This share of the segments sent were retransmissions.
    Retransmits { ratio: f64 },
    /// Handshakes dropped at a full accept queue, at this rate; the port of
    /// the listener found full, when one was.
    ListenOverflows { per_s: f64, port: Option<u16> },
}

/// Which resource a pressure stall is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallResource {
    Memory,
    Io,
}

impl HealthReason {
    /// A running-but-failing condition: its start and end each write one
    /// `dsh log -a` line (`model::sick`). The other reasons are told by
    /// their own lines (exits, OOM kills, restarts).
    pub fn is_condition(&self) -> bool {
        matches!(
            self,
            HealthReason::PidsRefused { .. }
                | HealthReason::FdLimit { .. }
                | HealthReason::Stalled { .. }
                | HealthReason::ConnectsFailing { .. }
                | HealthReason::Retransmits { .. }
                | HealthReason::ListenOverflows { .. }
        )
    }

    /// A stable machine name (the metrics' `reason` label).
    pub fn kind(&self) -> &'static str {
        match self {
            HealthReason::State(_) => "state",
            HealthReason::OomKills { .. } => "oom_kills",
            HealthReason::CoreDumps { .. } => "core_dumps",
            HealthReason::CrashLoop { .. } => "crash_loop",
            HealthReason::Memory { .. } => "memory",
            HealthReason::Throttled { .. } => "throttled",
            HealthReason::Restarts { .. } => "restarts",
            HealthReason::PidsRefused { .. } => "pids_refused",
            HealthReason::FdLimit { .. } => "fd_limit",
            HealthReason::Stalled {
                resource: StallResource::Memory,
                ..
            } => "memory_stalled",
            HealthReason::Stalled {
                resource: StallResource::Io,
                ..
            } => "io_stalled",
            HealthReason::ConnectsFailing { .. } => "connects_failing",
            HealthReason::Retransmits { .. } => "retransmits",
            HealthReason::ListenOverflows { .. } => "listen_overflows",
        }
    }

    /// Which condition this is, whatever its figures: a condition whose
    /// figures change is still the same one.
    pub fn same_condition(&self, other: &Self) -> bool {
        match (self, other) {
            (
                HealthReason::Stalled { resource: a, .. },
                HealthReason::Stalled { resource: b, .. },
            ) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
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
    /// Refused forks or EMFILE/ENFILE within this window are a Warning;
    /// the reason goes away this long after the last one.
    #[serde(default = "default_sick_window")]
    pub sick_window: SignedDuration,
    /// Memory stalled above this share of the last 10 s (PSI `some`
    /// avg10) is a Warning.
    #[serde(default = "default_stall_warn_ratio")]
    pub stall_warn_ratio: f64,
    /// I/O stalled above this share while the memory limit is hit (page
    /// cache thrashing: what it reads again no longer fits) is a Warning.
    /// A busy service stalls on I/O without thrashing: I/O stall with
    /// memory below its limit is no reason.
    #[serde(default = "default_io_stall_warn_ratio")]
    pub io_stall_warn_ratio: f64,
    /// Memory `full` pressure above this share (systemd-oomd's default
    /// 60%) for `memory_full_for` is UnHealthy.
    #[serde(default = "default_memory_full_ratio")]
    pub memory_full_unhealthy_ratio: f64,
    #[serde(default = "default_memory_full_for")]
    pub memory_full_for: SignedDuration,
    /// Failing connects, retransmits, listen overflows.
    #[serde(default)]
    pub tcp: TcpRules,
}

fn default_sick_window() -> SignedDuration {
    SignedDuration::from_mins(1)
}
fn default_stall_warn_ratio() -> f64 {
    0.4
}
fn default_io_stall_warn_ratio() -> f64 {
    0.15
}
fn default_memory_full_ratio() -> f64 {
    0.6
}
fn default_memory_full_for() -> SignedDuration {
    SignedDuration::from_secs(30)
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
            sick_window: default_sick_window(),
            stall_warn_ratio: default_stall_warn_ratio(),
            io_stall_warn_ratio: default_io_stall_warn_ratio(),
            memory_full_unhealthy_ratio: default_memory_full_ratio(),
            memory_full_for: default_memory_full_for(),
            tcp: TcpRules::default(),
        }
    }
}

impl HealthRules {
    /// How long event times must be kept to evaluate these rules.
    pub fn lookback(&self) -> SignedDuration {
        self.unhealthy_window.max(self.restart_warn_window)
    }

    /// Figures kept in a container's recent-events rings this long.
    pub fn sick_keep(&self) -> SignedDuration {
        self.sick_window.max(self.memory_full_for) + SignedDuration::from_secs(5)
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
        for (reason, severe) in self.conditions(c, now) {
            if severe {
                unhealthy.push(reason);
            } else {
                warning.push(reason);
            }
        }
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

impl HealthRules {
    /// The running-but-failing conditions of `c`, each with whether it is
    /// severe (UnHealthy) or a Warning.
    pub fn conditions(&self, c: &Container, now: Timestamp) -> Vec<(HealthReason, bool)> {
        let mut out = self.limit_conditions(c, now);
        let (severe, warning) = tcp::evaluate(&self.tcp, &c.sample.tcp, now);
        out.extend(severe.into_iter().map(|f| (tcp_reason(f), true)));
        out.extend(warning.into_iter().map(|f| (tcp_reason(f), false)));
        out
    }

    /// Limits hit and pressure stalls.
    fn limit_conditions(&self, c: &Container, now: Timestamp) -> Vec<(HealthReason, bool)> {
        let mut out = Vec::new();
        let sick = &c.sample.sick;
        let stats = c.sample.stats.as_ref();
        let window = self.sick_window;
        let refused = sick.pids_refused.within(now, window);
        if refused > 0 {
            let limit = stats.and_then(|s| s.pids_max);
            out.push((
                HealthReason::PidsRefused {
                    count: refused,
                    limit,
                    window,
                },
                false,
            ));
        }
        let fds = sick.fd_limit.within(now, window);
        if fds > 0 {
            out.push((
                HealthReason::FdLimit {
                    count: fds,
                    limit: sick.fd_soft_limit,
                    window,
                },
                false,
            ));
        }
        let Some(p) = stats.and_then(|s| s.pressure) else {
            return out;
        };
        let memory = p.memory.unwrap_or_default();
        let sustained = sick
            .memory_full_since
            .is_some_and(|t| now.duration_since(t) >= self.memory_full_for);
        if memory.some.avg10 > self.stall_warn_ratio || sustained {
            out.push((
                HealthReason::Stalled {
                    resource: StallResource::Memory,
                    some: memory.some.avg10,
                    full: memory.full.avg10,
                    memory: memory.some.avg10,
                },
                sustained,
            ));
        }
        // I/O stalls count only while the container thrashes against its
        // memory limit (it hit it lately, or its charge is at 95% of it:
        // v1 memory.failcnt stays 0 while page cache is reclaimed): a busy
        // service's disk waits are no fault of its own.
        let at_limit = sick.mem_max_hits.within(now, window) > 0
            || stats.is_some_and(|s| {
                s.mem_limit_bytes
                    .is_some_and(|l| s.mem_usage_bytes as f64 >= l as f64 * 0.95)
            });
        if let Some(io) = p.io
            && io.some.avg10 > self.io_stall_warn_ratio
            && at_limit
        {
            out.push((
                HealthReason::Stalled {
                    resource: StallResource::Io,
                    some: io.some.avg10,
                    full: io.full.avg10,
                    memory: memory.some.avg10,
                },
                false,
            ));
        }
        out
    }
}

fn tcp_reason(f: TcpFinding) -> HealthReason {
    match f {
        TcpFinding::ConnectsFailing {
            per_s,
            share,
            how,
            to,
        } => HealthReason::ConnectsFailing {
            per_s,
            share,
            how,
            to,
        },
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

    #[test]
    fn limits_hit_and_thrashing_warn_but_busy_io_stays_good() {
        use crate::cgroup::stats::{Pressure, Psi, Stall};
        let rules = HealthRules::default();
        let stall = |avg10| Stall {
            avg10,
            ..Default::default()
        };
        let mut c = container(now());
        let mut stats = CgroupStats {
            pids: Some(12),
            pids_max: Some(12),
            pressure: Some(Pressure {
                io: Some(Psi {
                    some: stall(0.69),
                    full: stall(0.5),
                }),
                memory: Some(Psi {
                    some: stall(0.05),
                    full: stall(0.01),
                }),
                cpu: None,
            }),
            ..Default::default()
        };
        // Heavy I/O, memory limit never hit: Good.
        let t0 = now() - SignedDuration::from_secs(10);
        c.sample.sick.record(None, &stats, &rules, t0);
        c.sample.stats = Some(stats.clone());
        c.sample
            .sick
            .record(Some(&stats.clone()), &stats, &rules, now());
        assert_eq!(rules.evaluate(&c, now()), (Health::Good, vec![]));
        // Forks refused and the memory limit hit: both Warnings.
        let before = stats.clone();
        stats.pids_refused = 226;
        stats.mem_max_events = 40;
        c.sample.sick.record(Some(&before), &stats, &rules, now());
        c.sample.stats = Some(stats.clone());
        let (h, why) = rules.evaluate(&c, now());
        assert_eq!(h, Health::Warning);
        let text: Vec<&str> = why.iter().map(HealthReason::kind).collect();
        assert_eq!(text, ["pids_refused", "io_stalled"], "{why:?}");
        assert!(matches!(
            why[0],
            HealthReason::PidsRefused {
                count: 226,
                limit: Some(12),
                ..
            }
        ));
        // A minute and more after the last refusal, with the stall over: Good again.
        let later = now() + SignedDuration::from_secs(61);
        stats.pressure = None;
        c.sample
            .sick
            .record(Some(&stats.clone()), &stats, &rules, later);
        c.sample.stats = Some(stats.clone());
        assert_eq!(rules.evaluate(&c, later), (Health::Good, vec![]));
        // Full memory pressure above 60% for 30 s: UnHealthy.
        stats.pressure = Some(Pressure {
            memory: Some(Psi {
                some: stall(0.8),
                full: stall(0.7),
            }),
            ..Default::default()
        });
        for s in [0, 15, 30] {
            let at = later + SignedDuration::from_secs(s);
            c.sample
                .sick
                .record(Some(&stats.clone()), &stats, &rules, at);
        }
        c.sample.stats = Some(stats.clone());
        let at = later + SignedDuration::from_secs(30);
        let (h, why) = rules.evaluate(&c, at);
        assert_eq!((h, why[0].kind()), (Health::UnHealthy, "memory_stalled"));
    }
}
