//! Containers from cgroup paths: one scan at start-up, then the kernel's
//! mkdir/rmdir events, and a look-up by id for an event whose cgroup
//! neither has shown (its mkdir lost, or not yet read). No periodic
//! directory walks.
use std::{collections::HashSet, path::PathBuf};

use jiff::Timestamp;

use crate::{
    cgroup::{
        self, CgroupId,
        identity::identify,
        layout::{CgroupLayout, CgroupLayoutKind},
    },
    clock::BootClock,
    model::{Model, cause::Start},
    probe::event::{Event, EventKind},
};

/// Ids found to be no container's, kept so each is looked up once; past
/// this many the set starts over (ids are never reused: a look-up again
/// costs time, never correctness).
const MAX_NOT_CONTAINERS: usize = 65_536;

/// Cgroups found from an event's cgroup id, on demand.
#[derive(Default)]
pub struct OnDemand {
    not_containers: HashSet<CgroupId>,
    /// Containers (or sub-cgroups of one) found this way.
    pub found: u64,
}

impl OnDemand {
    /// The cgroups `ev` names, found now if the agent has not seen their
    /// creation (its mkdir lost, or read later), rather than the event
    /// dropped.
    pub fn ensure_for(
        &mut self,
        ev: &Event,
        model: &mut Model,
        layout: &CgroupLayout,
        ts: Timestamp,
    ) {
        let none = CgroupId::new(0);
        let ids = match &ev.kind {
            EventKind::Exec { .. } | EventKind::Exit { .. } | EventKind::Listen { .. } => {
                [ev.task.cgroup_id, none]
            }
            EventKind::Oom {
                victim_cgroup_id, ..
            } => [*victim_cgroup_id, none],
            _ => return,
        };
        for id in ids {
            self.ensure(model, layout, id, ts);
        }
    }

    /// Makes the cgroup `id` known to the model before an event about it
    /// is applied, if it belongs to a container: its mkdir event was lost,
    /// or is still behind in the other ring. `ts` (the event's time) stands
    /// in for the cgroup's creation.
    pub fn ensure(
        &mut self,
        model: &mut Model,
        layout: &CgroupLayout,
        id: CgroupId,
        ts: Timestamp,
    ) {
        if id.get() == 0 || model.key_of_cgroup(id).is_some() || self.not_containers.contains(&id) {
            return;
        }
        let found = self.lookup(model, layout, id, ts);
        if !found {
            if self.not_containers.len() >= MAX_NOT_CONTAINERS {
                self.not_containers.clear();
            }
            self.not_containers.insert(id);
        }
    }

    fn lookup(
        &mut self,
        model: &mut Model,
        layout: &CgroupLayout,
        id: CgroupId,
        ts: Timestamp,
    ) -> bool {
        let Some(root) = layout.attribution_root() else {
            return false;
        };
        let cgroup2 = layout.kind != CgroupLayoutKind::V1;
        let path = match cgroup::by_id::path_of(root, cgroup2, id) {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(e) => {
                log::debug!("looking up cgroup id {id}: {e}");
                return false;
            }
        };
        let Some(identity) = identify(&path) else {
            return false;
        };
        if path != identity.cgroup {
            // A sub-cgroup: its container first, which may be unknown too.
            let own = root.join(identity.cgroup.trim_start_matches('/'));
            if let Ok(own_id) = cgroup::layout::cgroup_id(&own)
                && model.key_of_cgroup(own_id).is_none()
            {
                model.cgroup_created(identity.clone(), &identity.cgroup, own_id, ts);
            }
        }
        log::debug!("cgroup {path} (id {id}) found from an event, ahead of its mkdir");
        model.cgroup_created(identity, &path, id, ts);
        self.found += 1;
        true
    }
}

/// Which hierarchy ids the kernel's cgroup events carry for the two
/// hierarchies the agent maps (cgroup2 is always hierarchy 0).
#[derive(Clone, Copy, Debug)]
pub struct Hierarchies {
    pub attribution: u32,
    pub blkcg: u32,
}

impl Hierarchies {
    pub fn of(layout: &CgroupLayout) -> Self {
        let v1 = |c| cgroup::v1_hierarchy_id(c).unwrap_or(u32::MAX);
        match layout.kind {
            CgroupLayoutKind::V2 => Self {
                attribution: 0,
                blkcg: 0,
            },
            CgroupLayoutKind::Hybrid => Self {
                attribution: 0,
                blkcg: if layout.v1.contains_key("blkio") {
                    v1("blkio")
                } else {
                    0
                },
            },
            CgroupLayoutKind::V1 => Self {
                attribution: v1("memory"),
                blkcg: v1("blkio"),
            },
        }
    }
}

/// The one start-up scan: reconciles the journal's containers with the
/// cgroups that exist now.
pub fn startup_scan(model: &mut Model, layout: &CgroupLayout, now: Timestamp) {
    let Some(root) = layout.attribution_root() else {
        return;
    };
    let mut found = cgroup::scan(root);
    // Parents before children, so a container exists before its sub-cgroups.
    found.sort_by(|a, b| a.path.cmp(&b.path));
    let mut seen = HashSet::new();
    for f in &found {
        let Some(identity) = identify(&f.path) else {
            continue;
        };
        let key = model.key_for(&identity.runtime_id).to_owned();
        if f.path != identity.cgroup {
            model.cgroup_created(identity, &f.path, f.id, now);
            continue;
        }
        seen.insert(key.clone());
        let known = model
            .get(&key)
            .filter(|c| c.identity.runtime_id == identity.runtime_id)
            .map(|c| (c.cgroup_id, c.ever_started));
        if matches!(known, Some((Some(id), _)) if id == f.id) {
            continue; // the same incarnation the journal knows
        }
        model.cgroup_created(identity, &f.path, f.id, now);
        let procs = cgroup::procs(&root.join(f.path.trim_start_matches('/')));
        if let Some((main, started)) = main_process(&procs) {
            let how = if matches!(known, Some((_, true))) {
                Start::RestartedWhileDown
            } else {
                Start::FoundRunning
            };
            model.found_running(&key, now, started, Some(main), how);
        }
    }
    let gone: Vec<String> = model
        .containers()
        .filter(|c| c.cgroup_id.is_some() && !seen.contains(c.key()))
        .map(|c| c.key().to_owned())
        .collect();
    for key in gone {
        model.mark_gone(&key, now);
    }
    let blk_found = match layout.blkcg_root() {
        Some(blk_root) if Some(blk_root) != layout.attribution_root() => cgroup::scan(blk_root),
        _ => found,
    };
    for f in blk_found {
        if let Some(identity) = identify(&f.path) {
            let key = model.key_for(&identity.runtime_id).to_owned();
            model.blkcg_created(&key, f.id);
        }
    }
}

/// The container's main process: the one whose parent is outside the
/// cgroup (the runtime's shim), and when it started.
fn main_process(procs: &[u32]) -> Option<(u32, Option<Timestamp>)> {
    let clock = BootClock::now();
    let inside: HashSet<u32> = procs.iter().copied().collect();
    let mut best: Option<(u32, u64)> = None;
    for &pid in procs {
        let Ok((ppid, start_ns)) = cgroup::proc_start(pid) else {
            continue;
        };
        if inside.contains(&ppid) {
            continue;
        }
        if best.is_none_or(|(_, s)| start_ns < s) {
            best = Some((pid, start_ns));
        }
    }
    let (pid, start) = best.or_else(|| procs.iter().min().map(|p| (*p, 0)))?;
    Some((pid, (start > 0).then(|| clock.to_timestamp(start))))
}

/// The kernel created a cgroup.
pub fn on_mkdir(
    model: &mut Model,
    h: Hierarchies,
    id: CgroupId,
    hierarchy: u32,
    path: &str,
    ts: Timestamp,
) {
    if hierarchy != h.attribution && hierarchy != h.blkcg {
        return;
    }
    let Some(identity) = identify(path) else {
        return;
    };
    if hierarchy == h.blkcg {
        let key = model.key_for(&identity.runtime_id).to_owned();
        model.blkcg_created(&key, id);
    }
    if hierarchy == h.attribution {
        log::debug!(
            "cgroup {path} (id {id}) created: {:?} container {}",
            identity.runtime,
            identity.runtime_id
        );
        model.cgroup_created(identity, path, id, ts);
    }
}

pub fn on_rmdir(model: &mut Model, h: Hierarchies, id: CgroupId, hierarchy: u32, ts: Timestamp) {
    if hierarchy == h.blkcg {
        model.blkcg_removed(id);
    }
    if hierarchy == h.attribution {
        model.cgroup_removed(id, ts);
    }
}

/// The attribution hierarchy's directory for a container's cgroup path.
pub fn attribution_dir(layout: &CgroupLayout, path: &str) -> Option<PathBuf> {
    layout
        .attribution_root()
        .map(|r| r.join(path.trim_start_matches('/')))
}
