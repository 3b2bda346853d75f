//! Per-cgroup syscall counters in cgroup local storage (kernels >= 6.2).
//!
//! The hot path is one hook, `sys_exit`: it sees the return value, so count
//! and errors need no `sys_enter` program. It reaches the counters without a
//! hash lookup: task → css_set → cgroup by direct BTF loads, then the
//! cgroup's local storage. These programs are a separate object
//! (`dsh-cgrp-storage`): creating a `BPF_MAP_TYPE_CGRP_STORAGE` map fails on
//! older kernels, and a loader creates every map of an object it loads.
use aya_ebpf::btf_maps::CgrpStorage;
use aya_ebpf::{
    bindings::cgroup,
    helpers::bpf_get_current_task_btf,
    macros::{btf_map, btf_tracepoint},
    programs::BtfTracePointContext,
};
use dsh_ebpf::{EMFILE_RET, ENFILE_RET, SyscallStats, cgroup_mode, failure};

use super::{
    failures::count,
    kernel::{Failure, atomic_add, config, log2_bucket, off},
    syscall_start::{record_enter, take_elapsed},
};

#[btf_map]
pub static SYSCALL_STATS: CgrpStorage<SyscallStats> = CgrpStorage::new();

/// The current task's attribution cgroup, by direct loads.
#[inline(always)]
fn current_cgroup_ptr() -> *mut cgroup {
    // SAFETY: the helper takes no arguments. It exists from 5.11, and this
    // object is only loaded on kernels with cgroup local storage (6.2).
    let task = unsafe { bpf_get_current_task_btf() }
        .cast::<u8>()
        .cast_const();
    // SAFETY: `task` is a BTF pointer and the offsets are constants to the
    // verifier, which checks each load against the kernel's BTF and turns it
    // into a load that reads zero on a fault.
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

/// Counts one syscall of the current cgroup; `elapsed` adds a latency
/// sample.
#[inline(always)]
fn record(ret: i64, elapsed: Option<u64>) {
    // SAFETY: the helper checks the cgroup pointer's BTF type; the verifier
    // rejects anything but a `struct cgroup *`.
    let s = unsafe { SYSCALL_STATS.get_or_insert_ptr_mut(current_cgroup_ptr(), None) };
    if s.is_null() {
        count(Failure(failure::SYSCALL_COUNTERS_FULL));
        return;
    }
    // SAFETY: `s` is the cgroup's storage value, valid while the program
    // runs; every CPU updates it, hence the atomic adds.
    unsafe {
        atomic_add(&raw mut (*s).count, 1);
        if ret < 0 {
            atomic_add(&raw mut (*s).errors, 1);
            if ret == EMFILE_RET || ret == ENFILE_RET {
                atomic_add(&raw mut (*s).fd_limit_errors, 1);
            }
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
    record_enter();
    0
}

/// `dsh_sys_exit` plus the latency histogram; attached instead of it.
#[btf_tracepoint(function = "sys_exit")]
pub fn dsh_sys_exit_latency(ctx: BtfTracePointContext) -> u32 {
    record(ctx.arg(1), take_elapsed());
    0
}
