//! Per-cgroup syscall counters: which kernel layout holds them, and reading
//! one cgroup's counters from it.
use std::{fmt, fs::File, os::unix::fs::MetadataExt as _, str::FromStr};

use aya::maps::{CgrpStorage, MapData, MapError, PerCpuArray, PerCpuHashMap};
use dsh_ebpf::{SyscallCacheSlot, SyscallStats};

use super::{Probe, ProbeError};

/// Which layout to count syscalls in (`dsh agent --syscall-counters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyscallCounters {
    /// Cgroup local storage where the kernel has it (6.2+), else the hash.
    #[default]
    Auto,
    /// Cgroup local storage; an error on kernels without it.
    CgroupStorage,
    /// The per-CPU hash keyed by cgroup id, behind a per-CPU one-slot
    /// cache: works from 5.8.
    Hash,
}

impl FromStr for SyscallCounters {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cgroup-storage" => Ok(Self::CgroupStorage),
            "hash" => Ok(Self::Hash),
            _ => Err("expected auto, cgroup-storage or hash".to_owned()),
        }
    }
}

/// The layout in use, once the kernel has been asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallCounterLayout {
    CgroupStorage,
    Hash,
}

impl SyscallCounterLayout {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CgroupStorage => "cgroup-storage",
            Self::Hash => "hash",
        }
    }

    /// The program that counts in this layout (count and errors).
    pub fn count_program(self) -> &'static str {
        self.programs().count
    }

    /// The programs that count in this layout.
    pub(super) fn programs(self) -> &'static SyscallPrograms {
        match self {
            Self::CgroupStorage => &CGROUP_STORAGE,
            Self::Hash => &HASH,
        }
    }
}

impl fmt::Display for SyscallCounterLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One layout's programs, by name.
pub(super) struct SyscallPrograms {
    /// Count and errors, on `sys_exit`.
    pub count: &'static str,
    /// The pair that adds latency histograms, attached instead of `count`.
    pub enter_latency: &'static str,
    pub exit_latency: &'static str,
}

impl SyscallPrograms {
    /// (program, tracepoint) pairs.
    pub fn all(&self) -> [(&'static str, &'static str); 3] {
        [
            (self.count, "sys_exit"),
            (self.enter_latency, "sys_enter"),
            (self.exit_latency, "sys_exit"),
        ]
    }
}

const CGROUP_STORAGE: SyscallPrograms = SyscallPrograms {
    count: "dsh_sys_exit",
    enter_latency: "dsh_sys_enter_latency",
    exit_latency: "dsh_sys_exit_latency",
};

const HASH: SyscallPrograms = SyscallPrograms {
    count: "dsh_sys_exit_hash",
    enter_latency: "dsh_sys_enter_latency_hash",
    exit_latency: "dsh_sys_exit_latency_hash",
};

/// Whether this kernel can create cgroup local storage maps (6.2+).
pub(super) fn kernel_has_cgroup_storage() -> bool {
    aya::sys::is_map_supported(aya::maps::MapType::CgrpStorage).unwrap_or(false)
}

/// One cgroup's counters in the hash layout, summed over CPUs, from what
/// user space read: the cache slots (read first) and the hash entry (read
/// after). Per CPU, both are snapshots of the same growing counters and the
/// slot is the newer while it holds the cgroup, so the larger of the two is
/// kept: never more than the kernel counted, never less than it had counted
/// when the slots were read. `None` when the cgroup has neither.
pub fn merge_cached(
    cgroup_id: u64,
    slots: &[SyscallCacheSlot],
    stored: Option<&[SyscallStats]>,
) -> Option<SyscallStats> {
    let mut seen = stored.is_some();
    let mut total = SyscallStats::ZERO;
    for (cpu, slot) in slots.iter().enumerate() {
        let mut newest = stored
            .and_then(|s| s.get(cpu))
            .copied()
            .unwrap_or(SyscallStats::ZERO);
        if slot.cgroup_id == cgroup_id {
            seen = true;
            newest.newest(&slot.stats);
        }
        total.add(&newest);
    }
    seen.then_some(total)
}

impl Probe {
    /// Syscall counters of an open cgroup directory (in the attribution
    /// hierarchy). `None` when it has made no syscall since the programs
    /// were attached.
    pub fn syscall_stats_of(&self, cgroup: &File) -> Result<Option<SyscallStats>, ProbeError> {
        match self.syscall_counters {
            SyscallCounterLayout::CgroupStorage => {
                let map: CgrpStorage<&MapData, SyscallStats> =
                    CgrpStorage::try_from(self.map("SYSCALL_STATS")?)
                        .map_err(|e| ProbeError::Map("SYSCALL_STATS", e))?;
                match map.get(cgroup, 0) {
                    Ok(v) => Ok(Some(v)),
                    Err(MapError::KeyNotFound) => Ok(None),
                    Err(e) => Err(ProbeError::Map("SYSCALL_STATS", e)),
                }
            }
            SyscallCounterLayout::Hash => self.hash_syscall_stats(cgroup),
        }
    }

    fn hash_syscall_stats(&self, cgroup: &File) -> Result<Option<SyscallStats>, ProbeError> {
        // A cgroup's id is its directory's inode number.
        let id = cgroup
            .metadata()
            .map_err(|source| ProbeError::Cgroup {
                path: "(open cgroup directory)".into(),
                source,
            })?
            .ino();
        // Slots first, then the hash: see `merge_cached`.
        let cache: PerCpuArray<&MapData, SyscallCacheSlot> =
            PerCpuArray::try_from(self.map("SYSCALL_CACHE")?)
                .map_err(|e| ProbeError::Map("SYSCALL_CACHE", e))?;
        let slots = cache
            .get(&0, 0)
            .map_err(|e| ProbeError::Map("SYSCALL_CACHE", e))?;
        let counts: PerCpuHashMap<&MapData, u64, SyscallStats> =
            PerCpuHashMap::try_from(self.map("SYSCALL_COUNTS")?)
                .map_err(|e| ProbeError::Map("SYSCALL_COUNTS", e))?;
        let stored = match counts.get(&id, 0) {
            Ok(v) => Some(v),
            Err(MapError::KeyNotFound) => None,
            Err(e) => return Err(ProbeError::Map("SYSCALL_COUNTS", e)),
        };
        Ok(merge_cached(id, &slots, stored.as_deref().map(|v| &v[..])))
    }

    /// Cgroups holding counters in the hash layout, and its capacity;
    /// `None` in the cgroup-storage layout (no limit but memory).
    pub fn syscall_counter_fill(&self) -> Option<(u64, u64)> {
        if self.syscall_counters != SyscallCounterLayout::Hash {
            return None;
        }
        let map: PerCpuHashMap<&MapData, u64, SyscallStats> =
            PerCpuHashMap::try_from(self.map("SYSCALL_COUNTS").ok()?).ok()?;
        let entries = map.keys().filter(Result::is_ok).count() as u64;
        Some((entries, self.syscall_counter_capacity as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(count: u64, errors: u64) -> SyscallStats {
        SyscallStats {
            count,
            errors,
            ..SyscallStats::ZERO
        }
    }

    fn slot(cgroup_id: u64, count: u64) -> SyscallCacheSlot {
        SyscallCacheSlot {
            cgroup_id,
            stats: stats(count, 0),
        }
    }

    #[test]
    fn layouts_parse_and_name_themselves() {
        assert_eq!("auto".parse(), Ok(SyscallCounters::Auto));
        assert_eq!("hash".parse(), Ok(SyscallCounters::Hash));
        assert_eq!("cgroup-storage".parse(), Ok(SyscallCounters::CgroupStorage));
        let err = "btree".parse::<SyscallCounters>().unwrap_err();
        assert!(err.contains("auto, cgroup-storage or hash"), "{err}");
        assert_eq!(SyscallCounterLayout::Hash.to_string(), "hash");
    }

    #[test]
    fn slot_holding_the_cgroup_is_newer_than_the_hash() {
        // CPU 0 counts cgroup 7 in its slot (hash has an older 10); CPU 1
        // moved on to cgroup 9 after writing 5 back for cgroup 7.
        let slots = [slot(7, 25), slot(9, 1000)];
        let stored = [stats(10, 1), stats(5, 2)];
        let s = merge_cached(7, &slots, Some(&stored)).unwrap();
        assert_eq!(s.count, 25 + 5);
        // The slot's errors (0) are older than nothing: the hash's 1 stays.
        assert_eq!(s.errors, 1 + 2);
    }

    #[test]
    fn a_cgroup_only_in_a_slot_or_nowhere() {
        let slots = [slot(7, 3), slot(0, 0)];
        assert_eq!(merge_cached(7, &slots, None).unwrap().count, 3);
        assert_eq!(merge_cached(8, &slots, None), None);
    }

    #[test]
    fn a_write_back_between_the_two_reads_is_not_counted_twice() {
        // The slots were read while CPU 0 held cgroup 7 at 40; before the
        // hash was read, CPU 0 wrote 40 back and moved on. Max, not sum.
        let slots = [slot(7, 40)];
        let stored = [stats(40, 0)];
        assert_eq!(merge_cached(7, &slots, Some(&stored)).unwrap().count, 40);
    }
}
