//! Test fixtures: cgroup directories made of files, and file contents in
//! the formats of Documentation/admin-guide/cgroup-v1 and cgroup-v2.rst.
use std::fs;
use std::path::{Path, PathBuf};

use super::{CgroupStats, StatsError};

/// A fresh fixture directory, removed on drop.
pub(super) struct Fixture(PathBuf);
impl Fixture {
    pub(super) fn new(name: &str) -> Self {
        let pid = std::process::id();
        let d = std::env::temp_dir().join(format!("dsh-stats-{pid}-{name}"));
        let _ = fs::remove_dir_all(&d);
        Fixture(d)
    }
    pub(super) fn sub(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.0.join(name);
        fs::create_dir_all(&d).expect("create fixture dir");
        files.iter().for_each(|(f, c)| put(&d, f, c));
        d
    }
}
impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
pub(super) fn put(dir: &Path, file: &str, content: &str) {
    fs::write(dir.join(file), content).expect("write fixture");
}
pub(super) fn malformed(r: Result<CgroupStats, StatsError>) -> String {
    match r {
        Err(StatsError::Malformed { line, .. }) => line,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

// Formats as in Documentation/admin-guide/cgroup-v2.rst (plus an unknown key).
pub(super) const V2_MEMORY_STAT: &str =
    "anon 1048576\nfile 2097152\nkernel 65536\nshmem 0\ninactive_file 1048576\nfuture_key x\n";
pub(super) const V2_EVENTS: &str = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
pub(super) const V2_CPU_STAT: &str = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n\
    nr_periods 40\nnr_throttled 7\nthrottled_usec 9000\nnr_bursts 0\nburst_usec 0\n";
pub(super) const V2_IO_STAT: &str = "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
    8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n";
pub(super) const V2_IO_PRESSURE: &str = "some avg10=69.00 avg60=40.00 avg300=9.00 total=5000000\n\
    full avg10=60.00 avg60=30.00 avg300=8.00 total=4000000\n";
// Formats as in Documentation/admin-guide/cgroup-v1/memory.rst and blkio-controller.rst.
pub(super) const V1_MEMORY_STAT: &str = "cache 100\nrss 200\nhierarchical_memory_limit 9223372036854771712\n\
    total_cache 4096\ntotal_rss 8192\ntotal_inactive_file 1024\ntotal_unevictable 0\n";
pub(super) const V1_BLKIO: &str = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 8192\n8:0 Async 4096\n\
    8:0 Discard 0\n8:0 Total 12288\n8:16 Read 1\n8:16 Write 2\n8:16 Total 3\nTotal 12291\n";

/// Mount point of a v1 hierarchy carrying `ctrl`, from the mount table.
pub(super) fn v1_mount(ctrl: &str) -> Option<PathBuf> {
    crate::cgroup::layout::CgroupLayout::detect()
        .ok()?
        .v1
        .remove(ctrl)
}

/// Cgroup dirs made by the real test, removed on drop even if an assertion fails.
pub(super) struct Cgroups(pub(super) Vec<PathBuf>);
impl Drop for Cgroups {
    fn drop(&mut self) {
        self.0.iter().for_each(|d| drop(fs::remove_dir(d)));
    }
}
