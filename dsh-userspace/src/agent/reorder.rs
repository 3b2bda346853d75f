//! Puts events from the two ring buffers back in kernel time order.
//!
//! Each ring delivers its own records in order, but the two are read one
//! after the other: a process's exit (critical) can be read before its own
//! exec, or the SIGTERM that caused it (chatty). A fixed wait cannot cover
//! that: a starved reader (a loaded host, a slow VM) reads both rings long
//! after the fact. So an event leaves only once every ring has been read
//! past its time (the stream's read mark), less a margin for records a
//! program has reserved but not yet submitted. An event that still arrives
//! behind what already left is applied anyway, counted, and widens the
//! margin; the margin shrinks back once events stop arriving late.
//!
//! The programs submit without waking the agent, which reads both rings
//! every `probe::DRAIN_EVERY` (50 ms) and at a wake-up when a ring fills:
//! each read moves the marks, so an event normally leaves within one drain
//! period plus the margin, and never before the agent has read both rings
//! past it, however starved the agent is.
use std::{cmp::Reverse, collections::BinaryHeap};

use crate::probe::event::Event;

/// The margin when no event has arrived late: a program holds a reserved
/// record for microseconds.
pub const MIN_MARGIN_NS: u64 = 5_000_000;
/// However late events arrive, none waits longer than this past the read
/// mark: the table stays live.
pub const MAX_MARGIN_NS: u64 = 2_000_000_000;
/// A widened margin halves after this long (kernel time) with no late event.
const RELAX_AFTER_NS: u64 = 60_000_000_000;

struct Held(Event, u64);

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.0.boot_ns, self.1) == (other.0.boot_ns, other.1)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.boot_ns, self.1).cmp(&(other.0.boot_ns, other.1))
    }
}

pub struct Reorder {
    heap: BinaryHeap<Reverse<Held>>,
    /// Arrival order breaks ties between events with the same timestamp.
    arrivals: u64,
    /// The newest event released so far.
    released_up_to: u64,
    margin_ns: u64,
    /// When the margin was last widened or relaxed (kernel time).
    margin_since: u64,
    /// Events that arrived behind ones already released.
    pub late: u64,
}

impl Default for Reorder {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            arrivals: 0,
            released_up_to: 0,
            margin_ns: MIN_MARGIN_NS,
            margin_since: 0,
            late: 0,
        }
    }
}

impl Reorder {
    pub fn push(&mut self, ev: Event) {
        if ev.boot_ns < self.released_up_to {
            self.late += 1;
            let behind = self.released_up_to - ev.boot_ns;
            let margin = behind
                .saturating_mul(2)
                .clamp(self.margin_ns, MAX_MARGIN_NS);
            if margin > self.margin_ns {
                log::warn!(
                    "an event arrived {} ms behind later ones already applied ({} so far); \
                     ordering margin now {} ms",
                    behind / 1_000_000,
                    self.late,
                    margin / 1_000_000
                );
            }
            self.margin_ns = margin;
            self.margin_since = self.released_up_to;
        }
        self.arrivals += 1;
        self.heap.push(Reverse(Held(ev, self.arrivals)));
    }

    /// Events no record still to be read can precede, oldest first: every
    /// ring has been read up to `read_up_to` (kernel time). All of them
    /// when `flush_all`.
    pub fn ready(&mut self, read_up_to: u64, flush_all: bool) -> Vec<Event> {
        if self.margin_ns > MIN_MARGIN_NS
            && read_up_to.saturating_sub(self.margin_since) > RELAX_AFTER_NS
        {
            self.margin_ns = (self.margin_ns / 2).max(MIN_MARGIN_NS);
            self.margin_since = read_up_to;
        }
        let cutoff = read_up_to.saturating_sub(self.margin_ns);
        let mut out = Vec::new();
        while let Some(Reverse(Held(ev, _))) = self.heap.peek() {
            if !flush_all && ev.boot_ns > cutoff {
                break;
            }
            if let Some(Reverse(Held(ev, _))) = self.heap.pop() {
                self.released_up_to = self.released_up_to.max(ev.boot_ns);
                out.push(ev);
            }
        }
        out
    }

    pub fn margin_ns(&self) -> u64 {
        self.margin_ns
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::event::{EventKind, Task};

    const MS: u64 = 1_000_000;

    /// An event told apart by `n` (its port).
    fn ev(boot_ns: u64, n: u16) -> Event {
        Event {
            boot_ns,
            cpu: 0,
            task: Task {
                pid: 1,
                tgid: 1,
                comm: "x".into(),
                cgroup_id: crate::cgroup::CgroupId::new(1),
            },
            kind: EventKind::Listen {
                addr: std::net::Ipv4Addr::LOCALHOST.into(),
                port: n,
                listening: true,
            },
        }
    }

    fn times(evs: &[Event]) -> Vec<u64> {
        evs.iter().map(|e| e.boot_ns).collect()
    }

    #[test]
    fn releases_in_time_order_once_every_ring_is_read_past() {
        let mut r = Reorder::default();
        r.push(ev(300 * MS, 3)); // critical, read first
        r.push(ev(100 * MS, 1)); // chatty, older
        r.push(ev(100 * MS, 2)); // same time: arrival order
        // Not read past them yet (the other ring lags): nothing leaves,
        // however long ago they happened.
        assert!(r.ready(100 * MS, false).is_empty());
        let first = r.ready(250 * MS, false);
        assert_eq!(times(&first), [100 * MS, 100 * MS]);
        assert!(matches!(first[0].kind, EventKind::Listen { port: 1, .. }));
        assert_eq!(r.len(), 1);
        assert_eq!(times(&r.ready(0, true)), [300 * MS]);
        assert!(r.is_empty());
        assert_eq!(r.late, 0);
    }

    #[test]
    fn a_late_event_is_counted_and_widens_the_margin_which_relaxes() {
        let mut r = Reorder::default();
        r.push(ev(1_000 * MS, 1));
        assert_eq!(r.ready(1_010 * MS, false).len(), 1);
        // 40 ms behind what was applied: applied anyway, counted.
        r.push(ev(960 * MS, 2));
        assert_eq!(r.late, 1);
        assert_eq!(r.margin_ns(), 80 * MS);
        assert_eq!(r.ready(1_040 * MS, false).len(), 1);
        // The wider margin holds newer events longer.
        r.push(ev(1_030 * MS, 3));
        assert!(r.ready(1_100 * MS, false).is_empty());
        assert_eq!(r.ready(1_110 * MS, false).len(), 1);
        // A minute without lateness halves it, down to the minimum.
        r.ready(62_000 * MS, false);
        assert_eq!(r.margin_ns(), 40 * MS);
        for minute in 2..10 {
            r.ready(minute * 62_000 * MS, false);
        }
        assert_eq!(r.margin_ns(), MIN_MARGIN_NS);
        // Never beyond the maximum.
        r.push(ev(0, 4));
        assert_eq!(r.margin_ns(), MAX_MARGIN_NS);
    }
}
