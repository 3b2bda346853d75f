//! Reading kernel memory and the loader's read-only globals.
//!
//! Kernel structs are read at offsets user space resolved from BTF (the Rust
//! eBPF compiler emits no CO-RE relocations). Every read goes through
//! `bpf_probe_read_kernel`, which copies on the kernel's no-fault path: a bad
//! address makes it return -EFAULT, it cannot fault. That is what makes
//! `read` safe to call with any pointer.
use aya_ebpf::{
    Global,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_smp_processor_id,
        bpf_ktime_get_boot_ns, bpf_ktime_get_ns, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes,
    },
};
use dsh_ebpf::{KernelOffsets, ProbeConfig, cgroup_mode, failure};

/// Filled in by the loader (`EbpfLoader::override_global`). Read-only, so
/// the verifier knows every offset as a constant.
/// Not all zeros: see `CONFIG`.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: u32::MAX,
    task_tgid: 0,
    task_comm: 0,
    task_cgroups: 0,
    task_exit_code: 0,
    task_signal: 0,
    task_real_parent: 0,
    task_start_time: 0,
    css_set_dfl_cgrp: 0,
    css_set_subsys_v1: 0,
    css_set_subsys_memory: 0,
    css_cgroup: 0,
    memcg_usage: 0,
    memcg_max: 0,
    cgroup_kn: 0,
    cgroup_level: 0,
    cgroup_root: 0,
    cgroup_root_hierarchy_id: 0,
    kernfs_node_id: 0,
    kernfs_node_name: 0,
    signal_live: 0,
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
    sk_err: 0,
    skc_state: 0,
    skc_daddr: 0,
    skc_v6_daddr: 0,
    skc_dport: 0,
    sk_cgroup: 0,
};

/// Loader choices; read-only, so the verifier prunes the branches not taken.
///
/// Not all zeros (nor is `OFFSETS`): the compiler merges identical
/// read-only constants, and a program's all-zero constant of the same size
/// (a map value's `ZERO`) would then be this global's bytes, which the
/// loader overwrites. A 32-byte `ZERO` read back as the config was seen.
#[unsafe(no_mangle)]
static CONFIG: Global<ProbeConfig> = Global::new(ProbeConfig {
    cgroup_mode: u32::MAX,
    has_blkcg: 0,
    oom_victim_arg: 0,
    block_rq_issue_arg: 0,
    has_memcg: 0,
    page_shift: 0,
    has_tcp_sock: 0,
    sk_cgroup_mode: 0,
});

/// One offset from `OFFSETS`, as a `usize`.
macro_rules! off {
    ($field:ident) => {
        $crate::programs::kernel::read_offset(&$crate::programs::kernel::OFFSETS.$field)
    };
}
pub(crate) use off;

/// Reads one field of `OFFSETS`. Volatile, so the compiler cannot fold the
/// zero initialiser above into the code: the value must come from the map.
#[inline(always)]
pub fn read_offset(field: &u32) -> usize {
    // SAFETY: a reference is valid and aligned for a read.
    unsafe { core::ptr::read_volatile(field) as usize }
}

#[inline(always)]
pub fn config() -> ProbeConfig {
    CONFIG.load()
}

/// Why a program could not finish its work: one of `dsh_ebpf::failure`,
/// counted by `failures::count`.
#[derive(Clone, Copy)]
pub struct Failure(pub u32);

/// Types a kernel read may produce.
///
/// # Safety
///
/// Implement only for types for which every bit pattern is a valid value.
pub unsafe trait Plain: Copy {}
// SAFETY: integers and raw pointers are valid for every bit pattern.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for i32 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl Plain for i64 {}
// SAFETY: as above.
unsafe impl Plain for u64 {}
// SAFETY: as above.
unsafe impl Plain for *const u8 {}
// SAFETY: an array of bytes is valid for every bit pattern.
unsafe impl<const N: usize> Plain for [u8; N] {}

/// `*(T *)(base + off)`, for any `base`: a bad address is an error, never a
/// fault.
#[inline(always)]
pub fn read<T: Plain>(base: *const u8, off: usize) -> Result<T, Failure> {
    // SAFETY: bpf_probe_read_kernel copies with copy_from_kernel_nofault and
    // returns -EFAULT for an address it cannot read; whatever bytes it copies
    // are a valid T (`Plain`).
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off).cast::<T>()) }
        .map_err(|_| Failure(failure::KERNEL_READ))
}

/// Copies the NUL-terminated kernel string at `src` into `dst`; `dst` holds
/// an empty string when `src` cannot be read.
#[inline(always)]
// `allow`, not `expect`: the cgroup-storage object compiles this file
// without calling `read_str`, and the lint is not raised there.
#[allow(
    clippy::not_unsafe_ptr_arg_deref,
    reason = "the pointer only reaches the helper, which reads without faulting"
)]
pub fn read_str(src: *const u8, dst: &mut [u8]) {
    // SAFETY: like `read`, the helper reads on the no-fault path and writes
    // at most `dst.len()` bytes into `dst`.
    if unsafe { bpf_probe_read_kernel_str_bytes(src, dst) }.is_err()
        && let Some(first) = dst.first_mut()
    {
        *first = 0;
    }
}

/// The `struct cgroup *` dsh attributes a task to (see `cgroup_mode`).
#[inline(always)]
pub fn task_cgroup(task: *const u8) -> Result<*const u8, Failure> {
    let css_set: *const u8 = read(task, off!(task_cgroups))?;
    if config().cgroup_mode == cgroup_mode::V1_SUBSYS {
        let css: *const u8 = read(css_set, off!(css_set_subsys_v1))?;
        read(css, off!(css_cgroup))
    } else {
        read(css_set, off!(css_set_dfl_cgrp))
    }
}

/// A cgroup's id: its kernfs node id, the inode number of its directory.
#[inline(always)]
pub fn cgroup_id(cgrp: *const u8) -> Result<u64, Failure> {
    let kn: *const u8 = read(cgrp, off!(cgroup_kn))?;
    read(kn, off!(kernfs_node_id))
}

/// A task's attribution cgroup id; 0 (and a counted failure) when its
/// structs cannot be read.
#[inline(always)]
pub fn task_cgroup_id(task: *const u8) -> u64 {
    match task_cgroup(task).and_then(cgroup_id) {
        Ok(id) => id,
        Err(f) => {
            super::failures::count(f);
            0
        }
    }
}

/// The current task, as an address to `read` from. `bpf_get_current_task`
/// (4.8), not the BTF-typed `bpf_get_current_task_btf` (5.11): every use
/// here reads through `bpf_probe_read_kernel` anyway.
#[inline(always)]
pub fn current_task() -> *const u8 {
    // SAFETY: the helper takes no arguments.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// The current task's cgroup id; the helper is cheapest where it applies.
#[inline(always)]
pub fn current_cgroup_id() -> u64 {
    if config().cgroup_mode == cgroup_mode::V1_SUBSYS {
        task_cgroup_id(current_task())
    } else {
        // SAFETY: the helper takes no arguments.
        unsafe { bpf_get_current_cgroup_id() }
    }
}

/// `bpf_ktime_get_ns()`: monotonic ns, for durations.
#[inline(always)]
pub fn now_ns() -> u64 {
    // SAFETY: the helper takes no arguments.
    unsafe { bpf_ktime_get_ns() }
}

/// `bpf_ktime_get_boot_ns()`: ns since boot, suspend included.
#[inline(always)]
pub fn boot_ns() -> u64 {
    // SAFETY: the helper takes no arguments.
    unsafe { bpf_ktime_get_boot_ns() }
}

#[inline(always)]
pub fn cpu() -> u32 {
    // SAFETY: the helper takes no arguments.
    unsafe { bpf_get_smp_processor_id() }
}

/// Atomic `*dst += v`, for values several CPUs update.
///
/// # Safety
///
/// `dst` must point to a `u64` in map memory (valid, 8-byte aligned).
#[inline(always)]
pub unsafe fn atomic_add(dst: *mut u64, v: u64) {
    // SAFETY: the caller passes a valid, aligned map value.
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
