//! Signals sent across a cgroup boundary: counted, never sent one by one.
//!
//! A shell on the host can send a container hundreds of thousands of
//! signals a second. Each delivered one adds to a counter per (target
//! cgroup, sender cgroup, sender, signal) that the agent reads at every
//! sample (`SIGNAL_COUNTS`), so a flood costs no ring record and no log line
//! per signal. Which signal from outside ended a main process is told by
//! its exit event: `MAIN_SIGNALS` keeps, per cgroup, the last default-fatal
//! signals sent to its main process, and the exit program copies them in.
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    btf_maps::HashMap,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{btf_map, btf_tracepoint},
    programs::BtfTracePointContext,
};
use dsh_ebpf::{
    MAX_MAIN_PROCESSES, MAX_SIGNAL_KEYS, OutsideSignal, OutsideSignals, SignalCount, SignalKey,
    failure,
    signals::{default_action_kills, is_housekeeping, is_stop, was_delivered},
};

use super::{
    churn::is_main_process,
    failures::count,
    kernel::{Failure, atomic_add, current_cgroup_id, off, read, task_cgroup_id},
    oom::note_signal_target,
};

/// (target cgroup, sender cgroup, sender, signal) → signals delivered.
#[btf_map]
pub static SIGNAL_COUNTS: HashMap<SignalKey, SignalCount, MAX_SIGNAL_KEYS> = HashMap::new();

/// Cgroup id → the last signals from outside that could end its main
/// process; taken by that process's exit (see `take_main_signals`).
#[btf_map]
pub static MAIN_SIGNALS: HashMap<u64, OutsideSignals, MAX_MAIN_PROCESSES> = HashMap::new();

const NO_SIGNALS: OutsideSignals = OutsideSignals {
    stop: NO_SIGNAL,
    other: NO_SIGNAL,
};
const NO_SIGNAL: OutsideSignal = OutsideSignal {
    signal: 0,
    sender_tgid: 0,
    target_tgid: 0,
    _pad: 0,
    sender_comm: [0; 16],
};

/// `signal_generate(int sig, struct kernel_siginfo *info, struct task_struct *task,
///                  int group, int result)`: current is the sender. Counts
/// only signals that cross a cgroup boundary and were queued for delivery
/// (not ignored, not coalesced with one already pending), housekeeping
/// ones aside.
#[btf_tracepoint(function = "signal_generate")]
pub fn dsh_signal_generate(ctx: BtfTracePointContext) -> u32 {
    let sig: i32 = ctx.arg(0);
    let target: *const u8 = ctx.arg(2);
    let result: i32 = ctx.arg(4);
    // Before any filter: the OOM killer's SIGKILL is often sent from
    // within the victim's own cgroup.
    note_signal_target(sig, target);
    let sig = sig as u32;
    if is_housekeeping(sig) || !was_delivered(result) {
        return 0;
    }
    let target_cgroup_id = task_cgroup_id(target);
    let sender_cgroup_id = current_cgroup_id();
    if target_cgroup_id == sender_cgroup_id {
        // Within one cgroup: whatever it kills shows in the exit's status.
        return 0;
    }
    let sender_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let key = SignalKey {
        target_cgroup_id,
        sender_cgroup_id,
        sender_tgid,
        signal: sig,
    };
    if let Err(f) = count_signal(&key) {
        count(f);
    }
    if default_action_kills(sig) {
        match read::<u32>(target, off!(task_tgid)) {
            Ok(target_tgid) if is_main_process(target_cgroup_id, target_tgid) => {
                if let Err(f) = note_main_signal(&key, target_tgid) {
                    count(f);
                }
            }
            Ok(_) => {}
            Err(f) => count(f),
        }
    }
    0
}

/// Adds one to `key`'s counter, created with the sender's command.
#[inline(always)]
fn count_signal(key: &SignalKey) -> Result<(), Failure> {
    let c = match SIGNAL_COUNTS.get_ptr_mut(key) {
        Some(c) => c,
        None => {
            let first = SignalCount {
                count: 0,
                sender_comm: bpf_get_current_comm().unwrap_or([0; 16]),
            };
            // Another CPU may insert the same key meanwhile (-EEXIST): look again.
            let _ = SIGNAL_COUNTS.insert(key, first, BPF_NOEXIST.into());
            SIGNAL_COUNTS
                .get_ptr_mut(key)
                .ok_or(Failure(failure::SIGNAL_COUNTERS_FULL))?
        }
    };
    // SAFETY: a pointer to a live map value; other CPUs add to it too, so
    // the add is atomic.
    unsafe { atomic_add(&raw mut (*c).count, 1) };
    Ok(())
}

/// Remembers a default-fatal signal to a cgroup's main process, in the
/// stop or the other slot.
#[inline(always)]
fn note_main_signal(key: &SignalKey, target_tgid: u32) -> Result<(), Failure> {
    let id = key.target_cgroup_id;
    let slots = match MAIN_SIGNALS.get_ptr_mut(id) {
        Some(s) => s,
        None => {
            let _ = MAIN_SIGNALS.insert(id, NO_SIGNALS, BPF_NOEXIST.into());
            MAIN_SIGNALS
                .get_ptr_mut(id)
                .ok_or(Failure(failure::SIGNAL_COUNTERS_FULL))?
        }
    };
    let noted = OutsideSignal {
        signal: key.signal,
        sender_tgid: key.sender_tgid,
        target_tgid,
        _pad: 0,
        sender_comm: bpf_get_current_comm().unwrap_or([0; 16]),
    };
    // SAFETY: a pointer to a live map value. Two CPUs signalling the same
    // main process at once may interleave their stores (a sender's pid
    // with the other's command): a cosmetic race the verifier leaves no
    // cheap lock against, and the exit line says the signal either way.
    unsafe {
        if is_stop(key.signal) {
            (*slots).stop = noted;
        } else {
            (*slots).other = noted;
        }
    }
    Ok(())
}

/// At the exit of `tgid` in `cgroup_id`: the signals from outside noted for
/// it if it is the cgroup's main process (then the entry is deleted: the
/// next main process starts with none); zeroed otherwise. A child's exit
/// leaves the main process's entry alone.
#[inline(always)]
pub fn take_main_signals(cgroup_id: u64, tgid: u32) -> OutsideSignals {
    let Some(slots) = MAIN_SIGNALS.get_ptr(cgroup_id) else {
        return NO_SIGNALS;
    };
    // SAFETY: a value pointer from a successful lookup, copied out at once.
    let mut noted = unsafe { *slots };
    let stop_is_ours = noted.stop.target_tgid == tgid;
    let other_is_ours = noted.other.target_tgid == tgid;
    if !stop_is_ours && !other_is_ours {
        return NO_SIGNALS;
    }
    let _ = MAIN_SIGNALS.remove(cgroup_id);
    // A slot left by an earlier main process that ended unseen.
    if !stop_is_ours {
        noted.stop = NO_SIGNAL;
    }
    if !other_is_ours {
        noted.other = NO_SIGNAL;
    }
    noted
}
