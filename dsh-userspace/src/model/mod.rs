//! The agent's picture of the host's containers: which cgroup belongs to
//! which container, each container's state machine, and the log lines its
//! changes produce. Knows nothing of how events are collected or stored.
pub mod cause;
mod cgroup_churn;
pub mod churn;
pub mod container;
pub mod entry;
pub mod health;
mod incarnation;
pub mod readings;
mod resolve;
pub mod row;
mod sample;
pub mod sick;
pub mod signals;
pub mod state;
pub mod syscalls;
pub mod tcp;
pub mod tcp_kernel;

pub use cgroup_churn::LINES_PER_PARENT;
pub use resolve::ResolveError;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp};

use crate::cgroup::{identity::Identity, stats::CgroupStats};
use crate::{cgroup::CgroupId, runtime::RuntimeMeta, signal::ExitStatus};
use cause::{ExternalSignal, OomAtDeath, Start};
use container::Container;
use entry::LogEntry;
use health::HealthRules;
use row::ContainerRow;
use syscalls::SyscallAccounting;

pub struct Model {
    containers: BTreeMap<String, Container>,
    /// Attribution-hierarchy cgroup id (a container's own or a sub-cgroup) → key.
    by_cgroup: HashMap<CgroupId, String>,
    /// Block-I/O cgroup id (v1 blkio on hybrid hosts) → key.
    by_blkcg: HashMap<CgroupId, String>,
    /// Cgroups removed since the last signal summary → key: signals counted
    /// before a container's removal still reach its summary.
    removed_this_interval: HashMap<CgroupId, String>,
    pub rules: HealthRules,
    /// Containers gone from cgroupfs (and unknown to any runtime) are dropped
    /// from the table this long after their last change.
    pub forget_after: SignedDuration,
    /// How the agent counts syscalls (rows say whether rates are estimates).
    pub syscall_accounting: SyscallAccounting,
    log: Vec<LogEntry>,
    dirty: BTreeSet<String>,
    forgotten: BTreeSet<String>,
    /// Runtime id → row key, for incarnations whose row has another key
    /// (a Kubernetes container restarted by the kubelet under a new id).
    aliases: HashMap<String, String>,
    /// Workload (`k8s/<pod uid>/<container>`) → the key of its row.
    workloads: HashMap<String, String>,
    /// Metadata that came before its incarnation's cgroup (the usual order
    /// for containerd: the container exists before its task).
    early_meta: HashMap<String, RuntimeMeta>,
    /// Held create lines and the per-parent budget of create/destroy lines.
    cgroup_churn: cgroup_churn::CgroupChurn,
    /// Moves whenever a row may have gained or lost its cgroup, or rows
    /// came or went (`live_epoch`).
    live_epoch: u64,
}

/// What became of a new cgroup (`Model::cgroup_created`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// It is a row's cgroup now (its own or a sub-cgroup).
    Attached,
    /// Already known (the same cgroup seen twice).
    Known,
    /// Its claim would re-point a row that `holder` holds (or a sub-cgroup
    /// with no live row under its path): nothing changed.
    Refused { holder: Option<CgroupId> },
}

/// Which of the journal's containers changed since the last call.
#[derive(Default)]
pub struct Changes {
    pub updated: Vec<Container>,
    pub forgotten: Vec<String>,
}

impl Model {
    pub fn new(rules: HealthRules, forget_after: SignedDuration) -> Self {
        Self {
            containers: BTreeMap::new(),
            by_cgroup: HashMap::new(),
            by_blkcg: HashMap::new(),
            removed_this_interval: HashMap::new(),
            rules,
            forget_after,
            syscall_accounting: SyscallAccounting::default(),
            log: Vec::new(),
            dirty: BTreeSet::new(),
            forgotten: BTreeSet::new(),
            aliases: HashMap::new(),
            workloads: HashMap::new(),
            early_meta: HashMap::new(),
            cgroup_churn: cgroup_churn::CgroupChurn::default(),
            live_epoch: 0,
        }
    }

    /// Containers as the journal last saw them (before the start-up scan).
    pub fn restore(&mut self, saved: Vec<Container>) {
        for mut c in saved {
            if c.key.is_empty() {
                c.key = c.identity.runtime_id.clone(); // saved before rows had keys
            }
            if c.identity.runtime_id != c.key {
                self.aliases
                    .insert(c.identity.runtime_id.clone(), c.key.clone());
            }
            if let Some(w) = &c.workload {
                self.workloads.insert(w.clone(), c.key.clone());
            }
            if let Some(id) = c.cgroup_id {
                self.by_cgroup.insert(id, c.key().to_owned());
            }
            self.containers.insert(c.key().to_owned(), c);
        }
        self.live_changed();
    }

    pub fn get(&self, key: &str) -> Option<&Container> {
        self.containers.get(key)
    }

    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    pub fn key_of_cgroup(&self, id: CgroupId) -> Option<&str> {
        self.by_cgroup.get(&id).map(String::as_str)
    }

    fn emit(&mut self, key: &str, mut entries: Vec<LogEntry>) {
        // A pod's sandbox is plumbing: its lines would only be noise.
        if self.containers.get(key).is_some_and(|c| c.sandbox) {
            self.cgroup_churn.release(key);
            return;
        }
        if self.budgeted(key, &mut entries) {
            self.dirty.insert(key.to_owned());
        }
        self.log.extend(entries);
    }

    fn with<F>(&mut self, cgroup_id: CgroupId, f: F)
    where
        F: FnOnce(&mut Container) -> Vec<LogEntry>,
    {
        let Some(key) = self.by_cgroup.get(&cgroup_id).cloned() else {
            return;
        };
        if let Some(c) = self.containers.get_mut(&key) {
            let entries = f(c);
            self.emit(&key, entries);
        }
    }

    /// A cgroup appeared in the attribution hierarchy (from the start-up scan
    /// with `ts` its discovery time, or from the kernel's mkdir event).
    ///
    /// A row's cgroup id is its identity: a cgroup joins a row only as its
    /// first or next incarnation (the row has no cgroup) or as a sub-cgroup
    /// under the row's own path. Any other cgroup claiming the row's id is
    /// refused and changes nothing: the caller finds out whether the
    /// holder is gone (its rmdir lost) or lists the newcomer as itself.
    pub fn cgroup_created(
        &mut self,
        identity: Identity,
        path: &str,
        id: CgroupId,
        ts: Timestamp,
    ) -> Attach {
        if self.by_cgroup.contains_key(&id) {
            return Attach::Known;
        }
        let key = self.key_for(&identity.runtime_id).to_owned();
        let row = self.containers.get(&key);
        if path != identity.cgroup {
            // A sub-cgroup: of the row's live cgroup, under its path.
            return match row {
                Some(c) if c.cgroup_id.is_some() && c.identity.cgroup == identity.cgroup => {
                    self.by_cgroup.insert(id, key);
                    Attach::Attached
                }
                _ => Attach::Refused {
                    holder: row.and_then(|c| c.cgroup_id),
                },
            };
        }
        if let Some(c) = row
            && let Some(holder) = c.cgroup_id
        {
            if c.identity.runtime_id != identity.runtime_id && key != identity.runtime_id {
                // A runtime's next incarnation of a row (the kubelet's new
                // id) while the row's cgroup lingers: a row of its own,
                // which the runtime's word may then let continue the other.
                // (A second cgroup with the row's current id is refused.)
                self.aliases.remove(&identity.runtime_id);
                return self.cgroup_created(identity, path, id, ts);
            }
            return Attach::Refused {
                holder: Some(holder),
            };
        }
        self.by_cgroup.insert(id, key.clone());
        let new_row = !self.containers.contains_key(&key);
        let runtime_id = identity.runtime_id.clone();
        let c = self.containers.entry(key.clone()).or_insert_with(|| {
            let mut c = Container::new(identity.clone(), ts);
            c.key = key.clone();
            c
        });
        if c.identity != identity {
            // The runtime restarted this row's container under a new id
            // (or the same one under another path).
            if c.identity.runtime_id != runtime_id {
                c.meta = None;
            }
            c.identity = identity;
            self.dirty.insert(key.clone());
        }
        // Named before its first line, so a sandbox writes none.
        if let Some(meta) = self.early_meta.remove(&runtime_id) {
            self.set_meta(&runtime_id, Some(meta), ts);
        }
        self.live_changed();
        if let Some(c) = self.containers.get_mut(&key) {
            let entries = c.cgroup_created(id, ts);
            if new_row {
                // Written with the row's next line or at the next sample,
                // unless the cgroup is gone by then (`cgroup_churn`).
                self.cgroup_churn.hold(&key, entries);
            } else {
                self.emit(&key, entries);
            }
        }
        Attach::Attached
    }

    /// The path of the row that holds cgroup `holder` as its own.
    pub fn holder_path(&self, holder: CgroupId) -> Option<&str> {
        let c = self.containers.get(self.by_cgroup.get(&holder)?)?;
        (c.cgroup_id == Some(holder)).then_some(c.identity.cgroup.as_str())
    }

    /// Start-up: the journal's cgroup ids that name no cgroup now, or
    /// another one (ids repeat across boots), no longer key events; the
    /// rows keep them until the scan says what became of them.
    pub fn unmap_stale(&mut self, live: impl Fn(CgroupId, &str) -> bool) -> Vec<CgroupId> {
        let stale: Vec<CgroupId> = self
            .containers
            .values()
            .filter_map(|c| c.cgroup_id.filter(|&id| !live(id, &c.identity.cgroup)))
            .collect();
        for id in &stale {
            self.by_cgroup.remove(id);
        }
        stale
    }

    /// Start-up: a row whose journal cgroup id is stale gets a new cgroup
    /// (restarted while the agent was down): it lets the old one go
    /// quietly, as `found_running` says what happened.
    pub fn release_stale(&mut self, holder: CgroupId) {
        self.live_changed();
        for c in self.containers.values_mut() {
            if c.cgroup_id == Some(holder) {
                c.cgroup_id = None;
            }
        }
    }

    /// Start-up scan: a container's cgroup exists and has processes.
    pub fn found_running(
        &mut self,
        key: &str,
        ts: Timestamp,
        started_at: Option<Timestamp>,
        main: Option<u32>,
        how: Start,
    ) {
        if let Some(c) = self.containers.get_mut(key) {
            let entries = c.found_running(ts, started_at, main, how);
            self.emit(key, entries);
        }
    }

    /// Start-up: a container the journal had as running whose cgroup is gone.
    pub fn mark_gone(&mut self, key: &str, ts: Timestamp) {
        self.live_changed();
        if let Some(c) = self.containers.get_mut(key)
            && let Some(id) = c.cgroup_id
        {
            if self.by_cgroup.get(&id).is_some_and(|k| k == key) {
                self.by_cgroup.remove(&id);
            }
            let entries = c.cgroup_removed(ts);
            self.emit(key, entries);
        }
    }

    pub fn cgroup_removed(&mut self, id: CgroupId, ts: Timestamp) {
        let Some(key) = self.by_cgroup.remove(&id) else {
            return;
        };
        self.live_changed();
        if self
            .containers
            .get(&key)
            .is_some_and(|c| c.cgroup_id == Some(id))
            && self.vanished(&key)
        {
            return;
        }
        self.removed_this_interval.insert(id, key.clone());
        if let Some(c) = self.containers.get_mut(&key)
            && c.cgroup_id == Some(id)
        {
            let entries = c.cgroup_removed(ts);
            self.emit(&key, entries);
        }
    }

    /// A cgroup appeared in the block-I/O hierarchy (where that is not the
    /// attribution one). Its I/O counts for the row of its id unless that
    /// row lives under another path: then for a row of its own path, as
    /// in `cgroup_created`.
    pub fn blkcg_created(&mut self, identity: &Identity, id: CgroupId) {
        let key = self.key_for(&identity.runtime_id);
        let elsewhere = self
            .containers
            .get(key)
            .is_some_and(|c| c.cgroup_id.is_some() && c.identity.cgroup != identity.cgroup);
        let key = if elsewhere {
            identity.cgroup.clone()
        } else {
            key.to_owned()
        };
        self.by_blkcg.entry(id).or_insert(key);
    }

    pub fn blkcg_removed(&mut self, id: CgroupId) {
        self.by_blkcg.remove(&id);
    }

    /// An exec the kernel sent one by one (a start, or uncounted churn).
    pub fn exec(&mut self, cgroup_id: CgroupId, tgid: u32, comm: &str, ts: Timestamp) {
        self.with(cgroup_id, |c| c.exec(ts, tgid, comm));
    }

    /// Is `tgid` the main process of the container `cgroup_id` belongs to?
    pub fn is_main(&self, cgroup_id: CgroupId, tgid: u32) -> bool {
        self.by_cgroup
            .get(&cgroup_id)
            .and_then(|k| self.containers.get(k))
            .is_some_and(|c| c.main_tgid == Some(tgid))
    }

    /// The container's statistics read as its main process exits, for the
    /// exit line's summary (fresher than the last sample).
    pub fn final_stats(&mut self, cgroup_id: CgroupId, stats: CgroupStats) {
        if let Some(c) = self
            .by_cgroup
            .get(&cgroup_id)
            .and_then(|k| self.containers.get_mut(k))
        {
            c.sample.stats = Some(stats);
        }
    }

    pub fn exit(
        &mut self,
        cgroup_id: CgroupId,
        tgid: u32,
        comm: &str,
        status: ExitStatus,
        ts: Timestamp,
    ) {
        self.with(cgroup_id, |c| c.exit(ts, tgid, comm, status));
    }

    pub fn oom_kill(
        &mut self,
        victim_cgroup: CgroupId,
        tgid: u32,
        at_death: OomAtDeath,
        ts: Timestamp,
    ) {
        self.with(victim_cgroup, |c| {
            c.oom_kill(ts, tgid, at_death);
            Vec::new()
        });
        if let Some(key) = self.by_cgroup.get(&victim_cgroup) {
            self.dirty.insert(key.clone());
        }
    }

    /// Signals sent from outside a container to its process `tgid` that
    /// may explain that process's end (the kernel hands them over with the
    /// main process's exit, just before it).
    pub fn signalled_from_outside(
        &mut self,
        cgroup_id: CgroupId,
        tgid: u32,
        by: Vec<ExternalSignal>,
    ) {
        let Some(c) = self
            .by_cgroup
            .get(&cgroup_id)
            .and_then(|k| self.containers.get_mut(k))
        else {
            return;
        };
        c.signalled_from_outside(tgid, by);
    }

    pub fn listen(&mut self, cgroup_id: CgroupId, port: u16, addr: String, listening: bool) {
        let Some(key) = self.by_cgroup.get(&cgroup_id) else {
            return;
        };
        if let Some(c) = self.containers.get_mut(key) {
            if listening {
                c.listening.insert(port, addr);
            } else {
                c.listening.remove(&port);
            }
        }
    }

    /// Changes whenever `live_keys` may have: the same value, the same keys.
    pub fn live_epoch(&self) -> u64 {
        self.live_epoch
    }

    fn live_changed(&mut self) {
        self.live_epoch = self.live_epoch.wrapping_add(1);
    }

    pub fn live_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        self.live_keys_into(&mut keys);
        keys
    }

    /// `live_keys` into `keys`, which held them last time: each key only
    /// compared while the set stays the same (no copy of every key every
    /// tick), copied into the string already there when it changed.
    pub fn live_keys_into(&self, keys: &mut Vec<String>) {
        let mut n = 0;
        for (k, _) in self
            .containers
            .iter()
            .filter(|(_, c)| c.cgroup_id.is_some())
        {
            match keys.get_mut(n) {
                Some(old) if old == k => {}
                Some(old) => old.clone_from(k),
                None => keys.push(k.clone()),
            }
            n += 1;
        }
        keys.truncate(n);
    }

    pub fn key_of_blkcg(&self, id: CgroupId) -> Option<&str> {
        self.by_blkcg.get(&id).map(String::as_str)
    }

    /// The table: with `all`, every container; without, those plain `dsh ps`
    /// lists (see [`ContainerRow::listed`]).
    pub fn rows(&self, all: bool, now: Timestamp) -> Vec<ContainerRow> {
        self.containers
            .values()
            .filter(|c| !c.sandbox)
            .map(|c| ContainerRow::of(c, &self.rules, self.syscall_accounting, now))
            .filter(|r| all || r.listed)
            .collect()
    }

    pub fn take_log(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.log)
    }

    pub fn take_changes(&mut self) -> Changes {
        let updated = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|k| self.containers.get(&k).cloned())
            .collect();
        Changes {
            updated,
            forgotten: std::mem::take(&mut self.forgotten).into_iter().collect(),
        }
    }

    /// Drops containers that are gone and stale, and event times too old to
    /// matter: keeps memory flat under container churn.
    pub fn housekeep(&mut self, now: Timestamp) {
        let lookback = self.rules.lookback();
        let forget = self.forget_after;
        let stale: Vec<String> = self
            .containers
            .iter()
            .filter(|(_, c)| {
                c.cgroup_id.is_none()
                    && c.meta.is_none()
                    && !c.state.is_live()
                    && now.duration_since(c.last_change) > forget
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.live_changed();
            self.containers.remove(&k);
            self.dirty.remove(&k);
            self.forgotten.insert(k);
        }
        for c in self.containers.values_mut() {
            c.prune_times(now, lookback);
        }
        self.prune_incarnations();
        self.by_cgroup.shrink_to_fit();
        self.by_blkcg.shrink_to_fit();
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_identity;
#[cfg(test)]
mod tests_kube;
#[cfg(test)]
mod tests_sick;
#[cfg(test)]
mod tests_tcp;
