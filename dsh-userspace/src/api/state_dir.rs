//! The state dir holds the agent's socket and journal: root's alone. The
//! agent refuses one another user owns or may write to (that user could
//! swap the journal or the socket under it), follows no symbolic link to
//! it, and the CLI talks only to a socket root owns.
use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{
        DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
    },
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("state dir {path} is a symbolic link: dsh follows none there (give the real path)")]
    Symlink { path: PathBuf },
    #[error("state dir {path} is not a directory")]
    NotDir { path: PathBuf },
    #[error(
        "state dir {path} is owned by uid {uid}, not root: that user could replace the \
         journal or the socket (chown root {path})"
    )]
    NotRoot { path: PathBuf, uid: u32 },
    #[error(
        "state dir {path} may be written by group or others (mode {mode:04o}): they could \
         replace the journal or the socket (chmod 0700 {path})"
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error("{path} is a symbolic link, not the dsh agent's socket: refusing to talk to it")]
    SocketSymlink { path: PathBuf },
    #[error(
        "{path} is owned by uid {uid}, not root: it is not the dsh agent's socket; refusing \
         to talk to it"
    )]
    SocketNotRoot { path: PathBuf, uid: u32 },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What the state dir's own inode must be: a directory, root's, written by
/// root alone.
pub fn judge(path: &Path, meta: &std::fs::Metadata) -> Result<(), StateDirError> {
    judge_fields(
        path,
        meta.file_type().is_symlink(),
        meta.is_dir(),
        meta.uid(),
        meta.mode(),
    )
}

fn judge_fields(
    path: &Path,
    symlink: bool,
    dir: bool,
    uid: u32,
    mode: u32,
) -> Result<(), StateDirError> {
    let path = path.to_owned();
    if symlink {
        return Err(StateDirError::Symlink { path });
    }
    if !dir {
        return Err(StateDirError::NotDir { path });
    }
    if uid != 0 {
        return Err(StateDirError::NotRoot { path, uid });
    }
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable {
            path,
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// The agent's start: creates the dir (0700) if missing, refuses one that
/// is not root's alone, and closes it to everyone else (0700). Checked and
/// changed through one descriptor opened without following a link, so the
/// path cannot be swapped between the two.
pub fn prepare(dir: &Path) -> Result<(), StateDirError> {
    let io = |op: &'static str| {
        let path = dir.to_owned();
        move |source| StateDirError::Io { op, path, source }
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io("creating"))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(io("creating")(e)),
        _ => {}
    }
    let handle = open_nofollow_dir(dir)?;
    let meta = handle.metadata().map_err(io("reading"))?;
    judge(dir, &meta)?;
    if meta.mode() & 0o777 != 0o700 {
        handle
            .set_permissions(std::fs::Permissions::from_mode(0o700))
            .map_err(io("restricting"))?;
    }
    Ok(())
}

fn open_nofollow_dir(dir: &Path) -> Result<File, StateDirError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|source| match source.raw_os_error() {
            // With O_DIRECTORY a link fails as ENOTDIR: lstat tells them apart.
            Some(libc::ELOOP | libc::ENOTDIR) => {
                let link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
                let path = dir.to_owned();
                if link {
                    StateDirError::Symlink { path }
                } else {
                    StateDirError::NotDir { path }
                }
            }
            _ => StateDirError::Io {
                op: "opening",
                path: dir.to_owned(),
                source,
            },
        })
}

/// The CLI, before it connects: the dir must be root's alone and the
/// socket root's (not a link), or what answers may be anyone's. A missing
/// dir or socket passes: connecting then says the agent is not running.
pub fn check_socket(dir: &Path, socket: &Path) -> Result<(), StateDirError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => judge(dir, &meta)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StateDirError::Io {
                op: "reading",
                path: dir.to_owned(),
                source,
            });
        }
    }
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StateDirError::Io {
                op: "reading",
                path: socket.to_owned(),
                source,
            });
        }
    };
    let path = socket.to_owned();
    if meta.file_type().is_symlink() {
        return Err(StateDirError::SocketSymlink { path });
    }
    if meta.uid() != 0 {
        return Err(StateDirError::SocketNotRoot {
            path,
            uid: meta.uid(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(symlink: bool, dir: bool, uid: u32, mode: u32) -> String {
        match judge_fields(Path::new("/var/lib/dsh"), symlink, dir, uid, mode) {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn only_a_root_directory_nobody_else_writes_passes() {
        assert_eq!(judged(false, true, 0, 0o40700), "ok");
        assert_eq!(
            judged(false, true, 0, 0o40755),
            "ok",
            "readable is not writable"
        );
        assert_eq!(
            judged(false, true, 1000, 0o40700),
            "state dir /var/lib/dsh is owned by uid 1000, not root: that user could replace \
             the journal or the socket (chown root /var/lib/dsh)"
        );
        assert_eq!(
            judged(false, true, 0, 0o41777),
            "state dir /var/lib/dsh may be written by group or others (mode 1777): they could \
             replace the journal or the socket (chmod 0700 /var/lib/dsh)"
        );
        assert!(judged(false, true, 0, 0o40720).contains("mode 0720"));
        assert!(judged(true, false, 0, 0o120777).contains("is a symbolic link"));
        assert!(judged(false, false, 0, 0o100600).contains("is not a directory"));
    }
}
