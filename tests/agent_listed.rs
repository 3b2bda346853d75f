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

/// `--pids-limit 12` and a shell that forks until refused: it exits 2
/// (`can't fork`) while its children still run; the kernel then kills them
/// (their pid namespace lost its init). One exit, no restart, whatever the
/// orphans do afterwards.
#[test]
fn orphans_of_a_dead_main_are_no_restart() {
    let agent = Agent::fresh("orphans", &[]);
    let script = "while true; do for i in $(seq 1 20); do sleep 3 & done; sleep 1; done";
    let runs: Vec<Container> = (0..5)
        .map(|i| {
            Container::run(
                &format!("orphans{i}"),
                &["--pids-limit", "12"],
                &["sh", "-c", script],
            )
        })
        .collect();
    for c in &runs {
        wait_until(Duration::from_secs(40), "the shell's exit", || {
            agent
                .row(&c.name)
                .filter(|r| r["state"] == "kContainerError")
        });
    }
    // Let the orphans' deaths and any late exec arrive.
    std::thread::sleep(Duration::from_secs(3));
    for c in &runs {
        let row = agent.row(&c.name).expect("the container's row");
        assert_eq!(row["restart"], 0, "{row}");
        assert_eq!(row["state"], "kContainerError", "{row}");
        let msgs: Vec<String> = agent
            .log_json(Some(&c.name))
            .iter()
            .filter(|e| !e["to"].is_null())
            .map(|e| e["msg"].as_str().unwrap_or_default().to_owned())
            .collect();
        let exit = msgs
            .iter()
            .position(|m| m.starts_with("exit code 2"))
            .unwrap_or_else(|| panic!("{}: no exit code 2 in {msgs:?}", c.name));
        assert_eq!(
            exit,
            msgs.len() - 1,
            "{}: changes after the exit: {msgs:?}",
            c.name
        );
        assert_eq!(
            msgs.iter()
                .filter(|m| *m == "start user process ok")
                .count(),
            1,
            "{}: {msgs:?}",
            c.name
        );
        assert_eq!(
            crate::agentkit::docker(&["inspect", "-f", "{{.RestartCount}}", &c.name]),
            "0"
        );
    }
}
