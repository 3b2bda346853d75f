//! The cgroup v2 reader: one directory holds every controller's files.
use std::path::Path;

use super::text::{cpu_max, flat, io_stat_v2, max_or_u64, single_u64};
use super::{CgroupStats, Files, StatsError, read_pressure};

/// Every figure: the counters that move only while the cgroup's tasks
/// run, then those `refresh_v2` reads.
pub(super) fn read_v2(
    r: &mut impl Files,
    dir: &Path,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    s.mem_peak_bytes = r.parse(dir, "memory.peak", single_u64)?;
    [s.oom_kills, s.mem_high_events, s.mem_max_events] = r
        .parse(dir, "memory.events", flat(["oom_kill", "high", "max"]))?
        .unwrap_or_default();
    // cpu.stat exists even without the cpu controller (usage only); the
    // nr_* keys appear once it is enabled, so absent keys simply stay 0.
    let keys = flat(["usage_usec", "nr_periods", "nr_throttled"]);
    let [usec, periods, throttled] = r.parse(dir, "cpu.stat", keys)?.unwrap_or_default();
    s.cpu_usage_ns = usec.saturating_mul(1000);
    [s.cpu_periods, s.cpu_throttled_periods] = [periods, throttled];
    s.pids = r.parse(dir, "pids.current", single_u64)?;
    s.pids_refused = match s.pids {
        Some(_) => {
            let [refused] = r
                .parse(dir, "pids.events", flat(["max"]))?
                .unwrap_or_default();
            refused
        }
        None => 0,
    };
    refresh_v2(r, dir, s)
}

/// The figures that change while no task of the cgroup runs: memory
/// (reclaim shrinks it), the limits (`docker update`), block I/O (dirty
/// pages are written back later by kernel workers) and pressure (a task
/// blocked on I/O stalls without running; averages decay). pids.max is
/// read where the pids controller is (`s.pids` known).
pub(super) fn refresh_v2(
    r: &mut impl Files,
    dir: &Path,
    s: &mut CgroupStats,
) -> Result<(), StatsError> {
    // `kernel` appeared in 5.18; before it, its parts.
    let keys = flat([
        "anon",
        "file",
        "inactive_file",
        "kernel",
        "kernel_stack",
        "pagetables",
        "percpu",
        "sock",
        "slab",
        "vmalloc",
    ]);
    let [anon, file, inactive_file, kernel, parts @ ..] =
        r.parse(dir, "memory.stat", keys)?.unwrap_or_default();
    [s.mem_anon_bytes, s.mem_file_bytes] = [anon, file];
    s.mem_inactive_file_bytes = inactive_file;
    s.mem_kernel_bytes = if kernel > 0 {
        kernel
    } else {
        parts.iter().sum()
    };
    s.mem_usage_bytes = r.parse(dir, "memory.current", single_u64)?.unwrap_or(0);
    s.mem_limit_bytes = r.parse(dir, "memory.max", max_or_u64)?.flatten();
    s.cpu_limit_cores = r.parse(dir, "cpu.max", cpu_max)?.flatten();
    s.pids_max = match s.pids {
        Some(_) => r.parse(dir, "pids.max", max_or_u64)?.flatten(),
        None => None,
    };
    [s.io_read_bytes, s.io_write_bytes] = r
        .parse(dir, "io.stat", io_stat_v2)?
        .map_or([0, 0], |(rd, wr)| [rd, wr]);
    s.pressure = Some(read_pressure(r, dir)?).filter(|p| !p.is_empty());
    Ok(())
}
