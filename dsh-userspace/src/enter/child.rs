//! What runs in the forked children: join the cgroups and namespaces, fork
//! once more (for the pid namespace), take on the container's credentials,
//! exec. Nothing here returns: each process ends in `_exit` or `execve`, so
//! no Rust buffers or destructors of the parent's state run twice.
//!
//! The first child (the waiter) stays outside the container's pid namespace,
//! invisible to its processes, and non-dumpable; it passes the operator's
//! Ctrl-C and the like on to the command, which runs in a session of its own.
use std::{
    ffi::CStr,
    os::fd::{AsRawFd as _, OwnedFd},
    sync::atomic::{AtomicI32, Ordering},
};

use nix::{
    errno::Errno,
    sched::setns,
    sys::{
        signal::{SigHandler, Signal, signal},
        wait::{WaitStatus, waitpid},
    },
    unistd::{ForkResult, chdir, chroot, execve, fchdir, fork, getpid},
};

use super::{Mode, Program, Target, credentials, terminal::Streams};

/// The first byte of a report: which error the parent turns it into.
pub const SETUP: u8 = b'S';
pub const NOT_FOUND: u8 = b'N';
pub const NOT_EXECUTABLE: u8 = b'X';

/// One write: a pipe takes up to PIPE_BUF bytes atomically, and the parent
/// reads until every copy of the write end is closed.
fn report(fd: &OwnedFd, kind: u8, msg: &str) {
    let _ = nix::unistd::write(fd, &[&[kind], msg.as_bytes()].concat());
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process without running the parent's
    // atexit handlers or flushing buffers it owns.
    unsafe { libc::_exit(code) }
}

/// The first child: joins everything, forks the command, waits for it and
/// exits with its status.
pub fn join_and_run(target: &Target, program: &Program, streams: Streams, report_w: OwnedFd) -> ! {
    if let Err(msg) = prepare(target).and_then(|()| join(target)) {
        report(&report_w, SETUP, &msg);
        exit(1);
    }
    // SAFETY: this process has a single thread (the fork's).
    match unsafe { fork() } {
        Err(e) => {
            let why = if e == Errno::ENOMEM {
                ": the container's pid namespace has no init any more (the container stopped)"
            } else {
                ""
            };
            report(
                &report_w,
                SETUP,
                &format!("fork into the container's pid namespace: {e}{why}"),
            );
            exit(1)
        }
        Ok(ForkResult::Child) => {
            let owner = target.credentials.as_ref().map(|c| c.euid());
            let ready = streams
                .attach(owner)
                .and_then(|()| match &target.credentials {
                    Some(creds) => credentials::apply(creds)
                        .map_err(|e| format!("taking on the container's credentials: {e}")),
                    None => Ok(()),
                });
            if let Err(msg) = ready {
                report(&report_w, SETUP, &msg);
                exit(1);
            }
            exec(target.mode, program, &report_w)
        }
        Ok(ForkResult::Parent { child }) => {
            // The command's ends and dsh's: EOF on them must not wait for this process.
            drop(streams);
            drop(report_w);
            forward_signals_to(child.as_raw());
            let code = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) => continue,
                    Ok(WaitStatus::Exited(_, code)) => break code,
                    Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
                    Ok(_) => continue,
                    Err(_) => break 1,
                }
            };
            exit(code)
        }
    }
}

/// Before anything of the container is reachable: non-dumpable, every
/// descriptor above 2 closed at exec, the AppArmor profile set for the exec
/// (through the host's /proc/self, this process).
fn prepare(target: &Target) -> Result<(), String> {
    credentials::non_dumpable()?;
    close_above_2_on_exec()?;
    if let Some(profile) = target
        .credentials
        .as_ref()
        .and_then(|c| c.apparmor.as_deref())
    {
        credentials::set_apparmor_on_exec(profile)?;
    }
    Ok(())
}

/// close_range(3, ~0, CLOSE_RANGE_CLOEXEC) (Linux 5.11); before that, each
/// descriptor /proc/self/fd lists (the host's /proc: called before setns).
/// Close-on-exec rather than closed: the namespace fds and the report pipe
/// are still needed until exec.
fn close_above_2_on_exec() -> Result<(), String> {
    // SAFETY: close_range takes integers; CLOEXEC only sets flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("listing /proc/self/fd: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a number that may already be closed (the
        // listing's own fd) fails with EBADF and changes nothing.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// The command's pid, for the forwarding handler.
static COMMAND: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = COMMAND.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The command has a session of its own, so the terminal's Ctrl-C (SIGINT),
/// Ctrl-\ (SIGQUIT) and hangup reach dsh's process group, this process
/// included: pass them on, and SIGTERM too.
fn forward_signals_to(command: i32) {
    COMMAND.store(command, Ordering::Relaxed);
    let action = nix::sys::signal::SigAction::new(
        SigHandler::Handler(forward),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGTERM,
    ] {
        // SAFETY: the handler only loads an atomic and calls kill.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &action) };
    }
}

fn join(target: &Target) -> Result<(), String> {
    // Before the cgroup and mount namespaces change what these paths mean.
    let me = getpid().to_string();
    for dir in &target.cgroup_dirs {
        if let Err(e) = std::fs::write(dir.join("cgroup.procs"), &me) {
            let dir = crate::untrusted::name(&dir.to_string_lossy()).into_owned();
            eprintln!("dsh: warning: not joining cgroup {dir}: {e}");
        }
    }
    for ns in &target.namespaces {
        setns(&ns.fd, ns.kind).map_err(|e| {
            format!(
                "joining the {} namespace of process {} (setns): {e}",
                ns.name, target.pid
            )
        })?;
    }
    if let Some(root) = &target.root {
        fchdir(root.as_raw_fd())
            .and_then(|()| chroot("."))
            .and_then(|()| chdir("/"))
            .map_err(|e| format!("entering the container's root directory: {e}"))?;
    }
    Ok(())
}

/// The command's process: default signal handling back, then the first
/// alternative whose program exists.
fn exec(mode: Mode, program: &Program, report_w: &OwnedFd) -> ! {
    // SAFETY: setting default dispositions runs no handler code. Rust's
    // runtime ignores SIGPIPE and `run` ignores SIGINT/SIGQUIT; ignored
    // signals would stay ignored across exec.
    unsafe {
        for sig in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGPIPE] {
            let _ = signal(sig, SigHandler::SigDfl);
        }
    }
    let mut denied: Option<&CStr> = None;
    for alt in &program.alternatives {
        for path in &alt.paths {
            let Err(e) = execve(path, &alt.argv, &program.env);
            match e {
                Errno::ENOENT | Errno::ENOTDIR => {}
                Errno::EACCES => {
                    denied.get_or_insert(path);
                }
                e => {
                    let msg = format!("cannot run {}: {e}", path.to_string_lossy());
                    report(report_w, NOT_EXECUTABLE, &msg);
                    exit(126)
                }
            }
        }
    }
    if let Some(path) = denied {
        let msg = format!("cannot run {}: permission denied", path.to_string_lossy());
        report(report_w, NOT_EXECUTABLE, &msg);
        exit(126)
    }
    let names: Vec<String> = program
        .alternatives
        .iter()
        .filter_map(|a| a.argv.first())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let msg = match mode {
        Mode::Container => format!(
            "{} not found in the container (PATH {}); for an image without it, try --host-tools",
            names.join(" or "),
            super::DEFAULT_PATH
        ),
        Mode::HostTools => format!(
            "{} not found on the host (PATH {})",
            names.join(" or "),
            super::DEFAULT_PATH
        ),
    };
    report(report_w, NOT_FOUND, &msg);
    exit(127)
}
