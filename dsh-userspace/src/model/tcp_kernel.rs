//! What the kernel programs count per container cgroup beside connects:
//! its sockets' retransmits and resets, and where its failed connects went
//! (the commonest destinations of a window, the rest as one "other").
use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use dsh_ebpf::TcpSocketStats;

use super::readings::Readings;

pub use crate::probe::FailedDestination;

/// Destinations a window names; the rest are summed as other.
pub const TOP_DESTINATIONS: usize = 3;
/// Destinations kept per reading (the rest summed): bounds the memory a
/// container dialling thousands of addresses costs.
const KEPT_PER_READING: usize = 8;

/// Retransmits and resets of a container's sockets over a span, per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SocketRates {
    pub retransmits_per_s: f64,
    pub resets_sent_per_s: f64,
    pub resets_received_per_s: f64,
    pub span_s: f64,
}

/// Readings of a cgroup's cumulative socket counters.
#[derive(Clone, Debug, Default)]
pub struct SocketWindow {
    samples: Readings<TcpSocketStats>,
}

impl SocketWindow {
    /// Adds a reading; a counter that went down (the entry was dropped and
    /// made again) starts the window again.
    pub fn push(&mut self, now: Timestamp, s: TcpSocketStats, keep: SignedDuration) {
        self.samples.push(now, s, keep, |s, l| {
            s.retransmits >= l.retransmits
                && s.resets_sent >= l.resets_sent
                && s.resets_received >= l.resets_received
        });
    }

    /// The latest cumulative counters.
    pub fn last(&self) -> Option<&TcpSocketStats> {
        self.samples.last()
    }

    /// Rates from the oldest reading within `span` of `now` to the latest.
    pub fn rates(&self, now: Timestamp, span: SignedDuration) -> Option<SocketRates> {
        let (last, first, dt) = self.samples.over(now, span)?;
        let rate = |n: u64, o: u64| n.saturating_sub(o) as f64 / dt;
        Some(SocketRates {
            retransmits_per_s: rate(last.retransmits, first.retransmits),
            resets_sent_per_s: rate(last.resets_sent, first.resets_sent),
            resets_received_per_s: rate(last.resets_received, first.resets_received),
            span_s: dt,
        })
    }
}

/// The commonest destinations of a span and the failures to all others.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopDestinations {
    pub top: Vec<FailedDestination>,
    pub other: u64,
}

/// Failed connects by destination: what each reading added.
#[derive(Clone, Debug, Default)]
pub struct DestinationWindow {
    /// Cumulative failures per destination as last read.
    last: HashMap<SocketAddr, u64>,
    /// Per reading: the destinations that failed most since the one
    /// before, and the failures to the rest.
    added: VecDeque<(Timestamp, Vec<FailedDestination>, u64)>,
}

impl DestinationWindow {
    /// Adds a reading of the cumulative failures per destination. The
    /// kernel's table evicts the least recent: a destination that vanished
    /// and came back counts from zero again.
    pub fn push(&mut self, now: Timestamp, read: &[(SocketAddr, u64)], keep: SignedDuration) {
        let mut added = added_since(&self.last, read);
        self.last = read.iter().copied().collect();
        let other = split_top(&mut added, KEPT_PER_READING);
        if !added.is_empty() || other > 0 {
            self.added.push_back((now, added, other));
        }
        while self
            .added
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > keep)
        {
            self.added.pop_front();
        }
    }

    /// The `TOP_DESTINATIONS` commonest destinations of failed connects
    /// within `span` of `now`, commonest first, the rest summed as other.
    pub fn top(&self, now: Timestamp, span: SignedDuration) -> TopDestinations {
        let mut sum: HashMap<SocketAddr, u64> = HashMap::new();
        let mut other = 0;
        for (_, added, o) in self
            .added
            .iter()
            .filter(|(t, _, _)| now.duration_since(*t) <= span)
        {
            for d in added {
                *sum.entry(d.addr).or_default() += d.failures;
            }
            other += o;
        }
        let mut top: Vec<FailedDestination> = sum
            .into_iter()
            .map(|(addr, failures)| FailedDestination { addr, failures })
            .collect();
        other += split_top(&mut top, TOP_DESTINATIONS);
        TopDestinations { top, other }
    }
}

/// What each destination gained from `before` to `after` (cumulative
/// readings); one that counts less than before was evicted and made again:
/// all of its count is new.
fn added_since(
    before: &HashMap<SocketAddr, u64>,
    after: &[(SocketAddr, u64)],
) -> Vec<FailedDestination> {
    after
        .iter()
        .filter_map(|&(addr, n)| {
            let was = before.get(&addr).copied().unwrap_or(0);
            let failures = if n >= was { n - was } else { n };
            (failures > 0).then_some(FailedDestination { addr, failures })
        })
        .collect()
}

/// The commonest destinations of the failures between two readings (a
/// trace's start and end), the rest as other.
pub fn top_between(before: &[(SocketAddr, u64)], after: &[(SocketAddr, u64)]) -> TopDestinations {
    let before: HashMap<SocketAddr, u64> = before.iter().copied().collect();
    let mut top = added_since(&before, after);
    let other = split_top(&mut top, TOP_DESTINATIONS);
    TopDestinations { top, other }
}

/// Keeps the `n` largest of `v`, largest first (ties by address, so the
/// order is stable), and returns the sum of the rest.
fn split_top(v: &mut Vec<FailedDestination>, n: usize) -> u64 {
    v.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.addr.cmp(&b.addr)));
    let rest = v.iter().skip(n).map(|d| d.failures).sum();
    v.truncate(n);
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const KEEP: SignedDuration = SignedDuration::from_secs(65);
    const SPAN: SignedDuration = SignedDuration::from_secs(30);

    #[test]
    fn the_top_three_and_the_rest_as_other() {
        let mut w = DestinationWindow::default();
        let dests: Vec<SocketAddr> = (1..=5).map(|p| addr(&format!("127.0.0.1:{p}"))).collect();
        for s in 0..=10u64 {
            // Port p fails p times a second.
            let read: Vec<(SocketAddr, u64)> =
                dests.iter().zip(1..).map(|(a, p)| (*a, p * s)).collect();
            w.push(at(s as i64), &read, KEEP);
        }
        let t = w.top(at(10), SPAN);
        let names: Vec<String> = t.top.iter().map(|d| d.addr.to_string()).collect();
        assert_eq!(names, ["127.0.0.1:5", "127.0.0.1:4", "127.0.0.1:3"]);
        assert_eq!(t.top[0].failures, 50);
        assert_eq!(t.other, 20 + 10);
    }

    #[test]
    fn differences_not_totals_and_eviction_counts_from_zero() {
        let mut w = DestinationWindow::default();
        let a = addr("[::1]:80");
        // Failures before the window began do not count.
        w.push(at(0), &[(a, 1000)], KEEP);
        w.push(at(40), &[(a, 1004)], KEEP);
        assert_eq!(w.top(at(40), SPAN).top[0].failures, 4);
        // Evicted (absent), then made again with 3.
        w.push(at(41), &[], KEEP);
        w.push(at(42), &[(a, 3)], KEEP);
        assert_eq!(w.top(at(42), SPAN).top[0].failures, 7);
        // Out of the window: nothing.
        assert_eq!(w.top(at(80), SPAN), TopDestinations::default());
    }

    #[test]
    fn a_reading_keeps_a_bounded_number() {
        let mut w = DestinationWindow::default();
        let read: Vec<(SocketAddr, u64)> = (1..=100u16)
            .map(|p| (addr(&format!("10.0.0.1:{p}")), u64::from(p)))
            .collect();
        w.push(at(0), &read, KEEP);
        assert_eq!(w.added[0].1.len(), KEPT_PER_READING);
        let t = w.top(at(0), SPAN);
        assert_eq!(t.top.len(), TOP_DESTINATIONS);
        let named: u64 = t.top.iter().map(|d| d.failures).sum();
        assert_eq!(named + t.other, (1..=100).sum::<u64>());
    }

    #[test]
    fn between_two_readings() {
        let (a, b) = (addr("127.0.0.1:9"), addr("10.0.0.1:80"));
        let t = top_between(&[(a, 5)], &[(a, 25), (b, 1)]);
        assert_eq!(
            t.top,
            [
                FailedDestination {
                    addr: a,
                    failures: 20
                },
                FailedDestination {
                    addr: b,
                    failures: 1
                }
            ]
        );
        assert_eq!(t.other, 0);
        assert_eq!(
            top_between(&[(a, 5)], &[(a, 5)]),
            TopDestinations::default()
        );
    }

    #[test]
    fn socket_rates_over_the_span() {
        let mut w = SocketWindow::default();
        for s in 0..=10u64 {
            let c = TcpSocketStats {
                retransmits: 3 * s,
                resets_received: s,
                ..Default::default()
            };
            w.push(at(s as i64), c, KEEP);
        }
        let r = w.rates(at(10), SPAN).unwrap();
        assert_eq!((r.retransmits_per_s, r.resets_received_per_s), (3.0, 1.0));
        assert_eq!(r.resets_sent_per_s, 0.0);
        // Counters going down: a new start.
        w.push(at(11), TcpSocketStats::default(), KEEP);
        assert_eq!(w.rates(at(11), SPAN), None);
    }
}
