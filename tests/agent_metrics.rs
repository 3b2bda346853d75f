//! `dsh agent --metrics-addr` scraped by a real Prometheus, and the fleet
//! view read back from it: two agents on this host stand for two nodes
//! (different --node-name and state dirs), both watching a crash-looping
//! and an OOM-killed Docker container.
use std::{collections::BTreeSet, process::Command, time::Duration};

use serde_json::Value;

use crate::{
    agentkit::{Agent, Container, dsh_bin, wait_until},
    promkit::{Prometheus, curl, metrics_url, promtool_check},
};

/// Every sample name the contract lists, and dsh's own additions.
const CONTRACT_NAMES: &[&str] = &[
    "dsh_container_info",
    "dsh_container_health",
    "dsh_container_restarts_total",
    "dsh_container_oom_kills_total",
    "dsh_container_core_dumps_total",
    "dsh_container_last_exit_code",
    "dsh_container_start_time_seconds",
    "dsh_container_boot_seconds",
    "dsh_container_cpu_usage_seconds_total",
    "dsh_container_cpu_limit_cores",
    "dsh_container_cpu_throttled_periods_total",
    "dsh_container_cpu_periods_total",
    "dsh_container_memory_usage_bytes",
    "dsh_container_memory_working_set_bytes",
    "dsh_container_memory_rss_bytes",
    "dsh_container_memory_cache_bytes",
    "dsh_container_memory_limit_bytes",
    "dsh_container_syscalls_total",
    "dsh_container_syscall_errors_total",
    "dsh_container_block_read_bytes_total",
    "dsh_container_block_write_bytes_total",
    "dsh_container_network_receive_bytes_total",
    "dsh_container_network_transmit_bytes_total",
    "dsh_container_process_execs_total",
    "dsh_container_process_exits_total",
    "dsh_agent_syscall_accounting",
    "dsh_agent_events_total",
    "dsh_agent_events_lost_total",
    "dsh_bpf_program_runs_total",
    "dsh_bpf_program_run_seconds_total",
    "dsh_journal_write_errors_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
];

/// `dsh ps` against Prometheus only (no agent socket involved).
fn fleet(args: &[&str]) -> String {
    let out = Command::new(dsh_bin())
        .arg("ps")
        .args(args)
        .env_remove("DSH_PROMETHEUS")
        .output()
        .expect("running dsh ps");
    assert!(
        out.status.success(),
        "dsh ps {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn health_of(rows: &[Value], id: &str) -> Option<String> {
    rows.iter()
        .find(|r| r["id"] == id)
        .and_then(|r| r["health"].as_str().map(str::to_owned))
}

#[test]
fn prometheus_scrapes_two_nodes_and_dsh_ps_reads_the_fleet_back() {
    let metrics = ["--metrics-addr", "127.0.0.1:0"];
    let a = Agent::fresh(
        "prom-a",
        &[&metrics[..], &["--node-name", "node-a"]].concat(),
    );
    // Node b counts no syscalls: its metrics must say so, not show zeros.
    let b = Agent::fresh(
        "prom-b",
        &[
            &metrics[..],
            &["--node-name", "node-b", "--syscalls", "off"],
        ]
        .concat(),
    );
    let (url_a, url_b) = (metrics_url(&a), metrics_url(&b));
    let target = |u: &str| {
        u.trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_owned()
    };
    let prom = Prometheus::start("fleet", &[target(&url_a), target(&url_b)]);

    let crasher = Container::run(
        "prom-crash",
        &["--restart=always", "--cpus", "0.5"],
        &["sh", "-c", "sleep 1; exit 1"],
    );
    // Limits, so their gauges exist while it runs.
    let _steady = Container::run(
        "prom-steady",
        &["--memory", "64m", "--cpus", "0.5"],
        &["sh", "-c", "while :; do sleep 1; done"],
    );
    let oom = Container::run(
        "prom-oom",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    let both = ["node-a", "node-b"];
    let restarts = prom.wait_for_nodes(
        &format!(
            "dsh_container_restarts_total{{id=\"{}\"}} >= 3",
            crasher.name
        ),
        &both,
        Duration::from_secs(90),
    );
    assert_eq!(restarts.len(), 2, "{restarts:?}");
    prom.wait_for_nodes(
        &format!("dsh_container_oom_kills_total{{id=\"{}\"}} == 1", oom.name),
        &both,
        Duration::from_secs(60),
    );
    let health = prom.wait_for_nodes(
        &format!("dsh_container_health{{id=\"{}\"}} == 2", oom.name),
        &both,
        Duration::from_secs(30),
    );
    // Empty outside Kubernetes (Prometheus stores an empty label as none).
    for s in &health {
        for label in ["namespace", "pod", "container"] {
            let v = &s["metric"][label];
            assert!(
                v.is_null() || v == "",
                "{label} set outside Kubernetes: {s}"
            );
        }
    }
    let info = prom.query(&format!("dsh_container_info{{id=\"{}\"}}", oom.name));
    assert_eq!(info.len(), 2, "{info:?}");
    assert!(info.iter().all(|s| s["metric"]["health"] == "UnHealthy"
        && s["metric"]["state"] == "kContainerError"
        && s["metric"]["runtime"] == "docker"
        && s["metric"]["runtime_id"] == oom.id.as_str()));

    // The fleet view: both nodes' rows, with the health each host shows.
    wait_until(
        Duration::from_secs(20),
        "the fleet to match each host",
        || {
            let rows: Vec<Value> =
                serde_json::from_str(&fleet(&["--prometheus", &prom.url, "-a", "--json"]))
                    .expect("fleet --json");
            let mut ok = true;
            for (node, agent) in [("node-a", &a), ("node-b", &b)] {
                let fleet_rows: Vec<Value> =
                    rows.iter().filter(|r| r["node"] == node).cloned().collect();
                let host_rows = agent.rows();
                let ids = |rows: &[Value]| -> BTreeSet<String> {
                    rows.iter()
                        .filter_map(|r| r["id"].as_str().map(str::to_owned))
                        .collect()
                };
                ok &= ids(&fleet_rows) == ids(&host_rows);
                for name in [&crasher.name, &oom.name] {
                    let h = health_of(&fleet_rows, name);
                    ok &= h.is_some() && h == health_of(&host_rows, name);
                }
            }
            ok.then_some(())
        },
    );
    let table = fleet(&["--prometheus", &prom.url, "-a"]);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("node") && header.ends_with("restart  health"),
        "{table}"
    );
    for node in both {
        for name in [&crasher.name, &oom.name] {
            assert!(
                table.lines().any(|l| l.starts_with(node)
                    && l.contains(name.as_str())
                    && l.ends_with("UnHealthy")),
                "{node} {name} UnHealthy:\n{table}"
            );
        }
    }
    // --node, and the filters with --no-headers.
    let only_a = fleet(&[
        "--prometheus",
        &prom.url,
        "-a",
        "--node",
        "node-a",
        "--no-headers",
    ]);
    assert!(
        !only_a.is_empty() && only_a.lines().all(|l| l.starts_with("node-a ")),
        "{only_a}"
    );
    let sick = fleet(&[
        "--prometheus",
        &prom.url,
        "-a",
        "--filter",
        "health=UnHealthy",
        "--filter",
        &format!("name={}", oom.name),
        "--no-headers",
    ]);
    assert_eq!(sick.lines().count(), 2, "{sick}");
    assert!(
        sick.lines()
            .all(|l| l.contains(&oom.name) && l.ends_with("UnHealthy"))
    );
    // The same filters on one host.
    let host = a.ok(&[
        "ps",
        "-a",
        "--filter",
        "health=UnHealthy",
        "--filter",
        "node=node-a",
        "--no-headers",
    ]);
    assert!(host.lines().any(|l| l.starts_with(&oom.name)), "{host}");
    assert!(host.lines().all(|l| l.ends_with("UnHealthy")), "{host}");
    let other_node = a.ok(&["ps", "-a", "--filter", "node=node-b"]);
    assert_eq!(
        other_node.lines().count(),
        1,
        "only the header: {other_node}"
    );

    // A strict parser reads the exposition.
    let exposition = wait_until(Duration::from_secs(10), "every contract metric", || {
        let got = curl(&url_a, &[]);
        assert_eq!(got.status, 200);
        let names: BTreeSet<&str> = got
            .body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let missing: Vec<&&str> = CONTRACT_NAMES
            .iter()
            .filter(|n| !names.contains(*n))
            .collect();
        if !missing.is_empty() {
            println!("not yet in the exposition: {missing:?}");
            return None;
        }
        Some(got)
    });
    promtool_check(&exposition.body);

    // Syscall accounting per node; no syscall series where it is off.
    let modes: BTreeSet<(String, String)> = prom
        .query("dsh_agent_syscall_accounting")
        .iter()
        .filter_map(|s| {
            let m = &s["metric"];
            Some((
                m["node"].as_str()?.to_owned(),
                m["mode"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let expect: BTreeSet<(String, String)> = [("node-a", "sampled"), ("node-b", "off")]
        .map(|(n, m)| (n.to_owned(), m.to_owned()))
        .into();
    assert_eq!(modes, expect);
    let syscalls = |node: &str| {
        prom.query(&format!(
            "dsh_container_syscalls_total{{node=\"{node}\",id=\"{}\"}}",
            crasher.name
        ))
        .len()
    };
    assert_eq!(syscalls("node-a"), 1);
    assert_eq!(syscalls("node-b"), 0, "--syscalls off: no syscall series");
    // Process churn: every restart of the crasher is an exec and an exit.
    prom.wait_for_nodes(
        &format!(
            "dsh_container_process_execs_total{{id=\"{0}\"}} >= 3 and dsh_container_process_exits_total{{id=\"{0}\"}} >= 3",
            crasher.name
        ),
        &both,
        Duration::from_secs(30),
    );
    drop(prom);
}

#[test]
fn a_metrics_port_in_use_stops_the_agent_with_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = taken.local_addr().expect("its address").to_string();
    let dir = std::env::temp_dir().join(format!("dsh-it-port-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(dsh_bin())
        .arg("--state-dir")
        .arg(&dir)
        .args(["agent", "--metrics-addr", &addr])
        .output()
        .expect("running dsh agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot serve metrics on {addr}")) && err.contains("in use"),
        "{err}"
    );
    assert!(!dir.join("dsh.sock").exists(), "nothing left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
