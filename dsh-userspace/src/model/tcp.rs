//! TCP health from a network namespace's own counters: failing connects,
//! retransmitted segments and listen-queue overflows, as rates over a
//! window of samples, and the reasons they make a container not Good.
use std::net::SocketAddr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use dsh_ebpf::TcpConnectStats;

use super::{
    readings::Readings,
    tcp_kernel::{DestinationWindow, FailedDestination, SocketRates, SocketWindow},
};
use crate::cgroup::{listen::Listener, snmp::TcpCounters};

/// How a connect failed (the socket's error when it closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectFailure {
    Refused,
    TimedOut,
    Unreachable,
    Reset,
}

/// A TCP condition that makes a container not Good (`health` turns each
/// into its `HealthReason`).
#[derive(Clone, Debug, PartialEq)]
pub enum TcpFinding {
    ConnectsFailing {
        per_s: f64,
        share: f64,
        how: Option<ConnectFailure>,
        /// The commonest destination of those failures, where the kernel
        /// programs kept them.
        to: Option<SocketAddr>,
    },
    Retransmits {
        ratio: f64,
    },
    ListenOverflows {
        per_s: f64,
        port: Option<u16>,
    },
}

/// Rates of one span of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpRates {
    pub connects_per_s: f64,
    pub connect_fails_per_s: f64,
    pub out_segs_per_s: f64,
    pub retrans_segs_per_s: f64,
    pub resets_sent_per_s: f64,
    pub estab_resets_per_s: f64,
    pub listen_overflows_per_s: f64,
    pub listen_drops_per_s: f64,
    /// How long the span covered.
    pub span_s: f64,
    /// Connects begun in the span, and how many of them failed.
    pub connects: u64,
    pub connect_fails: u64,
}

impl TcpRates {
    fn between(new: &TcpCounters, old: &TcpCounters, dt: f64) -> Self {
        let rate = |n: u64, o: u64| n.saturating_sub(o) as f64 / dt;
        Self {
            connects_per_s: rate(new.active_opens, old.active_opens),
            connect_fails_per_s: rate(new.attempt_fails, old.attempt_fails),
            out_segs_per_s: rate(new.out_segs, old.out_segs),
            retrans_segs_per_s: rate(new.retrans_segs, old.retrans_segs),
            resets_sent_per_s: rate(new.out_rsts, old.out_rsts),
            estab_resets_per_s: rate(new.estab_resets, old.estab_resets),
            listen_overflows_per_s: rate(new.listen_overflows, old.listen_overflows),
            listen_drops_per_s: rate(new.listen_drops, old.listen_drops),
            span_s: dt,
            connects: new.active_opens.saturating_sub(old.active_opens),
            connect_fails: new.attempt_fails.saturating_sub(old.attempt_fails),
        }
    }

    /// Retransmitted segments over segments sent (None: nothing sent).
    pub fn retrans_ratio(&self) -> Option<f64> {
        (self.out_segs_per_s > 0.0).then(|| self.retrans_segs_per_s / self.out_segs_per_s)
    }
}

/// Connects of one span as the kernel programs counted them for the
/// container's cgroup, per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectRates {
    pub ok_per_s: f64,
    pub refused_per_s: f64,
    pub timed_out_per_s: f64,
    pub unreachable_per_s: f64,
    pub reset_per_s: f64,
    pub other_error_per_s: f64,
    /// Given up by the connecting process (closed before an answer).
    pub aborted_per_s: f64,
    /// Mean SYN-to-established time of those established.
    pub handshake_ms: Option<f64>,
    pub span_s: f64,
    /// Begun in the span (ended, rather), and how many of them failed.
    pub connects: u64,
    pub failed: u64,
}

impl ConnectRates {
    fn between(new: &TcpConnectStats, old: &TcpConnectStats, dt: f64) -> Self {
        let d = |n: u64, o: u64| n.saturating_sub(o);
        let rate = |n: u64, o: u64| d(n, o) as f64 / dt;
        let ok = d(new.ok, old.ok);
        let failed = d(new.failed(), old.failed());
        Self {
            ok_per_s: rate(new.ok, old.ok),
            refused_per_s: rate(new.refused, old.refused),
            timed_out_per_s: rate(new.timed_out, old.timed_out),
            unreachable_per_s: rate(new.unreachable, old.unreachable),
            reset_per_s: rate(new.reset, old.reset),
            other_error_per_s: rate(new.other_error, old.other_error),
            aborted_per_s: rate(new.aborted, old.aborted),
            handshake_ms: (ok > 0)
                .then(|| d(new.handshake_ns, old.handshake_ns) as f64 / ok as f64 / 1e6),
            span_s: dt,
            connects: ok + failed + d(new.aborted, old.aborted),
            failed,
        }
    }

    /// The commonest way connects failed in the span.
    pub fn commonest_failure(&self) -> Option<ConnectFailure> {
        [
            (self.refused_per_s, ConnectFailure::Refused),
            (self.timed_out_per_s, ConnectFailure::TimedOut),
            (self.unreachable_per_s, ConnectFailure::Unreachable),
            (self.reset_per_s, ConnectFailure::Reset),
        ]
        .into_iter()
        .filter(|(r, _)| *r > 0.0)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f)
    }
}

/// A namespace's TCP counters over the last minute or so of samples; a new
/// namespace (restart) starts the window again. Beside them, the kernel
/// programs' connect counters of the container's cgroup.
#[derive(Clone, Debug, Default)]
pub struct TcpWindow {
    samples: Readings<TcpCounters>,
    connects: Readings<TcpConnectStats>,
    /// Listeners with connections waiting, as last read.
    pub listen_queues: Vec<Listener>,
    /// The kernel's retransmits and resets of the cgroup's own sockets
    /// (no readings where the kernel cannot say a socket's cgroup).
    pub sockets: SocketWindow,
    /// The cgroup's failed connects by destination.
    pub destinations: DestinationWindow,
}

impl TcpWindow {
    /// Adds a reading; samples older than `keep` are let go.
    pub fn push(&mut self, now: Timestamp, c: TcpCounters, keep: SignedDuration) {
        self.samples.push(now, c, keep, TcpCounters::follows);
    }

    /// Adds a reading of the kernel's connect counters for the cgroup.
    pub fn push_connects(&mut self, now: Timestamp, c: TcpConnectStats, keep: SignedDuration) {
        self.connects.push(now, c, keep, |c, last| {
            c.ok >= last.ok && c.failed() >= last.failed()
        });
    }

    /// The kernel's connect counters over `span` before `now`.
    pub fn connect_rates(&self, now: Timestamp, span: SignedDuration) -> Option<ConnectRates> {
        let (last, first, dt) = self.connects.over(now, span)?;
        Some(ConnectRates::between(last, first, dt))
    }

    /// The latest cumulative connect counters from the kernel.
    pub fn last_connects(&self) -> Option<&TcpConnectStats> {
        self.connects.last()
    }

    /// Forgets the readings (the namespace is no longer this container's).
    pub fn clear(&mut self) {
        self.samples.clear();
        self.listen_queues.clear();
    }

    /// The latest cumulative counters.
    pub fn last(&self) -> Option<&TcpCounters> {
        self.samples.last()
    }

    /// Rates from the oldest sample within `span` of `now` to the latest.
    pub fn rates(&self, now: Timestamp, span: SignedDuration) -> Option<TcpRates> {
        let (last, first, dt) = self.samples.over(now, span)?;
        Some(TcpRates::between(last, first, dt))
    }

    /// Rates between the last two samples (what `--json` shows).
    pub fn latest(&self) -> Option<TcpRates> {
        let (last, prev, dt) = self.samples.latest_two()?;
        Some(TcpRates::between(last, prev, dt))
    }
}

/// A container's TCP figures as `--json` shows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpRow {
    /// The namespace's cumulative counters (`/proc/PID/net/snmp`, `netstat`).
    pub counters: TcpCounters,
    /// Rates over the health window (what the reasons are judged on).
    pub rates: Option<TcpRates>,
    /// The kernel programs' connects of the container's own cgroup, by
    /// how they ended, over the same window.
    pub connects: Option<ConnectRates>,
    /// Listeners with connections waiting to be accepted, fullest first.
    pub listen_queues: Vec<Listener>,
    /// The kernel programs' retransmits and resets of the container's own
    /// sockets over the window (null where the kernel cannot say a
    /// socket's cgroup).
    #[serde(default)]
    pub sockets: Option<SocketRates>,
    /// The commonest destinations of the window's failed connects (the
    /// kernel's), and the failures to all others.
    #[serde(default)]
    pub failing_destinations: Vec<FailedDestination>,
    #[serde(default)]
    pub failing_destinations_other: u64,
}

impl TcpRow {
    pub fn of(w: &TcpWindow, rules: &TcpRules, now: Timestamp) -> Option<Self> {
        let top = w.destinations.top(now, rules.window);
        Some(Self {
            counters: *w.last()?,
            rates: w.rates(now, rules.window),
            connects: w.connect_rates(now, rules.window),
            listen_queues: w.listen_queues.clone(),
            sockets: w.sockets.rates(now, rules.window),
            failing_destinations: top.top,
            failing_destinations_other: top.other,
        })
    }
}

/// Thresholds for TCP health (part of `HealthRules`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpRules {
    /// Rates are taken over this window for a Warning, once readings span
    /// at least `min_span` (a burst in the first second is no trend).
    pub window: SignedDuration,
    pub min_span: SignedDuration,
    /// Failed connects above this rate, and above `connect_fail_share` of
    /// those begun, are a Warning.
    pub connect_fail_per_s: f64,
    pub connect_fail_share: f64,
    /// Every connect failing (at least `connect_fail_per_s`) over this long
    /// is UnHealthy.
    pub connect_fail_unhealthy: SignedDuration,
    /// Retransmitted segments above this share of those sent, at least
    /// `retrans_per_s` of them, are a Warning.
    pub retrans_share: f64,
    pub retrans_per_s: f64,
    /// Listen-queue overflows above this rate are a Warning.
    pub listen_overflow_per_s: f64,
}

impl Default for TcpRules {
    fn default() -> Self {
        Self {
            window: SignedDuration::from_secs(30),
            min_span: SignedDuration::from_secs(5),
            connect_fail_per_s: 1.0,
            connect_fail_share: 0.1,
            connect_fail_unhealthy: SignedDuration::from_mins(1),
            retrans_share: 0.03,
            retrans_per_s: 1.0,
            listen_overflow_per_s: 1.0,
        }
    }
}

impl TcpRules {
    /// How long readings are kept for these rules.
    pub fn keep(&self) -> SignedDuration {
        self.window.max(self.connect_fail_unhealthy) + SignedDuration::from_secs(5)
    }
}

/// Connects over a span, from either source: (span, failed, begun, how).
type ConnectSpan = (f64, u64, u64, Option<ConnectFailure>);

/// Connects over `span`: the kernel's counts for the cgroup where it has
/// them (they say how connects failed), else the namespace's.
fn connects_over(w: &TcpWindow, now: Timestamp, span: SignedDuration) -> Option<ConnectSpan> {
    match w.connect_rates(now, span) {
        Some(c) => Some((c.span_s, c.failed, c.connects, c.commonest_failure())),
        None => w
            .rates(now, span)
            .map(|x| (x.span_s, x.connect_fails, x.connects, None)),
    }
}

/// The TCP reasons of one container: (UnHealthy ones, Warning ones).
pub fn evaluate(r: &TcpRules, w: &TcpWindow, now: Timestamp) -> (Vec<TcpFinding>, Vec<TcpFinding>) {
    let (mut unhealthy, mut warning) = (Vec::new(), Vec::new());
    let min_span = r.min_span.as_secs_f64();
    if let Some((span, failed, begun, how)) =
        connects_over(w, now, r.window).filter(|c| c.0 >= min_span)
    {
        let per_s = failed as f64 / span;
        if per_s >= r.connect_fail_per_s && failed as f64 >= r.connect_fail_share * begun as f64 {
            let reason = TcpFinding::ConnectsFailing {
                per_s,
                share: if begun > 0 {
                    (failed as f64 / begun as f64).min(1.0)
                } else {
                    1.0
                },
                how,
                to: w
                    .destinations
                    .top(now, r.window)
                    .top
                    .first()
                    .map(|d| d.addr),
            };
            // The span must cover (nearly) the whole minute, every connect
            // in it failing.
            let sustained = connects_over(w, now, r.connect_fail_unhealthy).is_some_and(
                |(span, failed, begun, _)| {
                    span + 5.0 >= r.connect_fail_unhealthy.as_secs_f64()
                        && failed as f64 / span >= r.connect_fail_per_s
                        && failed >= begun
                },
            );
            if sustained {
                unhealthy.push(reason);
            } else {
                warning.push(reason);
            }
        }
    }
    let Some(recent) = w.rates(now, r.window).filter(|x| x.span_s >= min_span) else {
        return (unhealthy, warning);
    };
    // The cgroup's own sockets' retransmits where the kernel counts them
    // (a pod's containers share one namespace), else the namespace's;
    // over the namespace's segments sent either way.
    let retrans_per_s = match w.sockets.rates(now, r.window) {
        Some(s) if s.span_s >= min_span => s.retransmits_per_s,
        _ => recent.retrans_segs_per_s,
    };
    if recent.out_segs_per_s > 0.0 && retrans_per_s >= r.retrans_per_s {
        let ratio = retrans_per_s / recent.out_segs_per_s;
        if ratio >= r.retrans_share {
            warning.push(TcpFinding::Retransmits { ratio });
        }
    }
    if recent.listen_overflows_per_s >= r.listen_overflow_per_s {
        warning.push(TcpFinding::ListenOverflows {
            per_s: recent.listen_overflows_per_s,
            port: w
                .listen_queues
                .iter()
                .find(|l| l.queued >= l.backlog)
                .map(|l| l.port),
        });
    }
    (unhealthy, warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    /// A window fed one reading a second for `secs`, each second adding
    /// `step` to the counters.
    fn fed(secs: i64, step: TcpCounters) -> TcpWindow {
        let mut w = TcpWindow::default();
        let mut c = TcpCounters::default();
        for s in 0..=secs {
            w.push(at(s), c, TcpRules::default().keep());
            c.active_opens += step.active_opens;
            c.attempt_fails += step.attempt_fails;
            c.out_segs += step.out_segs;
            c.retrans_segs += step.retrans_segs;
            c.listen_overflows += step.listen_overflows;
        }
        w
    }

    fn eval(w: &TcpWindow, now: i64) -> (Vec<TcpFinding>, Vec<TcpFinding>) {
        evaluate(&TcpRules::default(), w, at(now))
    }

    #[test]
    fn refused_connects_warn_then_after_a_minute_are_unhealthy() {
        let step = TcpCounters {
            active_opens: 20,
            attempt_fails: 20,
            ..Default::default()
        };
        let (u, warn) = eval(&fed(10, step), 10);
        assert!(u.is_empty());
        assert!(
            matches!(warn[..], [TcpFinding::ConnectsFailing { per_s, share, how: None, to: None }] if per_s == 20.0 && share == 1.0),
            "{warn:?}"
        );
        let (u, warn) = eval(&fed(70, step), 70);
        assert!(warn.is_empty());
        assert!(
            matches!(u[..], [TcpFinding::ConnectsFailing { .. }]),
            "{u:?}"
        );
    }

    #[test]
    fn a_burst_in_the_first_seconds_is_no_trend() {
        let step = TcpCounters {
            active_opens: 20,
            attempt_fails: 20,
            ..Default::default()
        };
        assert_eq!(eval(&fed(3, step), 3), (vec![], vec![]));
        assert_eq!(eval(&fed(5, step), 5).1.len(), 1);
    }

    /// The kernel's counts, where present, say how connects failed.
    #[test]
    fn kernel_counts_name_the_failure() {
        let mut w = TcpWindow::default();
        let keep = TcpRules::default().keep();
        for s in 0..=10u64 {
            let c = TcpConnectStats {
                ok: 10 * s,
                handshake_ns: 10 * s * 50_000,
                refused: 20 * s,
                timed_out: s,
                ..Default::default()
            };
            w.push_connects(at(s as i64), c, keep);
        }
        let (u, warn) = eval(&w, 10);
        assert!(u.is_empty());
        assert!(
            matches!(warn[..], [TcpFinding::ConnectsFailing { per_s, how: Some(ConnectFailure::Refused), .. }] if per_s == 21.0),
            "{warn:?}"
        );
        let c = w
            .connect_rates(at(10), SignedDuration::from_secs(30))
            .unwrap();
        assert_eq!(c.handshake_ms, Some(0.05));
        assert_eq!((c.connects, c.failed), (310, 210));
    }

    #[test]
    fn busy_healthy_traffic_is_good() {
        // A web server's client: ten connects a second, all answered, no
        // segment lost; a redis client: one connection, 100,000 segments/s.
        let web = TcpCounters {
            active_opens: 10,
            out_segs: 60,
            ..Default::default()
        };
        assert_eq!(eval(&fed(70, web), 70), (vec![], vec![]));
        let redis = TcpCounters {
            out_segs: 100_000,
            retrans_segs: 3,
            ..Default::default()
        };
        assert_eq!(eval(&fed(70, redis), 70), (vec![], vec![]));
        // A rare failed connect among many.
        let rare = TcpCounters {
            active_opens: 100,
            attempt_fails: 2,
            ..Default::default()
        };
        assert_eq!(eval(&fed(70, rare), 70), (vec![], vec![]));
    }

    #[test]
    fn lost_segments_and_overflowing_listener_warn() {
        let lossy = TcpCounters {
            out_segs: 100,
            retrans_segs: 33,
            ..Default::default()
        };
        let (_, warn) = eval(&fed(20, lossy), 20);
        assert!(
            matches!(warn[..], [TcpFinding::Retransmits { ratio }] if (ratio - 0.33).abs() < 1e-9),
            "{warn:?}"
        );
        let mut w = fed(
            20,
            TcpCounters {
                listen_overflows: 64,
                ..Default::default()
            },
        );
        w.listen_queues = vec![Listener {
            port: 7000,
            queued: 2,
            backlog: 1,
        }];
        let (_, warn) = eval(&w, 20);
        assert_eq!(
            warn,
            [TcpFinding::ListenOverflows {
                per_s: 64.0,
                port: Some(7000)
            }]
        );
    }

    #[test]
    fn the_reason_goes_when_the_window_has_passed_and_a_restart_resets() {
        let step = TcpCounters {
            active_opens: 20,
            attempt_fails: 20,
            ..Default::default()
        };
        let mut w = fed(10, step);
        let last = *w.last().unwrap();
        for s in 11..=45 {
            w.push(at(s), last, TcpRules::default().keep());
        }
        assert_eq!(eval(&w, 45), (vec![], vec![]));
        // A new namespace: counters from zero, no rate across the two.
        w.push(at(46), TcpCounters::default(), TcpRules::default().keep());
        assert_eq!(w.rates(at(46), SignedDuration::from_secs(30)), None);
    }
}
