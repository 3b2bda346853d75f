//! `dsh trace`: per-syscall counts, errnos and latency for one cgroup.
//!
//! Attached only while a trace runs, and then filtered in the kernel to the
//! traced cgroup, so tracing costs nothing otherwise and little to others.
//! Per-CPU maps: no atomics on this path.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use dsh_ebpf::{TRACE_BUCKETS, TRACE_START_SLOTS, TraceSyscall, trace_bucket};

use super::{
    kernel::current_cgroup_id,
    maps::{TRACE_ERRNOS, TRACE_START, TRACE_SYSCALLS, TRACE_TARGET},
};

/// A zeroed value to insert from: it is too big for the 512-byte stack.
static ZERO: TraceSyscall = TraceSyscall::ZERO;

#[inline(always)]
fn traced() -> bool {
    match TRACE_TARGET.get(0) {
        Some(&target) => target != 0 && current_cgroup_id() == target,
        None => false,
    }
}

/// `sys_enter(struct pt_regs *regs, long id)`.
#[btf_tracepoint(function = "sys_enter")]
pub fn dsh_trace_enter(ctx: BtfTracePointContext) -> u32 {
    if !traced() {
        return 0;
    }
    let nr: i64 = ctx.arg(1);
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(slot) = TRACE_START.get_ptr_mut(tid & (TRACE_START_SLOTS - 1)) {
        unsafe {
            (*slot).tid = tid;
            (*slot).nr = nr as u32;
            (*slot).entered_ns = bpf_ktime_get_ns();
        }
    }
    0
}

/// `sys_exit(struct pt_regs *regs, long ret)`.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_trace_exit(ctx: BtfTracePointContext) -> u32 {
    if !traced() {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(slot) = TRACE_START.get_ptr_mut(tid & (TRACE_START_SLOTS - 1)) else {
        return 0;
    };
    let (nr, entered) = unsafe {
        if (*slot).tid != tid || (*slot).entered_ns == 0 {
            return 0; // entered before the trace began
        }
        let v = ((*slot).nr, (*slot).entered_ns);
        (*slot).entered_ns = 0;
        v
    };
    let ns = unsafe { bpf_ktime_get_ns() }.wrapping_sub(entered);
    let s = match TRACE_SYSCALLS.get_ptr_mut(&nr) {
        Some(s) => s,
        None => {
            if TRACE_SYSCALLS.insert(&nr, &ZERO, 0).is_err() {
                return 0;
            }
            match TRACE_SYSCALLS.get_ptr_mut(&nr) {
                Some(s) => s,
                None => return 0,
            }
        }
    };
    let b = trace_bucket(ns);
    unsafe {
        (*s).count += 1;
        if ns > (*s).max_ns {
            (*s).max_ns = ns;
        }
        // Re-checked for the verifier, which cannot see trace_bucket's clamp.
        if b < TRACE_BUCKETS {
            (*s).latency[b] += 1;
        }
        if ret < 0 {
            (*s).errors += 1;
        }
    }
    if ret < 0 {
        let key = ((nr as u64) << 32) | ((-ret) as u64 & 0xffff_ffff);
        match TRACE_ERRNOS.get_ptr_mut(&key) {
            Some(c) => unsafe { *c += 1 },
            None => {
                let _ = TRACE_ERRNOS.insert(&key, &1, 0);
            }
        }
    }
    0
}
