//! From a cgroup id (what the kernel's events carry) back to the cgroup's
//! path: for a cgroup an event names before its creation was seen.
use std::{
    fs, io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::{
            ffi::OsStrExt as _,
            fs::{DirEntryExt as _, MetadataExt as _},
        },
    },
    path::Path,
};

use super::CgroupId;

/// `FILEID_KERNFS` (include/linux/exportfs.h): kernfs, and so cgroup2,
/// encodes a directory's file handle as its 64-bit node id, which is the
/// cgroup id (fs/kernfs/mount.c, `kernfs_encode_fh`).
const FILEID_KERNFS: i32 = 0xfe;

/// `struct file_handle` with its 8 bytes of handle inline.
#[repr(C)]
struct KernfsHandle {
    handle_bytes: u32,
    handle_type: i32,
    id: u64,
}

/// The path (from the hierarchy's root, starting with '/') of the cgroup
/// with this id in the hierarchy mounted at `root`; None when no cgroup
/// has it (any more). cgroup2 answers by file handle at once; a v1
/// hierarchy is walked (its ids are directory inode numbers too).
pub fn path_of(root: &Path, cgroup2: bool, id: CgroupId) -> io::Result<Option<String>> {
    if cgroup2 {
        by_handle(root, id.get())
    } else {
        by_walk(root, id.get())
    }
}

/// `/` and the path below `root`, as `scan` names it: a cgroup's name is
/// its creator's choice, not necessarily UTF-8.
fn relative(root: &Path, full: &Path) -> Option<String> {
    let rel = full.strip_prefix(root).ok()?;
    Some(format!(
        "/{}",
        crate::untrusted::from_utf8_escaped(rel.as_os_str().as_bytes())
    ))
}

fn by_handle(root: &Path, id: u64) -> io::Result<Option<String>> {
    let mount = fs::File::open(root)?;
    let mut handle = KernfsHandle {
        handle_bytes: 8,
        handle_type: FILEID_KERNFS,
        id,
    };
    // SAFETY: `handle` is a `file_handle` header followed by the
    // `handle_bytes` it declares, alive for the call; the fd is ours.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            (&raw mut handle).cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // ESTALE: no cgroup has this id (removed, or never one).
        return match e.raw_os_error() {
            Some(libc::ESTALE | libc::ENOENT) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    let full = fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
    Ok(relative(root, &full))
}

/// Depth-first through the hierarchy, comparing directory entries' inode
/// numbers (no stat per directory).
fn by_walk(root: &Path, id: u64) -> io::Result<Option<String>> {
    if fs::metadata(root)?.ino() == id {
        return Ok(Some("/".to_owned()));
    }
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        // A cgroup removed mid-walk is simply not there.
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.ino() == id {
                return Ok(relative(root, &path));
            }
            stack.push(path);
        }
    }
    Ok(None)
}
