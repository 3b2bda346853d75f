//! A signal flood from the host at one container, while another exits:
//! the flood is summed up (a few lines a second), the exit line is there,
//! no critical event is lost, and the journal grows by little.
use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::agentkit::{Agent, Container, docker, wait_until};

/// The figures `dsh status --json` has on losses and the journal's size.
struct Figures {
    critical_lost: u64,
    dropped_critical: u64,
    stored_bytes: u64,
    file_bytes: u64,
}

fn figures(agent: &Agent) -> Figures {
    let s = agent.status();
    let critical = s["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["name"] == "critical")
        .expect("the critical channel")
        .clone();
    Figures {
        critical_lost: critical["lost"].as_u64().expect("lost"),
        dropped_critical: s["journal"]["dropped_critical"].as_u64().expect("dropped"),
        stored_bytes: s["journal"]["stored_bytes"].as_u64().expect("stored bytes"),
        file_bytes: s["journal_bytes"].as_u64().expect("file bytes"),
    }
}

/// `sh -c SCRIPT` on the host for `secs` seconds.
fn for_seconds(secs: u32, script: &str) -> Child {
    Command::new("timeout")
        .args([&secs.to_string(), "sh", "-c", script])
        .spawn()
        .expect("spawn a sender")
}

fn lines_of(log: &[Value], name: &str) -> Vec<Value> {
    log.iter().filter(|e| e["id"] == name).cloned().collect()
}

#[test]
fn a_signal_flood_is_summed_and_an_exit_beside_it_is_kept() {
    let agent = Agent::fresh("floods", &[]);
    let target = Container::run(
        "flooded",
        &[],
        &["sh", "-c", "trap ':' HUP USR1; while :; do sleep 1; done"],
    );
    wait_until(
        Duration::from_secs(20),
        "the flooded container running",
        || {
            agent
                .row(&target.name)
                .filter(|r| r["state"] == "kContainerRunning")
        },
    );
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &target.name]);
    let before = figures(&agent);
    let lines_before = lines_of(&agent.log_json(None), &target.name).len();

    // Ten seconds from the host: a shell's own `kill` in a loop (one
    // sender), and `/bin/kill` run in a loop (a new sender each time).
    let started = Instant::now();
    let builtin = format!("while :; do kill -HUP {pid}; kill -USR1 {pid}; done");
    let forking = format!("while :; do /bin/kill -HUP {pid}; /bin/kill -USR1 {pid}; done");
    let mut senders = [for_seconds(10, &builtin), for_seconds(10, &forking)];
    // Meanwhile another container exits 3.
    let three = Container::run("three-in-flood", &[], &["sh", "-c", "sleep 3; exit 3"]);
    for s in &mut senders {
        let _ = s.wait();
    }
    assert!(started.elapsed() >= Duration::from_secs(10));
    let flood_s = started.elapsed().as_secs_f64();

    let exit = wait_until(
        Duration::from_secs(20),
        "the exit line in the flood",
        || {
            lines_of(&agent.log_json(None), &three.name)
                .into_iter()
                .map(|e| e["msg"].as_str().unwrap_or_default().to_owned())
                .find(|m| m.starts_with("exit code 3"))
        },
    );
    // The last interval's summary, then the figures.
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.log_json(None);
    let flooded = lines_of(&log, &target.name);
    let added = flooded.len() - lines_before;
    let after = figures(&agent);
    let signals: Vec<&Value> = flooded.iter().filter(|e| e["kind"] == "signal").collect();
    let summed: u64 = signals
        .iter()
        .filter_map(|e| {
            let m = e["msg"].as_str()?;
            let n = m.split(" x ").nth(1)?.split(' ').next()?;
            n.replace(',', "").parse::<u64>().ok()
        })
        .sum();
    let growth = after.stored_bytes.saturating_sub(before.stored_bytes);
    println!(
        "flood of {flood_s:.1}s: {added} log lines for the flooded container \
         ({} signal lines summing {summed} signals and more); journal lines stored \
         {} -> {} bytes (+{growth}), file {} -> {} bytes; critical lost {}, dropped {}",
        signals.len(),
        before.stored_bytes,
        after.stored_bytes,
        before.file_bytes,
        after.file_bytes,
        after.critical_lost,
        after.dropped_critical,
    );
    assert!(added <= 200, "{added} lines for a 10 s flood: {flooded:#?}");
    assert!(
        summed > 1000,
        "the flood is summed, not lost: {summed} in {signals:#?}"
    );
    assert!(
        signals.iter().all(|e| e["msg"]
            .as_str()
            .unwrap_or_default()
            .starts_with("receive ")),
        "{signals:#?}"
    );
    assert!(exit.starts_with("exit code 3"), "{exit}");
    assert_eq!(
        (after.critical_lost, after.dropped_critical),
        (before.critical_lost, before.dropped_critical),
        "no critical event lost"
    );
    // A few dozen summary lines: kilobytes, not the megabytes of a line
    // per signal.
    assert!(growth < 64 << 10, "the journal grew by {growth} bytes");
    // The container is still running, trapping on.
    assert_eq!(
        agent.row(&target.name).expect("row")["state"],
        "kContainerRunning"
    );
}
