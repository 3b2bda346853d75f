//! `dsh trace` of a cgroup running a known syscall workload.
use std::time::Duration;

use serde_json::Value;

use crate::{
    agentkit::{Agent, dsh_bin},
    common::TestCgroup,
};

#[test]
fn trace_reports_the_workloads_syscall_errno_and_histogram() {
    let agent = Agent::fresh("trace", &[]);
    let cg = TestCgroup::new("trace");
    let mut idle = cg
        .command(&["sleep"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("a process to make the cgroup a running container");
    let name = format!("/{}", cg.name);
    crate::agentkit::wait_until(Duration::from_secs(10), "the cgroup in ps", || {
        agent
            .row(&name)
            .filter(|r| r["state"] == "kContainerRunning")
    });
    // Trace for 5 s; 20,000 stats of a missing file run inside the window,
    // started once the trace programs are attached (status shows them a
    // tick later): a slow host (an emulated VM) takes a while to attach.
    let tracer = std::process::Command::new(dsh_bin())
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .args(["trace", &name, "--duration", "5s", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("dsh trace");
    crate::agentkit::wait_until(Duration::from_secs(10), "trace programs attached", || {
        agent.status()["programs"]
            .as_array()?
            .iter()
            .any(|p| p["name"] == "dsh_trace_exit" && p["attached"] == true)
            .then_some(())
    });
    const CALLS: u64 = 20_000;
    assert!(cg.run(&["stat-missing", &CALLS.to_string()]).success());
    let out = tracer.wait_with_output().expect("trace output");
    assert!(out.status.success(), "dsh trace failed");
    let report: Value = serde_json::from_slice(&out.stdout).expect("trace --json");
    let rows = report["syscalls"].as_array().expect("syscalls");
    let stat = rows
        .iter()
        .find(|r| r["top_errno"] == "ENOENT" && r["count"].as_u64() >= Some(CALLS))
        .unwrap_or_else(|| panic!("no syscall with {CALLS}+ ENOENT calls: {report:#}"));
    let count = stat["count"].as_u64().unwrap();
    assert!(count < CALLS * 11 / 10, "{count} calls for {CALLS} stats");
    assert!(stat["errors"].as_u64() >= Some(CALLS));
    assert!(
        ["newfstatat", "statx", "stat", "lstat"].contains(&stat["name"].as_str().unwrap()),
        "{stat}"
    );
    let ns = |k: &str| stat[k].as_u64().unwrap_or(0);
    assert!(ns("p50_ns") > 0 && ns("p99_ns") >= ns("p50_ns"), "{stat}");
    // p99 is a bucket midpoint; the max is exact and can sit below it.
    assert!(ns("max_ns") * 2 >= ns("p99_ns"), "{stat}");
    let hist = report["latency_histogram"].as_array().expect("histogram");
    let total: u64 = hist.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(total, report["total_calls"].as_u64().unwrap());

    // The human report: the syscall's row and the histogram's bars.
    let text = agent.ok(&["trace", &name, "--duration", "300ms"]);
    assert!(
        text.contains("syscall latency") || text.contains("0 syscalls"),
        "{text}"
    );
    let _ = idle.kill();
    let _ = idle.wait();

    // Tracing leaves nothing attached (status refreshes every tick).
    crate::agentkit::wait_until(Duration::from_secs(5), "trace programs detached", || {
        let status = agent.status();
        let programs = status["programs"].as_array()?.clone();
        let attached = |name: &str| {
            programs
                .iter()
                .any(|p| p["name"] == name && p["attached"] == true)
        };
        (!attached("dsh_trace_enter") && !attached("dsh_trace_exit")).then_some(())
    });
    // An unknown container is a clear error.
    let bad = agent.dsh(&["trace", "nope", "-d", "1s"]);
    assert_eq!(bad.status.code(), Some(1));
}
