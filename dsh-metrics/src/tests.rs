//! The exposition as a scraper reads it: names, labels, types, escaping.
use std::sync::Arc;

use crate::{AgentFigures, ContainerFigures, SickFigures, Snapshot, exposition, names};

fn figures(id: &str) -> ContainerFigures {
    ContainerFigures {
        id: id.to_owned(),
        key: "07c561cc06f3".to_owned(),
        namespace: String::new(),
        pod: String::new(),
        container: String::new(),
        runtime: "docker".to_owned(),
        runtime_id: "07c561cc06f3".to_owned(),
        image: "busybox".to_owned(),
        cgroup: "/docker/07c561cc06f3".to_owned(),
        endpoint: "172.17.0.2:{80}".to_owned(),
        state: "kContainerError",
        health: "UnHealthy",
        health_level: 2,
        restarts: 4,
        oom_kills: 1,
        core_dumps: 2,
        last_exit_code: Some(137),
        start_time_seconds: Some(1_800_000_000.5),
        boot_seconds: Some(0.25),
        cpu_usage_seconds: Some(1.5),
        cpu_limit_cores: Some(0.5),
        cpu_periods: Some(10),
        cpu_throttled_periods: Some(3),
        memory_usage_bytes: Some(4096),
        memory_working_set_bytes: Some(2048),
        memory_rss_bytes: Some(1024),
        memory_cache_bytes: Some(3072),
        memory_limit_bytes: Some(1 << 25),
        process_execs: 12,
        process_exits: 11,
        syscalls: Some(100),
        syscall_errors: Some(7),
        block_read_bytes: Some(512),
        block_write_bytes: Some(0),
        network_receive_bytes: Some(300),
        network_transmit_bytes: Some(200),
        sick: SickFigures {
            pids_refused: Some(226),
            fd_limit_errors: Some(40),
            memory_high_events: Some(0),
            memory_max_events: Some(9),
            pressure_some_seconds: [Some(0.5), Some(0.25), Some(12.5)],
            pressure_full_seconds: [None, Some(0.125), Some(10.0)],
            health_reasons: vec!["pids_refused", "io_stalled"],
        },
        tcp: Some(crate::TcpFigures {
            connects: 40,
            connect_failures: 20,
            segments_sent: 900,
            retransmits: 90,
            resets_sent: 21,
            established_resets: 2,
            listen_overflows: 64,
            listen_drops: 65,
        }),
        tcp_connect_results: Some(crate::ConnectResults {
            ok: 10,
            refused: 20,
            ..Default::default()
        }),
        tcp_sockets: Some(crate::TcpSocketFigures {
            retransmits: 30,
            resets_sent: 1,
            resets_received: 20,
        }),
    }
}

fn snapshot(containers: Vec<ContainerFigures>) -> Snapshot {
    Snapshot {
        node: "node-a".to_owned(),
        containers,
        agent: AgentFigures {
            channels: vec![("critical".into(), 10, 0), ("chatty".into(), 20, 2)],
            programs: vec![("dsh_sys_exit".into(), 1000, 2_500_000_000)],
            journal_write_errors: 1,
            syscall_accounting: "exact",
            cpu_seconds: 0.75,
            resident_memory_bytes: 8 << 20,
            open_fds: 300,
            max_fds: 1024,
            container_fds: 250,
            containers_read_slowly: 7,
            clients_refused: 2,
        },
    }
}

/// The sample lines (no comments), as `name{labels} value`.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

fn value_of(text: &str, name: &str) -> String {
    let line = samples(text)
        .into_iter()
        .find(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line.rsplit(' ').next().unwrap().to_owned()
}

const LABELS: &str = r#"{node="node-a",id="web",namespace="",pod="",container=""}"#;

#[test]
fn every_contract_metric_is_there_with_its_value() {
    let text = exposition::encode(Arc::new(snapshot(vec![figures("web")])));
    assert!(text.ends_with("# EOF\n"), "{text}");
    let expect = [
        (names::CONTAINER_HEALTH, "2"),
        (names::CONTAINER_RESTARTS, "4"),
        (names::CONTAINER_OOM_KILLS, "1"),
        (names::CONTAINER_CORE_DUMPS, "2"),
        (names::CONTAINER_LAST_EXIT_CODE, "137"),
        (names::CONTAINER_START_TIME, "1800000000.5"),
        (names::CONTAINER_BOOT, "0.25"),
        (names::CONTAINER_CPU_USAGE, "1.5"),
        (names::CONTAINER_CPU_LIMIT, "0.5"),
        (names::CONTAINER_CPU_PERIODS, "10"),
        (names::CONTAINER_CPU_THROTTLED_PERIODS, "3"),
        (names::CONTAINER_MEMORY_USAGE, "4096"),
        (names::CONTAINER_MEMORY_WORKING_SET, "2048"),
        (names::CONTAINER_NETWORK_RECEIVE, "300"),
        (names::CONTAINER_NETWORK_TRANSMIT, "200"),
        (names::CONTAINER_TCP_SEGMENTS_SENT, "900"),
        (names::CONTAINER_TCP_RETRANSMITS, "90"),
        (names::CONTAINER_TCP_RESETS_SENT, "21"),
        (names::CONTAINER_TCP_ESTABLISHED_RESETS, "2"),
        (names::CONTAINER_TCP_LISTEN_OVERFLOWS, "64"),
        (names::CONTAINER_TCP_LISTEN_DROPS, "65"),
        (names::CONTAINER_MEMORY_RSS, "1024"),
        (names::CONTAINER_MEMORY_CACHE, "3072"),
        (names::CONTAINER_MEMORY_LIMIT, "33554432"),
        (names::CONTAINER_PROCESS_EXECS, "12"),
        (names::CONTAINER_PROCESS_EXITS, "11"),
        (names::CONTAINER_SYSCALLS, "100"),
        (names::CONTAINER_SYSCALL_ERRORS, "7"),
        (names::CONTAINER_BLOCK_READ, "512"),
        (names::CONTAINER_BLOCK_WRITE, "0"),
        (names::JOURNAL_WRITE_ERRORS, "1"),
        (names::PROCESS_CPU, "0.75"),
        (names::PROCESS_RSS, "8388608"),
        (names::PROCESS_OPEN_FDS, "300"),
        (names::PROCESS_MAX_FDS, "1024"),
        (names::AGENT_CONTAINER_FDS, "250"),
        (names::AGENT_CONTAINERS_READ_SLOWLY, "7"),
        (names::AGENT_CLIENTS_REFUSED, "2"),
        (names::CONTAINER_PIDS_REFUSED, "226"),
        (names::CONTAINER_FD_LIMIT_ERRORS, "40"),
        (names::CONTAINER_MEMORY_HIGH_EVENTS, "0"),
        (names::CONTAINER_MEMORY_MAX_EVENTS, "9"),
        (names::CONTAINER_PRESSURE[0], "0.5"),
        (names::CONTAINER_PRESSURE[2], "12.5"),
        (names::CONTAINER_PRESSURE_FULL[1], "0.125"),
    ];
    for (name, value) in expect {
        assert_eq!(value_of(&text, name), value, "{name}");
    }
    assert!(
        text.contains(&format!("{}{LABELS} 2\n", names::CONTAINER_HEALTH)),
        "{text}"
    );
    assert!(text.contains(
        r#"dsh_container_info{node="node-a",id="web",namespace="",pod="",container="",key="07c561cc06f3",runtime="docker",runtime_id="07c561cc06f3",image="busybox",cgroup="/docker/07c561cc06f3",endpoint="172.17.0.2:{80}",state="kContainerError",health="UnHealthy"} 1"#
    ), "{text}");
    // No cpu `full` line (kernels before 5.13): no series.
    assert!(!text.contains(names::CONTAINER_PRESSURE_FULL[0]), "{text}");
    for reason in ["pids_refused", "io_stalled"] {
        assert!(
            text.contains(&format!(
                "dsh_container_health_reason{{node=\"node-a\",id=\"web\",namespace=\"\",pod=\"\",container=\"\",reason=\"{reason}\"}} 1\n"
            )),
            "{text}"
        );
    }
    for (result, n) in [("ok", 20), ("failed", 20)] {
        let labels = LABELS.replace('}', &format!(",result=\"{result}\"}}"));
        let line = format!("{}{labels} {n}\n", names::CONTAINER_TCP_CONNECTS);
        assert!(text.contains(&line), "{line} in {text}");
    }
    assert!(text.contains("dsh_agent_events_total{channel=\"chatty\"} 20\n"));
    assert!(text.contains("dsh_agent_events_lost_total{channel=\"chatty\"} 2\n"));
    assert!(text.contains("dsh_bpf_program_runs_total{program=\"dsh_sys_exit\"} 1000\n"));
    assert!(text.contains("dsh_bpf_program_run_seconds_total{program=\"dsh_sys_exit\"} 2.5\n"));
    assert!(text.contains("dsh_agent_syscall_accounting{node=\"node-a\",mode=\"exact\"} 1\n"));
}

#[test]
fn families_are_typed_once_with_units() {
    let text = exposition::encode(Arc::new(snapshot(vec![figures("a"), figures("b")])));
    for family in [
        "# TYPE dsh_container_restarts counter",
        "# TYPE dsh_container_cpu_usage_seconds counter",
        "# UNIT dsh_container_cpu_usage_seconds seconds",
        "# TYPE dsh_container_memory_usage_bytes gauge",
        "# UNIT dsh_container_cpu_limit_cores cores",
        "# TYPE dsh_container_info gauge",
        "# TYPE process_cpu_seconds counter",
    ] {
        assert_eq!(
            text.matches(&format!("{family}\n")).count(),
            1,
            "{family}\n{text}"
        );
    }
    // Every sample line belongs to the family typed last before it.
    let mut family = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap();
        } else if !line.starts_with('#') {
            assert!(line.starts_with(family), "{line} outside {family}");
        }
    }
}

#[test]
fn absent_figures_leave_series_out_and_labels_are_escaped() {
    let mut c = figures("evil\"\\\nid");
    c.memory_limit_bytes = None;
    c.cpu_limit_cores = None;
    c.last_exit_code = None;
    let text = exposition::encode(Arc::new(snapshot(vec![c])));
    for gone in [
        names::CONTAINER_MEMORY_LIMIT,
        names::CONTAINER_CPU_LIMIT,
        names::CONTAINER_LAST_EXIT_CODE,
    ] {
        assert!(
            !samples(&text).iter().any(|l| l.starts_with(gone)),
            "{gone} must be absent:\n{text}"
        );
    }
    assert!(text.contains(r#"id="evil\"\\\nid""#), "{text}");
    assert_eq!(text.lines().filter(|l| l.is_empty()).count(), 0);
}

#[test]
fn an_empty_host_still_exposes_the_agent() {
    let text = exposition::encode(Arc::new(snapshot(Vec::new())));
    assert_eq!(value_of(&text, names::JOURNAL_WRITE_ERRORS), "1");
    assert!(!text.contains("dsh_container_info{"));
}

/// The label values of one sample line, unescaped as the OpenMetrics ABNF
/// reads them (`\\`, `\"`, `\n`); None when the line does not parse.
fn label_values(line: &str) -> Option<Vec<(String, String)>> {
    let body = &line[line.find('{')? + 1..];
    let mut out = Vec::new();
    let mut chars = body.chars();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    _ => return None,
                },
                '\n' => return None,
                c => value.push(c),
            }
        }
        out.push((key, value));
        match chars.next()? {
            ',' => continue,
            '}' => break,
            _ => return None,
        }
    }
    let rest: String = chars.collect();
    rest.starts_with(' ').then_some(out)
}

#[test]
fn hostile_label_values_round_trip_and_stay_on_their_line() {
    // Quotes, backslashes, newlines (one trying to start a series of its
    // own), a carriage return, ESC and another C0 control byte, a bidi
    // override: what a container (name, image) or a cgroup path may carry.
    let id = "web\"} 1\nfake_series{a=\"b\"} 1\n\\x\\\"\r\x1b[2J\x01\u{202e}end";
    let mut c = figures(id);
    c.image = "img\\\"\n".to_owned();
    c.cgroup = "/docker/\x7f\u{9b}".to_owned();
    let text = exposition::encode(Arc::new(snapshot(vec![c.clone()])));
    assert!(!text.contains("\nfake_series"), "{text}");
    // The escapes the format asks for, and nothing escaped it does not.
    assert!(
        text.contains(r#"id="web\"} 1\nfake_series{a=\"b\"} 1\n\\x\\\""#),
        "{text}"
    );
    assert!(text.contains("\r\x1b[2J\x01\u{202e}end\""), "{text}");
    let lines: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| l.starts_with("dsh_container_"))
        .collect();
    // One line per container family (info, health, ...), none split.
    assert!(lines.len() >= 20, "{text}");
    for line in lines {
        let labels = label_values(line).unwrap_or_else(|| panic!("unparsable: {line:?}"));
        let get = |k: &str| {
            labels
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("id"), Some(id), "{line:?}");
        if line.starts_with(names::CONTAINER_INFO) {
            assert_eq!(get("image"), Some(c.image.as_str()));
            assert_eq!(get("cgroup"), Some(c.cgroup.as_str()));
        }
    }
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn syscall_series_are_absent_when_not_counted() {
    let mut c = figures("web");
    c.syscalls = None;
    c.syscall_errors = None;
    let mut s = snapshot(vec![c]);
    s.agent.syscall_accounting = "off";
    let text = exposition::encode(Arc::new(s));
    for gone in [names::CONTAINER_SYSCALLS, names::CONTAINER_SYSCALL_ERRORS] {
        assert!(
            !samples(&text).iter().any(|l| l.starts_with(gone)),
            "{gone} must be absent:\n{text}"
        );
    }
    assert!(text.contains("dsh_agent_syscall_accounting{node=\"node-a\",mode=\"off\"} 1\n"));
    assert_eq!(value_of(&text, names::CONTAINER_PROCESS_EXECS), "12");
}

/// The metric names a text mentions: `dsh_*` and `process_*` words.
fn names_in(text: &str) -> std::collections::BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("dsh_") || w.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// docs/metrics.md names every sample name the exposition has, and no
/// other: renaming, adding or removing a family fails here until the page
/// says so.
#[test]
fn docs_name_every_family() {
    let text = exposition::encode(Arc::new(snapshot(vec![figures("web")])));
    let exposed: std::collections::BTreeSet<String> = samples(&text)
        .into_iter()
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    assert!(exposed.len() > 30, "{exposed:?}");
    let documented = names_in(include_str!("../../docs/metrics.md"));
    let undocumented: Vec<_> = exposed.difference(&documented).collect();
    let not_exposed: Vec<_> = documented.difference(&exposed).collect();
    assert!(
        undocumented.is_empty() && not_exposed.is_empty(),
        "exposed but not in docs/metrics.md: {undocumented:?}; \
         in docs/metrics.md but not exposed: {not_exposed:?}"
    );
}
