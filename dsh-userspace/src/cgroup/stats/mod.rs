//! Cgroup statistics from cgroupfs, v2 and v1 alike.
//!
//! Called for hundreds of cgroups every second, so each file is opened and read
//! exactly once into one reused buffer, and nothing else (no directory walks) is
//! touched except on the error path, where one `stat` of the directory tells a
//! controller that is not enabled apart from a cgroup that was removed.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod files;
#[cfg(test)]
mod fixtures;
#[cfg(any(test, fuzzing))]
pub mod fuzz_input;
mod pressure;
#[cfg(test)]
mod tests;
mod text;
mod v1;
mod v2;

use files::{Files, Reader, Slot, Texts};
use pressure::read_pressure;
pub use pressure::{Pressure, Psi, Stall, host_psi};
use text::{flat, single_u64};
use v1::{
    read_v1_blkio, read_v1_cpu, read_v1_memory, read_v1_pids, refresh_v1_cpu_limit,
    refresh_v1_memory, refresh_v1_pids_max,
};
use v2::{read_v2, refresh_v2};

/// Where one cgroup's files are. On v2 one directory; on v1 (and hybrid hosts,
/// whose cgroup2 tree has no controllers) one directory per controller, any of
/// which may be absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsSource {
    V2(PathBuf),
    V1 {
        memory: Option<PathBuf>,
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        pids: Option<PathBuf>,
        blkio: Option<PathBuf>,
        /// The cgroup's directory in the cgroup2 tree of a hybrid host: its
        /// pressure files (PSI) are there.
        unified: Option<PathBuf>,
    },
}

impl StatsSource {
    /// Every directory this source reads from.
    pub fn dirs(&self) -> Vec<&Path> {
        match self {
            StatsSource::V2(d) => vec![d.as_path()],
            StatsSource::V1 {
                memory,
                cpu,
                cpuacct,
                pids,
                blkio,
                unified,
            } => [memory, cpu, cpuacct, pids, blkio, unified]
                .into_iter()
                .flatten()
                .map(PathBuf::as_path)
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CgroupStats {
    /// What the kernel charges against the limit (and OOM-kills on): rss,
    /// page cache and kernel memory (v2 `memory.current`; v1
    /// `memory.usage_in_bytes`). 0 when the file is absent.
    pub mem_usage_bytes: u64,
    /// anon (v2 memory.stat `anon`; v1 memory.stat `total_rss`)
    pub mem_anon_bytes: u64,
    /// page cache (v2 `file`; v1 `total_cache`)
    pub mem_file_bytes: u64,
    /// page cache the kernel would reclaim first (v2 `inactive_file`; v1
    /// `total_inactive_file`): usage minus this is the working set.
    pub mem_inactive_file_bytes: u64,
    /// kernel memory: stacks, page tables, slab, socket buffers, pipes (v2
    /// memory.stat `kernel`, or the sum of its parts on kernels before 5.18;
    /// v1 `memory.kmem.usage_in_bytes`, else usage minus rss and cache)
    pub mem_kernel_bytes: u64,
    /// None when unlimited (v2 "max"; v1 a value >= 2^62 or larger than host RAM, the kernel's "no limit" is PAGE_COUNTER_MAX*page size)
    pub mem_limit_bytes: Option<u64>,
    /// The memory high-water mark (v2 `memory.peak`, 5.19+; v1
    /// `memory.max_usage_in_bytes`); None where the kernel keeps none.
    pub mem_peak_bytes: Option<u64>,
    /// OOM kills inside this cgroup (v2 memory.events `oom_kill`; v1 memory.oom_control `oom_kill`, missing on old kernels -> 0)
    pub oom_kills: u64,
    /// cumulative CPU time (v2 cpu.stat usage_usec*1000; v1 cpuacct.usage)
    pub cpu_usage_ns: u64,
    /// quota/period in cores; None when unlimited (v2 cpu.max "max ..."; v1 cpu.cfs_quota_us == -1)
    pub cpu_limit_cores: Option<f64>,
    /// CFS periods and throttled periods (v2 cpu.stat nr_periods/nr_throttled; v1 cpu.stat)
    pub cpu_periods: u64,
    pub cpu_throttled_periods: u64,
    /// pids.current; None when the controller is absent
    pub pids: Option<u64>,
    /// bytes read/written (v2 io.stat rbytes/wbytes summed over devices; v1 blkio.throttle.io_service_bytes_recursive, falling back to blkio.throttle.io_service_bytes or blkio.io_service_bytes_recursive: sum of Read / Write rows)
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
    /// pids.max; None when unlimited or the controller is absent.
    #[serde(default)]
    pub pids_max: Option<u64>,
    /// Forks refused at pids.max (pids.events `max`, v1 and v2): counted
    /// in the cgroup whose limit refused them.
    #[serde(default)]
    pub pids_refused: u64,
    /// Times the cgroup went over memory.high and was throttled (v2
    /// memory.events `high`; v1 has no such limit).
    #[serde(default)]
    pub mem_high_events: u64,
    /// Times usage reached the limit and had to be reclaimed (v2
    /// memory.events `max`; v1 `memory.failcnt`).
    #[serde(default)]
    pub mem_max_events: u64,
    /// Pressure stall information; None where the kernel keeps none for
    /// this cgroup (no PSI, `psi=0`, or no cgroup2 directory).
    #[serde(default)]
    pub pressure: Option<Pressure>,
}

impl CgroupStats {
    /// The working set: charged usage minus inactive page cache, as the
    /// kubelet (eviction, `kubectl top`) and `docker stats` compute it. This
    /// is what `dsh ps` shows as memory in use and what the 90%-of-limit
    /// Warning is based on: it holds kernel memory (a fork loop's stacks, a
    /// socket flood's buffers), which rss plus cache misses, and leaves out
    /// the cold cache the kernel reclaims before it would OOM-kill.
    pub fn mem_used_bytes(&self) -> u64 {
        self.mem_working_set_bytes()
    }

    pub fn mem_working_set_bytes(&self) -> u64 {
        if self.mem_usage_bytes == 0 {
            // No usage file (a v2 root, a v1 host without the controller).
            return self.mem_anon_bytes.saturating_add(self.mem_file_bytes);
        }
        self.mem_usage_bytes
            .saturating_sub(self.mem_inactive_file_bytes)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The cgroup was removed while (or before) it was read: an ordinary event, not a fault.
    #[error("cgroup {0} is gone")]
    Vanished(PathBuf),
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unexpected content {line:?}")]
    Malformed { path: PathBuf, line: String },
}

/// Reads one cgroup's statistics. Absent controllers give zero/None fields.
pub fn read(src: &StatsSource) -> Result<CgroupStats, StatsError> {
    StatsReader::default().read(src)
}

/// Reads statistics again and again: keeps each file open and re-reads it
/// from offset 0 (cgroupfs regenerates the content), which costs a fraction
/// of an open+read+close. Files of cgroups no longer asked about must be let
/// go with `retain` (an open file pins a removed cgroup in the kernel).
#[derive(Default)]
pub struct StatsReader {
    r: Reader,
}

impl StatsReader {
    pub fn read(&mut self, src: &StatsSource) -> Result<CgroupStats, StatsError> {
        self.read_keeping(src, true)
    }

    /// `read`, keeping the files it opens (`keep`) or closing each after
    /// its read (a container over the descriptor budget; files it already
    /// holds stay open until `retain` lets them go).
    pub fn read_keeping(
        &mut self,
        src: &StatsSource,
        keep: bool,
    ) -> Result<CgroupStats, StatsError> {
        self.r.close_after = !keep;
        let result = read_all(&mut self.r, src, host_ram());
        if let Err(StatsError::Vanished(dir)) = &result {
            self.r.open.remove(dir.as_os_str());
        }
        result
    }

    /// An idle cgroup's figures (its CPU time as in `last`, so none of its
    /// tasks ran): `last` with what can change without running read again
    /// (memory and its limit, CPU and pids limits, block I/O, pressure) and
    /// the counters only running moves (CPU time, throttling, pids and
    /// their refusals, memory peak, limit hits and OOM kills) kept.
    pub fn refresh_idle(
        &mut self,
        src: &StatsSource,
        keep: bool,
        last: &CgroupStats,
    ) -> Result<CgroupStats, StatsError> {
        self.r.close_after = !keep;
        let result = refresh_all(&mut self.r, src, host_ram(), last);
        if let Err(StatsError::Vanished(dir)) = &result {
            self.r.open.remove(dir.as_os_str());
        }
        result
    }

    /// The CPU time the cgroup has used (ns): one small file, and the
    /// figure that moves whenever anything in the cgroup runs. None where
    /// no file has it (a v1 host without cpuacct).
    pub fn read_cpu(&mut self, src: &StatsSource, keep: bool) -> Result<Option<u64>, StatsError> {
        self.r.close_after = !keep;
        let result = match src {
            StatsSource::V2(dir) => self
                .r
                .parse(dir, "cpu.stat", flat(["usage_usec"]))
                .map(|v| v.map(|[usec]| usec.saturating_mul(1000))),
            // A cgroup may lack the cpuacct hierarchy alone: no figure
            // here, and the full read (which tells a cgroup gone from every
            // hierarchy) decides.
            StatsSource::V1 {
                cpuacct: Some(dir), ..
            } => match self.r.parse(dir, "cpuacct.usage", single_u64) {
                Err(StatsError::Vanished(_)) => Ok(None),
                read => read,
            },
            StatsSource::V1 { .. } => Ok(None),
        };
        if let Err(StatsError::Vanished(dir)) = &result {
            self.r.open.remove(dir.as_os_str());
        }
        result
    }

    /// Closes the files of every cgroup directory `keep` says no to.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.r.open.retain(|dir, _| keep(Path::new(dir)));
    }

    /// Files held open.
    pub fn open_files(&self) -> usize {
        self.r.open.values().map(|files| open_in(files)).sum()
    }

    /// Files held open in one cgroup directory.
    pub fn open_files_in(&self, dir: &Path) -> usize {
        self.r.open.get(dir.as_os_str()).map_or(0, |f| open_in(f))
    }
}

fn open_in(files: &[(&'static str, Slot)]) -> usize {
    files
        .iter()
        .filter(|(_, s)| matches!(s, Slot::Open(_)))
        .count()
}

/// The statistics of `src`, its files' contents given by `file` (None: the
/// file is absent, its controller not enabled), as `read` parses cgroupfs;
/// `ram` is the host's memory in bytes. For tests and fuzzing.
pub fn parse(
    src: &StatsSource,
    ram: u64,
    file: impl FnMut(&Path) -> Option<String>,
) -> Result<CgroupStats, StatsError> {
    read_all(&mut Texts(file), src, ram)
}

fn read_all(r: &mut impl Files, src: &StatsSource, ram: u64) -> Result<CgroupStats, StatsError> {
    let mut s = CgroupStats::default();
    match src {
        StatsSource::V2(dir) => read_v2(r, dir, &mut s)?,
        StatsSource::V1 {
            memory,
            cpu,
            cpuacct,
            pids,
            blkio,
            unified,
        } => {
            // Each controller on its own: a cgroup may exist in some
            // hierarchies only (a systemd unit with memory accounting and
            // no CPU accounting), and a missing one empties only its own
            // figures. Only a cgroup gone from every hierarchy has vanished.
            let mut v1 = V1Reads::default();
            if let Some(d) = memory {
                v1.note(read_v1_memory(r, d, ram, &mut s))?;
            }
            if let Some(d) = cpu {
                v1.note(read_v1_cpu(r, d, &mut s))?;
            }
            if let Some(d) = cpuacct {
                let usage = r.parse(d, "cpuacct.usage", single_u64);
                v1.note(usage.map(|u| s.cpu_usage_ns = u.unwrap_or(0)))?;
            }
            if let Some(d) = pids {
                v1.note(read_v1_pids(r, d, &mut s))?;
            }
            if let Some(d) = blkio {
                v1.note(read_v1_blkio(r, d, &mut s))?;
            }
            v1.result()?;
            if let Some(d) = unified {
                s.pressure = Some(read_pressure(r, d)?).filter(|p| !p.is_empty());
            }
        }
    }
    Ok(s)
}

/// `last` refreshed as `StatsReader::refresh_idle` says.
fn refresh_all(
    r: &mut impl Files,
    src: &StatsSource,
    ram: u64,
    last: &CgroupStats,
) -> Result<CgroupStats, StatsError> {
    let mut s = last.clone();
    match src {
        StatsSource::V2(dir) => refresh_v2(r, dir, &mut s)?,
        StatsSource::V1 {
            memory,
            cpu,
            cpuacct: _,
            pids,
            blkio,
            unified,
        } => {
            // cpuacct.usage was read this tick (unchanged: why this is an
            // idle refresh); a cgroup gone from every other hierarchy has
            // vanished, as in `read_all`.
            let mut v1 = V1Reads::default();
            if let Some(d) = memory {
                v1.note(refresh_v1_memory(r, d, ram, &mut s))?;
            }
            if let Some(d) = cpu {
                v1.note(refresh_v1_cpu_limit(r, d, &mut s))?;
            }
            if let Some(d) = pids {
                v1.note(refresh_v1_pids_max(r, d, &mut s))?;
            }
            if let Some(d) = blkio {
                v1.note(read_v1_blkio(r, d, &mut s))?;
            }
            v1.result()?;
            if let Some(d) = unified {
                s.pressure = Some(read_pressure(r, d)?).filter(|p| !p.is_empty());
            }
        }
    }
    Ok(s)
}

/// The v1 controllers read so far: how many were there, and the first
/// directory found gone.
#[derive(Default)]
struct V1Reads {
    present: usize,
    vanished: Option<PathBuf>,
}

impl V1Reads {
    /// A controller's read: a directory gone is remembered, not an error
    /// yet; any other failure is.
    fn note(&mut self, read: Result<(), StatsError>) -> Result<(), StatsError> {
        match read {
            Ok(()) => self.present += 1,
            Err(StatsError::Vanished(dir)) => {
                self.vanished.get_or_insert(dir);
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Vanished when no hierarchy had the cgroup any more.
    fn result(self) -> Result<(), StatsError> {
        match self.vanished {
            Some(dir) if self.present == 0 => Err(StatsError::Vanished(dir)),
            _ => Ok(()),
        }
    }
}

/// Host RAM in bytes, read once: the agent's host does not change size.
/// If /proc/meminfo is unreadable only the 2^62 rule applies.
fn host_ram() -> u64 {
    static RAM: OnceLock<u64> = OnceLock::new();
    *RAM.get_or_init(|| {
        use procfs::Current as _;
        procfs::Meminfo::current().map_or(u64::MAX, |m| m.mem_total)
    })
}
