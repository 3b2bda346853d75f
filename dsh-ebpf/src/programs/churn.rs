//! Process churn, aggregated in the kernel.
//!
//! A container that forks thousands of short children must not cost one
//! ring-buffer event (and one decode, one journal line) per child. The
//! programs send events only for what the agent needs one by one — a
//! cgroup's main process starting and ending, crashes and kills (core-dump
//! signals, SIGKILL: OOM kills end that way) — and count everything else per
//! cgroup and command in `CHURN`, which the agent reads at every sample.
//!
//! Which process is a cgroup's main one is decided here, the way the agent's
//! model decides it: the first exec in a cgroup (or the first after its
//! main process ended) starts its main process. The agent seeds the table
//! at start-up for containers already running.
use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    btf_maps::HashMap,
    macros::btf_map,
};
use dsh_ebpf::{ChurnCounts, ChurnKey, MAX_CHURN_KEYS, MAX_MAIN_PROCESSES, MainProcess};

use super::{kernel::atomic_add, maps::get_or_insert_zeroed};

/// Cgroup id → its main process.
#[btf_map]
pub static MAIN_PROCESSES: HashMap<u64, MainProcess, MAX_MAIN_PROCESSES> = HashMap::new();

/// (cgroup id, command) → processes started and ended.
#[btf_map]
pub static CHURN: HashMap<ChurnKey, ChurnCounts, MAX_CHURN_KEYS> = HashMap::new();

const ZERO: ChurnCounts = ChurnCounts {
    execs: 0,
    exits_ok: 0,
    exits_failed: 0,
    exits_killed: 0,
};

/// An exec by `tgid` in cgroup `cgroup_id`: true when it starts the cgroup's
/// main process (then the caller sends the event). A table with no room
/// answers true too: an event too many, never a start missed.
#[inline(always)]
pub fn exec_starts_main(cgroup_id: u64, tgid: u32) -> bool {
    if let Some(main) = MAIN_PROCESSES.get_ptr(cgroup_id) {
        // SAFETY: a value pointer from a successful lookup, read once.
        if unsafe { (*main).claimable } == 0 {
            return false;
        }
    }
    let main = MainProcess { tgid, claimable: 0 };
    let _ = MAIN_PROCESSES.insert(cgroup_id, main, BPF_ANY.into());
    true
}

/// `task->exit_code` of a death by one of these signals: the agent needs
/// the event (a core dump, or SIGKILL, which is how the OOM killer kills).
#[inline(always)]
fn killed_notably(exit_code: i32) -> bool {
    let sig = exit_code & 0x7f;
    // SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGSEGV SIGXCPU SIGXFSZ SIGSYS
    matches!(sig, 3 | 4 | 5 | 6 | 7 | 8 | 9 | 11 | 24 | 25 | 31)
}

/// A process exit in `cgroup_id`: true when the agent needs the event (its
/// main process, a crash or a kill, or the first exit seen in a cgroup the
/// table does not know yet, whose main process may predate the programs).
#[inline(always)]
pub fn exit_is_notable(cgroup_id: u64, tgid: u32, exit_code: i32) -> bool {
    match MAIN_PROCESSES.get_ptr(cgroup_id) {
        None => {
            let unknown = MainProcess {
                tgid: 0,
                claimable: 1,
            };
            let _ = MAIN_PROCESSES.insert(cgroup_id, unknown, BPF_NOEXIST.into());
            true
        }
        Some(main) => {
            // SAFETY: a value pointer from a successful lookup.
            if tgid != 0 && unsafe { (*main).tgid } == tgid {
                let ended = MainProcess {
                    tgid: 0,
                    claimable: 1,
                };
                let _ = MAIN_PROCESSES.insert(cgroup_id, ended, BPF_ANY.into());
                return true;
            }
            killed_notably(exit_code)
        }
    }
}

/// The counters of (`cgroup_id`, `comm`), created at zero when missing;
/// None when the map has no room.
#[inline(always)]
fn counts(cgroup_id: u64, comm: [u8; 16]) -> Option<*mut ChurnCounts> {
    get_or_insert_zeroed(&CHURN, &ChurnKey { cgroup_id, comm }, &ZERO)
}

/// Counts an exec; false when it could not (no room), and then the caller
/// sends the event instead: churn is never dropped.
#[inline(always)]
pub fn count_exec(cgroup_id: u64, comm: [u8; 16]) -> bool {
    let Some(c) = counts(cgroup_id, comm) else {
        return false;
    };
    // SAFETY: a pointer to a live map value; other CPUs add to it too, so
    // the add is atomic.
    unsafe { atomic_add(&raw mut (*c).execs, 1) };
    true
}

/// Counts an exit by its `task->exit_code`; false when it could not.
#[inline(always)]
pub fn count_exit(cgroup_id: u64, comm: [u8; 16], exit_code: i32) -> bool {
    let Some(c) = counts(cgroup_id, comm) else {
        return false;
    };
    // SAFETY: as in `count_exec`.
    unsafe {
        if exit_code & 0x7f != 0 {
            atomic_add(&raw mut (*c).exits_killed, 1);
        } else if exit_code == 0 {
            atomic_add(&raw mut (*c).exits_ok, 1);
        } else {
            atomic_add(&raw mut (*c).exits_failed, 1);
        }
    }
    true
}

/// Whether `tgid` is the main process of `cgroup_id`.
#[inline(always)]
pub fn is_main_process(cgroup_id: u64, tgid: u32) -> bool {
    match MAIN_PROCESSES.get_ptr(cgroup_id) {
        // SAFETY: a value pointer from a successful lookup.
        Some(main) => tgid != 0 && unsafe { (*main).tgid } == tgid,
        None => false,
    }
}
