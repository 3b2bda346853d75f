//! What keeps the agent unnoticed, checked for behaviour (the benchmark
//! measures the cost): churn summed up while critical events still arrive
//! one by one, and the three syscall accounting modes.
use std::{
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    agentkit::{Agent, Container, wait_until, workload_mounts},
    common::{TestCgroup, wait_ready},
};

/// The fork-heavy container: about a thousand processes a second.
fn fork_heavy(tag: &str) -> Container {
    Container::run(
        tag,
        &[],
        &[
            "sh",
            "-c",
            "while true; do /bin/cat /proc/self/status >/dev/null; done",
        ],
    )
}

/// The `dsh log` text of one container once it contains `needle`.
fn log_with(agent: &Agent, args: &[&str], needle: &str) -> String {
    wait_until(Duration::from_secs(20), needle, || {
        let text = agent.ok(args);
        text.contains(needle).then_some(text)
    })
}

#[test]
fn churn_is_summed_up_while_crashes_and_oom_kills_arrive() {
    let agent = Agent::fresh("forky", &[]);
    let forky = fork_heavy("forky");
    // Let the churn run for a few samples before the crashes.
    let row = wait_until(
        Duration::from_secs(20),
        "the fork-heavy container's churn",
        || {
            agent
                .row(&forky.name)
                .filter(|r| r["process_exits"].as_u64() >= Some(500))
        },
    );
    assert_eq!(row["state"], "kContainerRunning", "{row}");

    let mounts = workload_mounts();
    let mounts: Vec<&str> = mounts.iter().map(String::as_str).collect();
    let crasher = Container::run("forky-segv", &mounts, &["/dsh-workload", "segv"]);
    let oom = Container::run(
        "forky-oom",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    log_with(
        &agent,
        &["log", &crasher.name],
        "change state from kContainerRunning to kContainerError with msg receive signal SIGSEGV, seems coredump",
    );
    log_with(
        &agent,
        &["log", &oom.name],
        "change state from kContainerRunning to kContainerError with msg oom",
    );

    // The fork-heavy container: summary lines, never one line per process.
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.log_json(Some(&forky.name));
    let churn: Vec<&Value> = log.iter().filter(|e| e["kind"] == "churn").collect();
    assert!(!churn.is_empty(), "no churn summary: {log:?}");
    let msg = churn[churn.len() - 1]["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("exec ") && msg.contains("(cat ") && msg.contains(" exited ("),
        "{msg}"
    );
    assert!(
        !log.iter().any(|e| e["kind"] == "exec"),
        "one line per process: {log:?}"
    );
    let text = agent.ok(&["log", "-a", &forky.name]);
    assert!(text.contains(" churn with msg exec "), "{text}");
    // One line per sample (500 ms here) at most.
    let seconds = started.elapsed().as_secs_f64() + 20.0;
    assert!(
        (churn.len() as f64) <= seconds * 2.0 + 2.0,
        "{} churn lines",
        churn.len()
    );
    let status = agent.status();
    assert_eq!(status["channels"][0]["name"], "critical");
    assert_eq!(status["channels"][0]["lost"], 0, "{status}");
    assert_eq!(status["channels"][1]["lost"], 0, "{status}");
    drop(forky);
}

/// getppid at a known rate in its own cgroup, which is a running container.
fn syscall_rate(cg: &TestCgroup, rate: u64, secs: u64) -> Child {
    let mut child = cg
        .command(&["syscall-rate", &rate.to_string(), &secs.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("syscall-rate");
    wait_ready(&mut child);
    child
}

fn program<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["programs"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no program {name}: {status}"))
}

/// The programs that run on a syscall hook in the agent's counter layout
/// (`dsh status`'s `syscall_counters`): the layout's counters, then the
/// trace pair. The agent loads no other layout's programs, nor the
/// benchmarks' empty one.
fn per_syscall(status: &Value) -> [&'static str; 5] {
    if status["syscall_counters"] == "hash" {
        [
            "dsh_sys_exit_hash",
            "dsh_sys_enter_latency_hash",
            "dsh_sys_exit_latency_hash",
            "dsh_trace_enter",
            "dsh_trace_exit",
        ]
    } else {
        [
            "dsh_sys_exit",
            "dsh_sys_enter_latency",
            "dsh_sys_exit_latency",
            "dsh_trace_enter",
            "dsh_trace_exit",
        ]
    }
}

#[test]
fn sampled_syscall_rates_are_estimates_within_a_fifth_of_the_truth() {
    const RATE: u64 = 20_000;
    let agent = Agent::fresh("sampled", &["--syscall-period", "3s"]);
    let cg = TestCgroup::new("sampled");
    let name = format!("/{}", cg.name);
    let mut child = syscall_rate(&cg, RATE, 12);
    // Two windows closed while the rate runs.
    let windows = agent.status()["syscall_windows"].as_u64().unwrap_or(0);
    let row = wait_until(Duration::from_secs(20), "two sampling windows", || {
        let s = agent.status();
        (s["syscall_windows"].as_u64() >= Some(windows + 2))
            .then(|| agent.row(&name))
            .flatten()
    });
    assert_eq!(row["syscalls_sampled"], true, "{row}");
    assert_eq!(row["syscall_accounting"], "sampled", "{row}");
    let rate = row["syscalls_per_s"].as_f64().unwrap_or(0.0);
    let error = (rate - RATE as f64).abs() / RATE as f64;
    assert!(
        error <= 0.2,
        "estimated {rate:.0}/s for {RATE}/s ({:.0}% off)",
        error * 100.0
    );
    let wide = agent.ok(&["ps", "--wide"]);
    let line = wide
        .lines()
        .find(|l| l.starts_with(&name))
        .expect("the row");
    assert!(line.contains(" ~"), "estimates are marked: {line}");
    let status = agent.status();
    assert_eq!(status["syscall_accounting"], "sampled");
    assert_eq!(status["syscall_window_ms"], 500, "the default window");
    assert_eq!(status["syscall_period_ms"], 3000);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn exact_syscall_counting_stays_attached() {
    const RATE: u64 = 20_000;
    let agent = Agent::fresh("exact", &["--syscalls", "exact"]);
    let cg = TestCgroup::new("exact");
    let name = format!("/{}", cg.name);
    let mut child = syscall_rate(&cg, RATE, 6);
    let row = wait_until(Duration::from_secs(10), "the rate in ps", || {
        agent
            .row(&name)
            .filter(|r| r["syscalls_per_s"].as_f64() > Some(RATE as f64 / 2.0))
    });
    assert_eq!(row["syscalls_sampled"], false, "{row}");
    assert_eq!(row["syscall_accounting"], "exact", "{row}");
    let rate = row["syscalls_per_s"].as_f64().unwrap_or(0.0);
    assert!(
        (rate - RATE as f64).abs() / (RATE as f64) <= 0.2,
        "{rate:.0}/s for {RATE}/s"
    );
    for _ in 0..3 {
        let status = agent.status();
        assert_eq!(status["syscall_accounting"], "exact");
        let count = per_syscall(&status)[0];
        assert_eq!(program(&status, count)["attached"], true);
        std::thread::sleep(Duration::from_millis(700));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn syscalls_off_attaches_no_per_syscall_program() {
    let agent = Agent::fresh("sysoff", &["--syscalls", "off"]);
    let cg = TestCgroup::new("sysoff");
    let name = format!("/{}", cg.name);
    let mut child = syscall_rate(&cg, 20_000, 3);
    let row = wait_until(Duration::from_secs(10), "the cgroup in ps", || {
        agent
            .row(&name)
            .filter(|r| r["state"] == "kContainerRunning")
    });
    let _ = child.wait();
    assert_eq!(row["syscall_accounting"], "off", "{row}");
    let status = agent.status();
    assert_eq!(status["syscall_accounting"], "off");
    assert!(status["syscall_window_ms"].is_null(), "{status}");
    for p in per_syscall(&status) {
        let prog = program(&status, p);
        assert_eq!(prog["attached"], false, "{prog}");
        assert_eq!(prog["runs_total"], 0, "{prog}");
    }
    // The table shows no rate rather than a zero.
    // -a: the workload has exited by now, and a slow host may already
    // have the container out of the running list.
    let wide = agent.ok(&["ps", "-a", "--wide"]);
    let line = wide
        .lines()
        .find(|l| l.starts_with(&name))
        .expect("the row");
    assert!(!line.contains('~'), "{line}");
    // --syscall-latency needs counting: a usage error, exit 2.
    let out = agent.dsh(&["agent", "--syscalls", "off", "--syscall-latency"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--syscall-latency"),
        "{out:?}"
    );
}

/// Entries of the kernel's maps keyed by cgroup id (`dsh status --json`).
fn map_entries(agent: &Agent, name: &str) -> u64 {
    agent.status()["maps"]
        .as_array()
        .and_then(|maps| maps.iter().find(|m| m["name"] == name))
        .and_then(|m| m["entries"].as_u64())
        .unwrap_or_else(|| panic!("no {name} in dsh status --json"))
}

/// A removed cgroup's entries leave the kernel's maps (block counters, its
/// main process, its hash-layout syscall counters): containers come and go
/// by the thousand, and full maps would stop the counting. Counted as
/// fills, since the agent does not list the keys: each map loses at least
/// the test's cgroups once they are removed.
#[test]
fn removed_cgroups_leave_the_kernel_maps() {
    const N: u64 = 10;
    const MAPS: [&str; 3] = ["BLOCK_STATS", "MAIN_PROCESSES", "SYSCALL_COUNTS"];
    let agent = Agent::fresh(
        "forget",
        &["--syscalls", "exact", "--syscall-counters", "hash"],
    );
    let fills = |agent: &Agent| MAPS.map(|m| map_entries(agent, m));
    let before = fills(&agent);
    let cgroups: Vec<TestCgroup> = (0..N)
        .map(|i| TestCgroup::new(&format!("forget{i}")))
        .collect();
    // An exec (a main process), syscalls, and a direct write (block I/O)
    // in each; /var/tmp is on a block device, as in block.rs.
    let dir = std::env::var("DSH_TEST_BLOCK_DIR").unwrap_or_else(|_| "/var/tmp".into());
    for (i, cg) in cgroups.iter().enumerate() {
        let file = format!("{dir}/dsh-test-forget-{}-{i}", std::process::id());
        let status = cg.run(&["direct-write", &file, "1"]);
        let _ = std::fs::remove_file(&file);
        assert!(status.success(), "direct write in {}", cg.name);
    }
    let during = wait_until(Duration::from_secs(10), "their entries", || {
        let now = fills(&agent);
        now.iter()
            .zip(before)
            .all(|(n, b)| *n >= b + N)
            .then_some(now)
    });
    drop(cgroups);
    let after = wait_until(Duration::from_secs(10), "the entries to go", || {
        let now = fills(&agent);
        now.iter()
            .zip(during)
            .all(|(n, d)| *n + N <= d)
            .then_some(now)
    });
    eprintln!("{MAPS:?}: {before:?} -> {during:?} -> {after:?}");
}
