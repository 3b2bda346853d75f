//! Descriptors as a budget: the sampler keeps cgroup files open between
//! ticks (an open costs more than the read on cgroupfs), a dozen per
//! container. Past what the open-files limit allows, less a reserve for
//! clients and everything else the agent holds, the busiest containers keep
//! theirs and the others are read less often, their files opened and closed
//! on each read: slower figures rather than none.
use std::{
    collections::{BTreeMap, HashSet},
    hash::{Hash as _, Hasher as _},
    time::Duration,
};

use crate::{
    api::FdStatus,
    fds::{self, NofileLimit},
};

/// Descriptors never given to container files: the CLI socket's clients
/// (`MAX_CONNECTIONS`), the metrics server's connections, and a margin
/// for runtime connections, sampling-window attaches, the journal and the
/// files read once (an exit's last statistics, a start-up scan).
pub const RESERVE: u64 =
    super::MAX_CONNECTIONS as u64 + crate::metrics::server::MAX_CONNECTIONS as u64 + 64;

/// Containers over budget are read once in this many ticks.
pub const SLOW_EVERY: u64 = 5;

/// Descriptors one container is taken to hold before any was measured:
/// about ten cgroup files over five v1 hierarchies, its directory, its
/// namespace's `net/dev` and a netlink socket.
const DEFAULT_PER_CONTAINER: u64 = 14;

/// How often (ticks) the process's descriptors are counted again (a
/// listing of `/proc/self/fd`, thousands of entries on a big host).
const RECOUNT_EVERY: u64 = 10;

/// Which containers keep their files open this tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Plan {
    /// Everyone fits.
    #[default]
    All,
    /// Only these; the others are read once in `SLOW_EVERY` ticks.
    Only(HashSet<String>),
}

impl Plan {
    pub fn keeps(&self, key: &str) -> bool {
        match self {
            Plan::All => true,
            Plan::Only(keys) => keys.contains(key),
        }
    }

    /// Whether `key` is read this tick (`tick` counts from 1).
    pub fn due(&self, key: &str, tick: u64) -> bool {
        self.keeps(key) || (tick + stagger(key)).is_multiple_of(SLOW_EVERY)
    }
}

/// A container's fixed place in the slow round, so a few are read each
/// tick rather than all of them every fifth.
fn stagger(key: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() % SLOW_EVERY
}

/// The busiest containers (by CPU, `busy` in any order) that fit in
/// `budget` descriptors at `per_container` each; `Plan::All` when all do.
pub fn plan(busy: &[(&str, f64)], budget: u64, per_container: u64) -> Plan {
    let per = per_container.max(1);
    let fit = (budget / per) as usize;
    if busy.len() <= fit {
        return Plan::All;
    }
    let mut ranked: Vec<&(&str, f64)> = busy.iter().collect();
    // Busiest first; ties (idle containers) by key, so the same ones stay.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    Plan::Only(ranked[..fit].iter().map(|(k, _)| (*k).to_owned()).collect())
}

/// The agent's descriptors: its limit, what it holds, and what failed for
/// want of one.
pub struct FdBudget {
    pub limit: NofileLimit,
    /// Descriptors held when last counted, and those of them not held for
    /// containers' files.
    open: u64,
    others: u64,
    /// What container files held when last counted, and the most one held.
    held: u64,
    most_held: u64,
    kept: usize,
    slow: usize,
    ticks: u64,
    /// Per source (a runtime, the sampling window, cgroup files): the last
    /// failure for want of a descriptor and how many there were.
    failures: BTreeMap<String, (u64, String)>,
}

impl FdBudget {
    /// The budget of a process holding what it holds now (programs,
    /// maps, sockets, journal) and no container file yet.
    pub fn new(limit: NofileLimit) -> Self {
        let mut b = Self {
            limit,
            open: 0,
            others: 0,
            held: 0,
            most_held: 0,
            kept: 0,
            slow: 0,
            ticks: 0,
            failures: BTreeMap::new(),
        };
        b.recount();
        b
    }

    /// Descriptors container files may hold.
    pub fn for_containers(&self) -> u64 {
        self.limit.soft.saturating_sub(RESERVE + self.others)
    }

    /// Descriptors per kept container as measured (a default before).
    pub fn per_container(&self) -> u64 {
        match self.kept {
            0 => DEFAULT_PER_CONTAINER,
            n => self.held.div_ceil(n as u64).max(1),
        }
    }

    /// Once per tick, after sampling: what container files hold now (in
    /// all, and the most one container holds) and how the plan split them.
    pub fn after_tick(&mut self, held: u64, most_held: u64, kept: usize, slow: usize) {
        self.ticks += 1;
        (self.held, self.most_held, self.kept, self.slow) = (held, most_held, kept, slow);
        if self.ticks % RECOUNT_EVERY == 1 {
            self.recount();
        }
    }

    fn recount(&mut self) {
        match fds::open_count() {
            Ok(n) => {
                self.open = n;
                self.others = n.saturating_sub(self.held);
            }
            Err(e) => log::debug!("counting open descriptors: {e}"),
        }
    }

    /// Something failed for want of a descriptor (logged once per source
    /// and kind of error, counted always).
    pub fn failed(&mut self, source: &str, what: String) {
        let e = self
            .failures
            .entry(source.to_owned())
            .or_insert((0, String::new()));
        if e.0 == 0 {
            log::warn!("{source}: out of file descriptors: {what}");
        }
        e.0 += 1;
        e.1 = what;
    }

    /// For `dsh status`, counted now.
    pub fn status(&self, interval: Duration) -> FdStatus {
        FdStatus {
            open: fds::open_count().unwrap_or(self.open),
            ..self.figures_with(interval)
        }
    }

    /// The figures as of the last count (every few ticks; for metrics).
    pub fn figures(&self) -> FdStatus {
        self.figures_with(Duration::ZERO)
    }

    fn figures_with(&self, interval: Duration) -> FdStatus {
        FdStatus {
            open: self.open,
            soft_limit: self.limit.soft,
            hard_limit: self.limit.hard,
            raised_from: self.limit.raised_from,
            reserve: RESERVE,
            container_budget: self.for_containers(),
            held_for_containers: self.held,
            most_held_by_one: self.most_held,
            containers_kept_open: self.kept,
            containers_read_slowly: self.slow,
            slow_every_ms: (interval * SLOW_EVERY as u32).as_millis() as u64,
            clients_refused: fds::clients_refused(),
            failures: self
                .failures
                .iter()
                .map(|(source, (n, what))| format!("{source}: {n} times, last: {what}"))
                .collect(),
        }
    }

    /// `dsh ps`'s note while some containers are read less often.
    pub fn note(&self, interval: Duration) -> Option<String> {
        (self.slow > 0).then(|| {
            format!(
                "the agent is at its file descriptor budget (open-files limit {}): {} of {} \
                 containers are read every {} instead of every {}, their files opened on each \
                 read; the {} busiest keep theirs open (dsh status has the figures)",
                self.limit.soft,
                self.slow,
                self.slow + self.kept,
                short(interval * SLOW_EVERY as u32),
                short(interval),
                self.kept
            )
        })
    }
}

/// `5s`, `2500ms`.
fn short(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_keep_their_files_when_not_all_fit() {
        let busy = [("a", 0.0), ("b", 2.0), ("c", 0.5), ("d", 0.0)];
        assert_eq!(plan(&busy, 56, 14), Plan::All);
        let p = plan(&busy, 30, 14);
        assert_eq!(p, Plan::Only(["b", "c"].map(String::from).into()));
        // Nothing fits: all are read slowly, none is lost.
        let none = plan(&busy, 0, 14);
        assert_eq!(none, Plan::Only(HashSet::new()));
        for k in ["a", "b", "c", "d"] {
            let due = (1..=SLOW_EVERY).filter(|t| none.due(k, *t)).count();
            assert_eq!(due, 1, "{k} is read once in {SLOW_EVERY} ticks");
            assert!((1..=SLOW_EVERY).all(|t| Plan::All.due(k, t)));
        }
        assert!(p.due("b", 3) && p.keeps("c") && !p.keeps("a"));
    }

    #[test]
    fn budget_leaves_the_reserve_and_notes_slow_reading() {
        let limit = NofileLimit {
            soft: 1024,
            hard: 4096,
            raised_from: None,
        };
        let mut b = FdBudget::new(limit);
        assert_eq!(b.per_container(), DEFAULT_PER_CONTAINER);
        assert!(b.for_containers() <= 1024 - RESERVE);
        b.after_tick(120, 13, 10, 0);
        assert_eq!(b.per_container(), 12);
        assert_eq!(b.note(Duration::from_secs(1)), None);
        b.after_tick(120, 13, 10, 90);
        let note = b.note(Duration::from_secs(1)).expect("a note");
        assert!(
            note.contains("90 of 100 containers are read every 5s"),
            "{note}"
        );
        b.failed("docker", "Too many open files".into());
        b.failed("docker", "Too many open files (os error 24)".into());
        let s = b.status(Duration::from_secs(1));
        assert_eq!(
            s.failures,
            ["docker: 2 times, last: Too many open files (os error 24)"]
        );
        assert_eq!((s.soft_limit, s.containers_read_slowly), (1024, 90));
    }
}
