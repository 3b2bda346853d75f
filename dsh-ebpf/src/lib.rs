//! The kernel/user ABI of dsh: every type the eBPF programs write into maps
//! and ring buffers, and every read-only global the loader fills in.
//!
//! One definition for both sides. The programs (`src/main.rs`, built for
//! `bpfel-unknown-none`) and user space (`dsh-userspace`, with the `user`
//! feature) compile this same file. Rules: `#[repr(C)]`, `Copy`, no `bool`,
//! no implicit padding (explicit `_pad` fields), sizes asserted below.
#![no_std]

pub mod churn;
pub mod signals;
pub use churn::{ChurnCounts, ChurnKey, MAX_CHURN_KEYS, MAX_MAIN_PROCESSES, MainProcess};
pub use signals::{MAX_SIGNAL_KEYS, OutsideSignal, OutsideSignals, SignalCount, SignalKey};

/// Ring-buffer channels. Critical events must never be crowded out by a flood
/// of chatty ones, so each channel has its own ring buffer and loss counter.
pub mod channel {
    /// Process exits, cgroup lifecycle (OOM kills have slots of their own,
    /// signals are counted in maps: see `signals`).
    pub const CRITICAL: u32 = 0;
    /// Exec, TCP listen.
    pub const CHATTY: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// `EventHeader::kind` values.
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const EXIT: u32 = 2;
    pub const OOM: u32 = 3;
    // 4 and 5 were one record per signal (generated, delivered): signals
    // are counted in maps now (`signals`), and the numbers are not reused.
    pub const CGROUP_MKDIR: u32 = 6;
    pub const CGROUP_RMDIR: u32 = 7;
    pub const LISTEN: u32 = 8;
}

/// What the programs could not do, one counter per kind in the per-CPU
/// `FAILURES` array: a failure is counted, never silently dropped, and
/// `dsh status` shows the totals.
pub mod failure {
    /// A read of a kernel struct failed (`bpf_probe_read_kernel` returned
    /// -EFAULT): the event or counter that needed it is incomplete or missing.
    pub const KERNEL_READ: u32 = 0;
    /// No room for a cgroup's syscall counters.
    pub const SYSCALL_COUNTERS_FULL: u32 = 1;
    /// `BLOCK_INFLIGHT` full: a request's I/O is not counted.
    pub const BLOCK_INFLIGHT_FULL: u32 = 2;
    /// `BLOCK_STATS` full: a completed request is not counted.
    pub const BLOCK_STATS_FULL: u32 = 3;
    /// `dsh trace` maps full: a syscall or errno is missing from the trace.
    pub const TRACE_SYSCALLS_FULL: u32 = 4;
    pub const TRACE_ERRNOS_FULL: u32 = 5;
    /// An OOM kill whose victim could not be found (kernels whose
    /// `mark_victim` names only a pid): its event carries the pid alone.
    pub const OOM_VICTIM_UNKNOWN: u32 = 6;
    /// No room for a signal's counter (`SIGNAL_COUNTS`) or for its cgroup's
    /// record of who signalled the main process (`MAIN_SIGNALS`).
    pub const SIGNAL_COUNTERS_FULL: u32 = 7;
    /// No room for a cgroup's TCP connect counters (`TCP_CONNECTS`): a
    /// connect's end is not counted.
    pub const TCP_COUNTERS_FULL: u32 = 8;
    /// No room for a cgroup's per-socket TCP counters (`TCP_SOCKETS`): a
    /// retransmit or reset is not counted.
    pub const TCP_SOCKET_COUNTERS_FULL: u32 = 9;
    pub const COUNT: u32 = 10;
    /// Names for `dsh status`, indexed by kind.
    pub const NAMES: [&str; COUNT as usize] = [
        "kernel_read",
        "syscall_counters_full",
        "block_inflight_full",
        "block_stats_full",
        "trace_syscalls_full",
        "trace_errnos_full",
        "oom_victim_unknown",
        "signal_counters_full",
        "tcp_counters_full",
        "tcp_socket_counters_full",
    ];
}

/// What `mark_victim`'s first argument is (`ProbeConfig::oom_victim_arg`).
pub mod victim_arg {
    /// `mark_victim(struct task_struct *task, uid_t uid)` (6.1 and later).
    pub const TASK: u32 = 0;
    /// `mark_victim(int pid)` (5.x): the victim task is found through the
    /// SIGKILL the OOM killer sent it just before.
    pub const PID: u32 = 1;
}

/// How a task is mapped to the cgroup id dsh attributes it to.
pub mod cgroup_mode {
    /// cgroup2 is mounted (pure v2 or hybrid): the task's default-hierarchy
    /// cgroup, what `bpf_get_current_cgroup_id()` returns.
    pub const DEFAULT_HIERARCHY: u32 = 0;
    /// v1-only host: the cgroup2 id is the root for every task, so use the
    /// task's cgroup in one fixed v1 controller hierarchy instead.
    pub const V1_SUBSYS: u32 = 1;
}

pub const COMM_LEN: usize = 16;
pub const FILENAME_LEN: usize = 256;
pub const CGROUP_PATH_LEN: usize = 512;
/// Log2 latency buckets: bucket i counts durations in [2^i, 2^(i+1)) ns;
/// the last bucket also takes everything longer.
pub const LATENCY_BUCKETS: usize = 32;
/// Cgroups with block I/O counters at once (user space reports the fill).
pub const MAX_BLOCK_CGROUPS: usize = 16384;
/// Block requests in flight at once.
pub const MAX_INFLIGHT: usize = 16384;
/// Cgroups with TCP connect counters at once.
pub const MAX_TCP_CGROUPS: usize = 16384;
/// Connects awaiting their answer (an LRU: the oldest go first).
pub const MAX_TCP_CONNECTING: usize = 65536;

/// Failed connects' (cgroup, destination) pairs kept at once (an LRU: the
/// least recently failing go first).
pub const MAX_TCP_DESTINATIONS: usize = 8192;

/// How the programs find a socket's cgroup (`ProbeConfig::sk_cgroup_mode`).
pub mod sk_cgroup {
    /// Not at all: no `sock.sk_cgrp_data` (kernel built without it), or a
    /// v1-only host, where every socket's cgroup2 is the root.
    pub const NONE: u32 = 0;
    /// `sk_cgrp_data.cgroup` is the `struct cgroup *` (5.15 and later).
    pub const POINTER: u32 = 1;
    /// `sk_cgrp_data.val` is the `struct cgroup *` unless 0 or its low two
    /// bits (`is_data`, `no_refcnt`) are set: then unknown (5.10 to 5.14).
    pub const VAL: u32 = 2;
}

/// One cgroup's retransmitted segments and resets, counted per socket
/// (`tcp/tcp_retransmit_skb`, `tcp/tcp_send_reset`, `tcp/tcp_receive_reset`)
/// for the socket's own cgroup: these fire in softirq and timers, where
/// `current` is whoever the CPU was running.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSocketStats {
    /// Retransmissions (one per retransmitted skb, which may carry several
    /// segments).
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    pub _pad: u64,
}

impl TcpSocketStats {
    /// Adds another set of counters (another CPU's).
    pub fn add(&mut self, o: &Self) {
        self.retransmits += o.retransmits;
        self.resets_sent += o.resets_sent;
        self.resets_received += o.resets_received;
    }
}

/// A failed connect's destination, per cgroup: the key of `TCP_FAILED_DESTS`
/// (its value: failures, a shared `u64`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpDestKey {
    /// The connecting task's cgroup.
    pub cgroup_id: u64,
    /// IPv4 in the first 4 bytes, or IPv6, network order.
    pub addr: [u8; 16],
    /// Host order.
    pub port: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    pub _pad: u32,
}

/// One cgroup's TCP connects by how they ended (`sock/inet_sock_set_state`
/// from SYN_SENT), attributed to the task that began the connect.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpConnectStats {
    /// Established; `handshake_ns` sums their SYN-to-established times.
    pub ok: u64,
    pub handshake_ns: u64,
    /// Closed with the socket's error ECONNREFUSED, ETIMEDOUT,
    /// EHOSTUNREACH/ENETUNREACH, ECONNRESET, or another.
    pub refused: u64,
    pub timed_out: u64,
    pub unreachable: u64,
    pub reset: u64,
    pub other_error: u64,
    /// Closed with no error: the connecting process gave up (closed it).
    pub aborted: u64,
}

impl TcpConnectStats {
    /// Adds another set of counters (another CPU's).
    pub fn add(&mut self, o: &Self) {
        self.ok += o.ok;
        self.handshake_ns += o.handshake_ns;
        self.refused += o.refused;
        self.timed_out += o.timed_out;
        self.unreachable += o.unreachable;
        self.reset += o.reset;
        self.other_error += o.other_error;
        self.aborted += o.aborted;
    }

    /// Connects that failed (not those given up by their process).
    pub fn failed(&self) -> u64 {
        self.refused + self.timed_out + self.unreachable + self.reset + self.other_error
    }
}

/// A connect in progress: who began it and when (`bpf_ktime_get_ns`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpConnectStart {
    pub cgroup_id: u64,
    pub start_ns: u64,
}

/// Byte offsets of kernel struct fields, resolved by user space from
/// `/sys/kernel/btf/vmlinux` at load time (the Rust eBPF compiler emits no
/// CO-RE relocations) and handed to the programs as a read-only global, which
/// the verifier treats as constants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    // struct task_struct
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_cgroups: u32,
    pub task_exit_code: u32,
    pub task_signal: u32,
    pub task_real_parent: u32,
    pub task_start_time: u32,
    // struct css_set
    pub css_set_dfl_cgrp: u32,
    /// `css_set.subsys[id]` for the v1 controller chosen by the loader.
    pub css_set_subsys_v1: u32,
    /// `css_set.subsys[memory_cgrp_id]` (0 without `CONFIG_MEMCG`).
    pub css_set_subsys_memory: u32,
    // struct cgroup_subsys_state
    pub css_cgroup: u32,
    /// From the memory controller's `struct cgroup_subsys_state *` to its
    /// `mem_cgroup`'s `memory.usage` (an `atomic_long_t`, pages) and
    /// `memory.max` (pages): `container_of` and the member offsets in one.
    pub memcg_usage: u32,
    pub memcg_max: u32,
    // struct cgroup
    pub cgroup_kn: u32,
    pub cgroup_level: u32,
    pub cgroup_root: u32,
    // struct cgroup_root
    pub cgroup_root_hierarchy_id: u32,
    // struct kernfs_node
    pub kernfs_node_id: u32,
    /// `const char *name`: a cgroup directory's name.
    pub kernfs_node_name: u32,
    // struct signal_struct: `live` is an atomic_t whose counter is at offset 0
    pub signal_live: u32,
    // struct request
    pub request_cmd_flags: u32,
    pub request_data_len: u32,
    pub request_bio: u32,
    // struct bio
    pub bio_blkg: u32,
    // struct blkcg_gq
    pub blkg_blkcg: u32,
    // struct blkcg: `css` is a struct cgroup_subsys_state
    pub blkcg_css: u32,
    // struct linux_binprm
    pub binprm_filename: u32,
    // struct sock_common (at offset 0 of struct sock)
    pub skc_family: u32,
    pub skc_num: u32,
    pub skc_rcv_saddr: u32,
    pub skc_v6_rcv_saddr: u32,
    // struct sock: the error a failed connect closed with
    pub sk_err: u32,
    // struct sock_common: state (a byte), destination (read only when
    // `ProbeConfig::has_tcp_sock`)
    pub skc_state: u32,
    pub skc_daddr: u32,
    pub skc_v6_daddr: u32,
    pub skc_dport: u32,
    /// `sock.sk_cgrp_data`'s cgroup pointer or `val` (see [`sk_cgroup`]).
    pub sk_cgroup: u32,
}

/// Loader choices the programs branch on; read-only, so the verifier prunes
/// the branches not taken.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeConfig {
    /// One of [`cgroup_mode`].
    pub cgroup_mode: u32,
    /// 1 when block I/O may be attributed to the request's blkcg.
    pub has_blkcg: u32,
    /// One of [`victim_arg`].
    pub oom_victim_arg: u32,
    /// Which argument of `block_rq_issue` is the `struct request *`: 0, or
    /// 1 where the request queue comes first (before 5.10).
    pub block_rq_issue_arg: u32,
    /// 1 when the kernel has memory cgroups (`CONFIG_MEMCG`) and
    /// `KernelOffsets::memcg_*` are resolved: an OOM event then carries the
    /// victim's memory use and limit.
    pub has_memcg: u32,
    /// log2 of the page size: `page_counter` counts pages.
    pub page_shift: u32,
    /// 1 when `KernelOffsets::skc_state`, `skc_daddr`, `skc_v6_daddr` and
    /// `skc_dport` are resolved: failed connects' destinations are kept.
    pub has_tcp_sock: u32,
    /// One of [`sk_cgroup`]: whether retransmits and resets are counted.
    pub sk_cgroup_mode: u32,
}

/// -ENFILE and -EMFILE as a syscall returns them (asm-generic/errno-base.h,
/// the same on every architecture dsh builds for).
pub const ENFILE_RET: i64 = -23;
pub const EMFILE_RET: i64 = -24;

/// Per-cgroup syscall counters. Two layouts, chosen at load time:
/// - cgroup local storage (kernels >= 6.2): one value per cgroup, freed by
///   the kernel with the cgroup, shared by all CPUs (atomic adds);
/// - a per-CPU hash keyed by cgroup id behind a per-CPU one-slot cache
///   (`SyscallCacheSlot`), from 5.8: see the `syscalls` programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallStats {
    pub count: u64,
    /// Syscalls that returned a negative value (-errno).
    pub errors: u64,
    /// Of those, -EMFILE and -ENFILE: a process at its open-files limit
    /// (or the host at its file limit).
    pub fd_limit_errors: u64,
    /// Log2 histogram of syscall latency in ns; filled only while latency
    /// tracking is attached (it needs a second hook on `sys_enter`).
    pub latency: [u64; LATENCY_BUCKETS],
}

impl SyscallStats {
    pub const ZERO: Self = Self {
        count: 0,
        errors: 0,
        fd_limit_errors: 0,
        latency: [0; LATENCY_BUCKETS],
    };

    /// Adds another set of counters (another CPU's).
    pub fn add(&mut self, other: &Self) {
        self.count += other.count;
        self.errors += other.errors;
        self.fd_limit_errors += other.fd_limit_errors;
        for (a, b) in self.latency.iter_mut().zip(other.latency.iter()) {
            *a += b;
        }
    }

    /// Field by field, the larger of two snapshots of the same counters:
    /// every field only grows, so that is the newer reading of each.
    pub fn newest(&mut self, other: &Self) {
        self.count = self.count.max(other.count);
        self.errors = self.errors.max(other.errors);
        self.fd_limit_errors = self.fd_limit_errors.max(other.fd_limit_errors);
        for (a, b) in self.latency.iter_mut().zip(other.latency.iter()) {
            *a = (*a).max(*b);
        }
    }
}

/// Cgroups with syscall counters at once in the hash layout (user space
/// reports the fill; a cgroup that finds no room is counted as
/// `failure::SYSCALL_COUNTERS_FULL`).
pub const MAX_SYSCALL_CGROUPS: usize = 16384;

/// The hash layout's per-CPU one-slot cache: the cgroup whose syscalls this
/// CPU counted last, and that cgroup's counters on this CPU, complete (the
/// hash holds an older copy, written back when the CPU moves on to another
/// cgroup). User space reads the slots first, then the hash, and keeps the
/// newer of the two per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallCacheSlot {
    /// 0: empty.
    pub cgroup_id: u64,
    pub stats: SyscallStats,
}

/// Per-cgroup block I/O counters, in a per-CPU hash keyed by cgroup id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
    /// Log2 histogram of request latency (issue to completion) in ns.
    pub latency: [u64; LATENCY_BUCKETS],
}

impl BlockStats {
    pub const ZERO: Self = Self {
        read_bytes: 0,
        write_bytes: 0,
        read_ops: 0,
        write_ops: 0,
        latency: [0; LATENCY_BUCKETS],
    };

    /// Adds another set of counters (another CPU's, another cgroup's).
    pub fn add(&mut self, other: &Self) {
        self.read_bytes += other.read_bytes;
        self.write_bytes += other.write_bytes;
        self.read_ops += other.read_ops;
        self.write_ops += other.write_ops;
        for (a, b) in self.latency.iter_mut().zip(other.latency.iter()) {
            *a += b;
        }
    }
}

/// `dsh trace` latency buckets: two significant bits per power of two
/// (4 buckets an octave), from 1 ns to about 8.6 s; the last is open-ended.
pub const TRACE_BUCKETS: usize = 128;
/// Slots of the trace start table (a power of two).
pub const TRACE_START_SLOTS: u32 = 16384;
/// Distinct syscalls and (syscall, errno) pairs a trace keeps.
pub const MAX_TRACE_SYSCALLS: usize = 1024;
pub const MAX_TRACE_ERRNOS: usize = 4096;

/// The bucket of a latency: values below 4 ns map to themselves; above,
/// the octave (position of the top bit) and the next two bits.
#[inline(always)]
pub fn trace_bucket(ns: u64) -> usize {
    if ns < 4 {
        return ns as usize;
    }
    let top = 63 - ns.leading_zeros() as usize; // >= 2
    let sub = ((ns >> (top - 2)) & 3) as usize;
    let b = 4 * (top - 1) + sub;
    if b >= TRACE_BUCKETS {
        TRACE_BUCKETS - 1
    } else {
        b
    }
}

/// The smallest latency in bucket `b` (the inverse of `trace_bucket`).
pub fn trace_bucket_low(b: usize) -> u64 {
    if b < 4 {
        return b as u64;
    }
    let top = b / 4 + 1;
    ((4 + (b % 4)) as u64) << (top - 2)
}

/// Where a traced thread entered its syscall, by `tid % TRACE_START_SLOTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceStart {
    pub tid: u32,
    pub nr: u32,
    pub entered_ns: u64,
}

/// One syscall's figures in a trace (per CPU in the kernel).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceSyscall {
    pub count: u64,
    pub errors: u64,
    pub max_ns: u64,
    pub _pad: u64,
    pub latency: [u64; TRACE_BUCKETS],
}

impl TraceSyscall {
    pub const ZERO: Self = Self {
        count: 0,
        errors: 0,
        max_ns: 0,
        _pad: 0,
        latency: [0; TRACE_BUCKETS],
    };
}

/// A block request between issue and completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InflightRequest {
    pub issued_ns: u64,
    pub cgroup_id: u64,
    /// 1 for a write, 0 for a read, 2 for anything else (flush, discard).
    pub direction: u32,
    pub bytes: u32,
}

/// When a thread entered its current syscall; one slot per thread id
/// modulo the table size (see `SYSCALL_START` in the programs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallStart {
    pub tid: u32,
    pub _pad: u32,
    pub entered_ns: u64,
}

/// Per-channel counters, in a per-CPU array indexed by channel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    pub events: u64,
    /// Ring-buffer reservations that failed because the buffer was full.
    pub lost: u64,
}

/// Common head of every ring-buffer record. `pid`/`tgid`/`comm`/`cgroup_id`
/// describe the current task (the one the kernel was running).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    pub cpu: u32,
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, suspend included.
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; COMM_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    pub hdr: EventHeader,
    pub ppid: u32,
    /// The pid before exec (differs from `hdr.pid` when a thread execs).
    pub old_pid: u32,
    pub filename: [u8; FILENAME_LEN],
}

/// The last thread of a thread group exited: the process is gone.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitEvent {
    pub hdr: EventHeader,
    /// `task->exit_code` as `wait(2)` reports it: `(code << 8)` for a normal
    /// exit, `sig | 0x80 (core dumped)` for a death by signal.
    pub exit_code: u32,
    pub ppid: u32,
    /// `task->start_time`: ns since boot (monotonic) when the process started.
    pub start_ns: u64,
    /// For a cgroup's main process: the last signals sent to it from outside
    /// the cgroup that could have ended it (zeroed otherwise).
    pub outside: OutsideSignals,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomEvent {
    /// The task that ran the OOM killer, not necessarily the victim.
    pub hdr: EventHeader,
    pub victim_pid: u32,
    pub victim_tgid: u32,
    pub victim_cgroup_id: u64,
    /// The victim's memory cgroup at the kill, in bytes: its use and its
    /// limit (the kernel's "no limit" is about 2^63). Both 0 when not read:
    /// no memcg in this kernel, a failed read, or a memcg whose cgroup is
    /// not at the victim's attribution cgroup's place (an ancestor's, whose
    /// figures are not the container's).
    pub mem_usage_bytes: u64,
    pub mem_limit_bytes: u64,
}

/// Slots of the OOM-kill mailbox (`OOM_EVENTS`, with `OOM_WRITTEN` counting
/// the records written). OOM kills do not go through a ring buffer: the
/// kernel runs the killer after evicting most caches (it scans every task
/// and prints a report), and a ring reservation there touches cold lines
/// on several pages (positions, lock, header, record): about 2 µs of a
/// 3 µs program. A record written into a small array in place costs one
/// line. The kernel runs OOM kills one at a time (under `oom_lock`), so
/// one writer; the agent reads the array at every ring drain and counts a
/// record overwritten before it was read as lost.
pub const OOM_SLOTS: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupEvent {
    pub hdr: EventHeader,
    /// The new or removed cgroup's id (its kernfs inode number).
    pub id: u64,
    pub level: u32,
    pub hierarchy_id: u32,
    /// Path relative to the hierarchy's root, NUL-terminated.
    pub path: [u8; CGROUP_PATH_LEN],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenEvent {
    pub hdr: EventHeader,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    pub port: u16,
    /// TCP state before and after (`TCP_LISTEN` = 10, `TCP_CLOSE` = 7).
    pub old_state: u16,
    pub new_state: u16,
    /// IPv4 in the first 4 bytes, or IPv6, network order.
    pub addr: [u8; 16],
}

/// `ListenEvent` states.
pub const TCP_LISTEN: u16 = 10;
pub const TCP_CLOSE: u16 = 7;

macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $n);
    };
}
assert_size!(KernelOffsets, 38 * 4);
assert_size!(TcpSocketStats, 32);
assert_size!(TcpDestKey, 32);
assert_size!(TcpConnectStats, 8 * 8);
assert_size!(TcpConnectStart, 16);
assert_size!(ProbeConfig, 32);
assert_size!(SyscallStats, 24 + 8 * LATENCY_BUCKETS);
assert_size!(SyscallCacheSlot, 8 + 24 + 8 * LATENCY_BUCKETS);
assert_size!(BlockStats, 32 + 8 * LATENCY_BUCKETS);
assert_size!(InflightRequest, 24);
assert_size!(ChannelStats, 16);
assert_size!(SyscallStart, 16);
assert_size!(TraceStart, 16);
assert_size!(TraceSyscall, 32 + 8 * TRACE_BUCKETS);
assert_size!(EventHeader, 48);
assert_size!(ExecEvent, 56 + FILENAME_LEN);
assert_size!(ExitEvent, 64 + 2 * 32);
assert_size!(OomEvent, 80);
assert_size!(CgroupEvent, 64 + CGROUP_PATH_LEN);
assert_size!(ListenEvent, 72);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    /// Every ABI type is `repr(C)`, `Copy`, holds only integers and arrays
    /// of integers, and has no padding (sizes asserted above): any bytes the
    /// kernel wrote are a valid value.
    macro_rules! pod {
        ($($t:ty),* $(,)?) => {$(
            // SAFETY: see above.
            unsafe impl aya::Pod for $t {}
        )*};
    }
    pod!(
        KernelOffsets,
        ProbeConfig,
        SyscallStats,
        SyscallCacheSlot,
        BlockStats,
        InflightRequest,
        ChannelStats,
        SyscallStart,
        TraceStart,
        TraceSyscall,
        EventHeader,
        ExecEvent,
        ExitEvent,
        OomEvent,
        CgroupEvent,
        ListenEvent,
        TcpConnectStats,
        TcpConnectStart,
        TcpSocketStats,
        TcpDestKey,
    );
}
