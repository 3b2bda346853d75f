//! The fuzz targets' input format: one cgroup's files in [`V2_FILES`] (or
//! [`V1_FILES`]) order, separated by NUL (cgroupfs text holds none); a file
//! that is the single byte 0x01 is absent, as are files past the last one.
use std::path::{Path, PathBuf};

use super::{CgroupStats, StatsError, StatsSource};

pub const V2_FILES: &[&str] = &[
    "memory.stat",
    "memory.max",
    "memory.events",
    "cpu.stat",
    "cpu.max",
    "pids.current",
    "io.stat",
    "pids.max",
    "pids.events",
    "cpu.pressure",
    "memory.pressure",
    "io.pressure",
];

/// (controller directory, file).
pub const V1_FILES: &[(&str, &str)] = &[
    ("memory", "memory.stat"),
    ("memory", "memory.limit_in_bytes"),
    ("memory", "memory.oom_control"),
    ("cpu", "cpu.stat"),
    ("cpu", "cpu.cfs_quota_us"),
    ("cpu", "cpu.cfs_period_us"),
    ("cpuacct", "cpuacct.usage"),
    ("pids", "pids.current"),
    ("blkio", "blkio.throttle.io_service_bytes_recursive"),
    ("blkio", "blkio.throttle.io_service_bytes"),
    ("blkio", "blkio.io_service_bytes_recursive"),
    ("memory", "memory.failcnt"),
    ("pids", "pids.max"),
    ("pids", "pids.events"),
];

/// The host RAM the parsers are given (64 GiB).
pub const RAM: u64 = 64 << 30;

const ABSENT: &[u8] = &[1];

pub fn encode(files: &[Option<&str>]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = files
        .iter()
        .map(|f| f.map_or(ABSENT, str::as_bytes))
        .collect();
    chunks.join(&0u8)
}

/// The files' contents, in order (None: absent).
pub fn decode(bytes: &[u8], count: usize) -> Vec<Option<String>> {
    let mut files: Vec<Option<String>> = bytes
        .split(|&b| b == 0)
        .take(count)
        .map(|c| (c != ABSENT).then(|| String::from_utf8_lossy(c).into_owned()))
        .collect();
    files.resize(count, None);
    files
}

fn lookup<'a>(
    paths: &'a [PathBuf],
    files: &'a [Option<String>],
) -> impl FnMut(&Path) -> Option<String> + 'a {
    |p| {
        let i = paths.iter().position(|q| q == p)?;
        files[i].clone()
    }
}

/// The v2 parser on fuzz input: the files and what it made of them.
pub fn parse_v2(bytes: &[u8]) -> (Vec<Option<String>>, Result<CgroupStats, StatsError>) {
    let dir = PathBuf::from("/cg");
    let paths: Vec<PathBuf> = V2_FILES.iter().map(|f| dir.join(f)).collect();
    let files = decode(bytes, paths.len());
    let r = super::parse(&StatsSource::V2(dir), RAM, lookup(&paths, &files));
    (files, r)
}

/// The v1 parsers on fuzz input, every controller in its own directory.
pub fn parse_v1(bytes: &[u8]) -> (Vec<Option<String>>, Result<CgroupStats, StatsError>) {
    let paths: Vec<PathBuf> = V1_FILES
        .iter()
        .map(|(d, f)| Path::new("/").join(d).join(f))
        .collect();
    let files = decode(bytes, paths.len());
    let src = StatsSource::V1 {
        memory: Some("/memory".into()),
        cpu: Some("/cpu".into()),
        cpuacct: Some("/cpuacct".into()),
        pids: Some("/pids".into()),
        blkio: Some("/blkio".into()),
        unified: None,
    };
    let r = super::parse(&src, RAM, lookup(&paths, &files));
    (files, r)
}
