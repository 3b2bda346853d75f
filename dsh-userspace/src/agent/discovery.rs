//! Containers from cgroup paths: one scan at start-up, then the kernel's
//! mkdir/rmdir events, and a look-up by id for an event whose cgroup
//! neither has shown (its mkdir lost, or not yet read). No periodic
//! directory walks.
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use jiff::Timestamp;

use crate::{
    cgroup::{
        self, CgroupId,
        delegation::{Maker, maker},
        identity::{Identity, identify},
        layout::{CgroupLayout, CgroupLayoutKind},
    },
    clock::BootClock,
    model::{Attach, Model, cause::Start},
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
        let identity = vetted(identity, root);
        if path != identity.cgroup {
            // A sub-cgroup: its container first, which may be unknown too.
            let own = root.join(identity.cgroup.trim_start_matches('/'));
            if let Ok(own_id) = cgroup::layout::cgroup_id(&own)
                && model.key_of_cgroup(own_id).is_none()
            {
                admit(
                    model,
                    layout,
                    identity.clone(),
                    &identity.cgroup,
                    own_id,
                    ts,
                );
            }
        }
        log::debug!("cgroup {path} (id {id}) found from an event, ahead of its mkdir");
        admit(model, layout, identity, &path, id, ts);
        self.found += 1;
        true
    }
}

/// What a cgroup counts as: the container its path names only if root
/// made it (`cgroup::delegation`), else the plain cgroup it is, listed
/// under its own path. `root` is the hierarchy's mount.
pub fn vetted(identity: Identity, root: &Path) -> Identity {
    if !identity.claims_an_id() {
        return identity;
    }
    match maker(root, &identity.cgroup) {
        Maker::Root => identity,
        why => {
            log::debug!(
                "cgroup {} looks like {:?} container {} but is not root's ({why:?}): \
                 listed as a plain cgroup",
                identity.cgroup,
                identity.runtime,
                identity.runtime_id
            );
            identity.plain()
        }
    }
}

/// Adds a cgroup of the attribution hierarchy to the model. A second
/// cgroup claiming a row's id takes it only once the row's cgroup is gone
/// (its rmdir lost or not read yet); while that one lives, the newcomer is
/// listed as itself, under its own path.
fn admit(
    model: &mut Model,
    layout: &CgroupLayout,
    identity: Identity,
    path: &str,
    id: CgroupId,
    ts: Timestamp,
) -> Option<Identity> {
    let holder = match model.cgroup_created(identity.clone(), path, id, ts) {
        Attach::Attached => return Some(identity),
        Attach::Known => return None,
        Attach::Refused { holder } => holder,
    };
    if let Some(holder) = holder
        && !holder_lives(model, layout, holder)
    {
        model.cgroup_removed(holder, ts);
        if model.cgroup_created(identity.clone(), path, id, ts) == Attach::Attached {
            return Some(identity);
        }
    }
    if !identity.claims_an_id() {
        log::debug!("cgroup {path} (id {id}) has no live container to belong to");
        return None;
    }
    log::debug!(
        "cgroup {path} (id {id}) claims {:?} container {}, which another cgroup holds: \
         listed as a plain cgroup",
        identity.runtime,
        identity.runtime_id
    );
    let plain = identity.plain();
    (model.cgroup_created(plain.clone(), path, id, ts) == Attach::Attached).then_some(plain)
}

/// Whether the cgroup a row holds still exists: its directory is there
/// and is that cgroup (a path is one live cgroup's at a time; its id is
/// the directory's inode).
fn holder_lives(model: &Model, layout: &CgroupLayout, holder: CgroupId) -> bool {
    let Some(path) = model.holder_path(holder) else {
        return false;
    };
    attribution_dir(layout, path)
        .and_then(|dir| cgroup::layout::cgroup_id(&dir).ok())
        .is_some_and(|id| id == holder)
}

/// Verdicts on new cgroups taken as their mkdir events arrive, ahead of
/// the wait that puts events in order: a short-lived cgroup is still there
/// to be checked.
pub struct Vetting {
    hierarchies: Hierarchies,
    /// (hierarchy, cgroup id) → root made it.
    early: HashMap<(u32, CgroupId), bool>,
    /// Cgroups shaped like a runtime's container, or a systemd unit, that
    /// root did not make: listed under their own paths.
    pub not_root_made: u64,
}

/// Past this many unconsumed verdicts the map starts over (a verdict
/// missing is taken again when its event is applied).
const MAX_EARLY_VERDICTS: usize = 65_536;

impl Vetting {
    pub fn new(hierarchies: Hierarchies) -> Self {
        Self {
            hierarchies,
            early: HashMap::new(),
            not_root_made: 0,
        }
    }

    /// As a mkdir event arrives: who made the cgroup, while it exists.
    pub fn on_arrival(&mut self, ev: &Event, layout: &CgroupLayout) {
        let EventKind::CgroupMkdir {
            id,
            hierarchy_id,
            path,
            ..
        } = &ev.kind
        else {
            return;
        };
        let Some(root) = self.hierarchies.root(layout, *hierarchy_id) else {
            return;
        };
        let Some(identity) = identify(path).filter(Identity::claims_an_id) else {
            return;
        };
        if self.early.len() >= MAX_EARLY_VERDICTS {
            self.early.clear();
        }
        let root_made = maker(root, &identity.cgroup).is_root();
        self.early.insert((*hierarchy_id, *id), root_made);
    }

    /// `identity` as it counts for the cgroup `id` of `hierarchy`.
    fn vet(&mut self, root: &Path, hierarchy: u32, id: CgroupId, identity: Identity) -> Identity {
        if !identity.claims_an_id() {
            return identity;
        }
        let identity = match self.early.remove(&(hierarchy, id)) {
            Some(true) => identity,
            Some(false) => identity.plain(),
            None => vetted(identity, root),
        };
        if !identity.claims_an_id() {
            self.not_root_made += 1;
        }
        identity
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
    /// The mount of the hierarchy with this id, if the agent maps it.
    fn root(self, layout: &CgroupLayout, hierarchy: u32) -> Option<&Path> {
        if hierarchy == self.attribution {
            layout.attribution_root()
        } else if hierarchy == self.blkcg {
            layout.blkcg_root()
        } else {
            None
        }
    }

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
    let live: HashMap<CgroupId, &str> = found.iter().map(|f| (f.id, f.path.as_str())).collect();
    let stale: HashSet<CgroupId> = model
        .unmap_stale(|id, path| live.get(&id) == Some(&path))
        .into_iter()
        .collect();
    let mut seen = HashSet::new();
    let mut verdicts: HashMap<String, Identity> = HashMap::new();
    for f in &found {
        let Some(identity) = identify(&f.path) else {
            continue;
        };
        // Once per container: its sub-cgroups share the verdict.
        let identity = verdicts
            .entry(identity.cgroup.clone())
            .or_insert_with(|| vetted(identity, root))
            .clone();
        let key = model.key_for(&identity.runtime_id).to_owned();
        if f.path != identity.cgroup {
            admit(model, layout, identity, &f.path, f.id, now);
            continue;
        }
        let known = model
            .get(&key)
            .filter(|c| c.identity.runtime_id == identity.runtime_id)
            .map(|c| (c.cgroup_id, c.ever_started));
        if matches!(known, Some((Some(id), _)) if id == f.id) {
            seen.insert(key);
            continue; // the same incarnation the journal knows
        }
        if let Some((Some(old), _)) = known
            && stale.contains(&old)
        {
            model.release_stale(old);
        }
        let claimed = identity.runtime_id.clone();
        let Some(attached) = admit(model, layout, identity, &f.path, f.id, now) else {
            continue;
        };
        let key = model.key_for(&attached.runtime_id).to_owned();
        seen.insert(key.clone());
        let procs = cgroup::procs(&root.join(f.path.trim_start_matches('/')));
        if let Some((main, started)) = main_process(&procs) {
            // Listed as itself, it is not the journal's container restarted.
            let same_row = attached.runtime_id == claimed;
            let how = if same_row && matches!(known, Some((_, true))) {
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
    let (blk_root, blk_found) = match layout.blkcg_root() {
        Some(blk_root) if Some(blk_root) != layout.attribution_root() => {
            (blk_root, cgroup::scan(blk_root))
        }
        _ => (root, found),
    };
    let mut verdicts: HashMap<String, Identity> = HashMap::new();
    for f in blk_found {
        if let Some(identity) = identify(&f.path) {
            let identity = verdicts
                .entry(identity.cgroup.clone())
                .or_insert_with(|| vetted(identity, blk_root));
            model.blkcg_created(identity, f.id);
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

impl Vetting {
    /// The kernel created a cgroup. Returns the container it was added
    /// as, when it is one's own cgroup in the attribution hierarchy.
    pub fn on_mkdir(
        &mut self,
        model: &mut Model,
        layout: &CgroupLayout,
        id: CgroupId,
        hierarchy: u32,
        path: &str,
        ts: Timestamp,
    ) -> Option<Identity> {
        let h = self.hierarchies;
        let root = h.root(layout, hierarchy)?;
        let identity = self.vet(root, hierarchy, id, identify(path)?);
        if hierarchy == h.blkcg {
            model.blkcg_created(&identity, id);
        }
        if hierarchy != h.attribution {
            return None;
        }
        log::debug!(
            "cgroup {path} (id {id}) created: {:?} container {}",
            identity.runtime,
            identity.runtime_id
        );
        admit(model, layout, identity, path, id, ts).filter(|i| i.cgroup == path)
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
