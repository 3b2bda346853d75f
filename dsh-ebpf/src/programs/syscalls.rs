//! Per-cgroup syscall counts, errors and (optionally) latency, for kernels
//! without cgroup local storage (from 5.8), or when asked for.
//!
//! Counters live in a per-CPU hash keyed by cgroup id. A hash lookup per
//! syscall would cost about twice what the cgroup-storage path adds, so a
//! per-CPU one-slot cache sits in front: the cgroup this CPU counted last,
//! with that cgroup's complete counters on this CPU. Consecutive syscalls of
//! one cgroup on a CPU (the common case: a CPU switches cgroups only when it
//! switches tasks) cost an array lookup and two adds; on a switch, the slot
//! is written back to the hash and reloaded for the new cgroup.
//!
//! Everything is per CPU: no atomics, and programs do not nest on a CPU.
//! The write-back is a copy, never an add, so the hash only ever holds an
//! older snapshot of the slot's counters; user space keeps the newer of the
//! two per CPU (see `SyscallCacheSlot`).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{EMFILE_RET, ENFILE_RET, SyscallCacheSlot, SyscallStats, failure};

use super::{
    failures::count,
    kernel::{Failure, current_cgroup_id, log2_bucket},
    maps::{SYSCALL_CACHE, SYSCALL_COUNTS, get_or_insert_zeroed},
    syscall_start::{record_enter, take_elapsed},
};

/// A zeroed value to insert from (kept off the 512-byte stack).
static ZERO: SyscallStats = SyscallStats::ZERO;

/// The current cgroup's counters on this CPU, through the cache slot.
#[inline(always)]
fn current_stats() -> Option<&'static mut SyscallStats> {
    let id = current_cgroup_id();
    let slot = SYSCALL_CACHE.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot of a per-CPU array; programs do not nest on a
    // CPU (tracepoints run them with preemption off), so nothing else
    // touches it while this program runs.
    let slot = unsafe { &mut *slot };
    if slot.cgroup_id != id {
        switch(slot, id);
    }
    Some(&mut slot.stats)
}

/// Writes the slot back to the hash and loads `id`'s counters into it.
#[inline(always)]
fn switch(slot: &mut SyscallCacheSlot, id: u64) {
    if slot.cgroup_id != 0 {
        // Absent when the cgroup was removed meanwhile (cgroup_rmdir
        // deletes its entry): its counters go with it.
        if let Some(stored) = SYSCALL_COUNTS.get_ptr_mut(slot.cgroup_id) {
            // SAFETY: this CPU's value in a per-CPU hash (see above).
            unsafe { *stored = slot.stats };
        }
    }
    slot.cgroup_id = id;
    match get_or_insert_zeroed(&SYSCALL_COUNTS, &id, &ZERO) {
        // SAFETY: as above.
        Some(stored) => slot.stats = unsafe { *stored },
        None => {
            // No room: the slot still counts (and user space reads it),
            // but the counts are lost when the CPU moves on.
            count(Failure(failure::SYSCALL_COUNTERS_FULL));
            slot.stats = SyscallStats::ZERO;
        }
    }
}

/// Counts one syscall of the current cgroup; `elapsed` adds a latency
/// sample.
#[inline(always)]
fn record(ret: i64, elapsed: Option<u64>) {
    let Some(s) = current_stats() else { return };
    s.count += 1;
    if ret < 0 {
        s.errors += 1;
        if ret == EMFILE_RET || ret == ENFILE_RET {
            s.fd_limit_errors += 1;
        }
    }
    if let Some(ns) = elapsed {
        s.latency[log2_bucket(ns)] += 1;
    }
}

/// `sys_exit(struct pt_regs *regs, long ret)`: count and errors.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_sys_exit_hash(ctx: BtfTracePointContext) -> u32 {
    record(ctx.arg(1), None);
    0
}

/// `sys_enter(struct pt_regs *regs, long id)`: remember when the thread
/// entered, for `dsh_sys_exit_latency_hash`.
#[btf_tracepoint(function = "sys_enter")]
pub fn dsh_sys_enter_latency_hash(_ctx: BtfTracePointContext) -> u32 {
    record_enter();
    0
}

/// `dsh_sys_exit_hash` plus the latency histogram; attached instead of it.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_sys_exit_latency_hash(ctx: BtfTracePointContext) -> u32 {
    record(ctx.arg(1), take_elapsed());
    0
}

/// Does nothing: attached only by `cargo xtask bench`, to measure the floor
/// (what any program on this hook costs on this kernel).
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_bench_empty(_ctx: BtfTracePointContext) -> u32 {
    0
}
