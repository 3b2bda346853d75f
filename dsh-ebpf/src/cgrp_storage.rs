//! The `dsh-cgrp-storage` object: syscall counters in cgroup local storage,
//! for kernels that have it (6.2+). Kept apart from the main object
//! (`main.rs`) because a loader creates every map of an object, and a
//! `BPF_MAP_TYPE_CGRP_STORAGE` map cannot be created on older kernels.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// See main.rs: `atomic_xadd` lowers to BPF's `lock add`.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(
    target_arch = "bpf",
    expect(internal_features, reason = "atomic_xadd, see main.rs")
)]

/// The modules this object shares with the main one, from `programs/`.
#[cfg(target_arch = "bpf")]
mod programs {
    mod cgrp_storage;
    #[allow(dead_code, reason = "shared with the main object, which uses the rest")]
    mod failures;
    #[allow(dead_code, reason = "shared with the main object, which uses the rest")]
    pub mod kernel;
    mod runtime;
    mod syscall_start;
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
