//! When each thread entered its current syscall, for latency histograms.
//! Each object that counts syscalls has its own table.
use aya_ebpf::{btf_maps::Array, helpers::bpf_get_current_pid_tgid, macros::btf_map};
use dsh_ebpf::SyscallStart;

use super::kernel::now_ns;

/// Slots of the table (a power of two).
const SLOTS: u32 = 65536;

/// `sys_enter` time per thread: slot `tid % SLOTS`, tagged with the tid. An
/// array, not a hash: the verifier inlines array lookups into an address
/// computation, while a hash insert and delete per syscall cost more than
/// everything else on the path. Two threads whose ids collide in the same
/// slot while both are inside a syscall lose one sample (the tag no longer
/// matches); counting is unaffected.
#[btf_map]
pub static SYSCALL_START: Array<SyscallStart, { SLOTS as usize }> = Array::new();

/// Remembers that the current thread entered a syscall now.
#[inline(always)]
pub fn record_enter() {
    let tid = bpf_get_current_pid_tgid() as u32;
    if let Some(slot) = SYSCALL_START.get_ptr_mut(tid & (SLOTS - 1)) {
        // SAFETY: a valid, aligned array slot. Only this thread writes it,
        // barring a collision of thread ids in one slot (see the map).
        let slot = unsafe { &mut *slot };
        slot.tid = tid;
        slot.entered_ns = now_ns();
    }
}

/// How long the current thread has been in its syscall, if its entry was
/// seen; consumes the entry.
#[inline(always)]
pub fn take_elapsed() -> Option<u64> {
    let tid = bpf_get_current_pid_tgid() as u32;
    let slot = SYSCALL_START.get_ptr_mut(tid & (SLOTS - 1))?;
    // SAFETY: as in `record_enter`.
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
