//! When a ring-buffer submit wakes the reader.
//!
//! A waking submit queues an irq_work to wake the agent's epoll: a few
//! microseconds per event, most of what an exec or exit program costs when
//! events are frequent. The agent reads the rings on a short timer anyway
//! (it holds events ~100 ms to put them in order), so records are submitted
//! without a wake-up, unless the ring is filling up faster than the timer
//! drains it: past a quarter full, the submit wakes the reader at once.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    btf_maps::RingBuf,
    helpers::bpf_ringbuf_query,
};

/// The flags for a submit to `ring` (`BYTES` long).
#[inline(always)]
pub fn submit_flags<T, const BYTES: usize>(ring: &RingBuf<T, BYTES>) -> u64 {
    let map = core::ptr::from_ref(ring).cast_mut().cast();
    // SAFETY: `map` is the address of a ring-buffer map definition, which
    // the loader relocates to the map itself; the query only reads it.
    let pending = unsafe { bpf_ringbuf_query(map, BPF_RB_AVAIL_DATA.into()) };
    if pending > (BYTES / 4) as u64 {
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}
