//! `Probe::open` in three steps: the preflight (can this host run dsh at
//! all), the kernel facts (what this kernel's BTF says: offsets, argument
//! shapes), and the load (objects into the kernel, programs verified).
use std::{collections::HashMap, path::Path, sync::Arc};

use aya::{Btf, Ebpf, EbpfLoader, Endianness};
use dsh_ebpf::{KernelOffsets, MAX_SYSCALL_CGROUPS, ProbeConfig, cgroup_mode};

use super::{
    ALWAYS, BENCH, CGRP_STORAGE_OBJECT, OBJECT, Probe, ProbeError, ProbeOptions,
    SyscallCounterLayout, SyscallCounters, TRACE, btf, features, offsets, syscalls,
};
use crate::cgroup::layout::{self, CgroupLayout, CgroupLayoutKind};

/// What the kernel's BTF tells the programs, handed to them as read-only
/// globals.
struct KernelFacts {
    offsets: KernelOffsets,
    config: ProbeConfig,
}

impl Probe {
    /// Loads the objects and verifies the programs `load` may attach, or
    /// with `everything`, every program of both layouts.
    pub(super) fn open(opts: ProbeOptions, everything: bool) -> Result<Self, ProbeError> {
        let layout = preflight()?;
        // One read of the kernel's BTF (several MiB) for both parsers: ours
        // for the checks and offsets, aya's for loading the programs.
        let vmlinux = btf::read(Path::new(btf::VMLINUX))?;
        let facts = kernel_facts(&vmlinux, &layout)?;
        let btf = Btf::parse(&vmlinux, Endianness::default()).map_err(ProbeError::KernelBtf)?;
        drop(vmlinux);
        Self::load_objects(opts, everything, layout, &facts, &btf)
    }

    /// Loads both objects with the kernel's facts and verifies the programs
    /// (`prepare`); attaching is the caller's.
    fn load_objects(
        opts: ProbeOptions,
        everything: bool,
        layout: CgroupLayout,
        facts: &KernelFacts,
        btf: &Btf,
    ) -> Result<Self, ProbeError> {
        let has_cgroup_storage = syscalls::kernel_has_cgroup_storage();
        let syscall_counters = match opts.syscall_counters {
            SyscallCounters::Auto if has_cgroup_storage => SyscallCounterLayout::CgroupStorage,
            SyscallCounters::Auto | SyscallCounters::Hash => SyscallCounterLayout::Hash,
            SyscallCounters::CgroupStorage if has_cgroup_storage => {
                SyscallCounterLayout::CgroupStorage
            }
            SyscallCounters::CgroupStorage => return Err(ProbeError::NoCgroupStorage),
        };
        let syscall_counter_capacity = opts
            .syscall_counter_capacity
            .unwrap_or(MAX_SYSCALL_CGROUPS as u32);
        let mut loader = EbpfLoader::new();
        loader
            .btf(Some(btf))
            .override_global("OFFSETS", &facts.offsets, true)
            .override_global("CONFIG", &facts.config, true)
            .map_max_entries("SYSCALL_COUNTS", syscall_counter_capacity);
        if syscall_counters == SyscallCounterLayout::CgroupStorage && !everything {
            // The main object's latency table serves only the hash layout.
            loader.map_max_entries("SYSCALL_START", 1);
        }
        let ebpf = loader.load(OBJECT).map_err(ProbeError::Load)?;
        let cgrp_storage = if syscall_counters == SyscallCounterLayout::CgroupStorage {
            Some(load_cgrp_storage(facts, btf)?)
        } else {
            None
        };
        // Best effort: without it, `dsh status` shows zero run times.
        let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
        let mut probe = Self {
            ebpf,
            cgrp_storage,
            syscall_counters,
            syscall_counter_capacity,
            layout,
            links: HashMap::new(),
            syscall_latency: false,
            syscall_counting: false,
            oom_counts: Arc::default(),
            sk_cgroup_mode: facts.config.sk_cgroup_mode,
            _stats: stats,
        };
        let mut programs: Vec<(&str, &str)> = ALWAYS.iter().chain(TRACE).copied().collect();
        if everything {
            programs.extend(BENCH);
            programs.extend(SyscallCounterLayout::Hash.programs().all());
            if probe.cgrp_storage.is_some() {
                programs.extend(SyscallCounterLayout::CgroupStorage.programs().all());
            }
        } else {
            programs.extend(syscall_counters.programs().all());
        }
        for (prog, tp) in programs {
            probe.prepare(prog, tp, btf)?;
        }
        Ok(probe)
    }
}

/// Whether this host can run dsh at all: root, kernel BTF, a cgroup
/// hierarchy to attribute tasks to.
fn preflight() -> Result<CgroupLayout, ProbeError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(ProbeError::NotRoot);
    }
    if !Path::new(btf::VMLINUX).exists() {
        return Err(ProbeError::NoBtf);
    }
    let layout = CgroupLayout::detect().map_err(ProbeError::Mounts)?;
    if layout.attribution_root().is_none() {
        return Err(ProbeError::NoCgroupHierarchy);
    }
    Ok(layout)
}

/// What this kernel's BTF says the programs need: struct offsets, which
/// tracepoint prototypes it has, the attribution mode. Raises the memlock
/// limit on kernels that still charge BPF memory to it.
fn kernel_facts(vmlinux: &[u8], layout: &CgroupLayout) -> Result<KernelFacts, ProbeError> {
    let raw_btf = btf::Btf::parse(vmlinux)?;
    let v1_subsys = match layout.kind {
        CgroupLayoutKind::V1 => Some(offsets::v1_subsys_id(
            &raw_btf,
            layout::V1_ATTRIBUTION_CONTROLLER,
        )?),
        _ => None,
    };
    let prototypes = features::check(&raw_btf).map_err(|missing| ProbeError::KernelLacks {
        release: features::kernel_release(),
        missing: missing.join(", "),
    })?;
    let page_shift = procfs::page_size().trailing_zeros();
    let memcg = offsets::memcg_offsets(&raw_btf);
    let sock = offsets::sock_offsets(&raw_btf);
    let offsets = offsets::resolve_offsets(&raw_btf, v1_subsys, memcg, sock)?;
    let config = ProbeConfig {
        cgroup_mode: match layout.kind {
            CgroupLayoutKind::V1 => cgroup_mode::V1_SUBSYS,
            _ => cgroup_mode::DEFAULT_HIERARCHY,
        },
        has_blkcg: 1,
        oom_victim_arg: prototypes.oom_victim_arg,
        block_rq_issue_arg: prototypes.block_rq_issue_arg,
        has_memcg: u32::from(memcg.is_some()),
        page_shift,
        has_tcp_sock: u32::from(sock.is_some()),
        sk_cgroup_mode: match (layout.kind, sock.and_then(|s| s.cgroup)) {
            // v1-only: every socket's cgroup2 is the root.
            (CgroupLayoutKind::V1, _) | (_, None) => dsh_ebpf::sk_cgroup::NONE,
            (_, Some((_, mode))) => mode,
        },
    };
    if !features::bpf_memory_in_memcg(&raw_btf) {
        features::raise_memlock_limit();
    }
    Ok(KernelFacts { offsets, config })
}

/// The cgroup-storage object (the syscall counters of that layout).
fn load_cgrp_storage(facts: &KernelFacts, btf: &Btf) -> Result<Ebpf, ProbeError> {
    EbpfLoader::new()
        .btf(Some(btf))
        .override_global("OFFSETS", &facts.offsets, true)
        .override_global("CONFIG", &facts.config, true)
        .load(CGRP_STORAGE_OBJECT)
        .map_err(ProbeError::Load)
}
