//! Which cgroup layout this host has, and where each hierarchy is mounted.
use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use super::CgroupId;

/// The v1 controller whose hierarchy names a task's cgroup on v1-only hosts.
/// memory: it is the one that OOM kills and limits are about, and every
/// container runtime creates a cgroup in it.
pub const V1_ATTRIBUTION_CONTROLLER: &str = "memory";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupLayoutKind {
    /// Only cgroup2, usually at /sys/fs/cgroup.
    V2,
    /// v1 controllers plus a cgroup2 mount (often /sys/fs/cgroup/unified).
    Hybrid,
    /// No cgroup2 mount at all.
    V1,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLayout {
    pub kind: CgroupLayoutKind,
    /// The cgroup2 mount point, if any.
    pub unified: Option<PathBuf>,
    /// v1 controller (or `name=` hierarchy) → mount point.
    pub v1: BTreeMap<String, PathBuf>,
}

impl CgroupLayout {
    pub fn detect() -> std::io::Result<Self> {
        Ok(Self::from_mounts(&fs::read_to_string("/proc/self/mounts")?))
    }

    /// Parses `/proc/self/mounts` text.
    pub fn from_mounts(mounts: &str) -> Self {
        let mut unified = None;
        let mut v1 = BTreeMap::new();
        for line in mounts.lines() {
            let mut f = line.split_whitespace();
            let (Some(_dev), Some(dir), Some(fstype), Some(opts)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let dir = PathBuf::from(unescape_mount_path(dir));
            match fstype {
                "cgroup2" => {
                    unified.get_or_insert(dir);
                }
                "cgroup" => {
                    for opt in opts.split(',') {
                        let controller = match opt {
                            "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev"
                            | "noexec" | "xattr" | "clone_children" | "nsdelegate" | "noprefix" => {
                                continue;
                            }
                            o if o.starts_with("release_agent=") => continue,
                            o => o,
                        };
                        v1.entry(controller.to_owned())
                            .or_insert_with(|| dir.clone());
                    }
                }
                _ => {}
            }
        }
        let kind = match (&unified, v1.is_empty()) {
            (Some(_), true) => CgroupLayoutKind::V2,
            (Some(_), false) => CgroupLayoutKind::Hybrid,
            (None, _) => CgroupLayoutKind::V1,
        };
        Self { kind, unified, v1 }
    }

    /// The hierarchy whose cgroup ids the syscall, exec, exit, signal, OOM
    /// and listen events carry.
    pub fn attribution_root(&self) -> Option<&Path> {
        match self.kind {
            CgroupLayoutKind::V2 | CgroupLayoutKind::Hybrid => self.unified.as_deref(),
            CgroupLayoutKind::V1 => self.v1.get(V1_ATTRIBUTION_CONTROLLER).map(PathBuf::as_path),
        }
    }

    /// The hierarchy whose ids block I/O carries when attributed by blkcg:
    /// the v1 blkio hierarchy where blkio is a v1 controller, else cgroup2.
    pub fn blkcg_root(&self) -> Option<&Path> {
        self.v1
            .get("blkio")
            .map(PathBuf::as_path)
            .or(self.unified.as_deref())
    }
}

/// A cgroup's id as the kernel reports it: its directory's inode number.
pub fn cgroup_id(dir: &Path) -> std::io::Result<CgroupId> {
    Ok(CgroupId::new(fs::metadata(dir)?.ino()))
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    #[test]
    fn hybrid_attributes_to_cgroup2_and_blkio() {
        let l = CgroupLayout::from_mounts(HYBRID);
        assert_eq!(l.kind, CgroupLayoutKind::Hybrid);
        assert_eq!(
            l.attribution_root(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(l.blkcg_root(), Some(Path::new("/sys/fs/cgroup/blkio")));
        assert!(l.v1.contains_key("name=systemd"));
    }

    #[test]
    fn pure_v2() {
        let l = CgroupLayout::from_mounts(
            "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n",
        );
        assert_eq!(l.kind, CgroupLayoutKind::V2);
        assert_eq!(l.attribution_root(), Some(Path::new("/sys/fs/cgroup")));
        assert_eq!(l.blkcg_root(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn v1_only_uses_memory_hierarchy() {
        let l = CgroupLayout::from_mounts(
            "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n\
             cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n",
        );
        assert_eq!(l.kind, CgroupLayoutKind::V1);
        assert_eq!(
            l.attribution_root(),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            l.v1.get("cpuacct"),
            Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
    }

    #[test]
    fn escaped_mount_paths() {
        assert_eq!(unescape_mount_path(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount_path(r"/a\04"), r"/a\04");
    }
}
