//! Runtime metadata on the rows, and the rows' incarnations: a runtime that
//! restarts a container under a new id (the kubelet: same pod uid and
//! container name) continues the same row, so its restarts are counted and
//! its log goes on.
use std::collections::HashMap;

use jiff::Timestamp;

use super::Model;
use crate::runtime::RuntimeMeta;

/// Metadata kept for incarnations not seen yet is bounded (ids of containers
/// that never get a cgroup here must not pile up).
const EARLY_META_MAX: usize = 4096;

impl Model {
    /// The row key of a runtime id: its own, unless it continues another row.
    pub fn key_for<'a>(&'a self, runtime_id: &'a str) -> &'a str {
        self.aliases
            .get(runtime_id)
            .map_or(runtime_id, String::as_str)
    }

    /// Runtime metadata for one runtime id (None: the runtime no longer
    /// knows it).
    pub fn set_meta(&mut self, runtime_id: &str, meta: Option<RuntimeMeta>, now: Timestamp) {
        let mut key = self.key_for(runtime_id).to_owned();
        if let Some(w) = meta.as_ref().and_then(RuntimeMeta::workload) {
            match self.workloads.get(&w).cloned() {
                Some(row) if row != key => {
                    if self.containers.contains_key(&key) && key == runtime_id {
                        // Its cgroup came before its name: it has a row of its
                        // own already, which takes over the earlier one's.
                        self.adopt(&row, &key, now);
                        self.workloads.insert(w, key.clone());
                    } else {
                        self.aliases.insert(runtime_id.to_owned(), row.clone());
                        key = row;
                    }
                }
                Some(_) => {}
                None => {
                    self.workloads.insert(w, key.clone());
                }
            }
        }
        let Some(c) = self.containers.get_mut(&key) else {
            self.keep_early(runtime_id, meta);
            return;
        };
        if c.identity.runtime_id != runtime_id {
            // Another incarnation of this row: an earlier one's removal, or
            // a new one whose cgroup has not appeared yet.
            self.keep_early(runtime_id, meta);
            return;
        }
        if c.keep_runtime_restarts() {
            self.dirty.insert(key.clone());
        }
        if c.removed_from_runtime != meta.is_none() {
            // Saved, so a removed container keeps its name across restarts.
            c.removed_from_runtime = meta.is_none();
            self.dirty.insert(key.clone());
        }
        if let Some(m) = &meta {
            let workload = m.workload();
            if c.last_name.as_deref() != Some(m.name.as_str())
                || (m.sandbox && !c.sandbox)
                || (workload.is_some() && c.workload != workload)
            {
                c.last_name = Some(m.name.clone());
                c.sandbox |= m.sandbox;
                c.workload = workload.or(c.workload.take());
                self.dirty.insert(key.clone());
            }
        }
        c.meta = meta;
    }

    fn keep_early(&mut self, runtime_id: &str, meta: Option<RuntimeMeta>) {
        match meta {
            Some(m) => {
                if self.early_meta.len() >= EARLY_META_MAX {
                    self.early_meta.clear();
                }
                self.early_meta.insert(runtime_id.to_owned(), m);
            }
            None => {
                self.early_meta.remove(runtime_id);
            }
        }
    }

    /// Row `new` continues row `old` (whose history it takes; `old` leaves
    /// the table, its journal lines stay under its key).
    fn adopt(&mut self, old: &str, new: &str, now: Timestamp) {
        let Some(o) = self.containers.remove(old) else {
            return;
        };
        self.live_changed();
        self.dirty.remove(old);
        self.forgotten.insert(old.to_owned());
        for k in self.aliases.values_mut().chain(self.by_cgroup.values_mut()) {
            if k == old {
                *k = new.to_owned();
            }
        }
        let Some(c) = self.containers.get_mut(new) else {
            return;
        };
        if o.ever_started {
            if c.ever_started {
                c.restarts += 1;
                c.restart_times.push(c.started_at.unwrap_or(now));
            } else {
                c.ever_started = true; // so its start counts as the restart
            }
        }
        // What the earlier row showed, its runtime's count included.
        c.restarts += o.restart_count();
        c.restart_times.extend(o.restart_times);
        c.oom_kills += o.oom_kills;
        c.oom_times.extend(o.oom_times);
        c.core_dumps += o.core_dumps;
        c.core_times.extend(o.core_times);
        c.process_exits += o.process_exits;
        self.dirty.insert(new.to_owned());
    }

    /// The runtime went away: the names it gave are no longer known to be
    /// true (other runtimes' stay).
    pub fn clear_meta(&mut self, runtime: &str) {
        for (k, c) in &mut self.containers {
            if c.meta.as_ref().is_some_and(|m| m.runtime == runtime) {
                if c.keep_runtime_restarts() {
                    self.dirty.insert(k.clone());
                }
                c.meta = None;
                c.removed_from_runtime = false;
            }
        }
        self.early_meta.retain(|_, m| m.runtime != runtime);
    }

    /// Key → the best name known (current runtime name, else the last one),
    /// for containers that have one.
    pub fn names(&self) -> HashMap<String, String> {
        self.containers
            .iter()
            .filter_map(|(k, c)| {
                let name = c.meta.as_ref().map(|m| &m.name).or(c.last_name.as_ref())?;
                (!name.is_empty()).then(|| (k.clone(), name.clone()))
            })
            .collect()
    }

    /// Forgets aliases and workloads of rows no longer in the table.
    pub(super) fn prune_incarnations(&mut self) {
        let rows = &self.containers;
        self.aliases.retain(|_, k| rows.contains_key(k));
        self.workloads.retain(|_, k| rows.contains_key(k));
    }
}
