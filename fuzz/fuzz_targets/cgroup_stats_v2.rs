//! cgroup v2 statistics files (memory.stat, memory.max, memory.events,
//! cpu.stat, cpu.max, pids.current, io.stat) with arbitrary contents,
//! through the parser the agent runs. Properties: see `dsh_fuzz::check_stats`.
#![no_main]

use dsh::cgroup::stats::fuzz_input::{V2_FILES, parse_v2};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (files, result) = parse_v2(data);
    let names: Vec<&str> = V2_FILES.to_vec();
    dsh_fuzz::check_stats(&names, &files, &result);
});
