//! Reading kernel structs at offsets user space resolved from BTF.
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_task_btf, bpf_probe_read_kernel,
};
use dsh_ebpf::{KernelOffsets, ProbeConfig, cgroup_mode};

/// Filled in by the loader (`EbpfLoader::set_global`). Read-only, so the
/// verifier knows every offset as a constant.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_comm: 0,
    task_cgroups: 0,
    task_exit_code: 0,
    task_signal: 0,
    task_real_parent: 0,
    task_mm: 0,
    task_start_time: 0,
    css_set_dfl_cgrp: 0,
    css_set_subsys_v1: 0,
    css_cgroup: 0,
    cgroup_kn: 0,
    cgroup_level: 0,
    cgroup_root: 0,
    cgroup_root_hierarchy_id: 0,
    kernfs_node_id: 0,
    signal_live: 0,
    mm_total_vm: 0,
    mm_rss_stat: 0,
    percpu_counter_size: 0,
    percpu_counter_count: 0,
    request_cmd_flags: 0,
    request_data_len: 0,
    request_bio: 0,
    bio_blkg: 0,
    blkg_blkcg: 0,
    blkcg_css: 0,
    binprm_filename: 0,
    skc_family: 0,
    skc_num: 0,
    skc_rcv_saddr: 0,
    skc_v6_rcv_saddr: 0,
    _pad: 0,
};

#[unsafe(no_mangle)]
static CONFIG: ProbeConfig = ProbeConfig {
    cgroup_mode: 0,
    has_blkcg: 0,
};

/// Reads one offset. `read_volatile` keeps the compiler from folding the
/// zero initialiser above into the code: the value must come from the map.
macro_rules! off {
    ($field:ident) => {
        $crate::programs::kernel::read_offset(&raw const $crate::programs::kernel::OFFSETS.$field)
    };
}
pub(crate) use off;

#[inline(always)]
pub fn read_offset(field: *const u32) -> usize {
    unsafe { core::ptr::read_volatile(field) as usize }
}

#[inline(always)]
pub fn config() -> ProbeConfig {
    unsafe { core::ptr::read_volatile(&raw const CONFIG) }
}

/// `*(T *)(base + off)`, through `bpf_probe_read_kernel` so any pointer works.
#[inline(always)]
pub unsafe fn read<T: Copy>(base: *const u8, off: usize) -> Result<T, i64> {
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const T) }.map_err(|e| e as i64)
}

/// The `struct cgroup *` dsh attributes a task to (see `cgroup_mode`).
#[inline(always)]
pub unsafe fn task_cgroup(task: *const u8) -> Result<*const u8, i64> {
    let css_set: *const u8 = unsafe { read(task, off!(task_cgroups)) }?;
    if config().cgroup_mode == cgroup_mode::V1_SUBSYS {
        let css: *const u8 = unsafe { read(css_set, off!(css_set_subsys_v1)) }?;
        unsafe { read(css, off!(css_cgroup)) }
    } else {
        unsafe { read(css_set, off!(css_set_dfl_cgrp)) }
    }
}

/// A cgroup's id: its kernfs node id, the inode number of its directory.
#[inline(always)]
pub unsafe fn cgroup_id(cgrp: *const u8) -> Result<u64, i64> {
    let kn: *const u8 = unsafe { read(cgrp, off!(cgroup_kn)) }?;
    unsafe { read(kn, off!(kernfs_node_id)) }
}

#[inline(always)]
pub unsafe fn task_cgroup_id(task: *const u8) -> u64 {
    match unsafe { task_cgroup(task) } {
        Ok(cgrp) => unsafe { cgroup_id(cgrp) }.unwrap_or(0),
        Err(_) => 0,
    }
}

#[inline(always)]
pub fn current_task() -> *const u8 {
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// The current task's cgroup id; the helper is cheapest where it applies.
#[inline(always)]
pub fn current_cgroup_id() -> u64 {
    if config().cgroup_mode == cgroup_mode::V1_SUBSYS {
        unsafe { task_cgroup_id(current_task()) }
    } else {
        unsafe { bpf_get_current_cgroup_id() }
    }
}

/// Atomic `*dst += v`, shared between CPUs.
#[inline(always)]
pub unsafe fn atomic_add(dst: *mut u64, v: u64) {
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            dst, v,
        )
    };
}

/// Log2 bucket of a duration in ns, clamped to the histogram's size.
#[inline(always)]
pub fn log2_bucket(ns: u64) -> usize {
    let b = (64 - ns.leading_zeros()) as usize;
    let b = b.saturating_sub(1);
    if b >= dsh_ebpf::LATENCY_BUCKETS {
        dsh_ebpf::LATENCY_BUCKETS - 1
    } else {
        b
    }
}
