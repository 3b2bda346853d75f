//! Per-cgroup syscall counts, errors and (optionally) latency.
//!
//! The hot path is one hook, `sys_exit`: it sees the return value, so count
//! and errors need no `sys_enter` program. It reaches the per-cgroup counters
//! without a hash lookup: task → css_set → cgroup by direct BTF loads, then
//! the cgroup's local storage. Latency needs a second hook (`sys_enter`) and
//! a per-thread start time; user space attaches that pair only on request.
use aya_ebpf::{
    bindings::cgroup, helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use dsh_ebpf::{SyscallStats, cgroup_mode, failure};

use super::{
    failures::count,
    kernel::{Failure, atomic_add, config, current_task, log2_bucket, now_ns, off},
    maps::{SYSCALL_START, SYSCALL_START_SLOTS, SYSCALL_STATS},
};

/// The current task's attribution cgroup, by direct loads.
#[inline(always)]
fn current_cgroup_ptr() -> *mut cgroup {
    let task = current_task();
    // SAFETY: `task` is a BTF pointer (bpf_get_current_task_btf) and the
    // offsets are constants to the verifier, which checks each load against
    // the kernel's BTF and turns it into a load that reads zero on a fault.
    unsafe {
        let css_set = *(task.add(off!(task_cgroups)) as *const *const u8);
        if config().cgroup_mode == cgroup_mode::V1_SUBSYS {
            let css = *(css_set.add(off!(css_set_subsys_v1)) as *const *const u8);
            *(css.add(off!(css_cgroup)) as *const *mut cgroup)
        } else {
            *(css_set.add(off!(css_set_dfl_cgrp)) as *const *mut cgroup)
        }
    }
}

/// The current cgroup's counters, created on its first syscall.
#[inline(always)]
fn stats() -> Option<*mut SyscallStats> {
    // SAFETY: the helper checks the cgroup pointer's BTF type; the verifier
    // rejects anything but a `struct cgroup *`.
    let s = unsafe { SYSCALL_STATS.get_or_insert_ptr_mut(current_cgroup_ptr(), None) };
    if s.is_null() {
        count(Failure(failure::SYSCALL_COUNTERS_FULL));
        return None;
    }
    Some(s)
}

/// Counts one syscall; `elapsed` adds a latency sample.
#[inline(always)]
fn record(ret: i64, elapsed: Option<u64>) {
    let Some(s) = stats() else { return };
    // SAFETY: `s` is the cgroup's storage value, valid while the program
    // runs; every CPU updates it, hence the atomic adds.
    unsafe {
        atomic_add(&raw mut (*s).count, 1);
        if ret < 0 {
            atomic_add(&raw mut (*s).errors, 1);
        }
        if let Some(ns) = elapsed {
            atomic_add(&raw mut (*s).latency[log2_bucket(ns)], 1);
        }
    }
}

/// `sys_exit(struct pt_regs *regs, long ret)`: count and errors.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_sys_exit(ctx: BtfTracePointContext) -> u32 {
    record(ctx.arg(1), None);
    0
}

/// `sys_enter(struct pt_regs *regs, long id)`: remember when the thread
/// entered, for `dsh_sys_exit_latency`.
#[btf_tracepoint(function = "sys_enter")]
pub fn dsh_sys_enter_latency(_ctx: BtfTracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(slot) = SYSCALL_START.get_ptr_mut(tid & (SYSCALL_START_SLOTS - 1)) {
        // SAFETY: a valid, aligned array slot. Only this thread writes it,
        // barring a collision of thread ids in one slot (see the map).
        let slot = unsafe { &mut *slot };
        slot.tid = tid;
        slot.entered_ns = now_ns();
    }
    0
}

/// How long the current thread has been in its syscall, if its entry was
/// seen; consumes the entry.
#[inline(always)]
fn take_elapsed() -> Option<u64> {
    let tid = bpf_get_current_pid_tgid() as u32;
    let slot = SYSCALL_START.get_ptr_mut(tid & (SYSCALL_START_SLOTS - 1))?;
    // SAFETY: as in `dsh_sys_enter_latency`.
    let slot = unsafe { &mut *slot };
    if slot.tid != tid || slot.entered_ns == 0 {
        return None;
    }
    let entered = slot.entered_ns;
    // Consumed: a later exit without an enter (the programs were attached
    // mid-syscall) must not reuse it.
    slot.entered_ns = 0;
    Some(now_ns().wrapping_sub(entered))
}

/// `dsh_sys_exit` plus the latency histogram; attached instead of it.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_sys_exit_latency(ctx: BtfTracePointContext) -> u32 {
    record(ctx.arg(1), take_elapsed());
    0
}

/// Does nothing: attached only by `cargo xtask bench`, to measure the floor
/// (what any program on this hook costs on this kernel).
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_bench_empty(_ctx: BtfTracePointContext) -> u32 {
    0
}
