//! The agent on plain cgroups, with no container runtime at all (as in the
//! test VMs): what `dsh ps --json` and `dsh log` say about a process that
//! exits 3, one that is OOM-killed, one that dies of SIGSEGV; and cgroups
//! exec'd into the moment they exist, while the agent cannot keep up.
use std::{os::unix::process::ExitStatusExt as _, path::Path, process::Stdio, time::Duration};

use serde_json::Value;

use crate::{
    agentkit::{Agent, wait_until},
    common::TestCgroup,
};

/// Slow guests (software-emulated VMs) need more than a real host.
const SETTLE: Duration = Duration::from_secs(30);

/// The cgroup's row once it reached `state`.
fn row_in(agent: &Agent, cg: &TestCgroup, state: &str) -> Value {
    let id = format!("/{}", cg.name);
    wait_until(SETTLE, &format!("{id} in {state}"), || {
        agent.row(&id).filter(|r| r["state"] == state)
    })
}

/// `dsh log NAME` (human lines) once it contains `needle`: the journal
/// commits a little after the table changes.
fn log_with(agent: &Agent, cg: &TestCgroup, needle: &str) -> String {
    let id = format!("/{}", cg.name);
    wait_until(SETTLE, needle, || {
        let text = agent.ok(&["log", &id]);
        text.contains(needle).then_some(text)
    })
}

const STARTED: &str =
    "change state from kContainerBooting to kContainerRunning with msg start user process ok";

#[test]
fn plain_cgroups_exit_oom_and_crash_in_ps_and_log() {
    let agent = Agent::fresh("plain", &[]);
    let three = TestCgroup::new("plain-exit3");
    let oom = TestCgroup::new("plain-oom");
    oom.set_memory_limit(32 << 20);
    let segv = TestCgroup::new("plain-segv");

    assert_eq!(three.run(&["exit", "3"]).code(), Some(3));
    assert_eq!(oom.run(&["hog", "256"]).signal(), Some(9), "OOM-killed");
    assert_eq!(segv.run(&["segv"]).signal(), Some(11));

    let row = row_in(&agent, &three, "kContainerError");
    assert_eq!(row["health"], "UnHealthy", "{row}");
    assert_eq!(row["cgroup"], format!("/{}", three.name));
    assert_eq!(row["restart"], 0, "{row}");
    let text = log_with(
        &agent,
        &three,
        "change state from kContainerRunning to kContainerError with msg exit code 3",
    );
    assert!(text.contains(STARTED), "{text}");
    let exit = agent
        .log_json(Some(&format!("/{}", three.name)))
        .into_iter()
        .find(|e| e["kind"] == "exit")
        .expect("an exit line in the JSON log");
    assert_eq!(exit["exit_code"], 3, "{exit}");
    assert_eq!(exit["comm"], "dsh-workload", "{exit}");

    let row = row_in(&agent, &oom, "kContainerError");
    assert_eq!(row["health"], "UnHealthy", "{row}");
    assert_eq!(row["oom_kills"], 1, "{row}");
    assert!(
        row["health_reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|s| s.as_str().unwrap_or("").contains("oom"))),
        "{row}"
    );
    let text = log_with(
        &agent,
        &oom,
        "change state from kContainerRunning to kContainerError with msg oom",
    );
    assert!(text.contains(STARTED), "{text}");

    let row = row_in(&agent, &segv, "kContainerError");
    assert_eq!(row["health"], "UnHealthy", "{row}");
    assert_eq!(row["core_dumps"], 1, "{row}");
    log_with(
        &agent,
        &segv,
        "with msg receive signal SIGSEGV, seems coredump",
    );

    let status = agent.status();
    assert_eq!(status["channels"][0]["lost"], 0, "{status}");
}

/// Cgroups made and exec'd into at once, many in a row, whose first
/// process is `dd` (some OOM-killed as soon as they start), half of them
/// while the agent is stopped: when it resumes, exits sit in the critical
/// ring next to execs in the chatty one, all long past any fixed ordering
/// window. Every cgroup must still be seen starting, and ending the way it
/// did, exactly once.
#[test]
fn cgroups_execd_into_at_once_all_start_and_end() {
    const N: usize = 24;
    let agent = Agent::fresh("race", &[]);
    let dd = Path::new("/bin/dd");
    let mut cgroups = Vec::new();
    for i in 0..N {
        if i == N / 2 {
            // SAFETY: kill(2) on the agent, our own child.
            unsafe { libc::kill(agent.pid() as i32, libc::SIGSTOP) };
        }
        let cg = TestCgroup::new(&format!("race{i}"));
        let oom = i % 3 == 0;
        let status = if oom {
            cg.set_memory_limit(32 << 20);
            cg.command_of(dd, &["if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])
        } else {
            cg.command_of(dd, &["if=/dev/zero", "of=/dev/null", "bs=1M", "count=8"])
        }
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running dd");
        assert_eq!(
            (status.success(), status.signal()),
            if oom { (false, Some(9)) } else { (true, None) },
            "dd {i}: {status}"
        );
        cgroups.push((cg, oom));
    }
    // Stopped for a while, as a starved agent is.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: as above.
    unsafe { libc::kill(agent.pid() as i32, libc::SIGCONT) };

    // One `dsh ps` per look (each CLI run is slow in an emulated VM).
    let final_state = |oom: bool| {
        if oom {
            "kContainerError"
        } else {
            "kContainerExited"
        }
    };
    let rows = wait_until(SETTLE, "every cgroup in its final state", || {
        let rows = agent.rows();
        let row = |cg: &TestCgroup| {
            rows.iter()
                .find(|r| r["id"] == format!("/{}", cg.name).as_str())
                .cloned()
        };
        let settled: Vec<Value> = cgroups
            .iter()
            .filter_map(|(cg, oom)| row(cg).filter(|r| r["state"] == final_state(*oom)))
            .collect();
        (settled.len() == cgroups.len()).then_some(settled)
    });
    for ((cg, oom), row) in cgroups.iter().zip(&rows) {
        assert_eq!(row["oom_kills"], u64::from(*oom), "{row}");
        assert_eq!(row["restart"], 0, "{row}");
        let (kind, msg) = if *oom {
            ("oom", "oom")
        } else {
            ("exit", "exit code 0")
        };
        // The journal commits a little after the table changes.
        let log = wait_until(SETTLE, &format!("{}'s end in the log", cg.name), || {
            let log = agent.log_json(Some(&format!("/{}", cg.name)));
            log.iter()
                .any(|e| e["kind"] == kind && e["msg"].as_str().is_some_and(|m| m.starts_with(msg)))
                .then_some(log)
        });
        let starts: Vec<usize> = (0..log.len())
            .filter(|&i| log[i]["kind"] == "start")
            .collect();
        assert_eq!(starts.len(), 1, "one start for {}: {log:?}", cg.name);
        assert_eq!(log[starts[0]]["comm"], "dd", "{log:?}");
        let end = log.iter().position(|e| e["kind"] == kind);
        assert!(end > Some(starts[0]), "it ends after it starts: {log:?}");
    }
    let status = agent.status();
    assert_eq!(status["channels"][0]["lost"], 0, "{status}");
    assert_eq!(status["channels"][1]["lost"], 0, "{status}");
    // What the re-ordering saw is shown, whatever it was.
    for counter in ["late_events", "ordering_margin_ms", "cgroups_found_by_id"] {
        assert!(status[counter].is_u64(), "{counter}: {status}");
    }
}

/// A cgroup in the attribution hierarchy and the v1 memory hierarchy only:
/// its memory is shown, and the figures of the controllers it lacks are
/// empty, not every figure.
#[test]
fn a_cgroup_in_some_v1_hierarchies_shows_what_they_have() {
    let layout = dsh::cgroup::layout::CgroupLayout::detect().expect("mounts");
    assert!(
        layout.v1.contains_key("memory") && layout.v1.contains_key("pids"),
        "this test needs v1 memory and pids hierarchies (a hybrid or v1 host): {:?}",
        layout.v1.keys().collect::<Vec<_>>()
    );
    let agent = Agent::fresh("plain-memonly", &[]);
    let mut cg = TestCgroup::new("plain-memonly");
    assert!(cg.only_in_v1(&["memory"]));
    let mut sleeper = cg
        .command(&["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning a sleeper");
    let id = format!("/{}", cg.name);
    let row = wait_until(SETTLE, "its memory", || {
        agent
            .row(&id)
            .filter(|r| r["mem_usage_bytes"].as_u64().is_some_and(|m| m > 0))
    });
    assert_eq!(row["state"], "kContainerRunning", "{row}");
    assert!(row["pids"].is_null(), "no pids hierarchy, no pids: {row}");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}
