//! Cgroup paths and files: which container a cgroup is, where its
//! statistics live, and the one start-up scan of the hierarchy.
pub mod by_id;
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

/// One line of `/proc/PID/cgroup`: `hierarchy-id:controllers:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcCgroup {
    /// 0 for cgroup2; the v1 hierarchy's id otherwise.
    pub hierarchy: u32,
    /// The v1 controllers (and `name=` hierarchies) of the line; empty for cgroup2.
    pub controllers: Vec<String>,
    /// Relative to the hierarchy's root as our cgroup namespace sees it.
    pub path: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|l| {
            // The path may itself hold ':'; only the first two split.
            let mut f = l.splitn(3, ':');
            let hierarchy = f.next()?.parse().ok()?;
            let controllers = f.next()?;
            let path = f.next()?.to_owned();
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some(ProcCgroup {
                hierarchy,
                controllers,
                path,
            })
        })
        .collect()
}

/// A process's cgroups (NotFound once it has gone).
pub fn proc_cgroups(pid: u32) -> io::Result<Vec<ProcCgroup>> {
    Ok(parse_proc_cgroup(&fs::read_to_string(format!(
        "/proc/{pid}/cgroup"
    ))?))
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
                .any(|c| c == crate::probe::layout::V1_ATTRIBUTION_CONTROLLER),
        })
        .map(|l| l.path.as_str())
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
            Some(root.join(l.path.trim_start_matches('/')))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_PROC: &str = "\
9:name=systemd:/docker/abc
4:memory:/docker/abc
2:cpu,cpuacct:/docker/abc
0::/docker/abc/sub:odd
";

    #[test]
    fn proc_cgroup_lines() {
        let lines = parse_proc_cgroup(HYBRID_PROC);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(lines[3].path, "/docker/abc/sub:odd");
        let hybrid = CgroupLayout::from_mounts(
            "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
             cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
             cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\n\
             cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
        );
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
        let v1 = CgroupLayout::from_mounts("cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n");
        assert_eq!(attribution_path(&lines, &v1), Some("/docker/abc"));
        assert_eq!(hierarchy_dirs(&lines, &v1).len(), 1);
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
