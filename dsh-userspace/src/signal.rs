//! Signals and how a process ended, as the kernel reports them: the one
//! signal type of dsh's user space (a leaf every layer may use).
//!
//! Names and classes come from nix's `Signal`. The number is kept, not a
//! `nix::sys::signal::Signal`, because the kernel also reports realtime
//! signals (34..=64), which that enum cannot hold: they show as `SIG34`...
use std::fmt;

use nix::sys::signal::Signal as Named;
use serde::{Deserialize, Serialize};

/// A signal number as the kernel reports it (`signal_generate`, a wait status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Signal(u8);

impl Signal {
    /// The kernel's number; anything above 255 (no such signal) saturates.
    pub fn from_raw(n: u32) -> Self {
        Self(u8::try_from(n).unwrap_or(u8::MAX))
    }

    pub fn number(self) -> u8 {
        self.0
    }

    /// The classic signal it is, if it is one (not a realtime signal).
    pub fn named(self) -> Option<Named> {
        Named::try_from(i32::from(self.0)).ok()
    }

    /// "SIGSEGV" for 11; "SIG42" for signals without a classic name.
    pub fn name(self) -> String {
        self.named()
            .map_or_else(|| format!("SIG{}", self.0), |s| s.as_str().to_owned())
    }

    /// Signals whose default action dumps core (signal(7)): a process killed
    /// by one of these "seems" to have dumped core; whether a core file was
    /// written depends on RLIMIT_CORE and core_pattern, which the exit status
    /// tells.
    pub fn dumps_core(self) -> bool {
        use Named::*;
        matches!(
            self.named(),
            Some(
                SIGQUIT
                    | SIGILL
                    | SIGTRAP
                    | SIGABRT
                    | SIGBUS
                    | SIGFPE
                    | SIGSEGV
                    | SIGXCPU
                    | SIGXFSZ
                    | SIGSYS
            )
        )
    }

    /// Signals an operator or runtime sends to stop a container: a death by
    /// one of these, sent from outside the container, is a stop, not a failure.
    pub fn is_stop(self) -> bool {
        use Named::*;
        matches!(self.named(), Some(SIGHUP | SIGINT | SIGKILL | SIGTERM))
    }

    /// Whether its default action ends the process (signal(7)'s Term and
    /// Core, the real-time signals included): the same list the kernel
    /// programs use.
    pub fn is_fatal(self) -> bool {
        dsh_ebpf::signals::default_action_kills(u32::from(self.0))
    }

    /// Housekeeping, not intent: a child ended, a process continued, urgent
    /// socket data, a terminal resized.
    pub fn is_housekeeping(self) -> bool {
        use Named::*;
        matches!(self.named(), Some(SIGCHLD | SIGCONT | SIGURG | SIGWINCH))
    }
}

impl From<Named> for Signal {
    fn from(s: Named) -> Self {
        Self::from_raw(s as u32)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// How a process ended: the kernel's `wait(2)` status, split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(u8),
    /// A signal killed it; the kernel says whether a core file was written.
    Killed { signal: Signal, core_dumped: bool },
}

impl ExitStatus {
    /// Splits a `wait(2)` status.
    pub fn from_wait(status: u32) -> Self {
        let sig = status & 0x7f;
        if sig == 0 {
            Self::Exited(((status >> 8) & 0xff) as u8)
        } else {
            Self::Killed {
                signal: Signal::from_raw(sig),
                core_dumped: status & 0x80 != 0,
            }
        }
    }

    pub fn code(self) -> Option<u8> {
        match self {
            Self::Exited(c) => Some(c),
            Self::Killed { .. } => None,
        }
    }

    /// The code shells and runtimes report: the exit code, or 128 + the
    /// signal that killed it.
    pub fn shell_code(self) -> i32 {
        match self {
            Self::Exited(c) => i32::from(c),
            Self::Killed { signal, .. } => 128 + i32::from(signal.number()),
        }
    }

    pub fn signal(self) -> Option<Signal> {
        match self {
            Self::Exited(_) => None,
            Self::Killed { signal, .. } => Some(signal),
        }
    }

    pub fn core_dumped(self) -> bool {
        matches!(
            self,
            Self::Killed {
                core_dumped: true,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let s = Signal::from_raw;
        assert_eq!(s(11).name(), "SIGSEGV");
        assert_eq!(s(15).name(), "SIGTERM");
        assert_eq!(s(31).name(), "SIGSYS");
        assert_eq!(s(0).name(), "SIG0");
        assert_eq!(s(40).name(), "SIG40");
        assert_eq!(Signal::from(Named::SIGKILL).number(), 9);
    }

    #[test]
    fn classes() {
        let s = Signal::from_raw;
        assert!(s(11).dumps_core() && s(6).dumps_core() && !s(15).dumps_core());
        assert!(!s(9).dumps_core() && !s(40).dumps_core());
        assert!(s(15).is_stop() && s(9).is_stop() && !s(11).is_stop());
        assert!(s(17).is_housekeeping() && s(28).is_housekeeping() && !s(15).is_housekeeping());
    }

    /// Every signal whose default action is Term or Core (signal(7)) is
    /// fatal, by name where it has one; none that stops, continues or is
    /// ignored by default is; the housekeeping ones never are.
    #[test]
    fn fatal_is_every_default_fatal_signal() {
        use Named::*;
        let fatal = [
            SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL, SIGUSR1,
            SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM,
            SIGPROF, SIGIO, SIGPWR, SIGSYS,
        ];
        for s in fatal {
            assert!(Signal::from(s).is_fatal(), "{s}");
        }
        for s in [
            SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH,
        ] {
            assert!(!Signal::from(s).is_fatal(), "{s}");
        }
        // SIGPOLL is SIGIO on Linux (29); real-time signals, as the kernel
        // numbers them: SIGRTMIN (32) to 64.
        assert!(Signal::from_raw(libc::SIGPOLL as u32).is_fatal());
        for n in 32..=64 {
            assert!(Signal::from_raw(n).is_fatal(), "SIG{n}");
        }
        for n in [0, 65, 255] {
            assert!(!Signal::from_raw(n).is_fatal(), "{n}");
        }
        for n in 0..=255u32 {
            let s = Signal::from_raw(n);
            assert!(!(s.is_fatal() && s.is_housekeeping()), "{n}");
        }
    }

    #[test]
    fn wait_status() {
        let sig = Signal::from_raw;
        assert_eq!(ExitStatus::from_wait(3 << 8), ExitStatus::Exited(3));
        assert_eq!(
            ExitStatus::from_wait(11 | 0x80),
            ExitStatus::Killed {
                signal: sig(11),
                core_dumped: true
            }
        );
        assert_eq!(
            ExitStatus::from_wait(9),
            ExitStatus::Killed {
                signal: sig(9),
                core_dumped: false
            }
        );
        assert_eq!(ExitStatus::from_wait(0), ExitStatus::Exited(0));
        assert!(ExitStatus::from_wait(11 | 0x80).core_dumped());
        assert_eq!(ExitStatus::from_wait(3 << 8).code(), Some(3));
    }
}
