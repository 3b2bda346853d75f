//! Container states and signal names, spelled as the product contract says.
use std::fmt;

use serde::{Deserialize, Serialize};

/// A container's lifecycle state. Operators grep these names: keep the
/// spelling exactly as the contract has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    #[serde(rename = "kContainerPulling")]
    Pulling,
    #[serde(rename = "kContainerBooting")]
    Booting,
    #[serde(rename = "kContainerRunning")]
    Running,
    #[serde(rename = "kContainerError")]
    Error,
    #[serde(rename = "kContainerExited")]
    Exited,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pulling => "kContainerPulling",
            State::Booting => "kContainerBooting",
            State::Running => "kContainerRunning",
            State::Error => "kContainerError",
            State::Exited => "kContainerExited",
        }
    }

    /// Running or about to: listed by `dsh ps` without `-a`.
    pub fn is_live(self) -> bool {
        matches!(self, State::Pulling | State::Booting | State::Running)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// "SIGSEGV" for 11; "SIG42" for signals without a classic name.
pub fn signal_name(sig: u32) -> String {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match NAMES.get(sig as usize) {
        Some(n) if sig != 0 => (*n).to_owned(),
        _ => format!("SIG{sig}"),
    }
}

/// Signals whose default action dumps core (signal(7)): a process killed by
/// one of these "seems" to have dumped core; whether a core file was written
/// depends on RLIMIT_CORE and core_pattern, which the exit status tells.
pub fn dumps_core(sig: u32) -> bool {
    matches!(sig, 3 | 4 | 5 | 6 | 7 | 8 | 11 | 24 | 25 | 31)
}

/// Signals an operator or runtime sends to stop a container: a death by one
/// of these, sent from outside the container, is a stop, not a failure.
pub fn is_stop_signal(sig: u32) -> bool {
    matches!(sig, 1 | 2 | 9 | 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(0), "SIG0");
        assert_eq!(signal_name(40), "SIG40");
        assert_eq!(State::Error.to_string(), "kContainerError");
        assert_eq!(
            serde_json::to_string(&State::Running).unwrap(),
            "\"kContainerRunning\""
        );
    }

    #[test]
    fn core_signals() {
        assert!(dumps_core(11) && dumps_core(6) && !dumps_core(15) && !dumps_core(9));
    }
}
