//! Process churn, aggregated in the kernel: the ABI of the counters and of
//! the main-process table (see `programs/churn.rs` for how they are used).

/// `(cgroup, command)` pairs with churn counters at once. User space reads
/// them every sample and deletes those idle for a while.
pub const MAX_CHURN_KEYS: usize = 16384;
/// Cgroups whose main process the programs track at once (an entry is
/// deleted with its cgroup).
pub const MAX_MAIN_PROCESSES: usize = 16384;

/// What the churn counters are kept by.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChurnKey {
    pub cgroup_id: u64,
    /// The command (`task->comm`) after the exec, or at the exit.
    pub comm: [u8; crate::COMM_LEN],
}

/// Processes started and ended, cumulative; several CPUs add to one entry,
/// so the programs use atomic adds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChurnCounts {
    pub execs: u64,
    /// Exited with code 0.
    pub exits_ok: u64,
    /// Exited with another code.
    pub exits_failed: u64,
    /// Killed by a signal (crashes and OOM kills are sent as events instead).
    pub exits_killed: u64,
}

impl ChurnCounts {
    pub fn exits(&self) -> u64 {
        self.exits_ok + self.exits_failed + self.exits_killed
    }

    pub fn is_empty(&self) -> bool {
        self.execs == 0 && self.exits() == 0
    }

    /// `self - before`, counter by counter (a counter never goes down; a
    /// re-created entry starts again from zero).
    pub fn since(&self, before: &Self) -> Self {
        let d = |a: u64, b: u64| if a >= b { a - b } else { a };
        Self {
            execs: d(self.execs, before.execs),
            exits_ok: d(self.exits_ok, before.exits_ok),
            exits_failed: d(self.exits_failed, before.exits_failed),
            exits_killed: d(self.exits_killed, before.exits_killed),
        }
    }

    pub fn add(&mut self, other: &Self) {
        self.execs += other.execs;
        self.exits_ok += other.exits_ok;
        self.exits_failed += other.exits_failed;
        self.exits_killed += other.exits_killed;
    }
}

/// One cgroup's main process as the programs see it: the first process to
/// exec in the cgroup, until it exits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MainProcess {
    /// Its pid (thread group id); 0 when none is known.
    pub tgid: u32,
    /// 1: the next exec in the cgroup is its new main process (the main one
    /// has exited, or none has run yet); 0: execs are churn.
    pub claimable: u32,
}

const _: () = assert!(core::mem::size_of::<ChurnKey>() == 8 + crate::COMM_LEN);
const _: () = assert!(core::mem::size_of::<ChurnCounts>() == 32);
const _: () = assert!(core::mem::size_of::<MainProcess>() == 8);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: repr(C), Copy, integers and integer arrays only, no padding
    // (sizes asserted above).
    unsafe impl aya::Pod for ChurnKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for ChurnCounts {}
    // SAFETY: as above.
    unsafe impl aya::Pod for MainProcess {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_subtracts_and_restarts_from_zero() {
        let before = ChurnCounts {
            execs: 10,
            exits_ok: 5,
            exits_failed: 1,
            exits_killed: 0,
        };
        let now = ChurnCounts {
            execs: 15,
            exits_ok: 9,
            exits_failed: 1,
            exits_killed: 2,
        };
        let d = now.since(&before);
        assert_eq!(
            (d.execs, d.exits_ok, d.exits_failed, d.exits_killed),
            (5, 4, 0, 2)
        );
        assert_eq!(d.exits(), 6);
        // A deleted and re-created entry: its counts are all new.
        let fresh = ChurnCounts {
            execs: 3,
            ..Default::default()
        };
        assert_eq!(fresh.since(&before).execs, 3);
    }
}
