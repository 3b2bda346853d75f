//! Per-cgroup syscall counts, errors and (optionally) latency.
//!
//! The hot path is one hook, `sys_exit`: it sees the return value, so count
//! and errors need no `sys_enter` program. It reaches the per-cgroup counters
//! without a hash lookup: task → css_set → cgroup by direct BTF loads, then
//! the cgroup's local storage. Latency needs a second hook (`sys_enter`) and
//! a per-thread start time; user space attaches that pair only on request.
use aya_ebpf::{
    bindings::cgroup,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use dsh_ebpf::{SyscallStats, cgroup_mode};

use super::{
    kernel::{atomic_add, config, current_task, log2_bucket, off},
    maps::{SYSCALL_START, SYSCALL_START_SLOTS, SYSCALL_STATS},
};

/// The current task's attribution cgroup, by direct loads. `tp_btf` programs
/// may dereference BTF-typed pointers at constant offsets (the offsets are
/// read-only globals, so constants to the verifier); a fault reads as zero.
#[inline(always)]
unsafe fn current_cgroup_ptr() -> *mut cgroup {
    let task = current_task();
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

#[inline(always)]
unsafe fn stats() -> *mut SyscallStats {
    unsafe { SYSCALL_STATS.get_or_insert_ptr_mut(current_cgroup_ptr(), None) }
}

/// `sys_exit(struct pt_regs *regs, long ret)`: count and errors.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_sys_exit(ctx: BtfTracePointContext) -> u32 {
    let ret: i64 = ctx.arg(1);
    unsafe {
        let s = stats();
        if s.is_null() {
            return 0;
        }
        atomic_add(&raw mut (*s).count, 1);
        if ret < 0 {
            atomic_add(&raw mut (*s).errors, 1);
        }
    }
    0
}

/// `sys_enter(struct pt_regs *regs, long id)`: remember when the thread
/// entered, for `dsh_sys_exit_latency`.
#[btf_tracepoint(function = "sys_enter")]
pub fn dsh_sys_enter_latency(_ctx: BtfTracePointContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(slot) = SYSCALL_START.get_ptr_mut(tid & (SYSCALL_START_SLOTS - 1)) {
        // Only this thread writes this slot (barring a collision, see the map).
        unsafe {
            (*slot).tid = tid;
            (*slot).entered_ns = bpf_ktime_get_ns();
        }
    }
    0
}

/// `dsh_sys_exit` plus the latency histogram; attached instead of it.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_sys_exit_latency(ctx: BtfTracePointContext) -> u32 {
    let ret: i64 = ctx.arg(1);
    let tid = bpf_get_current_pid_tgid() as u32;
    let mut start = None;
    if let Some(slot) = SYSCALL_START.get_ptr_mut(tid & (SYSCALL_START_SLOTS - 1)) {
        unsafe {
            if (*slot).tid == tid && (*slot).entered_ns != 0 {
                start = Some((*slot).entered_ns);
                // Consumed: a later exit without an enter (the programs were
                // attached mid-syscall) must not reuse it.
                (*slot).entered_ns = 0;
            }
        }
    }
    unsafe {
        let s = stats();
        if s.is_null() {
            return 0;
        }
        atomic_add(&raw mut (*s).count, 1);
        if ret < 0 {
            atomic_add(&raw mut (*s).errors, 1);
        }
        if let Some(start) = start {
            let b = log2_bucket(bpf_ktime_get_ns().wrapping_sub(start));
            atomic_add(&raw mut (*s).latency[b], 1);
        }
    }
    0
}

/// Does nothing: attached only by `cargo xtask bench`, to measure the floor
/// (what any program on this hook costs on this kernel).
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_bench_empty(_ctx: BtfTracePointContext) -> u32 {
    0
}
