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

    // An hour-long trace whose client is killed (Ctrl-C) stops at once:
    // its programs detach and the next trace may start.
    let mut long = std::process::Command::new(dsh_bin())
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .args(["trace", &name, "-d", "1h"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("dsh trace -d 1h");
    crate::agentkit::wait_until(Duration::from_secs(5), "the 1h trace attached", || {
        trace_attached(&agent).then_some(())
    });
    let _ = long.kill();
    let _ = long.wait();
    crate::agentkit::wait_until(
        Duration::from_secs(5),
        "the abandoned trace stopped",
        || (!trace_attached(&agent)).then_some(()),
    );
    // The programs detach before the agent lets the trace go; in a slow
    // (emulated) guest a new trace can still be told to try again.
    crate::agentkit::wait_until(Duration::from_secs(10), "the next trace", || {
        let next = agent.dsh(&["trace", &name, "-d", "100ms"]);
        if next.status.success() {
            return Some(());
        }
        let err = String::from_utf8_lossy(&next.stderr);
        assert!(err.contains("another dsh trace is running"), "{err}");
        None
    });

    let _ = idle.kill();
    let _ = idle.wait();

    // Tracing leaves nothing attached (status refreshes every tick).
    crate::agentkit::wait_until(Duration::from_secs(5), "trace programs detached", || {
        (!trace_attached(&agent)).then_some(())
    });
    // An unknown container is a clear error; `-d 1h` is a duration (the
    // agent, not the parser, refuses the name).
    let bad = agent.dsh(&["trace", "nope", "-d", "1h"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("no container matches \"nope\""), "{err}");
    let bad = agent.dsh(&["trace", "nope", "-d", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "clap's usage error");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("invalid value 'soon'"), "{err}");
}

/// Either trace program attached, as `dsh status` shows it.
fn trace_attached(agent: &Agent) -> bool {
    let status = agent.status();
    let programs = status["programs"].as_array().cloned().unwrap_or_default();
    programs.iter().any(|p| {
        (p["name"] == "dsh_trace_enter" || p["name"] == "dsh_trace_exit") && p["attached"] == true
    })
}
