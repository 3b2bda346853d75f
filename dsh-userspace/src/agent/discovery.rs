//! Containers from cgroup paths: one scan at start-up, then the kernel's
//! mkdir/rmdir events. No periodic directory walks.
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
};

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
