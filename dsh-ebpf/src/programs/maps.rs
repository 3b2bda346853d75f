//! The main object's shared maps. Sizes are bounded; per-cgroup entries are
//! deleted by the `cgroup_rmdir` program.
use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST},
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    macros::btf_map,
};
use dsh_ebpf::{
    BlockStats, ChannelStats, InflightRequest, MAX_BLOCK_CGROUPS, MAX_INFLIGHT,
    MAX_SYSCALL_CGROUPS, MAX_TRACE_ERRNOS, MAX_TRACE_SYSCALLS, OOM_SLOTS, OomEvent,
    SyscallCacheSlot, SyscallStats, TRACE_START_SLOTS, TraceStart, TraceSyscall, channel,
};

/// 4 MiB: about 60,000 exit records, several seconds of a fork storm.
pub const CRITICAL_RING_BYTES: usize = 4 << 20;
pub const CHATTY_RING_BYTES: usize = 4 << 20;

/// Syscall counters without cgroup local storage: cgroup id → this CPU's
/// counters (see `syscalls`). Allocated per entry, not up front: a value is
/// 272 bytes on every CPU.
#[btf_map]
pub static SYSCALL_COUNTS: PerCpuHashMap<
    u64,
    SyscallStats,
    MAX_SYSCALL_CGROUPS,
    { BPF_F_NO_PREALLOC as usize },
> = PerCpuHashMap::new();

/// The one-slot cache in front of `SYSCALL_COUNTS`, per CPU.
#[btf_map]
pub static SYSCALL_CACHE: PerCpuArray<SyscallCacheSlot, 1> = PerCpuArray::new();

/// `dsh trace`: the traced cgroup's id in slot 0 (0: none). A map, not a
/// global: user space changes it while the programs run.
#[btf_map]
pub static TRACE_TARGET: Array<u64, 1> = Array::new();

/// `dsh trace`: syscall entry per thread (tagged like `SYSCALL_START`).
#[btf_map]
pub static TRACE_START: Array<TraceStart, { TRACE_START_SLOTS as usize }> = Array::new();

/// `dsh trace`: syscall nr → figures.
#[btf_map]
pub static TRACE_SYSCALLS: PerCpuHashMap<u32, TraceSyscall, MAX_TRACE_SYSCALLS> =
    PerCpuHashMap::new();

/// `dsh trace`: (nr << 32 | errno) → count.
#[btf_map]
pub static TRACE_ERRNOS: PerCpuHashMap<u64, u64, MAX_TRACE_ERRNOS> = PerCpuHashMap::new();

/// Cgroup id → block counters. Keyed by the request's blkcg id or, failing
/// that, the issuing task's cgroup id.
#[btf_map]
pub static BLOCK_STATS: PerCpuHashMap<u64, BlockStats, MAX_BLOCK_CGROUPS> = PerCpuHashMap::new();

/// `struct request *` → when and for whom it was issued.
#[btf_map]
pub static BLOCK_INFLIGHT: HashMap<u64, InflightRequest, MAX_INFLIGHT> = HashMap::new();

#[btf_map]
pub static CRITICAL_EVENTS: RingBuf<u8, CRITICAL_RING_BYTES> = RingBuf::new();

#[btf_map]
pub static CHATTY_EVENTS: RingBuf<u8, CHATTY_RING_BYTES> = RingBuf::new();

/// OOM kills, record `n` in slot `n % OOM_SLOTS` (see `dsh_ebpf::OOM_SLOTS`).
#[btf_map]
pub static OOM_EVENTS: Array<OomEvent, { OOM_SLOTS as usize }> = Array::new();

/// Slot 0: OOM records written so far.
#[btf_map]
pub static OOM_WRITTEN: Array<u64, 1> = Array::new();

/// Indexed by `channel::*`.
#[btf_map]
pub static CHANNEL_STATS: PerCpuArray<ChannelStats, { channel::COUNT as usize }> =
    PerCpuArray::new();

/// The hash maps `get_or_insert_zeroed` works on: shared (`HashMap`) or
/// per CPU (`PerCpuHashMap`, whose pointers are this CPU's value).
pub trait Keyed<K, V> {
    fn value_ptr(&self, key: &K) -> Option<*mut V>;
    /// Inserts `value` unless `key` is present (`BPF_NOEXIST`).
    fn insert_new(&self, key: &K, value: &V);
}

/// One impl for both map types: aya gives them the same methods but no
/// common trait to be generic over.
macro_rules! impl_keyed {
    ($($map:ident),+) => {$(
        impl<K, V, const N: usize, const F: usize> Keyed<K, V> for $map<K, V, N, F> {
            #[inline(always)]
            fn value_ptr(&self, key: &K) -> Option<*mut V> {
                self.get_ptr_mut(key)
            }

            #[inline(always)]
            fn insert_new(&self, key: &K, value: &V) {
                let _ = self.insert(key, value, BPF_NOEXIST.into());
            }
        }
    )+};
}

impl_keyed!(PerCpuHashMap, HashMap, LruHashMap);

/// The value for `key`, inserted from `zero` when missing; `None` when the
/// map has no room (the caller counts that as its `failure::*_FULL`, or
/// falls back). `zero` is a static for big values: the stack has 512 bytes.
#[inline(always)]
pub fn get_or_insert_zeroed<K, V>(map: &impl Keyed<K, V>, key: &K, zero: &V) -> Option<*mut V> {
    if let Some(v) = map.value_ptr(key) {
        return Some(v);
    }
    // Another CPU may insert the same key meanwhile (-EEXIST): look again.
    map.insert_new(key, zero);
    map.value_ptr(key)
}
