//! The command's stdin, stdout and stderr: never the operator's terminal.
//!
//! A process holding a terminal can push input into it (TIOCSTI: without a
//! capability on its controlling terminal, with CAP_SYS_ADMIN on any) and
//! reach it through /dev/tty while it is its controlling terminal. So the
//! command runs in a session of its own, and:
//! - when stdin and stdout are terminals (interactive, `dsh ssh`, `docker
//!   exec -it`), it gets a new pty, its controlling terminal; dsh puts the
//!   operator's terminal in raw mode and copies bytes both ways, forwarding
//!   window size changes (SIGWINCH);
//! - otherwise each of stdin, stdout, stderr that is a terminal becomes a
//!   pipe dsh copies; the others (files, pipes) are passed as they are.
use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd, RawFd},
    sync::atomic::{AtomicBool, Ordering},
};

use nix::{
    errno::Errno,
    fcntl::OFlag,
    poll::{PollFd, PollFlags, PollTimeout, poll},
    pty::{Winsize, openpty},
    sys::{
        signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction},
        termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr},
        wait::{WaitPidFlag, WaitStatus, waitpid},
    },
    unistd::{Pid, isatty, pipe2, read, setsid},
};

/// What the command gets as 0, 1, 2, and what dsh copies while it runs.
pub struct Streams {
    /// `None`: dsh's own descriptor, which is not a terminal.
    child: [Option<OwnedFd>; 3],
    /// `child[0]` is a pty slave: the command's controlling terminal.
    pty: bool,
    relay: Relay,
}

#[derive(Default)]
struct Relay {
    /// The pty's master: operator's stdin in, the command's output out.
    master: Option<OwnedFd>,
    /// The write end of the command's stdin pipe.
    stdin_pipe: Option<OwnedFd>,
    /// Read ends of the command's output pipes, and dsh's fd they go to.
    outputs: Vec<(OwnedFd, RawFd)>,
}

fn is_terminal(fd: RawFd) -> bool {
    isatty(fd).unwrap_or(false)
}

impl Streams {
    /// Decides from dsh's own stdin, stdout and stderr.
    pub fn new() -> io::Result<Self> {
        if is_terminal(0) && is_terminal(1) {
            let size = window_size(0);
            let pty = openpty(size.as_ref(), None::<&Termios>)?;
            let slave = || pty.slave.try_clone();
            return Ok(Self {
                child: [Some(slave()?), Some(slave()?), Some(slave()?)],
                pty: true,
                relay: Relay {
                    master: Some(pty.master),
                    ..Relay::default()
                },
            });
        }
        let mut child: [Option<OwnedFd>; 3] = [None, None, None];
        let mut relay = Relay::default();
        for (fd, slot) in child.iter_mut().enumerate() {
            if !is_terminal(fd as RawFd) {
                continue;
            }
            let (r, w) = pipe2(OFlag::O_CLOEXEC)?;
            if fd == 0 {
                *slot = Some(r);
                relay.stdin_pipe = Some(w);
            } else {
                *slot = Some(w);
                relay.outputs.push((r, fd as RawFd));
            }
        }
        Ok(Self {
            child,
            pty: false,
            relay,
        })
    }

    /// In the command's process, before its credentials change: a session
    /// of its own, the pty (owned by `owner`) as its controlling terminal,
    /// and 0, 1, 2 in place.
    pub fn attach(&self, owner: Option<u32>) -> Result<(), String> {
        setsid().map_err(|e| format!("setsid: {e}"))?;
        if let (true, Some(slave)) = (self.pty, &self.child[0]) {
            // SAFETY: TIOCSCTTY takes an int; the fd is open.
            if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
                return Err(format!("TIOCSCTTY: {}", io::Error::last_os_error()));
            }
            if let Some(uid) = owner {
                nix::unistd::fchown(
                    slave.as_raw_fd(),
                    Some(nix::unistd::Uid::from_raw(uid)),
                    None,
                )
                .map_err(|e| format!("chown of the pty: {e}"))?;
            }
        }
        for (target, fd) in self.child.iter().enumerate() {
            if let Some(fd) = fd {
                // SAFETY: both fds are open; dup2 leaves the new one without
                // O_CLOEXEC, so it survives exec.
                if unsafe { libc::dup2(fd.as_raw_fd(), target as RawFd) } < 0 {
                    return Err(format!("dup2: {}", io::Error::last_os_error()));
                }
            }
        }
        Ok(())
    }

    /// In dsh after the fork: copies until `waiter` (the process that waits
    /// for the command) exits, and returns its status.
    pub fn relay(self, waiter: Pid) -> nix::Result<WaitStatus> {
        let Streams { child, relay, .. } = self;
        drop(child); // the command holds them now; EOF needs them closed here
        let _raw = match &relay.master {
            Some(_) => RawMode::enter(),
            None => None,
        };
        let _winch = relay.master.as_ref().map(|_| WinchHandler::install());
        relay.run(waiter)
    }
}

static WINDOW_CHANGED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINDOW_CHANGED.store(true, Ordering::Relaxed);
}

/// SIGWINCH sets a flag and interrupts poll; the old action back on drop.
struct WinchHandler(Option<SigAction>);

impl WinchHandler {
    fn install() -> Self {
        // No SA_RESTART: poll returns EINTR and the size is copied at once.
        let action = SigAction::new(
            SigHandler::Handler(on_winch),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        Self(unsafe { sigaction(Signal::SIGWINCH, &action) }.ok())
    }
}

impl Drop for WinchHandler {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restoring the action that was there before.
            let _ = unsafe { sigaction(Signal::SIGWINCH, old) };
        }
    }
}

/// The operator's terminal in raw mode (keys go to the command's pty as
/// they are), restored on drop.
struct RawMode(Termios);

impl RawMode {
    fn enter() -> Option<Self> {
        let stdin = io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(io::stdin().as_fd(), SetArg::TCSADRAIN, &self.0);
    }
}

fn window_size(fd: RawFd) -> Option<Winsize> {
    let mut size = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize, which lives for the call.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0).then_some(size)
}

fn copy_window_size(master: &OwnedFd) {
    if let Some(size) = window_size(0) {
        // SAFETY: TIOCSWINSZ reads one winsize, which lives for the call.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}

fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> nix::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Where one readable descriptor's bytes go.
#[derive(Clone, Copy)]
enum Source {
    Stdin,
    Master,
    Output(usize),
}

impl Relay {
    fn run(mut self, waiter: Pid) -> nix::Result<WaitStatus> {
        let mut stdin_open = self.master.is_some() || self.stdin_pipe.is_some();
        let mut master_open = self.master.is_some();
        let mut outputs_open = vec![true; self.outputs.len()];
        let mut buf = vec![0u8; 16 * 1024];
        let mut exited: Option<WaitStatus> = None;
        loop {
            if let (true, Some(master)) =
                (WINDOW_CHANGED.swap(false, Ordering::Relaxed), &self.master)
            {
                copy_window_size(master);
            }
            if exited.is_none() {
                match waitpid(waiter, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                    Ok(status) => exited = Some(status),
                    Err(e) => return Err(e),
                }
            }
            let nothing_left = !master_open && !outputs_open.contains(&true);
            match exited {
                Some(status) if nothing_left => return Ok(status),
                // The command closed its output but runs on.
                None if nothing_left && !stdin_open => {
                    return loop {
                        match waitpid(waiter, None) {
                            Err(Errno::EINTR) => continue,
                            other => break other,
                        }
                    };
                }
                _ => {}
            }
            // Once the waiter is gone, what is already written is copied
            // (timeout 0) and nothing more is waited for.
            let timeout = if exited.is_some() {
                PollTimeout::ZERO
            } else {
                PollTimeout::from(100u8)
            };
            let stdin = io::stdin();
            let mut sources = Vec::new();
            let mut fds = Vec::new();
            if stdin_open && exited.is_none() {
                sources.push(Source::Stdin);
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            if let (true, Some(master)) = (master_open, &self.master) {
                sources.push(Source::Master);
                fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
            }
            for (i, (r, _)) in self.outputs.iter().enumerate() {
                if outputs_open[i] {
                    sources.push(Source::Output(i));
                    fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
            let ready: Vec<Source> = fds
                .iter()
                .zip(&sources)
                .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, s)| *s)
                .collect();
            drop(fds);
            if ready.is_empty() {
                if let Some(status) = exited {
                    return Ok(status);
                }
                continue;
            }
            for source in ready {
                let (from, to): (BorrowedFd<'_>, Option<BorrowedFd<'_>>) = match source {
                    Source::Stdin => (
                        stdin.as_fd(),
                        self.master
                            .as_ref()
                            .or(self.stdin_pipe.as_ref())
                            .map(|f| f.as_fd()),
                    ),
                    Source::Master => (
                        self.master
                            .as_ref()
                            .map(|f| f.as_fd())
                            .ok_or(Errno::EBADF)?,
                        None,
                    ),
                    Source::Output(i) => (self.outputs[i].0.as_fd(), None),
                };
                let n = match read(from.as_raw_fd(), &mut buf) {
                    Err(Errno::EINTR | Errno::EAGAIN) => continue,
                    // EIO: the pty's last slave descriptor was closed.
                    Err(_) | Ok(0) => 0,
                    Ok(n) => n,
                };
                let sent = match (source, n) {
                    (Source::Stdin, 0) => {
                        stdin_open = false;
                        self.stdin_pipe = None; // EOF for the command
                        continue;
                    }
                    (Source::Master, 0) => {
                        master_open = false;
                        continue;
                    }
                    (Source::Output(i), 0) => {
                        outputs_open[i] = false;
                        continue;
                    }
                    (Source::Stdin, n) => match to {
                        Some(to) => write_all(to, &buf[..n]),
                        None => Ok(()),
                    },
                    (Source::Master, n) => write_all(io::stdout().as_fd(), &buf[..n]),
                    (Source::Output(i), n) => {
                        // SAFETY: 1 or 2, open for all of dsh's life.
                        let to = unsafe { BorrowedFd::borrow_raw(self.outputs[i].1) };
                        write_all(to, &buf[..n])
                    }
                };
                if sent.is_err() && matches!(source, Source::Stdin) {
                    // The command closed its stdin: stop feeding it.
                    stdin_open = false;
                    self.stdin_pipe = None;
                }
            }
        }
    }
}
