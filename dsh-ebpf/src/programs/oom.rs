//! OOM kills: `mark_victim` names the victim (the current task is whoever
//! ran the OOM killer).
//!
//! Before 6.1 the tracepoint passes only the victim's pid. The OOM killer
//! sends the victim SIGKILL just before it marks it (`__oom_kill_process`),
//! so `signal_generate` remembers the task of every SIGKILL by pid on those
//! kernels, and `mark_victim` looks its pid up there while the killer still
//! holds a reference to the task.
use aya_ebpf::{
    btf_maps::LruHashMap,
    macros::{btf_map, btf_tracepoint},
    programs::BtfTracePointContext,
};
use dsh_ebpf::{OOM_SLOTS, OomEvent, failure, kind, victim_arg};

use super::{
    events::header,
    failures::count,
    kernel::{Failure, config, off, read, task_cgroup_id},
    maps::{OOM_EVENTS, OOM_WRITTEN},
};

const SIGKILL: i32 = 9;

/// Pid → `struct task_struct *` of recent SIGKILL targets, on kernels whose
/// `mark_victim` passes a pid. LRU: entries no OOM kill asks for age out.
#[btf_map]
static SIGKILL_TARGETS: LruHashMap<u32, u64, 1024> = LruHashMap::new();

/// Called by `signal_generate` for every signal: remembers SIGKILL targets
/// where `mark_victim` will need them.
#[inline(always)]
pub fn note_signal_target(sig: i32, target: *const u8) {
    if config().oom_victim_arg != victim_arg::PID || sig != SIGKILL {
        return;
    }
    match read::<u32>(target, off!(task_pid)) {
        // A full LRU evicts its oldest entry: an insert does not fail for room.
        Ok(pid) => {
            let _ = SIGKILL_TARGETS.insert(pid, target as u64, 0);
        }
        Err(f) => count(f),
    }
}

/// `mark_victim(struct task_struct *task, uid_t uid)`, or `mark_victim(int
/// pid)` before 6.1 (see the module comment).
#[btf_tracepoint(function = "mark_victim")]
pub fn dsh_mark_victim(ctx: BtfTracePointContext) -> u32 {
    let arg: u64 = ctx.arg(0);
    let victim = if config().oom_victim_arg == victim_arg::PID {
        let pid = arg as u32;
        // SAFETY: a map value pointer from a successful lookup is valid for
        // a read.
        let task = SIGKILL_TARGETS.get_ptr(pid).map(|t| unsafe { *t });
        let _ = SIGKILL_TARGETS.remove(pid);
        match task {
            Some(task) => task as *const u8,
            None => {
                count(Failure(failure::OOM_VICTIM_UNKNOWN));
                record(|e| {
                    e.hdr = header(kind::OOM);
                    // The best guess left: a memcg OOM kill picks its
                    // victim from the cgroup of the task that ran into it.
                    e.victim_pid = pid;
                    e.victim_tgid = pid;
                    e.victim_cgroup_id = e.hdr.cgroup_id;
                });
                return 0;
            }
        }
    } else {
        arg as *const u8
    };
    record(|e| {
        e.hdr = header(kind::OOM);
        e.victim_cgroup_id = task_cgroup_id(victim);
        // pid and tgid are adjacent pid_t (user space's tests check it):
        // one read for both.
        match read::<u64>(victim, off!(task_pid)) {
            Ok(both) => (e.victim_pid, e.victim_tgid) = (both as u32, (both >> 32) as u32),
            Err(f) => count(f),
        }
    });
    0
}

/// Writes the next OOM record in place in `OOM_EVENTS` (see
/// `dsh_ebpf::OOM_SLOTS` for why not a ring), then counts it written.
#[inline(always)]
fn record(fill: impl FnOnce(&mut OomEvent)) {
    let Some(written) = OOM_WRITTEN.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a map value pointer from a successful lookup; OOM kills run
    // one at a time, so nothing else writes the count meanwhile.
    let n = unsafe { *written };
    let Some(slot) = OOM_EVENTS.get_ptr_mut((n % OOM_SLOTS as u64) as u32) else {
        return;
    };
    // SAFETY: the slot is a valid, aligned OomEvent-sized value; zeroed
    // first so no field keeps an older record, and a zeroed OomEvent is
    // valid (plain integers).
    let e = unsafe {
        core::ptr::write_bytes(slot, 0, 1);
        &mut *slot
    };
    fill(e);
    // A plain store: there is one writer at a time, and an aligned u64
    // store is never torn. The agent checks each record it reads, in case
    // it sees the count before the record (see `OomSlots::take`).
    // SAFETY: as above.
    unsafe { *written = n + 1 };
}
