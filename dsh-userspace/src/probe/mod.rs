//! The kernel side of dsh as user space sees it: load and attach the
//! programs, read per-cgroup counters, stream decoded events.
//!
//! Nothing here knows about containers: ids in, counters and events out.
pub mod btf;
mod churn;
mod counters;
mod error;
pub mod event;
mod features;
pub mod offsets;
mod open;
mod signals;
mod stream;
mod syscalls;
mod tcp;

use std::{
    collections::HashMap,
    os::fd::OwnedFd,
    path::Path,
    sync::{Arc, atomic::Ordering},
};

use crate::cgroup::{CgroupId, layout::CgroupLayout};
use aya::{
    Btf, Ebpf,
    maps::{Array, MapData, PerCpuArray, PerCpuHashMap},
    programs::{BtfTracePoint, ProgramInfo, links::FdLink},
};
use dsh_ebpf::{BlockStats, ChannelStats, SyscallStats, TraceSyscall, channel, failure};
pub use error::ProbeError;
pub use stream::{DRAIN_EVERY, EventRings, EventStream};
use stream::{OomCounts, OomSlots};
pub use syscalls::{SyscallCounterLayout, SyscallCounters, merge_cached};
pub use tcp::FailedDestination;

/// The compiled kernel programs, embedded in the binary: the main object
/// (everything that loads from 5.8) and the cgroup-storage syscall counters
/// (6.2+), loaded only where the kernel has cgroup local storage.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dsh"));
static CGRP_STORAGE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dsh-cgrp-storage"));

/// (program, tracepoint) pairs attached whenever the probe is loaded. The
/// syscall counters of the layout in use (`syscalls.rs`) are attached per
/// the agent's `--syscalls` mode, not with these.
const ALWAYS: &[(&str, &str)] = &[
    ("dsh_block_rq_issue", "block_rq_issue"),
    ("dsh_block_rq_complete", "block_rq_complete"),
    ("dsh_sched_process_exec", "sched_process_exec"),
    ("dsh_sched_process_exit", "sched_process_exit"),
    ("dsh_mark_victim", "mark_victim"),
    ("dsh_signal_generate", "signal_generate"),
    ("dsh_cgroup_mkdir", "cgroup_mkdir"),
    ("dsh_cgroup_rmdir", "cgroup_rmdir"),
    ("dsh_inet_sock_set_state", "inet_sock_set_state"),
    ("dsh_tcp_retransmit_skb", "tcp_retransmit_skb"),
    ("dsh_tcp_send_reset", "tcp_send_reset"),
    ("dsh_tcp_receive_reset", "tcp_receive_reset"),
];

/// `dsh trace` attaches these for the duration of a trace.
const TRACE: &[(&str, &str)] = &[
    ("dsh_trace_enter", "sys_enter"),
    ("dsh_trace_exit", "sys_exit"),
];

/// Programs only the benchmarks attach.
const BENCH: &[(&str, &str)] = &[("dsh_bench_empty", "sys_exit")];

#[derive(Clone, Copy, Debug, Default)]
pub struct ProbeOptions {
    /// Attach the `sys_enter` hook for per-cgroup syscall latency histograms.
    pub syscall_latency: bool,
    /// Load the syscall counters without attaching them (the agent's
    /// sampled and off modes attach them itself, or never).
    pub syscalls_detached: bool,
    /// Where per-cgroup syscall counters live.
    pub syscall_counters: SyscallCounters,
    /// Cgroups the hash layout holds (default `MAX_SYSCALL_CGROUPS`); the
    /// tests shrink it to see overflow counted.
    pub syscall_counter_capacity: Option<u32>,
}

/// Average cost of one program, from the kernel's BPF statistics.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProgramStats {
    pub name: String,
    pub attached: bool,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// What the kernel collected during a trace, summed over CPUs.
#[derive(Clone, Debug, Default)]
pub struct RawTrace {
    pub syscalls: HashMap<u32, TraceSyscall>,
    /// (syscall nr, errno) → count.
    pub errnos: HashMap<(u32, u32), u64>,
}

pub struct Probe {
    ebpf: Ebpf,
    /// The cgroup-storage object, when that layout counts syscalls.
    cgrp_storage: Option<Ebpf>,
    syscall_counters: SyscallCounterLayout,
    syscall_counter_capacity: u32,
    layout: CgroupLayout,
    /// Attached programs by name; dropping a link detaches the program.
    links: HashMap<&'static str, FdLink>,
    syscall_latency: bool,
    /// Whether the per-syscall counting programs are attached.
    syscall_counting: bool,
    /// The OOM-kill slots' figures, as the event stream last read them.
    oom_counts: Arc<OomCounts>,
    /// How the programs find a socket's cgroup (`dsh_ebpf::sk_cgroup`).
    sk_cgroup_mode: u32,
    /// Keeps `kernel.bpf_stats_enabled` on while held, when we could enable it.
    _stats: Option<OwnedFd>,
}

impl Probe {
    /// Loads the programs into the kernel and attaches them.
    pub fn load(opts: ProbeOptions) -> Result<Self, ProbeError> {
        let mut probe = Self::open(opts, false)?;
        for &(prog, _) in ALWAYS {
            probe.attach(prog)?;
        }
        probe.syscall_latency = opts.syscall_latency;
        probe.set_syscall_counting(!opts.syscalls_detached)?;
        Ok(probe)
    }

    /// Loads (and verifies) every program without attaching any: for the
    /// benchmarks and tests, which attach one configuration at a time. The
    /// hash layout's programs are always loaded, the cgroup-storage ones
    /// when `opts` chooses that layout; `syscall_stats_of` reads the layout
    /// `opts` chooses. `opts.syscall_latency` and `opts.syscalls_detached`
    /// are ignored.
    pub fn load_unattached(opts: ProbeOptions) -> Result<Self, ProbeError> {
        Self::open(opts, true)
    }

    /// Which layout holds the syscall counters.
    pub fn syscall_counters(&self) -> SyscallCounterLayout {
        self.syscall_counters
    }

    fn program(&mut self, name: &str) -> Result<&mut BtfTracePoint, ProbeError> {
        let in_storage = self
            .cgrp_storage
            .as_ref()
            .is_some_and(|o| o.program(name).is_some());
        let object = match &mut self.cgrp_storage {
            Some(o) if in_storage => o,
            _ => &mut self.ebpf,
        };
        let prog = object
            .program_mut(name)
            .ok_or_else(|| ProbeError::MissingProgram(name.to_owned()))?;
        prog.try_into().map_err(|e| ProbeError::Program {
            program: name.to_owned(),
            source: e,
        })
    }

    fn prepare(&mut self, name: &str, tracepoint: &str, btf: &Btf) -> Result<(), ProbeError> {
        self.program(name)?
            .load(tracepoint, btf)
            .map_err(|e| ProbeError::Program {
                program: name.to_owned(),
                source: e,
            })
    }

    /// Attaches one program by name (idempotent).
    pub fn attach(&mut self, name: &'static str) -> Result<(), ProbeError> {
        if self.links.contains_key(name) {
            return Ok(());
        }
        let err = |e| ProbeError::Program {
            program: name.to_owned(),
            source: e,
        };
        let prog = self.program(name)?;
        let id = prog.attach().map_err(err)?;
        let link = prog.take_link(id).map_err(err)?;
        self.links.insert(name, link.into());
        Ok(())
    }

    /// Detaches one program by name; dropping its link detaches it.
    pub fn detach(&mut self, name: &str) {
        self.links.remove(name);
    }

    pub fn detach_all(&mut self) {
        self.links.clear();
    }

    /// Switches syscall latency histograms on or off. While counting is
    /// attached it never stops: the latency pair is attached before the
    /// plain counter is detached (for an instant both count; that costs a
    /// few double counts, not a gap).
    pub fn set_syscall_latency(&mut self, on: bool) -> Result<(), ProbeError> {
        self.syscall_latency = on;
        if self.syscall_counting {
            self.attach_syscall_counters()?;
        }
        Ok(())
    }

    /// Attaches the layout's counting programs: the plain counter, or the
    /// latency pair instead of it.
    fn attach_syscall_counters(&mut self) -> Result<(), ProbeError> {
        let p = self.syscall_counters.programs();
        if self.syscall_latency {
            self.attach(p.enter_latency)?;
            self.attach(p.exit_latency)?;
            self.detach(p.count);
        } else {
            self.attach(p.count)?;
            self.detach(p.exit_latency);
            self.detach(p.enter_latency);
        }
        Ok(())
    }

    /// Attaches (`on`) or detaches every per-syscall counting program. While
    /// detached, syscalls take the kernel's fast path: no hook runs at all.
    /// The counters keep their values in between.
    pub fn set_syscall_counting(&mut self, on: bool) -> Result<(), ProbeError> {
        if on {
            self.attach_syscall_counters()?;
        } else {
            for (name, _) in self.syscall_counters.programs().all() {
                self.detach(name);
            }
        }
        self.syscall_counting = on;
        Ok(())
    }

    pub fn syscall_counting(&self) -> bool {
        self.syscall_counting
    }

    pub fn syscall_latency(&self) -> bool {
        self.syscall_latency
    }

    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    /// A map of the main object, or of the cgroup-storage object.
    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, ProbeError> {
        self.ebpf
            .map(name)
            .or_else(|| self.cgrp_storage.as_ref()?.map(name))
            .ok_or(ProbeError::MissingMap(name))
    }

    /// Syscall counters of the cgroup at `dir` (a directory in the
    /// attribution hierarchy). `None` when it has made no syscall since the
    /// programs were attached.
    pub fn syscall_stats(&self, dir: &Path) -> Result<Option<SyscallStats>, ProbeError> {
        let cgroup = std::fs::File::open(dir).map_err(|source| ProbeError::Cgroup {
            path: dir.to_owned(),
            source,
        })?;
        self.syscall_stats_of(&cgroup)
    }

    /// Deletes a removed cgroup's entries from the maps keyed by cgroup id:
    /// block counters, hash-layout syscall counters, its main process and
    /// who signalled it. Done
    /// here rather than in the rmdir program, where three hash deletes per
    /// cgroup of every hierarchy doubled its time; ids are never reused.
    pub fn forget_cgroup(&mut self, id: CgroupId) {
        use aya::maps::HashMap as BpfHashMap;
        let key = id.get();
        let ebpf = &mut self.ebpf;
        let results = [
            (
                "BLOCK_STATS",
                remove(ebpf, "BLOCK_STATS", |m| {
                    PerCpuHashMap::<_, u64, BlockStats>::try_from(m)?.remove(&key)
                }),
            ),
            (
                "SYSCALL_COUNTS",
                remove(ebpf, "SYSCALL_COUNTS", |m| {
                    PerCpuHashMap::<_, u64, SyscallStats>::try_from(m)?.remove(&key)
                }),
            ),
            (
                "MAIN_PROCESSES",
                remove(ebpf, "MAIN_PROCESSES", |m| {
                    BpfHashMap::<_, u64, dsh_ebpf::MainProcess>::try_from(m)?.remove(&key)
                }),
            ),
            (
                "MAIN_SIGNALS",
                remove(ebpf, "MAIN_SIGNALS", |m| {
                    BpfHashMap::<_, u64, dsh_ebpf::OutsideSignals>::try_from(m)?.remove(&key)
                }),
            ),
            (
                "TCP_CONNECTS",
                remove(ebpf, "TCP_CONNECTS", |m| {
                    PerCpuHashMap::<_, u64, dsh_ebpf::TcpConnectStats>::try_from(m)?.remove(&key)
                }),
            ),
            (
                "TCP_SOCKETS",
                remove(ebpf, "TCP_SOCKETS", |m| {
                    PerCpuHashMap::<_, u64, dsh_ebpf::TcpSocketStats>::try_from(m)?.remove(&key)
                }),
            ),
        ];
        for (name, result) in results {
            match result {
                // Absent: the cgroup did no I/O, made no counted syscall.
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => log::debug!("forgetting cgroup {id} in {name}: {e}"),
            }
        }
    }

    /// Block counters of every cgroup that did I/O, summed over CPUs, by
    /// cgroup id (blkcg ids and task cgroup ids alike).
    pub fn block_stats(&self) -> Result<HashMap<CgroupId, BlockStats>, ProbeError> {
        self.per_cgroup_sums("BLOCK_STATS", BlockStats::ZERO, BlockStats::add)
    }

    /// Every entry of a per-CPU table keyed by cgroup id, summed over CPUs
    /// with `add` from `zero`. An entry gone between listing and reading
    /// (its cgroup forgotten) is skipped.
    pub(crate) fn per_cgroup_sums<T: aya::Pod>(
        &self,
        name: &'static str,
        zero: T,
        add: impl Fn(&mut T, &T),
    ) -> Result<HashMap<CgroupId, T>, ProbeError> {
        let map: PerCpuHashMap<&MapData, u64, T> =
            PerCpuHashMap::try_from(self.map(name)?).map_err(|e| ProbeError::Map(name, e))?;
        let mut out = HashMap::new();
        for item in map.iter() {
            let (id, per_cpu) = match item {
                Ok(kv) => kv,
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(ProbeError::Map(name, e)),
            };
            let mut sum = zero;
            for s in per_cpu.iter() {
                add(&mut sum, s);
            }
            out.insert(CgroupId::new(id), sum);
        }
        Ok(out)
    }

    /// Events and losses per channel (`channel::CRITICAL`, `channel::CHATTY`).
    pub fn channel_stats(&self) -> Result<[ChannelStats; channel::COUNT as usize], ProbeError> {
        let map: PerCpuArray<&MapData, ChannelStats> =
            PerCpuArray::try_from(self.map("CHANNEL_STATS")?)
                .map_err(|e| ProbeError::Map("CHANNEL_STATS", e))?;
        let mut out = [ChannelStats::default(); channel::COUNT as usize];
        for (chan, slot) in out.iter_mut().enumerate() {
            let per_cpu = map
                .get(&(chan as u32), 0)
                .map_err(|e| ProbeError::Map("CHANNEL_STATS", e))?;
            for s in per_cpu.iter() {
                slot.events += s.events;
                slot.lost += s.lost;
            }
        }
        // OOM kills are critical events written to their own slots.
        let critical = &mut out[channel::CRITICAL as usize];
        critical.events += self.oom_counts.written.load(Ordering::Relaxed);
        critical.lost += self.oom_counts.lost.load(Ordering::Relaxed);
        Ok(out)
    }

    /// What the programs could not do, by `dsh_ebpf::failure` kind, summed
    /// over CPUs (see `failure::NAMES`).
    pub fn failure_counts(&self) -> Result<[u64; failure::COUNT as usize], ProbeError> {
        let mut out = [0; failure::COUNT as usize];
        for object in std::iter::once(&self.ebpf).chain(&self.cgrp_storage) {
            let map = object
                .map("FAILURES")
                .ok_or(ProbeError::MissingMap("FAILURES"))?;
            let map: PerCpuArray<&MapData, u64> =
                PerCpuArray::try_from(map).map_err(|e| ProbeError::Map("FAILURES", e))?;
            for (kind, total) in out.iter_mut().enumerate() {
                let per_cpu = map
                    .get(&(kind as u32), 0)
                    .map_err(|e| ProbeError::Map("FAILURES", e))?;
                *total += per_cpu.iter().sum::<u64>();
            }
        }
        Ok(out)
    }

    /// Run counts and run times of every program (attached or not), of
    /// both objects.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let objects = std::iter::once(&self.ebpf).chain(&self.cgrp_storage);
        let mut out: Vec<ProgramStats> = objects
            .flat_map(|o| o.programs())
            .filter_map(|(name, prog)| {
                let info: ProgramInfo = prog.info().ok()?;
                Some(ProgramStats {
                    name: name.to_owned(),
                    attached: self.links.contains_key(name),
                    run_count: info.run_count(),
                    run_time_ns: info.run_time().as_nanos() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Starts a per-syscall trace of one cgroup (attribution hierarchy id):
    /// clears what an earlier trace left, sets the target, attaches.
    pub fn start_trace(&mut self, cgroup_id: CgroupId) -> Result<(), ProbeError> {
        self.clear_trace()?;
        self.set_trace_target(cgroup_id.get())?;
        for &(prog, _) in TRACE {
            self.attach(prog)?;
        }
        Ok(())
    }

    /// Ends the trace and returns what it collected, summed over CPUs.
    pub fn stop_trace(&mut self) -> Result<RawTrace, ProbeError> {
        for &(prog, _) in TRACE {
            self.detach(prog);
        }
        self.set_trace_target(0)?;
        let mut raw = RawTrace::default();
        let calls: PerCpuHashMap<&MapData, u32, TraceSyscall> =
            PerCpuHashMap::try_from(self.map("TRACE_SYSCALLS")?)
                .map_err(|e| ProbeError::Map("TRACE_SYSCALLS", e))?;
        for item in calls.iter() {
            let (nr, per_cpu) = item.map_err(|e| ProbeError::Map("TRACE_SYSCALLS", e))?;
            let mut sum = TraceSyscall::ZERO;
            for s in per_cpu.iter() {
                sum.count += s.count;
                sum.errors += s.errors;
                sum.max_ns = sum.max_ns.max(s.max_ns);
                for (a, b) in sum.latency.iter_mut().zip(s.latency.iter()) {
                    *a += b;
                }
            }
            raw.syscalls.insert(nr, sum);
        }
        let errnos: PerCpuHashMap<&MapData, u64, u64> =
            PerCpuHashMap::try_from(self.map("TRACE_ERRNOS")?)
                .map_err(|e| ProbeError::Map("TRACE_ERRNOS", e))?;
        for item in errnos.iter() {
            let (key, per_cpu) = item.map_err(|e| ProbeError::Map("TRACE_ERRNOS", e))?;
            let n: u64 = per_cpu.iter().sum();
            raw.errnos.insert(((key >> 32) as u32, key as u32), n);
        }
        self.clear_trace()?;
        Ok(raw)
    }

    fn set_trace_target(&mut self, cgroup_id: u64) -> Result<(), ProbeError> {
        let map = self
            .ebpf
            .map_mut("TRACE_TARGET")
            .ok_or(ProbeError::MissingMap("TRACE_TARGET"))?;
        let mut target: Array<&mut MapData, u64> =
            Array::try_from(map).map_err(|e| ProbeError::Map("TRACE_TARGET", e))?;
        target
            .set(0, cgroup_id, 0)
            .map_err(|e| ProbeError::Map("TRACE_TARGET", e))
    }

    /// Empties the trace maps (a trace starts from zero).
    fn clear_trace(&mut self) -> Result<(), ProbeError> {
        fn clear<K: aya::Pod, V: aya::Pod>(
            map: &mut aya::maps::Map,
            name: &'static str,
        ) -> Result<(), ProbeError> {
            let mut hash: PerCpuHashMap<&mut MapData, K, V> =
                PerCpuHashMap::try_from(map).map_err(|e| ProbeError::Map(name, e))?;
            let keys: Vec<K> = hash.keys().filter_map(Result::ok).collect();
            for k in keys {
                // Already gone is fine: the goal is an empty map.
                let _ = hash.remove(&k);
            }
            Ok(())
        }
        let calls = self
            .ebpf
            .map_mut("TRACE_SYSCALLS")
            .ok_or(ProbeError::MissingMap("TRACE_SYSCALLS"))?;
        clear::<u32, TraceSyscall>(calls, "TRACE_SYSCALLS")?;
        let errnos = self
            .ebpf
            .map_mut("TRACE_ERRNOS")
            .ok_or(ProbeError::MissingMap("TRACE_ERRNOS"))?;
        clear::<u64, u64>(errnos, "TRACE_ERRNOS")
    }

    /// Takes the two ring buffers and the OOM-kill slots; call once.
    pub fn event_rings(&mut self) -> Result<EventRings, ProbeError> {
        let mut take =
            |name: &'static str| self.ebpf.take_map(name).ok_or(ProbeError::MissingMap(name));
        let oom = OomSlots::new(
            take("OOM_EVENTS")?,
            take("OOM_WRITTEN")?,
            self.oom_counts.clone(),
        )?;
        EventRings::new(oom, take("CRITICAL_EVENTS")?, take("CHATTY_EVENTS")?)
    }
}

/// Runs `op` on the main object's map `name` (absent: nothing to remove).
fn remove(
    ebpf: &mut Ebpf,
    name: &str,
    op: impl FnOnce(&mut aya::maps::Map) -> Result<(), aya::maps::MapError>,
) -> Result<(), aya::maps::MapError> {
    ebpf.map_mut(name).map_or(Ok(()), op)
}
