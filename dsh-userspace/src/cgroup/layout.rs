//! Which cgroup layout this host has, and where each hierarchy is mounted.
use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use procfs::{FromBufRead as _, MountEntry};

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
    /// This host's layout, from the mount table (`/proc/self/mounts`).
    pub fn detect() -> std::io::Result<Self> {
        procfs::mounts()
            .map(|m| Self::from_entries(&m))
            .map_err(super::io_error)
    }

    /// Parses mount-table text (as `/proc/self/mounts` has it).
    pub fn from_mounts(text: &str) -> procfs::ProcResult<Self> {
        Vec::<MountEntry>::from_buf_read(text.as_bytes()).map(|m| Self::from_entries(&m))
    }

    fn from_entries(mounts: &[MountEntry]) -> Self {
        let mut unified = None;
        let mut v1 = BTreeMap::new();
        for m in mounts {
            // procfs unescapes tab, newline, backslash and '#' but not the
            // space (\040) the kernel also escapes (fs/proc_namespace.c).
            let dir = PathBuf::from(m.fs_file.replace(r"\040", " "));
            match m.fs_vfstype.as_str() {
                "cgroup2" => {
                    unified.get_or_insert(dir);
                }
                "cgroup" => {
                    for (opt, value) in &m.fs_mntops {
                        let controller = match (opt.as_str(), value) {
                            // A named hierarchy (`name=systemd`) is keyed as such.
                            ("name", Some(name)) => format!("name={name}"),
                            (_, Some(_)) => continue, // release_agent=...
                            (
                                "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev"
                                | "noexec" | "xattr" | "clone_children" | "nsdelegate" | "noprefix",
                                None,
                            ) => continue,
                            (controller, None) => controller.to_owned(),
                        };
                        v1.entry(controller).or_insert_with(|| dir.clone());
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
        let l = CgroupLayout::from_mounts(HYBRID).unwrap();
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
        )
        .unwrap();
        assert_eq!(l.kind, CgroupLayoutKind::V2);
        assert_eq!(l.attribution_root(), Some(Path::new("/sys/fs/cgroup")));
        assert_eq!(l.blkcg_root(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn v1_only_uses_memory_hierarchy() {
        let l = CgroupLayout::from_mounts(
            "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n\
             cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n",
        )
        .unwrap();
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
        let l = CgroupLayout::from_mounts(
            "cgroup2 /sys/fs/cgroup\\040x cgroup2 rw 0 0\n\
             cgroup /a\\134b\\011c cgroup rw,memory 0 0\n",
        )
        .unwrap();
        assert_eq!(l.unified, Some(PathBuf::from("/sys/fs/cgroup x")));
        assert_eq!(l.v1.get("memory"), Some(&PathBuf::from("/a\\b\tc")));
    }
}
