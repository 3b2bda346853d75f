//! The cgroup v1 readers: one directory per controller, each read on its own.
use std::path::Path;

use super::text::{blkio_v1, flat, max_or_u64, single_u64};
use super::{CgroupStats, Files, StatsError};

/// v1 limits at or above this are "no limit" (the kernel stores PAGE_COUNTER_MAX
/// pages, which prints as 2^63 minus a page on 64-bit; 2^62 leaves a wide margin).
const V1_UNLIMITED: u64 = 1 << 62;
/// Every memory figure: those `refresh_v1_memory` reads, then the
/// counters that move only while the cgroup's tasks run (high-water mark,
/// limit hits, OOM kills).
pub(super) fn read_v1_memory(
    r: &mut impl Files,
    dir: &Path,
    ram: u64,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    refresh_v1_memory(r, dir, ram, s)?;
    s.mem_peak_bytes = r.parse(dir, "memory.max_usage_in_bytes", single_u64)?;
    s.mem_max_events = r.parse(dir, "memory.failcnt", single_u64)?.unwrap_or(0);
    // oom_kill was added to memory.oom_control in 4.13; older kernels lack the key.
    [s.oom_kills] = r
        .parse(dir, "memory.oom_control", flat(["oom_kill"]))?
        .unwrap_or_default();
    Ok(())
}

/// The memory figures that change while no task of the cgroup runs:
/// usage, rss and cache, kernel memory (reclaim shrinks them all) and the
/// limit (`docker update`).
pub(super) fn refresh_v1_memory(
    r: &mut impl Files,
    dir: &Path,
    ram: u64,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    let keys = flat(["total_rss", "total_cache", "total_inactive_file"]);
    [
        s.mem_anon_bytes,
        s.mem_file_bytes,
        s.mem_inactive_file_bytes,
    ] = r.parse(dir, "memory.stat", keys)?.unwrap_or_default();
    s.mem_usage_bytes = r
        .parse(dir, "memory.usage_in_bytes", single_u64)?
        .unwrap_or(0);
    // v1 charges kernel memory to the usage counter too, and also tracks it
    // alone in memory.kmem.usage_in_bytes (absent with cgroup.memory=nokmem).
    s.mem_kernel_bytes = match r.parse(dir, "memory.kmem.usage_in_bytes", single_u64)? {
        Some(k) => k,
        None => s
            .mem_usage_bytes
            .saturating_sub(s.mem_anon_bytes.saturating_add(s.mem_file_bytes)),
    };
    s.mem_limit_bytes = r
        .parse(dir, "memory.limit_in_bytes", single_u64)?
        .filter(|&l| l < V1_UNLIMITED && l <= ram);
    Ok(())
}

pub(super) fn read_v1_cpu(
    r: &mut impl Files,
    dir: &Path,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    let keys = flat(["nr_periods", "nr_throttled"]);
    [s.cpu_periods, s.cpu_throttled_periods] = r.parse(dir, "cpu.stat", keys)?.unwrap_or_default();
    refresh_v1_cpu_limit(r, dir, s)
}

/// The CPU limit (quota over period), None when unlimited.
pub(super) fn refresh_v1_cpu_limit(
    r: &mut impl Files,
    dir: &Path,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    s.cpu_limit_cores = None;
    // A negative quota (-1) means unlimited; read the period only when needed.
    let quota = r.parse(dir, "cpu.cfs_quota_us", |t| {
        t.trim().parse::<i64>().map_err(|_| t.trim().to_owned())
    })?;
    if let Some(q) = quota.filter(|&q| q > 0)
        && let Some(p) = r.parse(dir, "cpu.cfs_period_us", single_u64)?
    {
        if p == 0 {
            return Err(StatsError::Malformed {
                path: dir.join("cpu.cfs_period_us"),
                line: "0".into(),
            });
        }
        s.cpu_limit_cores = Some(q as f64 / p as f64);
    }
    Ok(())
}

pub(super) fn read_v1_blkio(
    r: &mut impl Files,
    dir: &Path,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    // Which file exists depends on the kernel and I/O scheduler; the throttle
    // files count all bios regardless of scheduler, so they come first.
    [s.io_read_bytes, s.io_write_bytes] = [0, 0];
    for name in [
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
        "blkio.io_service_bytes_recursive",
    ] {
        if let Some((rd, wr)) = r.parse(dir, name, blkio_v1)? {
            [s.io_read_bytes, s.io_write_bytes] = [rd, wr];
            break;
        }
    }
    Ok(())
}

/// pids.current, pids.max and the forks pids.max refused (pids.events, 4.14+).
pub(super) fn read_v1_pids(
    r: &mut impl Files,
    dir: &Path,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    s.pids = r.parse(dir, "pids.current", single_u64)?;
    refresh_v1_pids_max(r, dir, s)?;
    [s.pids_refused] = r
        .parse(dir, "pids.events", flat(["max"]))?
        .unwrap_or_default();
    Ok(())
}

/// pids.max alone: the one pids figure that changes while no task runs.
pub(super) fn refresh_v1_pids_max(
    r: &mut impl Files,
    dir: &Path,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    s.pids_max = r.parse(dir, "pids.max", max_or_u64)?.flatten();
    Ok(())
}
