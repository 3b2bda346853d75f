//! A busy host under the open-files limit systemd gives services (soft
//! 1,024): hundreds of plain cgroups, each with a sleeping process and made
//! in every v1 hierarchy as Docker makes them. The agent raises its soft
//! limit and sees every one; held to a small limit it reads the least busy
//! less often and says so, instead of going blind or hanging.
use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use dsh_testkit::{Sleepers, TestCgroup};
use serde_json::Value;

use crate::{
    agentkit::{Agent, Container, wait_until},
    promkit::{curl, metrics_url},
};

/// The hard open-files limit this process may give a child.
fn hard_nofile() -> u64 {
    dsh::fds::nofile_limit().expect("getrlimit").hard
}

/// `dsh ps -a --json` rows whose id starts with `prefix`.
fn rows_with(agent: &Agent, prefix: &str) -> Vec<Value> {
    agent
        .rows()
        .into_iter()
        .filter(|r| r["id"].as_str().is_some_and(|id| id.starts_with(prefix)))
        .collect()
}

/// Rows that have statistics: the sleeping process counted by pids.current
/// and memory charged.
fn with_statistics(rows: &[Value]) -> usize {
    rows.iter()
        .filter(|r| r["pids"] == 1 && r["mem_usage_bytes"].as_u64() > Some(0))
        .count()
}

#[test]
fn three_hundred_cgroups_under_a_soft_limit_of_1024_all_have_statistics() {
    const N: usize = 300;
    let limit = format!("--nofile=1024:{}", hard_nofile());
    let agent = Agent::fresh_under(
        "fd300",
        &["prlimit", &limit],
        &["--metrics-addr", "127.0.0.1:0"],
    );
    let sleepers = Sleepers::new("fdk", N);
    let docker = Container::run("fd300", &[], &["sleep", "3600"]);
    let prefix = "/dsh-test-fdk";
    let rows = wait_until(Duration::from_secs(60), "every row with statistics", || {
        let rows = rows_with(&agent, prefix);
        (rows.len() == N && with_statistics(&rows) == N).then_some(rows)
    });
    assert_eq!(rows.len(), sleepers.len());
    // The Docker container, named by a connected runtime.
    wait_until(
        Duration::from_secs(20),
        "the docker container by name",
        || agent.row(&docker.name),
    );
    let status = agent.status();
    let docker_rt = status["runtimes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "docker"))
        .unwrap_or_else(|| panic!("no docker runtime: {status}"));
    assert_eq!(docker_rt["connected"], true, "{docker_rt}");
    let fds = &status["fds"];
    assert_eq!(fds["raised_from"], 1024, "{fds}");
    assert_eq!(fds["soft_limit"].as_u64(), Some(hard_nofile()), "{fds}");
    assert_eq!(fds["containers_read_slowly"], 0, "{fds}");
    assert!(
        fds["failures"].as_array().is_some_and(Vec::is_empty),
        "{fds}"
    );
    // Measured every ten ticks.
    wait_until(Duration::from_secs(10), "descriptors held counted", || {
        let s = agent.status();
        (s["fds"]["held_for_containers"].as_u64() >= Some(N as u64)).then_some(())
    });
    let log = std::fs::read_to_string(&agent.log_path).unwrap_or_default();
    assert!(
        log.contains("open-files limit raised from 1024"),
        "the agent says it raised its limit: {log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    // `dsh ps` and a scrape answer, promptly, with no note.
    let t = Instant::now();
    let ps = agent.dsh(&["ps"]);
    assert!(ps.status.success(), "{ps:?}");
    assert!(
        ps.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&ps.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "ps took {:?}",
        t.elapsed()
    );
    let scrape = curl(&metrics_url(&agent), &["--max-time", "10"]);
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.body.matches("dsh_container_info{").count(),
        agent.rows().len(),
        "one series per row"
    );
    assert!(
        scrape.body.contains("\nprocess_open_fds "),
        "process_open_fds"
    );
    assert!(
        scrape
            .body
            .contains("\ndsh_agent_containers_read_slowly 0\n"),
        "nothing read slowly"
    );
    let text = agent.ok(&["status"]);
    assert!(text.contains("raised from 1024"), "{text}");
}

#[test]
fn at_a_small_limit_the_least_busy_are_read_less_often_and_said_so() {
    const N: usize = 60;
    // Room for the agent's programs, maps and clients, and a few
    // containers' files: not sixty's.
    let agent = Agent::fresh_under(
        "fdsmall",
        &["prlimit", "--nofile=500:500"],
        &["--metrics-addr", "127.0.0.1:0"],
    );
    let sleepers = Sleepers::new("fds", N);
    // One busy container: it keeps its files open.
    let busy = TestCgroup::new("fdsbusy");
    let mut spin = busy
        .command_of(Path::new("/bin/sh"), &["-c", "while :; do :; done"])
        .stdin(Stdio::null())
        .spawn()
        .expect("a busy loop");
    let prefix = "/dsh-test-fds";
    // Every row still gets its statistics, only less often.
    wait_until(Duration::from_secs(60), "every row with statistics", || {
        let rows = rows_with(&agent, prefix);
        (rows.len() == N + 1 && with_statistics(&rows) == N + 1).then_some(())
    });
    let status = wait_until(Duration::from_secs(20), "the budget reached", || {
        let s = agent.status();
        (s["fds"]["containers_read_slowly"].as_u64() > Some(0)).then_some(s)
    });
    let fds = &status["fds"];
    assert_eq!(fds["soft_limit"], 500, "{fds}");
    assert!(
        fds["open"].as_u64() < Some(500 - 64),
        "the reserve is kept: {fds}"
    );
    // The busy one is among those that keep their files.
    let busy_row = wait_until(Duration::from_secs(20), "the busy row's CPU", || {
        agent
            .row(&format!("/{}", busy.name))
            .filter(|r| r["cpu_used_cores"].as_f64() > Some(0.2))
    });
    assert_eq!(busy_row["pids"].as_u64().map(|p| p >= 1), Some(true));
    let ps = agent.dsh(&["ps"]);
    assert!(ps.status.success(), "{ps:?}");
    let note = String::from_utf8_lossy(&ps.stderr);
    assert!(
        note.contains(
            "dsh: note: the agent is at its file descriptor budget (open-files limit 500)"
        ) && note.contains("containers are read every 2500ms instead of every 500ms"),
        "{note}"
    );
    // The table itself is whole on stdout.
    let table = String::from_utf8_lossy(&ps.stdout);
    assert!(
        table.lines().filter(|l| l.starts_with(prefix)).count() >= N,
        "{table}"
    );
    let text = agent.ok(&["status"]);
    assert!(text.contains("descriptors: BUDGET REACHED: "), "{text}");
    let scrape = curl(&metrics_url(&agent), &["--max-time", "10"]);
    assert_eq!(scrape.status, 200);
    assert!(
        scrape.body.contains("\nprocess_max_fds 500\n"),
        "process_max_fds"
    );
    assert!(
        !scrape
            .body
            .contains("\ndsh_agent_containers_read_slowly 0\n"),
        "read slowly: {}",
        scrape
            .body
            .lines()
            .filter(|l| l.contains("slowly"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = spin.kill();
    let _ = spin.wait();
    drop(sleepers);
}
