//! cgroup v1 statistics files (memory, cpu, cpuacct, pids, blkio) with
//! arbitrary contents, through the parsers the agent runs. Properties: see
//! `dsh_fuzz::check_stats`; v1 limits at or above 2^62 or the host's RAM
//! mean "unlimited".
#![no_main]

use dsh::cgroup::stats::fuzz_input::{RAM, V1_FILES, parse_v1};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (files, result) = parse_v1(data);
    let names: Vec<&str> = V1_FILES.iter().map(|(_, f)| *f).collect();
    dsh_fuzz::check_stats(&names, &files, &result);
    if let Ok(s) = &result {
        // RAM (64 GiB) is below 2^62, so it is the bound that counts.
        assert!(s.mem_limit_bytes.is_none_or(|l| l <= RAM));
        assert!(s.cpu_limit_cores.is_none_or(|c| c > 0.0));
    }
});
