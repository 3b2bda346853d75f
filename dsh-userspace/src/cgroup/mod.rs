//! Cgroup paths and files: which container a cgroup is, where its
//! statistics live, and the one start-up scan of the hierarchy.
pub mod identity;
pub mod stats;

use std::{
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use crate::probe::layout::{CgroupLayout, CgroupLayoutKind};

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
    }
}

/// A cgroup found by the start-up scan.
pub struct Found {
    /// Path relative to the hierarchy root, starting with '/'.
    pub path: String,
    pub id: u64,
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
                out.push(Found {
                    path: format!("/{}", rel.to_string_lossy()),
                    id: meta.ino(),
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

/// A process's parent pid and start time (ns since boot) from /proc/PID/stat.
pub fn proc_start(pid: u32) -> io::Result<(u32, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // comm may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After comm: state(0) ppid(1) ... starttime is field 22 overall → index 19.
    let parse = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(ppid), Some(start)) = (parse(1), parse(19)) else {
        return Err(io::Error::other("malformed /proc/PID/stat"));
    };
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as u64;
    Ok((ppid as u32, start * (1_000_000_000 / hz)))
}

/// The hierarchy id of a v1 controller, from /proc/cgroups (cgroup2 is 0).
pub fn v1_hierarchy_id(controller: &str) -> Option<u32> {
    let text = fs::read_to_string("/proc/cgroups").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&controller)).then(|| f.get(1)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        );
        let src = stats_source(&layout, "/docker/abc");
        assert_eq!(
            src,
            stats::StatsSource::V1 {
                memory: Some(PathBuf::from("/sys/fs/cgroup/memory/docker/abc")),
                cpu: None,
                cpuacct: None,
                pids: None,
                blkio: None,
            }
        );
    }
}
