//! `dsh trace`: per-syscall counts, errnos and latency for one cgroup.
//!
//! Attached only while a trace runs, and then filtered in the kernel to the
//! traced cgroup, so tracing costs nothing otherwise and little to others.
//! Per-CPU maps: no atomics on this path.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use dsh_ebpf::{TRACE_BUCKETS, TRACE_START_SLOTS, TraceSyscall, failure, trace_bucket};

use super::{
    failures::counted,
    kernel::{Failure, current_cgroup_id, now_ns},
    maps::{TRACE_ERRNOS, TRACE_START, TRACE_SYSCALLS, TRACE_TARGET, get_or_insert_zeroed},
};

/// A zeroed value to insert from: it is too big for the 512-byte stack.
static ZERO: TraceSyscall = TraceSyscall::ZERO;
static ZERO_COUNT: u64 = 0;

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
        // SAFETY: a valid, aligned array slot. Only this thread writes it,
        // barring a collision of thread ids in one slot, which the tid tag
        // makes the exit side ignore.
        let slot = unsafe { &mut *slot };
        slot.tid = tid;
        slot.nr = nr as u32;
        slot.entered_ns = now_ns();
    }
    0
}

/// `sys_exit(struct pt_regs *regs, long ret)`.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_trace_exit(ctx: BtfTracePointContext) -> u32 {
    if !traced() {
        return 0;
    }
    counted(try_exit(ctx.arg(1)))
}

fn try_exit(ret: i64) -> Result<(), Failure> {
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(slot) = TRACE_START.get_ptr_mut(tid & (TRACE_START_SLOTS - 1)) else {
        return Ok(());
    };
    // SAFETY: as in `dsh_trace_enter`.
    let slot = unsafe { &mut *slot };
    if slot.tid != tid || slot.entered_ns == 0 {
        return Ok(()); // entered before the trace began
    }
    let (nr, entered) = (slot.nr, slot.entered_ns);
    slot.entered_ns = 0;
    let ns = now_ns().wrapping_sub(entered);
    let s = get_or_insert_zeroed(&TRACE_SYSCALLS, &nr, &ZERO)
        .ok_or(Failure(failure::TRACE_SYSCALLS_FULL))?;
    // SAFETY: this CPU's value in a per-CPU hash; programs do not nest on a
    // CPU, so nothing else writes it meanwhile.
    let s = unsafe { &mut *s };
    s.count += 1;
    if ns > s.max_ns {
        s.max_ns = ns;
    }
    let b = trace_bucket(ns);
    // Re-checked for the verifier, which cannot see trace_bucket's clamp.
    if b < TRACE_BUCKETS {
        s.latency[b] += 1;
    }
    if ret < 0 {
        s.errors += 1;
        let key = ((nr as u64) << 32) | ((-ret) as u64 & 0xffff_ffff);
        let c = get_or_insert_zeroed(&TRACE_ERRNOS, &key, &ZERO_COUNT)
            .ok_or(Failure(failure::TRACE_ERRNOS_FULL))?;
        // SAFETY: as above.
        unsafe { *c += 1 };
    }
    Ok(())
}
