//! Running but failing: limits hit (refused forks, EMFILE/ENFILE) and
//! pressure stalls, as health conditions. Each condition's start and end
//! writes one log line, whatever the number of events behind it.
use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};

use super::{
    Model,
    cause::Message,
    entry::{LogEntry, LogKind},
    health::{Health, HealthReason, HealthRules},
};
use crate::cgroup::stats::CgroupStats;

/// Events counted per sample, the last minute or so: (when, how many).
/// Holds only samples where something happened, at most `CAP`.
#[derive(Clone, Debug, Default)]
pub struct Recent(VecDeque<(Timestamp, u64)>);

/// One entry per sample at most; a minute of one-second ticks fits.
const CAP: usize = 128;

impl Recent {
    pub fn push(&mut self, now: Timestamp, n: u64, keep: SignedDuration) {
        if n > 0 {
            if self.0.len() >= CAP {
                self.0.pop_front();
            }
            self.0.push_back((now, n));
        }
        while self
            .0
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > keep)
        {
            self.0.pop_front();
        }
    }

    /// Events within `window` of `now`.
    pub fn within(&self, now: Timestamp, window: SignedDuration) -> u64 {
        self.0
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= window)
            .map(|(_, n)| n)
            .sum()
    }
}

/// A container's limit and stall figures between samples (not persisted).
#[derive(Clone, Debug, Default)]
pub struct SickSample {
    pub pids_refused: Recent,
    pub mem_max_hits: Recent,
    pub fd_limit: Recent,
    /// EMFILE/ENFILE returns counted so far (sampled mode: an estimate
    /// scaled from the windows, like the syscall totals).
    pub fd_limit_errors: u64,
    /// The main process's soft open-files limit, read when EMFILE/ENFILE
    /// was seen.
    pub fd_soft_limit: Option<u64>,
    /// Since when memory `full` pressure has been above the UnHealthy share.
    pub memory_full_since: Option<Timestamp>,
    /// The conditions the log last told, and the health it told.
    logged: Vec<HealthReason>,
    logged_health: Option<Health>,
}

impl SickSample {
    /// Counters that moved since the previous sample (a new incarnation
    /// starts its counters at 0: what it counted so far is new).
    pub fn record(
        &mut self,
        prev: Option<&CgroupStats>,
        new: &CgroupStats,
        rules: &HealthRules,
        now: Timestamp,
    ) {
        let keep = rules.sick_keep();
        let moved = |old: Option<u64>, new: u64| match old {
            Some(old) if new >= old => new - old,
            _ => 0,
        };
        self.pids_refused.push(
            now,
            moved(prev.map(|p| p.pids_refused), new.pids_refused),
            keep,
        );
        self.mem_max_hits.push(
            now,
            moved(prev.map(|p| p.mem_max_events), new.mem_max_events),
            keep,
        );
        self.fd_limit.push(now, 0, keep);
        let full = new
            .pressure
            .and_then(|p| p.memory)
            .map_or(0.0, |m| m.full.avg10);
        if full > rules.memory_full_unhealthy_ratio {
            self.memory_full_since.get_or_insert(now);
        } else {
            self.memory_full_since = None;
        }
    }

    /// EMFILE/ENFILE returns counted since the last time (`estimated`: the
    /// total's growth, scaled to the period in sampled mode).
    pub fn fd_limit_seen(&mut self, n: u64, estimated: u64, keep: SignedDuration, now: Timestamp) {
        self.fd_limit.push(now, n, keep);
        self.fd_limit_errors = self.fd_limit_errors.saturating_add(estimated);
    }
}

/// The line a change of conditions writes, if they changed: those that
/// started and those that ended since `logged`.
fn transition(
    logged: &[HealthReason],
    now: &[HealthReason],
) -> Option<(Vec<HealthReason>, Vec<HealthReason>)> {
    let started: Vec<HealthReason> = now
        .iter()
        .filter(|r| !logged.iter().any(|l| l.same_condition(r)))
        .cloned()
        .collect();
    let ended: Vec<HealthReason> = logged
        .iter()
        .filter(|l| !now.iter().any(|r| r.same_condition(l)))
        .cloned()
        .collect();
    (!started.is_empty() || !ended.is_empty()).then_some((started, ended))
}

impl Model {
    /// After a sample: one log line if a condition started or ended.
    pub(super) fn health_transition(&mut self, key: &str, now: Timestamp) {
        let Some(c) = self.containers.get(key) else {
            return;
        };
        let current: Vec<HealthReason> = self
            .rules
            .conditions(c, now)
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        let Some((started, ended)) = transition(&c.sample.sick.logged, &current) else {
            // Same conditions: keep their latest figures for the end line
            // (none, the usual case, costs no second look-up).
            if c.sample.sick.logged != current
                && let Some(c) = self.containers.get_mut(key)
            {
                c.sample.sick.logged = current;
            }
            return;
        };
        let (to, _) = self.rules.evaluate(c, now);
        let from = c.sample.sick.logged_health.unwrap_or(Health::Good);
        let entry = LogEntry::new(
            now,
            key,
            c.display_id(),
            LogKind::Health,
            Message::Health {
                from,
                to,
                started,
                ended,
            },
        );
        if let Some(c) = self.containers.get_mut(key) {
            c.sample.sick.logged = current;
            c.sample.sick.logged_health = Some(to);
        }
        self.emit(key, vec![entry]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    #[test]
    fn recent_counts_within_the_window_and_forgets_older() {
        let mut r = Recent::default();
        let keep = SignedDuration::from_secs(65);
        r.push(t(0), 5, keep);
        r.push(t(1), 0, keep);
        r.push(t(30), 2, keep);
        assert_eq!(r.within(t(30), SignedDuration::from_mins(1)), 7);
        assert_eq!(r.within(t(61), SignedDuration::from_mins(1)), 2);
        r.push(t(100), 0, keep);
        assert_eq!(r.within(t(100), SignedDuration::from_hours(1)), 0);
        for i in 0..1000 {
            r.push(t(200 + i / 100), 1, keep);
        }
        assert_eq!(r.0.len(), CAP);
    }

    #[test]
    fn a_transition_is_told_once_per_start_and_end() {
        let pids = |count| HealthReason::PidsRefused {
            count,
            limit: Some(12),
            window: SignedDuration::from_mins(1),
        };
        assert_eq!(transition(&[], &[]), None);
        assert_eq!(transition(&[], &[pids(3)]), Some((vec![pids(3)], vec![])));
        // More refusals: the same condition, no line.
        assert_eq!(transition(&[pids(3)], &[pids(300)]), None);
        assert_eq!(
            transition(&[pids(300)], &[]),
            Some((vec![], vec![pids(300)]))
        );
    }
}
