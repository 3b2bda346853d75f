//! Signals from outside at every sample: the kernel's counters into the
//! model, one summary per container into the journal.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use dsh_ebpf::{SignalCount, SignalKey};
use jiff::Timestamp;

use super::Agent;
use crate::{cgroup::CgroupId, probe::event::c_str, report::chain, signal::Signal};

/// A counter unchanged this long is deleted from the kernel's table (it
/// holds at most `dsh_ebpf::MAX_SIGNAL_KEYS`, and a sender that forks per
/// signal makes a key each): every count it had has been read by then.
const FORGET_IDLE: Duration = Duration::from_secs(10);

/// What the agent last read of each kernel counter.
#[derive(Default)]
pub(super) struct SignalReader {
    seen: HashMap<SignalKey, (u64, Instant)>,
}

impl Agent {
    /// Reads the signal counters, adds what moved to the model, and writes
    /// the summaries.
    pub(super) fn read_signals(&mut self, ts: Timestamp) {
        let counts = match self.probe.signal_counts() {
            Ok(c) => c,
            Err(e) => {
                log::warn!("reading signal counters: {}", chain(&e));
                return;
            }
        };
        let now = Instant::now();
        let mut seen = HashMap::with_capacity(counts.len());
        let mut idle = Vec::new();
        for (key, SignalCount { count, sender_comm }) in counts {
            let (before, since) = self.signals.seen.get(&key).copied().unwrap_or((0, now));
            // A re-created entry counts from zero again.
            let moved = if count >= before {
                count - before
            } else {
                count
            };
            let since = if moved == 0 {
                since
            } else {
                let target = CgroupId::new(key.target_cgroup_id);
                let sender = CgroupId::new(key.sender_cgroup_id);
                // Cgroups whose mkdir the agent has not seen (lost, or not
                // read yet): found now, so the count is not dropped.
                for id in [target, sender] {
                    self.on_demand.ensure(&mut self.model, &self.layout, id, ts);
                }
                self.model.record_signals(
                    target,
                    sender,
                    Signal::from_raw(key.signal),
                    key.sender_tgid,
                    &c_str(&sender_comm),
                    moved,
                );
                now
            };
            if now.duration_since(since) >= FORGET_IDLE {
                idle.push(key);
            } else {
                seen.insert(key, (count, since));
            }
        }
        self.signals.seen = seen;
        if !idle.is_empty()
            && let Err(e) = self.probe.forget_signals(&idle)
        {
            log::warn!("forgetting idle signal counters: {}", chain(&e));
        }
        self.model.signal_lines(ts);
    }
}
