//! Cgroup paths and files: which container a cgroup is, where its
//! statistics live, and the one start-up scan of the hierarchy.
pub mod by_id;
pub mod delegation;
pub mod identity;
pub mod layout;
pub mod listen;
pub mod netns;
pub mod snmp;
pub mod stats;

use std::{
    fs, io,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use layout::{CgroupLayout, CgroupLayoutKind};
use procfs::process::Process;

/// A cgroup's id as the kernel reports it in events and map keys
/// (`cgroup->kn->id`): its directory's inode number on cgroupfs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct CgroupId(u64);

impl CgroupId {
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for CgroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a container's statistics files are on this host.
pub fn stats_source(layout: &CgroupLayout, path: &str) -> stats::StatsSource {
    let rel = path.trim_start_matches('/');
    if layout.kind == CgroupLayoutKind::V2 {
        let root = layout.unified.clone().unwrap_or_default();
        return stats::StatsSource::V2(root.join(rel));
    }
    let v1 = |c: &str| layout.v1.get(c).map(|root| root.join(rel));
    stats::StatsSource::V1 {
        memory: v1("memory"),
        cpu: v1("cpu"),
        cpuacct: v1("cpuacct"),
        pids: v1("pids"),
        blkio: v1("blkio"),
        unified: layout.unified.as_ref().map(|root| root.join(rel)),
    }
}

/// A cgroup found by the start-up scan.
pub struct Found {
    /// Path relative to the hierarchy root, starting with '/'.
    pub path: String,
    pub id: CgroupId,
}

/// Walks one hierarchy once (at start-up; later changes come from the
/// kernel's mkdir/rmdir events). Cgroups that vanish mid-walk are skipped.
pub fn scan(root: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(root)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_dir() {
                continue;
            }
            let p = entry.path();
            if let Ok(rel) = p.strip_prefix(root) {
                // Names are the container's choice: not necessarily UTF-8.
                let rel = crate::untrusted::from_utf8_escaped(rel.as_os_str().as_bytes());
                out.push(Found {
                    path: format!("/{rel}"),
                    id: CgroupId(meta.ino()),
                });
            }
            stack.push(p);
        }
    }
    out
}

/// The processes in one cgroup (empty if it vanished).
pub fn procs(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// procfs's error as the `io::Error` callers match on (NotFound: the
/// process has gone).
fn io_error(e: procfs::ProcError) -> io::Error {
    match e {
        procfs::ProcError::Io(e, _) => e,
        procfs::ProcError::NotFound(_) => io::ErrorKind::NotFound.into(),
        procfs::ProcError::PermissionDenied(_) => io::ErrorKind::PermissionDenied.into(),
        other => io::Error::other(other),
    }
}

/// A process's parent pid and start time (ns since boot) from /proc/PID/stat.
pub fn proc_start(pid: u32) -> io::Result<(u32, u64)> {
    let stat = Process::new(pid as i32)
        .and_then(|p| p.stat())
        .map_err(io_error)?;
    let hz = procfs::ticks_per_second().max(1);
    Ok((stat.ppid as u32, stat.starttime * (1_000_000_000 / hz)))
}

/// The hierarchy id of a v1 controller, from /proc/cgroups (cgroup2 is 0).
pub fn v1_hierarchy_id(controller: &str) -> Option<u32> {
    procfs::cgroups()
        .ok()?
        .0
        .into_iter()
        .find_map(|c| (c.name == controller).then_some(c.hierarchy))
}

/// One line of `/proc/PID/cgroup`: `hierarchy-id:controllers:path` (the
/// path relative to the hierarchy's root as our cgroup namespace sees it).
pub use procfs::ProcessCGroup as ProcCgroup;

/// A process's cgroups (NotFound once it has gone). A cgroup name that is
/// not UTF-8 keeps its bad bytes as `\xNN` escapes.
pub fn proc_cgroups(pid: u32) -> io::Result<Vec<ProcCgroup>> {
    // Read here, not by procfs::Process::cgroups, which refuses the whole
    // file when a cgroup's name is not UTF-8.
    let bytes = fs::read(format!("/proc/{pid}/cgroup"))?;
    let text = crate::untrusted::from_utf8_escaped(&bytes);
    <procfs::ProcessCGroups as procfs::FromRead>::from_read(text.as_bytes())
        .map(|c| c.0)
        .map_err(io_error)
}

/// The process's cgroup in the hierarchy events are attributed to (see
/// `CgroupLayout::attribution_root`): cgroup2 on v2 and hybrid hosts, the v1
/// memory controller's on v1-only ones.
pub fn attribution_path<'a>(lines: &'a [ProcCgroup], layout: &CgroupLayout) -> Option<&'a str> {
    lines
        .iter()
        .find(|l| match layout.kind {
            CgroupLayoutKind::V2 | CgroupLayoutKind::Hybrid => l.hierarchy == 0,
            CgroupLayoutKind::V1 => l
                .controllers
                .iter()
                .any(|c| c == layout::V1_ATTRIBUTION_CONTROLLER),
        })
        .map(|l| l.pathname.as_str())
}

/// The directory of each of the process's cgroups, one per mounted hierarchy
/// (cgroup2 and every v1 one), on this host's mounts.
pub fn hierarchy_dirs(lines: &[ProcCgroup], layout: &CgroupLayout) -> Vec<PathBuf> {
    lines
        .iter()
        .filter_map(|l| {
            let root = if l.hierarchy == 0 {
                layout.unified.as_ref()
            } else {
                l.controllers.iter().find_map(|c| layout.v1.get(c))
            }?;
            Some(root.join(l.pathname.trim_start_matches('/')))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use procfs::{FromBufRead as _, ProcessCGroups};

    use super::*;

    const HYBRID_PROC: &str = "\
9:name=systemd:/docker/abc
4:memory:/docker/abc
2:cpu,cpuacct:/docker/abc
0::/docker/abc/sub:odd
";

    #[test]
    fn proc_cgroup_lines() {
        let lines = ProcessCGroups::from_buf_read(HYBRID_PROC.as_bytes())
            .unwrap()
            .0;
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(lines[3].pathname, "/docker/abc/sub:odd");
        let hybrid = CgroupLayout::from_mounts(
            "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
             cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
             cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\n\
             cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
        )
        .unwrap();
        assert_eq!(
            attribution_path(&lines, &hybrid),
            Some("/docker/abc/sub:odd")
        );
        assert_eq!(
            hierarchy_dirs(&lines, &hybrid),
            [
                "/sys/fs/cgroup/systemd/docker/abc",
                "/sys/fs/cgroup/memory/docker/abc",
                "/sys/fs/cgroup/cpu,cpuacct/docker/abc",
                "/sys/fs/cgroup/unified/docker/abc/sub:odd",
            ]
            .map(PathBuf::from)
        );
        let v1 = CgroupLayout::from_mounts("cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n")
            .unwrap();
        assert_eq!(attribution_path(&lines, &v1), Some("/docker/abc"));
        assert_eq!(hierarchy_dirs(&lines, &v1).len(), 1);
    }

    #[test]
    fn own_cgroups_and_hierarchy_ids() {
        let mine = proc_cgroups(std::process::id()).unwrap();
        assert!(!mine.is_empty());
        // Every v1 line's controllers share its hierarchy id in /proc/cgroups.
        for l in mine.iter().filter(|l| l.hierarchy != 0) {
            if let Some(c) = l.controllers.iter().find(|c| !c.starts_with("name=")) {
                assert_eq!(v1_hierarchy_id(c), Some(l.hierarchy), "{l:?}");
            }
        }
        assert_eq!(v1_hierarchy_id("no-such-controller"), None);
        let gone = proc_cgroups(u32::MAX / 2).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn own_process_start_and_parent() {
        let (ppid, start) = proc_start(std::process::id()).unwrap();
        assert_eq!(ppid, std::os::unix::process::parent_id());
        assert!(start > 0 && start <= crate::clock::BootClock::boot_ns_now());
    }

    #[test]
    fn hybrid_layout_reads_v1_controllers() {
        let layout = CgroupLayout::from_mounts(
            "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
             cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
        )
        .unwrap();
        let src = stats_source(&layout, "/docker/abc");
        assert_eq!(
            src,
            stats::StatsSource::V1 {
                memory: Some(PathBuf::from("/sys/fs/cgroup/memory/docker/abc")),
                cpu: None,
                cpuacct: None,
                pids: None,
                blkio: None,
                unified: Some(PathBuf::from("/sys/fs/cgroup/unified/docker/abc")),
            }
        );
    }
}
