//! Emitting records into the two ring buffers, counting every loss.
use aya_ebpf::{
    btf_maps::RingBuf,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_smp_processor_id,
        bpf_ktime_get_boot_ns,
    },
};
use dsh_ebpf::{EventHeader, channel};

use super::{
    kernel::current_cgroup_id,
    maps::{CHANNEL_STATS, CHATTY_EVENTS, CRITICAL_EVENTS},
    wakeup::submit_flags,
};

#[inline(always)]
fn count(chan: u32, lost: bool) {
    if let Some(stats) = CHANNEL_STATS.get_ptr_mut(chan) {
        // Per-CPU slot: no other CPU writes it, a plain add is exact.
        unsafe {
            if lost {
                (*stats).lost += 1;
            } else {
                (*stats).events += 1;
            }
        }
    }
}

/// A header describing the current task.
#[inline(always)]
pub fn header(kind: u32) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        kind,
        cpu: unsafe { bpf_get_smp_processor_id() },
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id: current_cgroup_id(),
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
    }
}

/// Reserves a `T` on `chan`, lets `fill` write it, and submits it. A full
/// buffer is counted as a loss on that channel, never dropped silently.
#[inline(always)]
pub fn emit<T: 'static>(chan: u32, fill: impl FnOnce(*mut T)) {
    let ring: &RingBuf<u8, { 4 << 20 }> = if chan == channel::CRITICAL {
        &CRITICAL_EVENTS
    } else {
        &CHATTY_EVENTS
    };
    match ring.reserve_untyped::<T>(0) {
        Some(mut entry) => {
            fill(entry.as_mut_ptr());
            entry.submit(submit_flags(ring));
            count(chan, false);
        }
        None => count(chan, true),
    }
}
