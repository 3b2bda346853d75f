//! Plain `dsh ps` (no `-a`) lists what an operator must see: a crash loop
//! between two of its starts, and a fresh OOM kill until the unhealthy
//! window has passed (`dsh ps | grep UnHealthy` is the contract's workflow).
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agentkit::{Agent, Container, wait_until, workload_mounts};

/// `dsh ps --json` without `-a`: what plain `dsh ps` lists.
fn listed(agent: &Agent) -> Vec<Value> {
    serde_json::from_str(&agent.ok(&["ps", "--json"])).expect("ps --json is JSON")
}

#[test]
fn a_crash_loop_is_in_plain_ps_at_every_look() {
    let agent = Agent::fresh("listed-loop", &[]);
    let mounts = workload_mounts();
    let mut opts: Vec<&str> = vec!["--restart=always"];
    opts.extend(mounts.iter().map(String::as_str));
    // Runs 2 s, then dies of SIGSEGV; Docker starts it again after a
    // back-off that grows with each restart, so it is dead most of the time.
    let crasher = Container::run(
        "listed-loop",
        &opts,
        &["sh", "-c", "sleep 2; exec /dsh-workload segv"],
    );
    wait_until(Duration::from_secs(40), "two restarts", || {
        agent
            .row(&crasher.name)
            .filter(|r| r["restart"].as_u64() >= Some(2))
    });
    let (mut seen, mut dead_looks) = (0, 0);
    let started = Instant::now();
    for look in 0..20 {
        let rows = listed(&agent);
        let row = rows.iter().find(|r| r["id"] == crasher.name.as_str());
        let row = row.unwrap_or_else(|| {
            panic!(
                "look {look}: the crash loop is missing from plain dsh ps: {:?}",
                agent.row(&crasher.name)
            )
        });
        seen += 1;
        if row["state"] != "kContainerRunning" {
            dead_looks += 1;
            assert_eq!(row["health"], "UnHealthy", "look {look}: {row}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(seen, 20);
    assert!(started.elapsed() >= Duration::from_secs(10));
    // The looks must have caught it between two starts, or they prove nothing.
    assert!(dead_looks > 0, "never saw the crasher dead in 20 looks");
    let table = agent.ok(&["ps"]);
    assert!(
        table
            .lines()
            .any(|l| l.contains(&crasher.name) && l.ends_with("UnHealthy")),
        "{table}"
    );
}

#[test]
fn an_oom_kill_is_in_plain_ps_until_the_window_passes() {
    let agent = Agent::fresh("listed-oom", &["--unhealthy-window", "20s"]);
    let oom = Container::run(
        "listed-oom",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    let died = wait_until(Duration::from_secs(30), "the OOM kill", || {
        agent
            .row(&oom.name)
            .filter(|r| r["oom_kills"] == 1 && r["state"] != "kContainerRunning")
            .map(|_| Instant::now())
    });
    let row = listed(&agent)
        .into_iter()
        .find(|r| r["id"] == oom.name.as_str())
        .expect("an OOM-killed container is in plain dsh ps right after its death");
    assert_eq!(row["health"], "UnHealthy", "{row}");
    // The oom line names what the container used, read as the kill arrived
    // (the runtime removes the cgroup within milliseconds of the death).
    let line = wait_until(Duration::from_secs(5), "the oom line", || {
        agent
            .log_json(Some(&oom.name))
            .into_iter()
            .filter_map(|e| e["msg"].as_str().map(str::to_owned))
            .find(|m| m.starts_with("oom"))
    });
    let used: f64 = line
        .strip_prefix("oom (memory ")
        .and_then(|r| r.split_once("MiB of limit 32.0MiB)"))
        .map(|(used, _)| used)
        .map(|r| r.trim_start_matches("at least "))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no memory of limit 32 MiB in: {line}"));
    assert!(used >= 30.0, "{line}");
    // Gone from plain ps once the window (20 s here) has passed, still in -a.
    wait_until(Duration::from_secs(40), "the window to pass", || {
        (!listed(&agent).iter().any(|r| r["id"] == oom.name.as_str())).then_some(())
    });
    assert!(
        died.elapsed() >= Duration::from_secs(15),
        "left plain ps {:?} after its death, before the 20 s window",
        died.elapsed()
    );
    assert!(agent.row(&oom.name).is_some(), "dsh ps -a still lists it");
}
