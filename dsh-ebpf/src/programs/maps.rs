//! Every map the programs share. Sizes are bounded; per-cgroup state either
//! lives in cgroup local storage (freed by the kernel with the cgroup) or is
//! deleted by the `cgroup_rmdir` program.
use aya_ebpf::{
    btf_maps::{CgrpStorage, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
    macros::btf_map,
};
use dsh_ebpf::{BlockStats, ChannelStats, InflightRequest, SyscallStats, channel};

/// Cgroups with block I/O state tracked at once.
pub const MAX_BLOCK_CGROUPS: usize = 16384;
/// Block requests in flight at once.
pub const MAX_INFLIGHT: usize = 16384;
/// Threads inside a syscall at once, when latency tracking is on.
pub const MAX_SYSCALL_THREADS: usize = 65536;

/// 4 MiB: about 60,000 exit records, several seconds of a fork storm.
const CRITICAL_RING_BYTES: usize = 4 << 20;
const CHATTY_RING_BYTES: usize = 4 << 20;

#[btf_map]
pub static SYSCALL_STATS: CgrpStorage<SyscallStats> = CgrpStorage::new();

/// Thread id → `bpf_ktime_get_ns()` at `sys_enter`, for latency.
#[btf_map]
pub static SYSCALL_START: HashMap<u32, u64, MAX_SYSCALL_THREADS> = HashMap::new();

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

/// Indexed by `channel::*`.
#[btf_map]
pub static CHANNEL_STATS: PerCpuArray<ChannelStats, { channel::COUNT as usize }> =
    PerCpuArray::new();
