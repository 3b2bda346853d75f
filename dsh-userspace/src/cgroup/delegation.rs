//! Whether a cgroup sits in a subtree handed to a user: systemd chowns
//! `user@UID.service` (and any unit with `User=` and `Delegate=yes`) to
//! that user, who may then make cgroups of any name below it, including
//! ones shaped like a runtime's container (`.../docker/<id>`,
//! `.../docker-<id>.scope`), with ids read from any `/proc/*/cgroup`.
//!
//! A directory made by mkdir on cgroupfs belongs to its maker's fsuid
//! (`kernfs_create_dir_ns` with `current_fsuid()`, kernel/cgroup/cgroup.c),
//! and only who may write a directory can make cgroups in it. So a cgroup
//! whose directory and every ancestor up to the mount are root's, and
//! writable by root alone, was made by root: a runtime's, or the
//! administrator's.
use std::{
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Who may have made a cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Maker {
    /// Every directory from the mount down to the cgroup is root's and
    /// writable by root alone.
    Root,
    /// This directory (the cgroup or an ancestor) is `uid`'s, or others
    /// may write it (`mode`).
    Delegated { dir: PathBuf, uid: u32, mode: u32 },
    /// A directory of the chain could not be read (not for its absence).
    Unknown(String),
}

impl Maker {
    pub fn is_root(&self) -> bool {
        *self == Maker::Root
    }
}

/// Who may have made the cgroup at `path` (from the hierarchy's root,
/// starting with '/') in the hierarchy mounted at `root`: one `stat` per
/// level, from the mount down.
///
/// A cgroup removed before it is checked (events are read in batches) is
/// judged by the ancestors that remain: whoever made it could write the
/// deepest of them, which is checked.
pub fn maker(root: &Path, path: &str) -> Maker {
    let mut dir = root.to_path_buf();
    let elems = path.split('/').filter(|e| !e.is_empty());
    for next in std::iter::once(None).chain(elems.map(Some)) {
        if let Some(e) = next {
            dir.push(e);
        }
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Maker::Root,
            Err(e) => return Maker::Unknown(format!("{}: {e}", dir.display())),
        };
        // Group or others may write it: anyone in that group made what is below.
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Maker::Delegated {
                dir,
                uid: meta.uid(),
                mode: meta.mode() & 0o7777,
            };
        }
    }
    Maker::Root
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A scratch tree of plain directories standing in for a hierarchy:
    /// the rule is about owners and modes, which any filesystem has.
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("dsh-delegation-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("a/b/c")).unwrap();
            for d in ["", "a", "a/b", "a/b/c"] {
                let p = dir.join(d);
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
            }
            Self(dir)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// chown needs root; the project's tests run as root.
    fn assert_root() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "these tests run as root");
    }

    #[test]
    fn a_root_chain_is_roots_and_a_chown_anywhere_delegates() {
        assert_root();
        let t = Tree::new("chain");
        assert_eq!(maker(&t.0, "/a/b/c"), Maker::Root);
        assert_eq!(maker(&t.0, "a//b/"), Maker::Root);
        std::os::unix::fs::chown(t.0.join("a/b"), Some(65534), None).unwrap();
        let got = maker(&t.0, "/a/b/c");
        assert!(
            matches!(&got, Maker::Delegated { dir, uid: 65534, .. } if dir.ends_with("a/b")),
            "{got:?}"
        );
        // The delegated directory itself, and above it still root's.
        assert!(!maker(&t.0, "/a/b").is_root());
        assert_eq!(maker(&t.0, "/a"), Maker::Root);
    }

    #[test]
    fn a_directory_others_may_write_delegates() {
        assert_root();
        let t = Tree::new("mode");
        std::fs::set_permissions(t.0.join("a"), std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(matches!(
            maker(&t.0, "/a/b/c"),
            Maker::Delegated { mode: 0o775, .. }
        ));
    }

    #[test]
    fn a_vanished_cgroup_is_judged_by_the_ancestors_left() {
        assert_root();
        let t = Tree::new("gone");
        assert_eq!(maker(&t.0, "/a/b/c/gone/deeper"), Maker::Root);
        std::os::unix::fs::chown(t.0.join("a/b/c"), Some(1000), None).unwrap();
        assert!(!maker(&t.0, "/a/b/c/gone/deeper").is_root());
    }
}
