//! `dsh agent`, `dsh ps` and `dsh log` against real Docker containers: the
//! contract's states, health, restarts, endpoints and log lines, and a
//! journal that survives the agent's restart without repeating a line.
use std::time::Duration;

use serde_json::Value;

use crate::agentkit::{Agent, CONTRACT_HEADER, Container, wait_until, workload_mounts};

fn msgs(agent: &Agent, name: &str) -> Vec<String> {
    agent
        .log_json(Some(name))
        .iter()
        .map(|e| e["msg"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The human `dsh log` lines of one container, once they contain `needle`
/// (the journal commits every 200 ms, a little after the table changes).
fn log_with(agent: &Agent, name: &str, needle: &str) -> String {
    wait_until(Duration::from_secs(5), needle, || {
        let text = agent.ok(&["log", name]);
        text.contains(needle).then_some(text)
    })
}

/// Like `log_with`, for `dsh log -a`.
fn log_all_with(agent: &Agent, name: &str, needle: &str) -> String {
    wait_until(Duration::from_secs(5), needle, || {
        let text = agent.ok(&["log", "-a", name]);
        text.contains(needle).then_some(text)
    })
}

/// The figures of an OOM line, in MiB: `... with msg oom (memory 31.9MiB
/// of limit 32.0MiB)` → (31.9, 32.0). `None` for any other wording (a bare
/// `oom`, or `at least`, which a figure read at the kill never says).
fn oom_figures_mib(log: &str) -> Option<(f64, f64)> {
    let rest = log.split("with msg oom (memory ").nth(1)?;
    let (used, rest) = rest.split_once("MiB of limit ")?;
    let limit = rest.split_once("MiB)")?.0;
    Some((used.parse().ok()?, limit.parse().ok()?))
}

/// Asserts the OOM line of a container killed at `--memory 32m` names
/// about 32 MiB of limit 32 MiB; returns the figures.
fn assert_oom_at_32m(log: &str) -> (f64, f64) {
    let (used, limit) = oom_figures_mib(log).unwrap_or_else(|| panic!("no figures: {log}"));
    assert_eq!(limit, 32.0, "{log}");
    assert!((28.0..=33.0).contains(&used), "{log}");
    (used, limit)
}

/// Containers that die of an OOM kill at once, before any sample, and that
/// Docker removes within milliseconds: the figures are read in the kernel
/// at the kill, so every line names them (before they were read from the
/// cgroup after the kill, and 2 lines in 3 said only `oom`).
#[test]
fn an_oom_kill_names_the_memory_and_limit_at_the_kill() {
    let agent = Agent::fresh("oom-figures", &[]);
    let containers: Vec<Container> = (0..3)
        .map(|i| {
            Container::run(
                &format!("oom-figures-{i}"),
                &["--memory", "32m", "--memory-swap", "32m"],
                &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
            )
        })
        .collect();
    for c in &containers {
        let log = wait_until(Duration::from_secs(30), "the OOM line", || {
            let text = agent.ok(&["log", &c.name]);
            text.contains("with msg oom").then_some(text)
        });
        let (used, limit) = assert_oom_at_32m(&log);
        eprintln!("{}: oom at {used} MiB of limit {limit} MiB", c.name);
    }
}

#[test]
fn docker_containers_states_health_restarts_and_log() {
    let mut agent = Agent::fresh("docker", &[]);
    let mounts = workload_mounts();
    let mounts: Vec<&str> = mounts.iter().map(String::as_str).collect();

    let running = Container::run(
        "running",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 143' TERM; while :; do sleep 0.2; done",
        ],
    );
    let victim = Container::run(
        "victim",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 143' TERM; while :; do sleep 0.2; done",
        ],
    );
    let oom = Container::run(
        "oom",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    let mut crash_opts = vec!["--restart=always"];
    crash_opts.extend(&mounts);
    let crasher = Container::run("crasher", &crash_opts, &["/dsh-workload", "segv"]);
    let three = Container::run("three", &[], &["sh", "-c", "exit 3"]);
    let server = Container::run("server", &mounts, &["/dsh-workload", "serve", "7777"]);

    // Running and listening.
    let row = wait_until(Duration::from_secs(20), "the server's endpoint", || {
        agent.row(&server.name).filter(|r| {
            r["endpoint"]
                .as_str()
                .is_some_and(|e| e.ends_with(":{7777}"))
        })
    });
    let endpoint = row["endpoint"].as_str().unwrap();
    assert!(
        endpoint.starts_with("172."),
        "docker bridge address expected: {endpoint}"
    );
    assert_eq!(row["state"], "kContainerRunning");

    // The crash loop: three restarts at least, UnHealthy.
    let row = wait_until(Duration::from_secs(40), "3 restarts of the crasher", || {
        agent
            .row(&crasher.name)
            .filter(|r| r["restart"].as_u64() >= Some(3) && r["core_dumps"].as_u64() >= Some(3))
    });
    assert_eq!(row["health"], "UnHealthy", "{row}");
    assert!(row["core_dumps"].as_u64() >= Some(3), "{row}");
    let crash_log = log_with(
        &agent,
        &crasher.name,
        "with msg receive signal SIGSEGV, seems coredump",
    );
    assert!(crash_log.contains(
        "change state from kContainerError to kContainerRunning with msg start user process ok"
    ));

    // OOM kill.
    let row = wait_until(Duration::from_secs(20), "the OOM kill", || {
        agent
            .row(&oom.name)
            .filter(|r| r["state"] == "kContainerError")
    });
    assert_eq!(row["health"], "UnHealthy");
    assert_eq!(row["oom_kills"], 1);
    let oom_log = log_with(&agent, &oom.name, "with msg oom");
    assert!(
        oom_log.contains(" change state from kContainerRunning to kContainerError with msg oom"),
        "{oom_log}"
    );
    assert_oom_at_32m(&oom_log);

    // Exit code 3.
    let row = wait_until(Duration::from_secs(20), "exit 3", || {
        agent
            .row(&three.name)
            .filter(|r| r["state"] == "kContainerError")
    });
    assert_eq!(row["restart"], 0);
    log_with(&agent, &three.name, "with msg exit code 3");

    // The default header, byte for byte.
    let table = agent.ok(&["ps"]);
    assert_eq!(table.lines().next(), Some(CONTRACT_HEADER));
    assert!(table.contains(&running.name));

    // Restart the agent mid-scenario: nothing lost, nothing twice.
    let before = agent.log_json(None);
    assert!(!before.is_empty());
    agent.restart();
    let after = agent.log_json(None);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the earlier lines must all still be there, unchanged"
    );
    let seqs: Vec<u64> = after.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq strictly increasing"
    );
    let starts = |log: &[Value]| {
        log.iter()
            .filter(|e| e["id"] == running.name.as_str() && e["kind"] == "start")
            .count()
    };
    assert_eq!(starts(&before), 1);
    assert_eq!(
        starts(&after),
        1,
        "a restarted agent must not start a running container again"
    );
    // Names come back from Docker within moments of the restart.
    let row = wait_until(Duration::from_secs(20), "names after the restart", || {
        agent.row(&running.name)
    });
    assert_eq!(row["state"], "kContainerRunning");

    // Killed from outside, after the restart.
    crate::agentkit::docker(&["kill", "-s", "TERM", &victim.name]);
    let row = wait_until(Duration::from_secs(20), "the victim to stop", || {
        agent
            .row(&victim.name)
            .filter(|r| r["state"] == "kContainerExited")
    });
    assert_eq!(row["health"], "Good", "a stop is not a failure: {row}");
    // The journal commits every 200 ms: the line may trail the table a little.
    let sender = wait_until(Duration::from_secs(5), "the TERM sender in the log", || {
        msgs(&agent, &victim.name)
            .into_iter()
            .find(|m| m.starts_with("exit code 143 after receive signal SIGTERM from pid "))
    });
    assert!(
        sender.ends_with(')'),
        "sender comm in parentheses: {sender}"
    );
    // The signal itself is in the sample's signal summary (a chatty line),
    // written at the next tick: after the exit line.
    log_all_with(
        &agent,
        &victim.name,
        " signal with msg receive signal SIGTERM from pid ",
    );

    // Healthy container stays Good; ps without -a keeps a container that
    // died UnHealthy within the unhealthy window (exit 3 a moment ago).
    assert_eq!(agent.row(&running.name).unwrap()["health"], "Good");
    let live = agent.ok(&["ps"]);
    assert!(
        live.lines()
            .any(|l| l.starts_with(&three.name) && l.ends_with("UnHealthy")),
        "{live}"
    );
    let wide = agent.ok(&["ps", "-a", "--wide"]);
    assert!(
        wide.contains("crash loop") || wide.contains("core dump"),
        "{wide}"
    );
    agent.stop();
}
