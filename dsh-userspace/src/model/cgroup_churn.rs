//! Cgroup churn: a loop of mkdir and rmdir (an unprivileged user may run
//! one in a delegated subtree) costs bounded lines and no metric series.
//! A new row's create line waits for its first other line or the next
//! sample; a cgroup that vanished before then without a process leaves no
//! row at all. Create and destroy lines have a budget per parent cgroup and
//! sample; what is dropped is summed in one line per parent.
use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::{
    Model,
    cause::{CgroupChurnSummary, Message},
    container::Container,
    entry::{LogEntry, LogKind},
};

/// Create and destroy lines per parent cgroup per sample (a container's
/// create, its removal and the exit that says its cgroup went away); the
/// rest are counted in the parent's summary.
pub const LINES_PER_PARENT: u64 = 16;

/// One parent's cgroup churn in the current sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ParentTally {
    lines: u64,
    over_budget: u64,
    vanished: u64,
}

#[derive(Default)]
pub(super) struct CgroupChurn {
    /// By parent cgroup path, this sample.
    parents: BTreeMap<String, ParentTally>,
    /// New rows' create lines, by row key, until they write another line
    /// or a sample passes.
    held: HashMap<String, Vec<LogEntry>>,
}

impl CgroupChurn {
    pub(super) fn hold(&mut self, key: &str, entries: Vec<LogEntry>) {
        self.held.entry(key.to_owned()).or_default().extend(entries);
    }

    pub(super) fn is_held(&self, key: &str) -> bool {
        self.held.contains_key(key)
    }

    pub(super) fn release(&mut self, key: &str) -> Option<Vec<LogEntry>> {
        self.held.remove(key)
    }

    /// Drops the lines of `entries` past the budget of `parent`.
    fn within_budget(&mut self, parent: &str, entries: &mut Vec<LogEntry>) {
        if !entries.iter().any(is_create_or_destroy) {
            return;
        }
        let tally = self.parents.entry(parent.to_owned()).or_default();
        entries.retain(|e| {
            if !is_create_or_destroy(e) {
                return true;
            }
            if tally.lines < LINES_PER_PARENT {
                tally.lines += 1;
                true
            } else {
                tally.over_budget += 1;
                false
            }
        });
    }
}

fn is_create_or_destroy(e: &LogEntry) -> bool {
    matches!(e.kind, LogKind::Create | LogKind::Destroy) || matches!(e.msg, Message::CgroupGone)
}

/// The cgroup path `cgroup`'s row counts against: its parent's.
fn parent_of(cgroup: &str) -> &str {
    match cgroup.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((parent, _)) => parent,
    }
}

/// A row that has not been seen doing anything: no process, no runtime's
/// word, nothing but its cgroup's creation.
fn never_ran(c: &Container) -> bool {
    c.main_tgid.is_none()
        && !c.ever_started
        && c.process_execs == 0
        && c.process_exits == 0
        && c.meta.is_none()
        && c.churn.is_empty()
}

impl Model {
    /// Log lines of row `key`, in order after its held create line, within
    /// its parent's budget. Returns whether the row had any line.
    pub(super) fn budgeted(&mut self, key: &str, entries: &mut Vec<LogEntry>) -> bool {
        if let Some(mut held) = self.cgroup_churn.release(key) {
            held.append(entries);
            *entries = held;
        }
        if entries.is_empty() {
            return false;
        }
        if let Some(c) = self.containers.get(key) {
            let parent = parent_of(&c.identity.cgroup);
            self.cgroup_churn.within_budget(parent, entries);
        }
        true
    }

    /// A removed cgroup whose row is new, still silent and never ran a
    /// process: the row goes as if it had never been. Returns whether it did.
    pub(super) fn vanished(&mut self, key: &str) -> bool {
        if !self.cgroup_churn.is_held(key) || !self.containers.get(key).is_some_and(never_ran) {
            return false;
        }
        self.cgroup_churn.release(key);
        self.live_changed();
        if let Some(c) = self.containers.remove(key) {
            let parent = parent_of(&c.identity.cgroup).to_owned();
            self.cgroup_churn
                .parents
                .entry(parent)
                .or_default()
                .vanished += 1;
        }
        self.dirty.remove(key);
        true
    }

    /// At each sample: the create lines of rows that lived through it, then
    /// one summary line per parent whose churn was not written out.
    pub fn cgroup_churn_lines(&mut self, ts: Timestamp) {
        let held: Vec<String> = self.cgroup_churn.held.keys().cloned().collect();
        for key in held {
            self.emit(&key, Vec::new());
        }
        for (parent, t) in std::mem::take(&mut self.cgroup_churn.parents) {
            if t.vanished == 0 && t.over_budget == 0 {
                continue;
            }
            self.log.push(LogEntry::new(
                ts,
                &parent,
                &parent,
                LogKind::Churn,
                Message::CgroupChurn(CgroupChurnSummary {
                    parent: parent.clone(),
                    vanished: t.vanished,
                    lines_not_written: t.over_budget,
                }),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::{
        cgroup::{
            CgroupId,
            identity::{Identity, Runtime},
        },
        model::health::HealthRules,
    };

    const PARENT: &str = "/user.slice/user@65534.service";

    fn plain(name: &str) -> Identity {
        let path = format!("{PARENT}/{name}");
        Identity {
            runtime: Runtime::Cgroup,
            runtime_id: path.clone(),
            pod_uid: None,
            cgroup: path,
        }
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    fn create(m: &mut Model, name: &str, id: u64, ts: Timestamp) {
        let i = plain(name);
        let path = i.cgroup.clone();
        m.cgroup_created(i, &path, CgroupId::new(id), ts);
    }

    fn summaries(log: &[LogEntry]) -> Vec<&CgroupChurnSummary> {
        log.iter()
            .filter_map(|e| match &e.msg {
                Message::CgroupChurn(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn cgroups_gone_within_a_sample_without_a_process_leave_one_line() {
        let mut m = Model::new(HealthRules::default(), SignedDuration::from_hours(1));
        for i in 0..500 {
            create(&mut m, &format!("n{i}.scope"), 1000 + i, t(i as i64));
            m.cgroup_removed(CgroupId::new(1000 + i), t(i as i64));
        }
        assert!(m.is_empty(), "no row left");
        assert!(m.take_changes().updated.is_empty(), "no row saved");
        m.cgroup_churn_lines(t(999));
        let log = m.take_log();
        assert_eq!(log.len(), 1, "{log:?}");
        let s = summaries(&log);
        assert_eq!((s[0].parent.as_str(), s[0].vanished), (PARENT, 500));
        assert_eq!(log[0].key, PARENT);
        // The next sample starts again from nothing.
        m.cgroup_churn_lines(t(2000));
        assert!(m.take_log().is_empty());
    }

    #[test]
    fn create_and_destroy_lines_past_a_parents_budget_are_summed() {
        let mut m = Model::new(HealthRules::default(), SignedDuration::from_hours(1));
        for i in 0..40 {
            create(&mut m, &format!("n{i}.scope"), 1000 + i, t(0));
        }
        // Lived through a sample: rows, and create lines up to the budget.
        m.cgroup_churn_lines(t(1000));
        assert_eq!(m.len(), 40);
        let log = m.take_log();
        let creates = log.iter().filter(|e| e.kind == LogKind::Create).count();
        assert_eq!(creates as u64, LINES_PER_PARENT);
        let s = summaries(&log);
        assert_eq!(s.len(), 1, "{log:?}");
        assert_eq!(
            (s[0].vanished, s[0].lines_not_written),
            (0, 40 - LINES_PER_PARENT)
        );
        // Their removal: destroy and exit lines, within the next budget.
        for i in 0..40 {
            m.cgroup_removed(CgroupId::new(1000 + i), t(1500));
        }
        m.cgroup_churn_lines(t(2000));
        let log = m.take_log();
        let bounded = log.iter().filter(|e| is_create_or_destroy(e)).count();
        assert_eq!(bounded as u64, LINES_PER_PARENT);
        assert_eq!(summaries(&log)[0].lines_not_written, 80 - LINES_PER_PARENT);
        // Another parent has a budget of its own.
        let other = Identity {
            cgroup: "/elsewhere/x".into(),
            runtime_id: "/elsewhere/x".into(),
            ..plain("x")
        };
        m.cgroup_created(other, "/elsewhere/x", CgroupId::new(5), t(2100));
        m.cgroup_churn_lines(t(3000));
        let log = m.take_log();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].kind, LogKind::Create);
    }

    #[test]
    fn a_new_rows_create_line_comes_before_its_start() {
        let mut m = Model::new(HealthRules::default(), SignedDuration::from_hours(1));
        create(&mut m, "web.scope", 7, t(0));
        assert!(m.take_log().is_empty(), "held until its next line");
        m.exec(CgroupId::new(7), 42, "nginx", t(5));
        let kinds: Vec<LogKind> = m.take_log().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [LogKind::Create, LogKind::Start]);
        // A process ran: its removal is written, the row stays.
        m.cgroup_removed(CgroupId::new(7), t(10));
        m.cgroup_churn_lines(t(1000));
        let log = m.take_log();
        assert!(log.iter().any(|e| e.kind == LogKind::Destroy), "{log:?}");
        assert!(summaries(&log).is_empty());
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_cgroups_parent_is_its_path_less_its_last_element() {
        assert_eq!(parent_of("/a/b/c.scope"), "/a/b");
        assert_eq!(parent_of("/c.scope"), "/");
        assert_eq!(parent_of("c"), "/");
    }
}
