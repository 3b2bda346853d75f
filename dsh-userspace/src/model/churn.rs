//! Process churn: a container's short-lived processes, summed up once per
//! sample as one log line (`exec 1670 processes (cat 1670); ...`) instead
//! of one line per process.
use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{
    Model,
    cause::{ChurnSummary, Message},
    entry::{LogEntry, LogKind},
};
use crate::{cgroup::CgroupId, signal::ExitStatus};

/// Commands named one by one in a summary; the rest are summed.
const NAMED: usize = 3;

/// Processes that started and ended since the last summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChurnTally {
    /// Execs by the command they ran.
    pub execs: BTreeMap<String, u64>,
    pub exits_ok: u64,
    pub exits_failed: u64,
    pub exits_killed: u64,
}

impl ChurnTally {
    pub fn is_empty(&self) -> bool {
        self.execs.is_empty() && self.exits() == 0
    }

    pub fn exits(&self) -> u64 {
        self.exits_ok + self.exits_failed + self.exits_killed
    }

    /// Adds kernel counters of one command.
    pub fn add(&mut self, comm: &str, c: &dsh_ebpf::ChurnCounts) {
        if c.execs > 0 {
            *self.execs.entry(comm.to_owned()).or_default() += c.execs;
        }
        self.exits_ok += c.exits_ok;
        self.exits_failed += c.exits_failed;
        self.exits_killed += c.exits_killed;
    }

    pub fn exec(&mut self, comm: &str) {
        *self.execs.entry(comm.to_owned()).or_default() += 1;
    }

    pub fn exit(&mut self, status: ExitStatus) {
        match status {
            ExitStatus::Exited(0) => self.exits_ok += 1,
            ExitStatus::Exited(_) => self.exits_failed += 1,
            ExitStatus::Killed { .. } => self.exits_killed += 1,
        }
    }

    /// The summary line's content; the tally starts again from zero.
    pub fn take_summary(&mut self) -> ChurnSummary {
        let tally = std::mem::take(self);
        let mut by_count: Vec<(String, u64)> = tally.execs.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let execs = by_count.iter().map(|(_, n)| n).sum();
        let others = by_count.iter().skip(NAMED).map(|(_, n)| n).sum();
        let other_commands = by_count.len().saturating_sub(NAMED) as u64;
        by_count.truncate(NAMED);
        ChurnSummary {
            execs,
            commands: by_count,
            other_commands,
            other_execs: others,
            exits_ok: tally.exits_ok,
            exits_failed: tally.exits_failed,
            exits_killed: tally.exits_killed,
        }
    }
}

impl Model {
    /// Kernel churn counters of one cgroup and command, since the last read.
    /// Cgroups that belong to no container are not tracked.
    pub fn record_churn(&mut self, cgroup_id: CgroupId, comm: &str, c: &dsh_ebpf::ChurnCounts) {
        let Some(key) = self.by_cgroup.get(&cgroup_id) else {
            return;
        };
        if let Some(container) = self.containers.get_mut(key) {
            container.churn.add(comm, c);
            container.process_exits += c.exits();
            container.process_execs += c.execs;
        }
    }

    /// One summary line per container that had churn since the last call.
    pub fn churn_lines(&mut self, ts: Timestamp) {
        let mut lines = Vec::new();
        for c in self.containers.values_mut() {
            if c.churn.is_empty() {
                continue;
            }
            let summary = c.churn.take_summary();
            if c.sandbox {
                continue; // a pod's sandbox is plumbing: its lines are noise
            }
            lines.push(LogEntry::new(
                ts,
                c.key(),
                c.display_id(),
                LogKind::Churn,
                Message::Churn(summary),
            ));
        }
        // Not `emit`: a summary changes no container state to save.
        self.log.extend(lines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_the_commonest_commands_and_sum_the_rest() {
        let mut t = ChurnTally::default();
        for (comm, n) in [("cat", 1600), ("sh", 60), ("sed", 5), ("awk", 3), ("tr", 2)] {
            t.add(
                comm,
                &dsh_ebpf::ChurnCounts {
                    execs: n,
                    exits_ok: n,
                    ..Default::default()
                },
            );
        }
        t.exit(ExitStatus::Exited(2));
        let s = t.take_summary();
        assert_eq!(s.execs, 1670);
        assert_eq!(
            s.commands,
            [("cat".into(), 1600), ("sh".into(), 60), ("sed".into(), 5)]
        );
        assert_eq!((s.other_commands, s.other_execs), (2, 5));
        assert_eq!((s.exits_ok, s.exits_failed, s.exits_killed), (1670, 1, 0));
        assert!(t.is_empty(), "the tally starts again");
    }
}
