//! The agent reads per-container syscall counters through either layout.
use std::time::Duration;

use dsh::probe::SyscallCounterLayout;

use crate::{
    agentkit::{Agent, wait_until},
    common::{COUNTER_LAYOUTS, TestCgroup, counter_probe},
};

#[test]
fn agent_shows_a_containers_syscall_rate_in_each_layout() {
    for layout in COUNTER_LAYOUTS {
        // Skipped, with a note, where the kernel lacks the layout.
        if counter_probe(layout).is_none() {
            continue;
        }
        let agent = Agent::fresh(
            &format!("syscalls-{layout}"),
            &["--syscall-counters", layout.as_str()],
        );
        assert_eq!(agent.status()["syscall_counters"], layout.as_str());
        let cg = TestCgroup::new(&format!("agent-sys-{layout}"));
        let id = format!("/{}", cg.name);
        // About 5 s of back-to-back getppid calls.
        let mut busy = cg
            .command(&["getppid", "20000000"])
            .spawn()
            .expect("spawn the workload");
        let rate = wait_until(
            Duration::from_secs(20),
            "a syscall rate for the busy cgroup",
            || {
                let row = agent.row(&id)?;
                let rate = row["syscalls_per_s"].as_f64()?;
                (rate > 100_000.0).then_some(rate)
            },
        );
        let _ = busy.kill();
        let _ = busy.wait();
        if layout == SyscallCounterLayout::Hash {
            let fill = &agent.status()["maps"];
            assert!(
                fill.as_array()
                    .is_some_and(|m| m.iter().any(|m| m["name"] == "SYSCALL_COUNTS")),
                "status shows the hash's fill: {fill}"
            );
        }
        crate::common::note(&format!("{layout}: {rate:.0} syscalls/s"));
    }
}
