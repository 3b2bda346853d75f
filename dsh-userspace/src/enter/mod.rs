//! Running a command inside a container's namespaces: what
//! `nsenter -t PID -C -i -u -n -p -m -r` does, plus joining the container's
//! cgroups, so the command is counted and limited with the container (as
//! `docker exec` does).
//!
//! The kernel's rules this follows (setns(2), pid_namespaces(7)):
//! - Every namespace fd, and the container's root, are opened first, from
//!   the host's /proc: once in the container's mount namespace, the host's
//!   /proc/PID is out of reach.
//! - setns(CLONE_NEWNS) fails with EINVAL in a process that shares its
//!   filesystem information (CLONE_FS) with other threads, i.e. any
//!   multithreaded process. So the joining happens in a forked child, which
//!   has one thread. That child also allocates (error messages, cgroup
//!   writes) between fork and exec, which is only sound when the parent had
//!   a single thread: no tokio runtime may run in the process that calls
//!   `run`, and `run` checks.
//! - setns(CLONE_NEWPID) moves only the caller's future children: the
//!   command runs in a second fork, the first child waits and passes its
//!   exit status on.
//! - Order: cgroup namespace after moving into the container's cgroups (so
//!   its root is the container's), the mount namespace last (it changes what
//!   paths mean). No user namespace: containers here share the host's, and
//!   joining one would have to come first.
//! - After setns(mnt) the root is the mount namespace's root; the
//!   container's own root (pivot_root or chroot) is /proc/PID/root, hence
//!   fchdir(root) + chroot(".") + chdir("/").
//! - Then the command takes on the main process's credentials
//!   (`credentials`), unless the operator asked for host root, and gets
//!   stdin, stdout and stderr that are not the operator's terminal
//!   (`terminal`).
mod child;
pub mod credentials;
mod terminal;

use std::{
    ffi::{CString, OsString},
    fs::File,
    io::{self, Read as _},
    os::{fd::OwnedFd, unix::ffi::OsStrExt as _},
    path::PathBuf,
};

use nix::{
    fcntl::OFlag,
    sched::CloneFlags,
    sys::{
        signal::{SigHandler, Signal, signal},
        wait::{WaitStatus, waitpid},
    },
    unistd::{ForkResult, fork, pipe2},
};

use crate::cgroup::{self, layout::CgroupLayout};

/// The PATH commands are looked up in (and get), inside the container.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// All of the container's namespaces, its root and its binaries.
    Container,
    /// net, pid, uts and ipc only: the host's files and binaries, for
    /// images without a shell or tools.
    HostTools,
}

/// Whose powers the command has inside the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Powers {
    /// The main process's uid, gids, capability sets, no_new_privs and
    /// AppArmor profile.
    Container,
    /// dsh's own: host root with every capability (`--privileged`).
    HostRoot,
}

/// In the order they are joined; `true` where `--host-tools` joins it too.
const NAMESPACES: &[(&str, CloneFlags, bool)] = &[
    ("cgroup", CloneFlags::CLONE_NEWCGROUP, false),
    ("ipc", CloneFlags::CLONE_NEWIPC, true),
    ("uts", CloneFlags::CLONE_NEWUTS, true),
    ("net", CloneFlags::CLONE_NEWNET, true),
    ("pid", CloneFlags::CLONE_NEWPID, true),
    ("mnt", CloneFlags::CLONE_NEWNS, false),
];

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("process {pid} has exited")]
    Gone { pid: u32 },
    #[error("opening {path}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{op}")]
    Sys {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("an argument holds a NUL byte")]
    Nul,
    #[error(
        "namespaces can only be joined from a single-threaded process (this one has {0} threads)"
    )]
    Threaded(usize),
    /// The forked child could not join the container (setns, chroot, fork).
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotExecutable(String),
}

impl EnterError {
    /// What a shell (and `docker exec`) would exit with.
    pub fn exit_code(&self) -> u8 {
        match self {
            EnterError::NotFound(_) => 127,
            EnterError::NotExecutable(_) => 126,
            _ => 1,
        }
    }
}

struct Namespace {
    name: &'static str,
    kind: CloneFlags,
    fd: OwnedFd,
}

/// A process's namespaces, root and cgroups, opened and ready to join.
pub struct Target {
    pid: u32,
    mode: Mode,
    namespaces: Vec<Namespace>,
    root: Option<OwnedFd>,
    cgroup_dirs: Vec<PathBuf>,
    cgroup: Option<String>,
    /// `None` with `Powers::HostRoot`.
    credentials: Option<credentials::Credentials>,
}

impl Target {
    pub fn open(pid: u32, mode: Mode, powers: Powers) -> Result<Self, EnterError> {
        let gone = |e: io::Error, path: String| match e.kind() {
            io::ErrorKind::NotFound => EnterError::Gone { pid },
            _ => EnterError::Open { path, source: e },
        };
        let mut namespaces = Vec::new();
        for &(name, kind, host_tools) in NAMESPACES {
            if mode == Mode::HostTools && !host_tools {
                continue;
            }
            let path = format!("/proc/{pid}/ns/{name}");
            match File::open(&path) {
                Ok(f) => namespaces.push(Namespace {
                    name,
                    kind,
                    fd: f.into(),
                }),
                // A kernel without this namespace type (cgroup ns: 4.6+). A
                // zombie has no namespace links either: that one is gone.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && !std::fs::exists(format!("/proc/self/ns/{name}")).unwrap_or(true) => {}
                Err(e) => return Err(gone(e, path)),
            }
        }
        let root = match mode {
            Mode::Container => {
                let path = format!("/proc/{pid}/root");
                Some(File::open(&path).map_err(|e| gone(e, path))?.into())
            }
            Mode::HostTools => None,
        };
        // Read after the fds are open: if the pid still names a process in
        // the container now, the fds are the container's.
        let layout = CgroupLayout::detect().map_err(|e| EnterError::Open {
            path: "/proc/self/mounts".into(),
            source: e,
        })?;
        // Before the cgroup: `dsh exec` checks that one, so a reused pid
        // cannot hand over another process's credentials either.
        let credentials = match powers {
            Powers::Container => Some(
                credentials::Credentials::of(pid)
                    .map_err(|e| gone(e, format!("/proc/{pid}/status")))?,
            ),
            Powers::HostRoot => None,
        };
        let lines =
            cgroup::proc_cgroups(pid).map_err(|e| gone(e, format!("/proc/{pid}/cgroup")))?;
        Ok(Self {
            pid,
            mode,
            namespaces,
            root,
            cgroup_dirs: cgroup::hierarchy_dirs(&lines, &layout),
            cgroup: cgroup::attribution_path(&lines, &layout).map(str::to_owned),
            credentials,
        })
    }

    /// The credentials the command will take on (`None`: host root).
    pub fn credentials(&self) -> Option<&credentials::Credentials> {
        self.credentials.as_ref()
    }

    /// The process's cgroup in the attribution hierarchy, read once its
    /// namespaces were open (to check that the pid was not reused).
    pub fn cgroup(&self) -> Option<&str> {
        self.cgroup.as_deref()
    }
}

/// A command to run, already converted for execve: the first of
/// `alternatives` whose program exists is run.
pub struct Program {
    alternatives: Vec<Alternative>,
    env: Vec<CString>,
}

struct Alternative {
    argv: Vec<CString>,
    /// argv[0] itself if it holds a '/', else argv[0] in each PATH directory.
    paths: Vec<CString>,
}

impl Program {
    /// `env` replaces the environment; a bare name is looked up in `DEFAULT_PATH`.
    pub fn new(alternatives: &[Vec<OsString>], env: &[(&str, String)]) -> Result<Self, EnterError> {
        let cstr = |b: &[u8]| CString::new(b).map_err(|_| EnterError::Nul);
        let mut alts = Vec::new();
        for argv in alternatives {
            let argv: Vec<CString> = argv
                .iter()
                .map(|a| cstr(a.as_bytes()))
                .collect::<Result<_, _>>()?;
            let Some(first) = argv.first() else { continue };
            let name = first.as_bytes();
            let paths = if name.contains(&b'/') {
                vec![first.clone()]
            } else {
                DEFAULT_PATH
                    .split(':')
                    .map(|d| cstr(&[d.as_bytes(), b"/", name].concat()))
                    .collect::<Result<_, _>>()?
            };
            alts.push(Alternative { argv, paths });
        }
        let env = env
            .iter()
            .map(|(k, v)| cstr(format!("{k}={v}").as_bytes()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            alternatives: alts,
            env,
        })
    }
}

/// Runs `program` in `target`'s namespaces, with stdin, stdout and stderr
/// passed on (a pty or pipes where they are terminals, see `terminal`), and
/// returns its exit code (128 + signal if it was killed).
pub fn run(target: &Target, program: &Program) -> Result<u8, EnterError> {
    let threads = thread_count();
    if threads > 1 {
        return Err(EnterError::Threaded(threads));
    }
    let sys = |op| move |source| EnterError::Sys { op, source };
    let streams = terminal::Streams::new().map_err(|e| EnterError::Open {
        path: "a pty or pipes for the command".into(),
        source: e,
    })?;
    // The child reports why it could not start the command here; a
    // successful exec closes it (O_CLOEXEC) without a word.
    let (report_r, report_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2"))?;
    // Ctrl-C and Ctrl-\ are for the command (the terminal sends them to the
    // whole foreground group); dsh waits for its exit status instead of
    // dying first. The command gets default handlers back before exec.
    // SAFETY: installing SIG_IGN runs no handler code.
    let old = unsafe {
        (
            signal(Signal::SIGINT, SigHandler::SigIgn),
            signal(Signal::SIGQUIT, SigHandler::SigIgn),
        )
    };
    // SAFETY: this process has one thread (checked above), so the child may
    // do anything the parent could.
    let result = match unsafe { fork() } {
        Err(e) => Err(EnterError::Sys {
            op: "fork",
            source: e,
        }),
        Ok(ForkResult::Child) => {
            drop(report_r);
            child::join_and_run(target, program, streams, report_w)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(report_w);
            let mut report = Vec::new();
            let read = File::from(report_r).read_to_end(&mut report);
            let status = if report.is_empty() && read.is_ok() {
                // The command runs: copy its terminal or pipes until it ends.
                streams.relay(child)
            } else {
                drop(streams);
                loop {
                    match waitpid(child, None) {
                        Err(nix::errno::Errno::EINTR) => continue,
                        other => break other,
                    }
                }
            };
            match (report.split_first(), status) {
                (Some((&kind, msg)), _) => {
                    let msg = String::from_utf8_lossy(msg).into_owned();
                    Err(match kind {
                        child::NOT_FOUND => EnterError::NotFound(msg),
                        child::NOT_EXECUTABLE => EnterError::NotExecutable(msg),
                        _ => EnterError::Setup(msg),
                    })
                }
                (None, _) if read.is_err() => Err(EnterError::Setup(format!(
                    "reading the child's report: {}",
                    read.err().map(|e| e.to_string()).unwrap_or_default()
                ))),
                (None, Ok(WaitStatus::Exited(_, code))) => Ok(code as u8),
                (None, Ok(WaitStatus::Signaled(_, sig, _))) => Ok(128 + sig as u8),
                (None, Ok(other)) => Err(EnterError::Setup(format!(
                    "unexpected wait status {other:?}"
                ))),
                (None, Err(e)) => Err(EnterError::Sys {
                    op: "waitpid",
                    source: e,
                }),
            }
        }
    };
    // SAFETY: restoring the previous dispositions.
    unsafe {
        if let Ok(h) = old.0 {
            let _ = signal(Signal::SIGINT, h);
        }
        if let Ok(h) = old.1 {
            let _ = signal(Signal::SIGQUIT, h);
        }
    }
    result
}

/// The "Threads:" line of /proc/self/status (1 if unreadable: the fork
/// would still be sound for the mount namespace; only allocation matters).
fn thread_count() -> usize {
    procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map_or(1, |s| s.threads as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_paths() {
        let p = Program::new(
            &[
                vec!["/bin/bash".into()],
                vec!["sh".into(), "-c".into(), "exit 3".into()],
            ],
            &[("PATH", DEFAULT_PATH.into())],
        )
        .unwrap();
        assert_eq!(p.alternatives[0].paths, [c"/bin/bash"]);
        assert_eq!(p.alternatives[1].paths.len(), 6);
        assert_eq!(p.alternatives[1].paths[5].as_c_str(), c"/bin/sh");
        assert_eq!(
            p.env[0].to_bytes(),
            format!("PATH={DEFAULT_PATH}").as_bytes()
        );
        assert!(Program::new(&[vec!["a\0b".into()]], &[]).is_err());
    }
}
