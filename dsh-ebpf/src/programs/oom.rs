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
    helpers::generated::bpf_probe_read_kernel_str,
    macros::{btf_map, btf_tracepoint},
    programs::BtfTracePointContext,
};
use dsh_ebpf::{OOM_SLOTS, OomEvent, failure, kind, victim_arg};

use super::{
    events::header,
    failures::count,
    kernel::{Failure, cgroup_id, config, off, read, task_cgroup},
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
        let cgrp = task_cgroup(victim);
        e.victim_cgroup_id = match cgrp.and_then(cgroup_id) {
            Ok(id) => id,
            Err(f) => {
                count(f);
                0
            }
        };
        if config().has_memcg != 0
            && let Ok(cgrp) = cgrp
        {
            match memcg_figures(victim, cgrp) {
                Ok(Some((usage, limit))) => (e.mem_usage_bytes, e.mem_limit_bytes) = (usage, limit),
                Ok(None) => {}
                Err(f) => count(f),
            }
        }
        // pid and tgid are adjacent pid_t (user space's tests check it):
        // one read for both.
        match read::<u64>(victim, off!(task_pid)) {
            Ok(both) => (e.victim_pid, e.victim_tgid) = (both as u32, (both >> 32) as u32),
            Err(f) => count(f),
        }
    });
    0
}

/// The use and limit in bytes of `task`'s memory cgroup, read at the kill
/// (before the reaper frees anything), when that memcg's cgroup is at the
/// place of the task's attribution cgroup `cgrp`; `None` when it is not
/// (an ancestor's, where the memory controller is not enabled down to the
/// task's cgroup): those figures are not the container's.
#[inline(always)]
fn memcg_figures(task: *const u8, cgrp: *const u8) -> Result<Option<(u64, u64)>, Failure> {
    let css_set: *const u8 = read(task, off!(task_cgroups))?;
    let css: *const u8 = read(css_set, off!(css_set_subsys_memory))?;
    let memcg_cgrp: *const u8 = read(css, off!(css_cgroup))?;
    if !same_place(memcg_cgrp, cgrp)? {
        return Ok(None);
    }
    let usage: u64 = read(css, off!(memcg_usage))?;
    let max: u64 = read(css, off!(memcg_max))?;
    let shift = config().page_shift & 63;
    Ok(Some((usage << shift, max << shift)))
}

/// Bytes of a cgroup name `same_place` compares, NUL included: more than
/// a runtime's cgroup names take (`cri-containerd-<64 hex>.scope` is 86).
const NAME_WORDS: usize = 16;

/// Whether two cgroups are the same one, or on a hybrid host (memory in a
/// v1 hierarchy, attribution in the unified one) at the same place in
/// their hierarchies: the same level and the same directory name, as a
/// runtime creates a container's cgroup in each. A name that does not fit
/// `NAME_WORDS` words is not matched.
#[inline(always)]
fn same_place(a: *const u8, b: *const u8) -> Result<bool, Failure> {
    if a == b {
        return Ok(true);
    }
    if read::<i32>(a, off!(cgroup_level))? != read::<i32>(b, off!(cgroup_level))? {
        return Ok(false);
    }
    // One string read per name (the OOM killer runs with cold caches: a
    // helper call per word cost about a microsecond more).
    let mut name_a = [0u64; NAME_WORDS];
    let mut name_b = [0u64; NAME_WORDS];
    let len_a = read_name(a, &mut name_a)?;
    if len_a != read_name(b, &mut name_b)? || len_a >= 8 * NAME_WORDS {
        return Ok(false);
    }
    // Both zeroed past their NUL: whole words compare.
    let mut same = true;
    for i in 0..NAME_WORDS {
        same &= name_a[i] == name_b[i];
    }
    Ok(same)
}

/// Copies the directory name of cgroup `cgrp` into `dst` (NUL-terminated,
/// cut to fit); its length with the NUL.
#[inline(always)]
fn read_name(cgrp: *const u8, dst: &mut [u64; NAME_WORDS]) -> Result<usize, Failure> {
    let kn: *const u8 = read(cgrp, off!(cgroup_kn))?;
    let name: *const u8 = read(kn, off!(kernfs_node_name))?;
    // SAFETY: the helper writes at most `size` bytes into `dst`, which is
    // that large, and reads `name` on the kernel's no-fault path.
    let len = unsafe {
        bpf_probe_read_kernel_str(
            dst.as_mut_ptr().cast(),
            (8 * NAME_WORDS) as u32,
            name.cast(),
        )
    };
    usize::try_from(len).map_err(|_| Failure(failure::KERNEL_READ))
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
