//! Emitting records into the two ring buffers, counting every loss.
use aya_ebpf::{
    btf_maps::RingBuf,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    maps::ring_buf::RingBufEntry,
};
use dsh_ebpf::{CgroupEvent, EventHeader, ExecEvent, ExitEvent, ListenEvent, channel};

use super::{
    kernel::{Plain, boot_ns, cpu, current_cgroup_id},
    maps::{CHANNEL_STATS, CHATTY_EVENTS, CHATTY_RING_BYTES, CRITICAL_EVENTS, CRITICAL_RING_BYTES},
    wakeup::submit_flags,
};

// SAFETY: the event records are repr(C) structs of integers and integer
// arrays (see dsh_ebpf): every bit pattern, all zeros included, is valid.
unsafe impl Plain for ExecEvent {}
// SAFETY: as above.
unsafe impl Plain for ExitEvent {}
// SAFETY: as above.
unsafe impl Plain for CgroupEvent {}
// SAFETY: as above.
unsafe impl Plain for ListenEvent {}

#[inline(always)]
fn count(chan: u32, lost: bool) {
    if let Some(stats) = CHANNEL_STATS.get_ptr_mut(chan) {
        // SAFETY: this CPU's slot of a per-CPU array; programs do not nest
        // on a CPU, so nothing else writes it meanwhile.
        let stats = unsafe { &mut *stats };
        if lost {
            stats.lost += 1;
        } else {
            stats.events += 1;
        }
    }
}

/// A header describing the current task.
#[inline(always)]
pub fn header(kind: u32) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        kind,
        cpu: cpu(),
        ts_ns: boot_ns(),
        cgroup_id: current_cgroup_id(),
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    }
}

/// Reserves a `T` on `chan`, zeroes it, lets `fill` write it, and submits
/// it. A full buffer is counted as a loss on that channel, never dropped
/// silently.
///
/// `fill` is called in one place whatever the channel: a closure called on
/// two paths may be outlined into a BPF subprogram, and the verifier
/// rejects one that returns with a stack pointer left in R0.
#[inline(always)]
pub fn emit<T: Plain + 'static>(chan: u32, fill: impl FnOnce(&mut T)) {
    let reserved = if chan == channel::CRITICAL {
        reserve::<T, CRITICAL_RING_BYTES>(&CRITICAL_EVENTS)
    } else {
        reserve::<T, CHATTY_RING_BYTES>(&CHATTY_EVENTS)
    };
    let Some((mut entry, flags)) = reserved else {
        count(chan, true);
        return;
    };
    // Records are too big for the 512-byte stack: they are written in
    // place. Zeroed first, so no field is left holding an older record.
    // SAFETY: the reservation is a writable, aligned T-sized region, and a
    // zeroed `Plain` value is a valid T.
    let record = unsafe {
        core::ptr::write_bytes(entry.as_mut_ptr(), 0, 1);
        entry.assume_init_mut()
    };
    fill(record);
    entry.submit(flags);
    count(chan, false);
}

/// A `T`-sized reservation on `ring` and the flags to submit it with.
#[inline(always)]
fn reserve<T: 'static, const BYTES: usize>(
    ring: &RingBuf<u8, BYTES>,
) -> Option<(RingBufEntry<T>, u64)> {
    let entry = ring.reserve_untyped::<T>(0)?;
    Some((entry, submit_flags(ring)))
}
