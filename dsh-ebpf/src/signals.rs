//! Signals from outside a cgroup, aggregated in the kernel: the ABI of the
//! counters and of the per-cgroup record of who signalled its main process
//! (see `programs/signal.rs` for how they are used).
//!
//! A flood (a shell sending SIGHUP in a loop) must cost no ring-buffer
//! record and no journal line per signal: the programs count delivered
//! signals per (target cgroup, sender cgroup, sender, signal), the agent
//! reads the counters at every sample and writes one summary per container
//! and interval; the exit event of a main process carries the last signals
//! that could have killed it, so the exit line names who sent them.

/// (target, sender, signal) counters at once. User space reads them every
/// sample and deletes those idle for a while; a signal that finds no room
/// is counted as `failure::SIGNAL_COUNTERS_FULL`.
pub const MAX_SIGNAL_KEYS: usize = 8192;

/// What the signal counters are kept by.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SignalKey {
    /// The cgroup of the task the signal was sent to.
    pub target_cgroup_id: u64,
    /// The sender's cgroup (another one: same-cgroup signals are not counted).
    pub sender_cgroup_id: u64,
    /// The sender's pid (thread group id).
    pub sender_tgid: u32,
    pub signal: u32,
}

/// Signals delivered, cumulative; several CPUs add to one entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalCount {
    pub count: u64,
    /// The sender's command when its first signal was counted.
    pub sender_comm: [u8; crate::COMM_LEN],
}

/// One signal sent from outside a cgroup to its main process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutsideSignal {
    /// 0: none.
    pub signal: u32,
    pub sender_tgid: u32,
    /// The main process it was sent to (a later main process must not
    /// inherit it).
    pub target_tgid: u32,
    pub _pad: u32,
    pub sender_comm: [u8; crate::COMM_LEN],
}

/// The last signals from outside a cgroup that could end its main process:
/// one slot for the stop signals (SIGHUP, SIGINT, SIGKILL, SIGTERM: a
/// runtime's stop), one for the other default-fatal ones, so a flood of
/// SIGUSR1 does not hide who sent the SIGTERM.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutsideSignals {
    pub stop: OutsideSignal,
    pub other: OutsideSignal,
}

/// Whether a signal's default action ends the process (signal(7): Term or
/// Core). One definition for the programs and user space.
#[inline(always)]
pub const fn default_action_kills(sig: u32) -> bool {
    matches!(
        sig,
        // SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL
        1..=9
        // SIGUSR1 SIGSEGV SIGUSR2 SIGPIPE SIGALRM SIGTERM SIGSTKFLT
        | 10..=16
        // SIGXCPU SIGXFSZ SIGVTALRM SIGPROF
        | 24..=27
        // SIGIO (SIGPOLL) SIGPWR SIGSYS
        | 29..=31
        // the real-time signals, 32 (SIGRTMIN as the kernel numbers it) to 64
        | 32..=64
    )
}

/// SIGCHLD, SIGCONT, SIGURG, SIGWINCH: housekeeping, not intent (a
/// fork-heavy container sends one SIGCHLD per child).
#[inline(always)]
pub const fn is_housekeeping(sig: u32) -> bool {
    matches!(sig, 17 | 18 | 23 | 28)
}

/// The stop signals a runtime or operator sends (the `stop` slot).
#[inline(always)]
pub const fn is_stop(sig: u32) -> bool {
    matches!(sig, 1 | 2 | 9 | 15)
}

/// `signal_generate`'s result for a signal that was queued for delivery
/// (`TRACE_SIGNAL_DELIVERED`, or `TRACE_SIGNAL_LOSE_INFO`: queued without
/// its siginfo). Not: ignored, already pending (coalesced with one not yet
/// delivered), or dropped for a full real-time queue.
#[inline(always)]
pub const fn was_delivered(result: i32) -> bool {
    result == 0 || result == 4
}

const _: () = assert!(core::mem::size_of::<SignalKey>() == 24);
const _: () = assert!(core::mem::size_of::<SignalCount>() == 8 + crate::COMM_LEN);
const _: () = assert!(core::mem::size_of::<OutsideSignal>() == 16 + crate::COMM_LEN);
const _: () = assert!(core::mem::size_of::<OutsideSignals>() == 2 * (16 + crate::COMM_LEN));

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: repr(C), Copy, integers and integer arrays only, no padding
    // (sizes asserted above).
    unsafe impl aya::Pod for SignalKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for SignalCount {}
    // SAFETY: as above.
    unsafe impl aya::Pod for OutsideSignal {}
    // SAFETY: as above.
    unsafe impl aya::Pod for OutsideSignals {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// signal(7): every signal whose default action is Term or Core, and
    /// none whose default is Ign, Stop or Cont.
    #[test]
    fn default_fatal_signals_are_complete() {
        let fatal: &[u32] = &[
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 27, 29, 30, 31,
        ];
        let not_fatal: &[u32] = &[0, 17, 18, 19, 20, 21, 22, 23, 28, 65, 255];
        for &s in fatal {
            assert!(default_action_kills(s), "{s}");
        }
        for s in 32..=64 {
            assert!(default_action_kills(s), "real-time {s}");
        }
        for &s in not_fatal {
            assert!(!default_action_kills(s), "{s}");
        }
        assert!(was_delivered(0) && was_delivered(4));
        assert!(!was_delivered(1) && !was_delivered(2) && !was_delivered(3));
    }
}
