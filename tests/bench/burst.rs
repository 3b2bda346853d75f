//! Benchmarks 3 and 6 (exits): a burst of short-lived processes as fast as
//! the machine allows, with SIGSEGV crashes and OOM kills mixed in. Every
//! crash and OOM kill must reach the journal, the critical channel must lose
//! nothing, and the agent must count every process exit.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use dsh_testkit::TestCgroup;
use serde::Serialize;

use crate::{Budget, agent::Agent};

#[derive(Serialize, Default)]
struct Report {
    processes: u64,
    seconds: f64,
    per_second: f64,
    crashes: u64,
    oom_kills: u64,
    crash_lines: u64,
    oom_lines: u64,
    exits_expected: u64,
    exits_seen: u64,
    exits_ratio: f64,
    critical_lost: u64,
    chatty_lost: u64,
}

pub fn run(quick: bool, out_dir: &Path) -> Vec<Budget> {
    let (n, crashes, ooms) = if quick {
        (5_000, 5, 2)
    } else {
        (20_000, 20, 5)
    };
    let agent = Agent::start();
    let cg = TestCgroup::new("burst");
    cg.set_memory_limit(64 << 20);
    let name = format!("/{}", cg.name);
    let mut main = cg
        .command(&["sleep"])
        .stdout(Stdio::null())
        .spawn()
        .expect("the cgroup's main process");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent
        .rows()
        .iter()
        .any(|r| r["id"] == name.as_str() && r["state"] == "kContainerRunning")
    {
        assert!(Instant::now() < deadline, "agent never saw {name} running");
        std::thread::sleep(Duration::from_millis(200));
    }

    let started = Instant::now();
    let mut burst = cg
        .command(&["fork-burst", &n.to_string()])
        .spawn()
        .expect("fork-burst");
    for i in 0..crashes.max(ooms) {
        if i < crashes {
            let _ = cg.run(&["segv"]);
        }
        if i < ooms {
            let _ = cg.run(&["hog", "256"]);
        }
    }
    assert!(burst.wait().expect("burst").success(), "fork-burst failed");
    let seconds = started.elapsed().as_secs_f64();
    // Children, the burst's parent, the crashers and the hogs.
    let expected = n + 1 + crashes + ooms;

    let mut report = Report {
        processes: n,
        seconds,
        per_second: n as f64 / seconds,
        crashes,
        oom_kills: ooms,
        exits_expected: expected,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = agent.rows().into_iter().find(|r| r["id"] == name.as_str());
        report.exits_seen = row
            .as_ref()
            .and_then(|r| r["process_exits"].as_u64())
            .unwrap_or(0);
        if report.exits_seen >= expected || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    report.exits_ratio = report.exits_seen as f64 / expected as f64;
    // Journal lines: `dsh log -a NAME --json`, one object per line.
    let out = Command::new(crate::agent::dsh_bin())
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .args(["log", "-a", &name, "--json"])
        .output()
        .expect("dsh log");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        match e["kind"].as_str() {
            Some("coredump") => report.crash_lines += 1,
            Some("oom") => report.oom_lines += 1,
            _ => {}
        }
    }
    let status = agent.json(&["status"]);
    let lost = |i: usize| status["channels"][i]["lost"].as_u64().unwrap_or(u64::MAX);
    report.critical_lost = lost(0);
    report.chatty_lost = lost(1);
    let _ = main.kill();
    let _ = main.wait();

    println!("\n## Burst: no critical event lost\n");
    println!(
        "| processes | seconds | per second | crashes (journal) | OOM kills (journal) | exits seen / forked | critical lost | chatty lost |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.2} | {:.0} | {} ({}) | {} ({}) | {:.4} | {} | {} |",
        report.processes,
        report.seconds,
        report.per_second,
        report.crashes,
        report.crash_lines,
        report.oom_kills,
        report.oom_lines,
        report.exits_ratio,
        report.critical_lost,
        report.chatty_lost
    );
    crate::write_json(out_dir, "burst.json", &report);
    vec![
        Budget::at_most(
            "burst: critical events lost",
            report.critical_lost as f64,
            0.0,
        ),
        Budget::at_most(
            "burst: crashes and OOM kills missing from the journal",
            (crashes + ooms).saturating_sub(report.crash_lines + report.oom_lines) as f64,
            0.0,
        ),
        Budget::at_most(
            "burst: |1 - exits seen / processes forked|",
            (1.0 - report.exits_ratio).abs(),
            0.0,
        ),
    ]
}
