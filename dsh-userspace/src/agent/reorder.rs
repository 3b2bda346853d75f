//! Puts events from the two ring buffers back in kernel time order.
//!
//! The critical ring is drained before the chatty one, so a process's exit
//! (critical) can arrive before its own exec or the SIGTERM that caused it
//! (chatty). Events wait here until they are `HOLD` old, then leave oldest
//! first: the state machine sees them as they happened.
use std::{cmp::Reverse, collections::BinaryHeap};

use crate::probe::event::Event;

/// Twice the rings' drain period (`probe::EventStream`, 50 ms: the programs
/// submit without waking the agent), so every event older than the hold
/// has been read from both rings; short enough to stay live.
pub const HOLD_NS: u64 = 100_000_000;

const _: () = assert!(HOLD_NS >= 2 * crate::probe::DRAIN_EVERY.as_nanos() as u64);

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

#[derive(Default)]
pub struct Reorder {
    heap: BinaryHeap<Reverse<Held>>,
    /// Arrival order breaks ties between events with the same timestamp.
    arrivals: u64,
}

impl Reorder {
    pub fn push(&mut self, ev: Event) {
        self.arrivals += 1;
        self.heap.push(Reverse(Held(ev, self.arrivals)));
    }

    /// Events older than `now_boot_ns - HOLD_NS`, oldest first (all of them
    /// when `flush_all`).
    pub fn ready(&mut self, now_boot_ns: u64, flush_all: bool) -> Vec<Event> {
        let cutoff = now_boot_ns.saturating_sub(HOLD_NS);
        let mut out = Vec::new();
        while let Some(Reverse(Held(ev, _))) = self.heap.peek() {
            if !flush_all && ev.boot_ns > cutoff {
                break;
            }
            if let Some(Reverse(Held(ev, _))) = self.heap.pop() {
                out.push(ev);
            }
        }
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::event::{EventKind, Task};

    fn ev(boot_ns: u64, signal: u32) -> Event {
        Event {
            boot_ns,
            cpu: 0,
            task: Task {
                pid: 1,
                tgid: 1,
                comm: "x".into(),
                cgroup_id: crate::cgroup::CgroupId::new(1),
            },
            kind: EventKind::SignalDeliver {
                signal: crate::signal::Signal::from_raw(signal),
            },
        }
    }

    #[test]
    fn releases_in_time_order_after_the_hold() {
        let mut r = Reorder::default();
        r.push(ev(300_000_000, 3)); // critical, drained first
        r.push(ev(100_000_000, 1)); // chatty, older
        r.push(ev(100_000_000, 2)); // same time: arrival order
        assert!(r.ready(150_000_000, false).is_empty());
        let first: Vec<u64> = r
            .ready(250_000_000, false)
            .iter()
            .map(|e| e.boot_ns)
            .collect();
        assert_eq!(first, [100_000_000, 100_000_000]);
        assert_eq!(r.len(), 1);
        assert_eq!(r.ready(0, true).len(), 1);
        assert!(r.is_empty());
    }
}
