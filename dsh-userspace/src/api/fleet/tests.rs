//! The fleet view from Prometheus answers as its HTTP API writes them.
use super::*;

fn series(json: &str) -> Vec<Series> {
    decode("u", "q", 200, json.as_bytes()).unwrap()
}

const INFO: &str = r#"{"status":"success","data":{"resultType":"vector","result":[
 {"metric":{"__name__":"dsh_container_info","node":"b","id":"web","namespace":"","pod":"","container":"",
   "runtime":"docker","runtime_id":"07c5","image":"busybox","cgroup":"/docker/07c5","endpoint":"172.17.0.2:{80}",
   "state":"kContainerRunning","health":"Warning","instance":"127.0.0.1:1","job":"dsh"},"value":[1800000100.5,"1"]},
 {"metric":{"node":"a","id":"oom","runtime":"docker","runtime_id":"99","image":"","cgroup":"/docker/99",
   "endpoint":"","state":"kContainerError","health":"UnHealthy"},"value":[1800000100.5,"1"]},
 {"metric":{"node":"a","id":"web","runtime":"docker","runtime_id":"07c5","image":"busybox","cgroup":"/docker/07c5",
   "endpoint":"-","state":"kContainerRunning","health":"Good"},"value":[1800000100.5,"1"]}
]}}"#;

fn answers() -> HashMap<Figure, Vec<Series>> {
    let one = |node: &str, id: &str, v: &str| {
        format!(r#"{{"metric":{{"node":"{node}","id":"{id}"}},"value":[1800000100.5,"{v}"]}}"#)
    };
    let vector = |items: Vec<String>| {
        series(&format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            items.join(",")
        ))
    };
    let mut m: HashMap<Figure, Vec<Series>> = FIGURES.iter().map(|f| (*f, Vec::new())).collect();
    m.insert(
        Figure::Restarts,
        vector(vec![
            one("b", "web", "2"),
            one("a", "oom", "0"),
            one("a", "web", "0"),
        ]),
    );
    m.insert(Figure::OomKills, vector(vec![one("a", "oom", "1")]));
    m.insert(
        Figure::StartTime,
        vector(vec![one("b", "web", "1800000040.5")]),
    );
    m.insert(
        Figure::CpuUsed,
        vector(vec![one("b", "web", "0.25"), one("a", "oom", "0.5")]),
    );
    m.insert(Figure::MemLimit, vector(vec![one("b", "web", "33554432")]));
    m.insert(Figure::Throttled, vector(vec![one("b", "web", "NaN")]));
    m
}

#[test]
fn rows_join_info_and_figures_by_node_and_id() {
    let rows = assemble(&series(INFO), &HashMap::new(), &answers());
    let ids: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.node.as_str(), r.row.id.as_str()))
        .collect();
    assert_eq!(ids, [("a", "oom"), ("a", "web"), ("b", "web")]);
    let web_b = &rows[2].row;
    assert_eq!(web_b.health, "Warning");
    assert_eq!(web_b.restart, 2);
    assert_eq!(web_b.rtime_s, Some(60));
    assert_eq!(web_b.cpu_used_cores, 0.25);
    assert_eq!(web_b.mem_limit_bytes, Some(32 << 20));
    assert_eq!(
        web_b.cpu_throttled_ratio, None,
        "NaN (no periods) is no figure"
    );
    assert_eq!(web_b.endpoint, "172.17.0.2:{80}");
    assert_eq!(web_b.image.as_deref(), Some("busybox"));
    let oom = &rows[0].row;
    assert_eq!((oom.oom_kills, oom.state), (1, State::Error));
    assert_eq!(oom.cpu_used_cores, 0.0, "not running: no CPU");
    assert_eq!(oom.rtime_s, None);
    assert_eq!((oom.endpoint.as_str(), oom.image.as_deref()), ("-", None));
}

#[test]
fn json_rows_carry_the_node_and_the_contract_fields() {
    let rows = assemble(&series(INFO), &HashMap::new(), &answers());
    let v = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(v["node"], "a");
    for field in [
        "id",
        "runtime_id",
        "cgroup",
        "endpoint",
        "state",
        "health",
        "restart",
        "oom_kills",
    ] {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
}

#[test]
fn errors_from_the_api_are_said() {
    let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
    let err = decode("u", "up{", 400, bad.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("parse error at char 3"), "{err}");
    let err = decode("u", "up", 502, b"<html>Bad Gateway</html>").unwrap_err();
    assert!(err.to_string().contains("HTTP 502"), "{err}");
    let err = decode("u", "up", 200, b"{").unwrap_err();
    assert!(matches!(err, FleetError::Decode { .. }), "{err}");
    let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    assert!(decode("u", "up[1m]", 200, matrix.as_bytes()).is_err());
}

#[test]
fn urls_keep_their_prefix_and_only_http_is_taken() {
    let u = query_endpoint("http://127.0.0.1:9090").unwrap();
    assert_eq!(u.as_str(), "http://127.0.0.1:9090/api/v1/query");
    let u = query_endpoint("http://proxy/prometheus").unwrap();
    assert_eq!(u.as_str(), "http://proxy/prometheus/api/v1/query");
    assert!(
        query_endpoint("https://x")
            .unwrap_err()
            .to_string()
            .contains("https")
    );
    assert!(query_endpoint("127.0.0.1:9090").is_err());
}

#[test]
fn node_selectors_are_escaped() {
    assert_eq!(selector(&[]), "");
    assert_eq!(selector(&["a\"b"]), r#"{node="a\"b"}"#);
    assert_eq!(selector(&["n.1", "n2"]), r#"{node=~"n\\.1|n2"}"#);
    assert_eq!(
        Figure::CpuUsed.promql(r#"{node="a"}"#),
        r#"irate(dsh_container_cpu_usage_seconds_total{node="a"}[5m])"#
    );
}

#[test]
fn syscall_rates_follow_each_nodes_accounting() {
    let modes = series(
        r#"{"status":"success","data":{"resultType":"vector","result":[
 {"metric":{"__name__":"dsh_agent_syscall_accounting","node":"a","mode":"off"},"value":[1800000100.5,"1"]},
 {"metric":{"__name__":"dsh_agent_syscall_accounting","node":"b","mode":"sampled"},"value":[1800000100.5,"1"]}
]}}"#,
    );
    let by_node = accounting_by_node(&modes);
    let rows = assemble(&series(INFO), &by_node, &answers());
    let modes: Vec<(&str, SyscallAccounting, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.node.as_str(),
                r.row.syscall_accounting,
                r.row.syscalls_sampled,
            )
        })
        .collect();
    assert_eq!(
        modes,
        [
            ("a", SyscallAccounting::Off, false),
            ("a", SyscallAccounting::Off, false),
            ("b", SyscallAccounting::Sampled, true),
        ]
    );
    // Without the series (an older agent): every syscall was counted.
    let rows = assemble(&series(INFO), &HashMap::new(), &answers());
    assert!(
        rows.iter()
            .all(|r| r.row.syscall_accounting == SyscallAccounting::Exact)
    );
    let q = Figure::Syscalls.promql(r#"{node="a"}"#);
    assert_eq!(
        q,
        r#"irate(dsh_container_syscalls_total{node="a"}[5m]) and on(node) dsh_agent_syscall_accounting{mode="exact"} or rate(dsh_container_syscalls_total{node="a"}[5m]) and on(node) dsh_agent_syscall_accounting{mode="sampled"}"#
    );
}

fn info_of(items: &[(&str, &str, &str, &str)]) -> Vec<Series> {
    let one = |(node, id, rid, instance): &(&str, &str, &str, &str)| {
        format!(
            r#"{{"metric":{{"node":"{node}","id":"{id}","runtime_id":"{rid}","instance":"{instance}",
            "job":"j-{instance}","state":"kContainerRunning","health":"Good"}},"value":[1800000100.5,"1"]}}"#
        )
    };
    let items: Vec<String> = items.iter().map(one).collect();
    series(&format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        items.join(",")
    ))
}

/// One agent scraped by two jobs is one row; two agents that give one node
/// name are flagged on the row, whichever of them is shown.
#[test]
fn rows_claimed_twice_are_flagged_not_silently_merged() {
    let figures = HashMap::new();
    let same_agent = info_of(&[
        ("a", "web", "07c5", "h1:9688"),
        ("a", "web", "07c5", "h1:9688"),
    ]);
    let rows = assemble(&same_agent, &HashMap::new(), &figures);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].duplicate, None);

    let two_agents = info_of(&[
        ("a", "web", "99aa", "h2:9688"),
        ("a", "db", "1234", "h1:9688"),
        ("a", "web", "07c5", "h1:9688"),
    ]);
    let rows = assemble(&two_agents, &HashMap::new(), &figures);
    let ids: Vec<&str> = rows.iter().map(|r| r.row.id.as_str()).collect();
    assert_eq!(ids, ["db", "web"]);
    assert_eq!(rows[0].duplicate, None);
    let said = rows[1]
        .duplicate
        .as_deref()
        .expect("the web row is flagged");
    assert!(
        said.starts_with("2 different series claim this node and id (instances: h1:9688, h2:9688)"),
        "{said}"
    );
    // The same one is shown whatever order Prometheus answered in.
    let mut reversed = two_agents.clone();
    reversed.reverse();
    assert_eq!(assemble(&reversed, &HashMap::new(), &figures), rows);
    let json = serde_json::to_value(&rows[1]).unwrap();
    assert_eq!(json["duplicate"], said);
    assert!(
        serde_json::to_value(&rows[0])
            .unwrap()
            .get("duplicate")
            .is_none()
    );
}

#[test]
fn reasons_join_their_rows_bounded_and_deduplicated() {
    let mut rows = assemble(&series(INFO), &HashMap::new(), &answers());
    let reason = |node: &str, id: &str, r: &str| {
        format!(
            r#"{{"metric":{{"__name__":"dsh_container_health_reason","node":"{node}","id":"{id}","reason":"{r}"}},"value":[1800000100.5,"1"]}}"#
        )
    };
    let mut items = vec![
        reason("b", "web", "pids_refused"),
        reason("b", "web", "io_stalled"),
        reason("b", "web", "io_stalled"),
        reason("a", "nobody", "fd_limit"),
    ];
    items.extend((0..40).map(|i| reason("a", "oom", &format!("r{i:02}"))));
    let answer = series(&format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        items.join(",")
    ));
    add_reasons(&mut rows, &answer);
    let of = |node: &str, id: &str| {
        rows.iter()
            .find(|r| r.node == node && r.row.id == id)
            .map(|r| r.reasons.clone())
            .unwrap_or_default()
    };
    assert_eq!(of("b", "web"), ["io_stalled", "pids_refused"]);
    assert_eq!(of("a", "web"), Vec::<String>::new());
    assert_eq!(of("a", "oom").len(), 16, "at most 16 per row");
}
