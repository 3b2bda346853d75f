//! Signals from outside a container, summed up once per sample: one line
//! per (signal, sender) for the few commonest, one more for the rest
//! (`receive signal SIGHUP x 31,002 from pid 812 (bash)`), never one line
//! per signal. The kernel counts them (`dsh-ebpf/src/programs/signal.rs`);
//! a signal that ends the main process is told by its exit line instead.
use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{
    Model,
    cause::{Message, OtherSignalsReceived, SignalsReceived},
    entry::{LogEntry, LogKind},
};
use crate::{cgroup::CgroupId, signal::Signal};

/// (signal, sender) pairs named one by one per container and interval;
/// the rest are summed in one line. At most `NAMED + 1` lines per
/// container per interval, whoever sends.
pub const NAMED: usize = 3;

/// Signals received since the last summary: (signal, sender pid) →
/// (sender command, count).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignalTally {
    by_sender: BTreeMap<(Signal, u32), (String, u64)>,
}

impl SignalTally {
    pub fn is_empty(&self) -> bool {
        self.by_sender.is_empty()
    }

    pub fn add(&mut self, signal: Signal, sender_pid: u32, sender_comm: &str, n: u64) {
        if n == 0 {
            return;
        }
        let slot = self
            .by_sender
            .entry((signal, sender_pid))
            .or_insert_with(|| (sender_comm.to_owned(), 0));
        slot.1 += n;
    }

    /// The summary's messages, commonest first; the tally starts again.
    pub fn take_summary(&mut self) -> (Vec<SignalsReceived>, Option<OtherSignalsReceived>) {
        let mut groups: Vec<((Signal, u32), (String, u64))> =
            std::mem::take(&mut self.by_sender).into_iter().collect();
        groups.sort_by(|a, b| b.1.1.cmp(&a.1.1).then_with(|| a.0.cmp(&b.0)));
        let rest = groups.split_off(groups.len().min(NAMED));
        let named = groups
            .into_iter()
            .map(
                |((signal, sender_pid), (sender_comm, count))| SignalsReceived {
                    signal,
                    count,
                    sender_pid,
                    sender_comm,
                },
            )
            .collect();
        if rest.is_empty() {
            return (named, None);
        }
        let mut signals: Vec<Signal> = rest.iter().map(|((s, _), _)| *s).collect();
        signals.sort();
        signals.dedup();
        let other = OtherSignalsReceived {
            count: rest.iter().map(|(_, (_, n))| n).sum(),
            senders: rest.len() as u64,
            signals,
        };
        (named, Some(other))
    }
}

impl Model {
    /// Kernel signal counters of one (target, sender, signal), since the
    /// last read. Only signals into a container from outside it count: a
    /// sender in the same container (a sub-cgroup of it) is its own
    /// business, and a target that is no container's is not tracked.
    pub fn record_signals(
        &mut self,
        target_cgroup: CgroupId,
        sender_cgroup: CgroupId,
        signal: Signal,
        sender_pid: u32,
        sender_comm: &str,
        n: u64,
    ) {
        // A cgroup removed since the last summary still counts as its
        // container's: signals that preceded a container's end are read
        // after it.
        let key_of = |id| {
            self.by_cgroup
                .get(&id)
                .or_else(|| self.removed_this_interval.get(&id))
        };
        let Some(key) = key_of(target_cgroup) else {
            return;
        };
        if key_of(sender_cgroup) == Some(key) || signal.is_housekeeping() {
            return;
        }
        let key = key.clone();
        if let Some(c) = self.containers.get_mut(&key) {
            c.signals.add(signal, sender_pid, sender_comm, n);
        }
    }

    /// At most `NAMED + 1` lines per container that received signals from
    /// outside since the last call.
    pub fn signal_lines(&mut self, ts: Timestamp) {
        let mut lines = Vec::new();
        for c in self.containers.values_mut() {
            if c.signals.is_empty() {
                continue;
            }
            let (named, other) = c.signals.take_summary();
            if c.sandbox {
                continue; // a pod's sandbox is plumbing: its lines are noise
            }
            for s in named {
                let mut e = LogEntry::new(
                    ts,
                    c.key(),
                    c.display_id(),
                    LogKind::Signal,
                    Message::SignalsReceived(s.clone()),
                )
                .with_task(s.sender_pid, &s.sender_comm);
                e.signal = Some(s.signal.name());
                lines.push(e);
            }
            if let Some(o) = other {
                lines.push(LogEntry::new(
                    ts,
                    c.key(),
                    c.display_id(),
                    LogKind::Signal,
                    Message::OtherSignalsReceived(o),
                ));
            }
        }
        // Not `emit`: a summary changes no container state to save.
        self.log.extend(lines);
        self.removed_this_interval.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(n: u32) -> Signal {
        Signal::from_raw(n)
    }

    #[test]
    fn a_flood_is_one_line_per_sender_and_the_rest_summed() {
        let mut t = SignalTally::default();
        // Read twice in one interval: the counts add up.
        t.add(sig(1), 812, "bash", 30_000);
        t.add(sig(1), 812, "bash", 1_002);
        t.add(sig(10), 812, "bash", 29_000);
        // A sender per signal (`/bin/kill` in a loop): summed, not named.
        for pid in 1000..1500 {
            t.add(sig(1), pid, "kill", 1);
        }
        t.add(sig(12), 900, "sh", 600);
        t.add(sig(15), 901, "sh", 0);
        let (named, other) = t.take_summary();
        assert_eq!(
            named,
            [
                SignalsReceived {
                    signal: sig(1),
                    count: 31_002,
                    sender_pid: 812,
                    sender_comm: "bash".into()
                },
                SignalsReceived {
                    signal: sig(10),
                    count: 29_000,
                    sender_pid: 812,
                    sender_comm: "bash".into()
                },
                SignalsReceived {
                    signal: sig(12),
                    count: 600,
                    sender_pid: 900,
                    sender_comm: "sh".into()
                },
            ]
        );
        assert_eq!(
            other,
            Some(OtherSignalsReceived {
                count: 500,
                senders: 500,
                signals: vec![sig(1)]
            })
        );
        assert!(t.is_empty(), "the tally starts again");
        assert_eq!(t.take_summary(), (Vec::new(), None));
    }

    #[test]
    fn ties_are_ordered_by_signal_then_sender() {
        let mut t = SignalTally::default();
        t.add(sig(15), 2, "b", 1);
        t.add(sig(1), 3, "c", 1);
        t.add(sig(15), 1, "a", 1);
        let (named, other) = t.take_summary();
        let order: Vec<(u8, u32)> = named
            .iter()
            .map(|s| (s.signal.number(), s.sender_pid))
            .collect();
        assert_eq!(order, [(1, 3), (15, 1), (15, 2)]);
        assert!(other.is_none());
    }
}
