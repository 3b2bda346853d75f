//! Process churn at every sample: the kernel's per-cgroup counters into the
//! model, one summary line per container into the journal.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use dsh_ebpf::{ChurnCounts, ChurnKey};
use jiff::Timestamp;

use super::Agent;
use crate::{cgroup::CgroupId, model::state::State, probe::event::c_str, report::chain};

/// A counter unchanged this long is deleted from the kernel's table (it
/// holds at most `dsh_ebpf::MAX_CHURN_KEYS`): its cgroup is gone, or the
/// command has not run for a minute. Its counts have all been read by then.
const FORGET_IDLE: Duration = Duration::from_secs(60);

/// What the agent last read of each kernel counter.
#[derive(Default)]
pub(super) struct ChurnReader {
    seen: HashMap<ChurnKey, (ChurnCounts, Instant)>,
}

impl Agent {
    /// Tells the programs the main process of every container found running
    /// at start-up (they follow later starts and exits themselves), so its
    /// exit is sent and the rest of its processes are counted.
    pub(super) fn seed_main_processes(&mut self) {
        let running: Vec<(CgroupId, Option<u32>)> = self
            .model
            .containers()
            .filter(|c| c.state == State::Running)
            .filter_map(|c| Some((c.cgroup_id?, c.main_tgid)))
            .collect();
        for (id, main) in running {
            if let Err(e) = self.probe.set_main_process(id, main) {
                log::warn!("main process of cgroup {id}: {}", chain(&e));
            }
        }
    }

    /// Reads the churn counters, adds what moved to the model, and writes
    /// the summaries.
    pub(super) fn read_churn(&mut self, ts: Timestamp) {
        let counts = match self.probe.churn_counts() {
            Ok(c) => c,
            Err(e) => {
                log::warn!("reading churn counters: {}", chain(&e));
                return;
            }
        };
        let now = Instant::now();
        let mut seen = HashMap::with_capacity(counts.len());
        let mut idle = Vec::new();
        for (key, c) in counts {
            let (before, since) = self
                .churn
                .seen
                .get(&key)
                .copied()
                .unwrap_or((ChurnCounts::default(), now));
            let moved = c.since(&before);
            let since = if moved.is_empty() {
                since
            } else {
                let comm = c_str(&key.comm);
                self.model
                    .record_churn(CgroupId::new(key.cgroup_id), &comm, &moved);
                now
            };
            if now.duration_since(since) >= FORGET_IDLE {
                idle.push(key);
            } else {
                seen.insert(key, (c, since));
            }
        }
        self.churn.seen = seen;
        if !idle.is_empty()
            && let Err(e) = self.probe.forget_churn(&idle)
        {
            log::warn!("forgetting idle churn counters: {}", chain(&e));
        }
        self.model.churn_lines(ts);
        self.model.cgroup_churn_lines(ts);
    }
}
