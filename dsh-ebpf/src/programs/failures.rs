//! Counting what the programs could not do (`dsh_ebpf::failure`), so a
//! missing event or counter shows in `dsh status` instead of vanishing.
use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use dsh_ebpf::failure;

use super::kernel::Failure;

/// Indexed by `failure::*`; per CPU, so a plain add is exact.
#[btf_map]
pub static FAILURES: PerCpuArray<u64, { failure::COUNT as usize }> = PerCpuArray::new();

#[inline(always)]
pub fn count(f: Failure) {
    if let Some(n) = FAILURES.get_ptr_mut(f.0) {
        // SAFETY: this CPU's slot of a per-CPU array; programs do not nest
        // on a CPU (tracepoints run them with preemption off), so nothing
        // else writes it meanwhile.
        unsafe { *n += 1 };
    }
}

/// Runs a program's fallible body and counts its failure, if any.
#[inline(always)]
pub fn counted(r: Result<(), Failure>) -> u32 {
    if let Err(f) = r {
        count(f);
    }
    0
}
