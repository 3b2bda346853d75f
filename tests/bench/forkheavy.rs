//! The fork-heavy container under the default agent: the agent's CPU, each
//! program's runs and ns/run, and the churn lines it writes.
use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use dsh_testkit::TestCgroup;
use serde::Serialize;

use crate::agent::{Agent, cpu_ticks, docker, docker_up, dsh_bin};

#[derive(Serialize, Default)]
pub(crate) struct ProgramCost {
    pub(crate) program: String,
    pub(crate) runs: u64,
    pub(crate) runs_per_s: f64,
    pub(crate) avg_ns_per_run: f64,
}

#[derive(Serialize, Default)]
pub(crate) struct ForkHeavy {
    pub(crate) seconds: f64,
    pub(crate) processes_per_s: f64,
    pub(crate) agent_cpu_percent: f64,
    pub(crate) churn_lines: u64,
    pub(crate) churn_lines_per_s: f64,
    pub(crate) critical_lost: u64,
    pub(crate) programs: Vec<ProgramCost>,
}

/// Each program's runs and average ns over the window, from two readings
/// of `dsh status`.
fn program_costs(
    before: &serde_json::Value,
    after: &serde_json::Value,
    secs: f64,
) -> Vec<ProgramCost> {
    let totals = |s: &serde_json::Value| -> BTreeMap<String, (u64, u64)> {
        s["programs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["attached"] == true || p["runs_total"].as_u64() > Some(0))
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_owned(),
                    (
                        p["runs_total"].as_u64().unwrap_or(0),
                        p["run_time_ns_total"].as_u64().unwrap_or(0),
                    ),
                )
            })
            .collect()
    };
    let (b, a) = (totals(before), totals(after));
    a.iter()
        .map(|(name, &(runs, ns))| {
            let (runs0, ns0) = b.get(name).copied().unwrap_or_default();
            let runs = runs.saturating_sub(runs0);
            ProgramCost {
                program: name.clone(),
                runs,
                runs_per_s: runs as f64 / secs,
                avg_ns_per_run: if runs > 0 {
                    ns.saturating_sub(ns0) as f64 / runs as f64
                } else {
                    0.0
                },
            }
        })
        .collect()
}

/// The fork-heavy container under the default agent, with cgroups made and
/// removed, a crash, an OOM kill and TCP trouble during the window.
pub(crate) fn run(window: Duration, kills: usize) -> ForkHeavy {
    let agent = Agent::start();
    let looping = "while true; do /bin/cat /proc/self/status >/dev/null; done";
    let name = format!("dsh-bench-forky-{}", std::process::id());
    let (cg, mut shell): (Option<TestCgroup>, Option<Child>) = if docker_up() {
        let _ = docker(&["rm", "-f", &name]);
        let ok = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "dsh-test/busybox:latest",
            "sh",
            "-c",
            looping,
        ]);
        assert!(ok, "docker run {name}");
        (None, None)
    } else {
        println!("(docker is not running: the fork-heavy container is a plain cgroup)");
        let cg = TestCgroup::new("forky");
        let child = cg
            .command_of(Path::new("/bin/sh"), &["-c", looping])
            .stdout(Stdio::null())
            .spawn()
            .expect("the fork-heavy loop");
        (Some(cg), Some(child))
    };
    let id = match &cg {
        Some(cg) => format!("/{}", cg.name),
        None => name.clone(),
    };
    let exits = |agent: &Agent| {
        agent
            .rows()
            .iter()
            .find(|r| r["id"] == id.as_str())
            .and_then(|r| r["process_exits"].as_u64())
    };
    let t0 = Instant::now();
    while exits(&agent).unwrap_or(0) < 100 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the fork-heavy container never churned"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Start on a fresh sample.
    std::thread::sleep(Duration::from_secs(2));
    let log_lines = |agent: &Agent| {
        let out = Command::new(dsh_bin())
            .arg("--state-dir")
            .arg(&agent.state_dir)
            .args(["log", "-a", &id, "--json"])
            .output()
            .expect("dsh log");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"kind\":\"churn\""))
            .count() as u64
    };
    let (lines0, exits0) = (log_lines(&agent), exits(&agent).unwrap_or(0));
    let status0 = agent.json(&["status"]);
    let (cpu0, started) = (cpu_ticks(agent.pid()), Instant::now());
    // Other programs' work: cgroups, a crash, an OOM kill.
    let victim = TestCgroup::new("forky-oom");
    victim.set_memory_limit(32 << 20);
    for _ in 0..kills {
        let _ = victim.run(&["hog", "256"]);
        let _ = victim.run(&["segv"]);
    }
    for i in 0..20 {
        drop(TestCgroup::new(&format!("forky-cg{i}")));
    }
    // TCP trouble in a network namespace of its own, so the TCP programs
    // have runs to cost: refused connects (the kernel's resets for no
    // socket), SYNs dropped at a full accept queue (retransmitted), and
    // connections reset by their server.
    let tcp = TestCgroup::new("forky-tcp");
    let _ = tcp
        .command(&["tcp-trouble", "200", "4", "50"])
        .stdout(Stdio::null())
        .status();
    std::thread::sleep(window.saturating_sub(started.elapsed()));
    let secs = started.elapsed().as_secs_f64();
    let cpu1 = cpu_ticks(agent.pid());
    let status1 = agent.json(&["status"]);
    // Lines written up to the window's end: one more sample to be flushed.
    std::thread::sleep(Duration::from_millis(1500));
    let report = ForkHeavy {
        seconds: secs,
        processes_per_s: exits(&agent).unwrap_or(0).saturating_sub(exits0) as f64 / secs,
        agent_cpu_percent: (cpu1 - cpu0) as f64 / 100.0 / secs * 100.0,
        churn_lines: log_lines(&agent) - lines0,
        churn_lines_per_s: (log_lines(&agent) - lines0) as f64 / (secs + 1.5),
        critical_lost: status1["channels"][0]["lost"].as_u64().unwrap_or(u64::MAX),
        programs: program_costs(&status0, &status1, secs),
    };
    if let Some(mut s) = shell.take() {
        let _ = s.kill();
        let _ = s.wait();
    } else {
        docker(&["rm", "-f", &name]);
    }
    drop(cg);
    report
}
