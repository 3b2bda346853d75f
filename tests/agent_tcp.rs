//! TCP health on real Docker containers, all traffic on each container's
//! own loopback: a client dialling a port nobody listens on, a sender losing
//! a third of its segments (nftables in its namespace), a server whose
//! accept queue overflows; each turns Warning with its reason and loses it
//! once it stops, while a busy healthy web server stays Good.
use std::{
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    agentkit::{
        Agent, Container, docker, health_reasons as reasons, log_msgs_with, wait_until,
        workload_mounts,
    },
    promkit::{curl, metrics_url, promtool_check},
};

/// The bounds: the reason within 30 s, gone within 2 minutes.
const SEEN_WITHIN: Duration = Duration::from_secs(30);
const GONE_WITHIN: Duration = Duration::from_secs(120);

/// The agents of the tests that wait for a reason to end judge over 10 s
/// instead of the default 30 s (`--tcp-window`): the same logic, each
/// test 20 s shorter. The busy server is watched over two such windows; a
/// shorter window is the stricter test of a burst.
const SHORT_WINDOW: [&str; 2] = ["--tcp-window", "10s"];

/// Waits for `name`'s health to carry a reason containing `needle`; returns
/// the row.
fn sick_with(agent: &Agent, name: &str, needle: &str) -> Value {
    let started = Instant::now();
    let row = wait_until(SEEN_WITHIN, &format!("{name}: reason {needle:?}"), || {
        agent
            .row(name)
            .filter(|r| reasons(r).iter().any(|t| t.contains(needle)))
    });
    eprintln!(
        "{name}: {:?} after {:.1} s: {}",
        reasons(&row),
        started.elapsed().as_secs_f64(),
        row["tcp"]
    );
    assert_ne!(row["health"], "Good", "{row}");
    row
}

/// Waits for the reason containing `needle` to go; the row is then Good.
fn well_again(agent: &Agent, name: &str, needle: &str) {
    let started = Instant::now();
    let row = wait_until(GONE_WITHIN, &format!("{name}: {needle:?} to go"), || {
        agent
            .row(name)
            .filter(|r| !reasons(r).iter().any(|t| t.contains(needle)))
    });
    eprintln!(
        "{name}: {needle:?} gone after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(row["health"], "Good", "{row}");
    // One log line when the condition started, one when it ended.
    let msgs = log_msgs_with(agent, name, "-> Good: ended: ");
    let health: Vec<&String> = msgs.iter().filter(|m| m.starts_with("health ")).collect();
    assert_eq!(
        health.len(),
        2,
        "one line when it started, one when it ended: {msgs:#?}"
    );
    assert!(!health[0].contains("-> Good"), "{health:?}");
}

/// A shell loop that runs `body` until `/tmp/stop` exists, then idles.
fn until_stopped(body: &str) -> String {
    format!("while [ ! -e /tmp/stop ]; do {body}; done; sleep 600")
}

fn stop(c: &Container) {
    // The image's exec has no PATH: the shell's own redirection.
    docker(&["exec", &c.name, "/bin/sh", "-c", ": > /tmp/stop"]);
}

#[test]
fn refused_connects_warn_and_are_counted() {
    let agent = Agent::fresh(
        "tcp-refused",
        &[
            "--metrics-addr",
            "127.0.0.1:0",
            SHORT_WINDOW[0],
            SHORT_WINDOW[1],
        ],
    );
    // About 20 connects a second to a port nobody listens on.
    let c = Container::run(
        "tcp-refused",
        &[],
        &[
            "sh",
            "-c",
            &until_stopped("nc 127.0.0.1 9 </dev/null 2>/dev/null; sleep 0.05"),
        ],
    );
    // The kernel programs say how they failed, and where to.
    let row = sick_with(&agent, &c.name, "connects refused");
    assert_eq!(row["health"], "Warning", "a minute has not passed: {row}");
    let row = sick_with(&agent, &c.name, "(to 127.0.0.1:9)");
    let tcp = &row["tcp"];
    assert_eq!(
        tcp["failing_destinations"][0]["addr"], "127.0.0.1:9",
        "{tcp}"
    );
    assert!(
        tcp["failing_destinations"][0]["failures"].as_u64() > Some(10),
        "{tcp}"
    );
    // Each refused connect's reset arrived at one of its sockets.
    assert!(
        tcp["sockets"]["resets_received_per_s"].as_f64() > Some(5.0),
        "{tcp}"
    );
    assert!(tcp["counters"]["attempt_fails"].as_u64() > Some(0), "{tcp}");
    assert!(
        tcp["rates"]["connect_fails_per_s"].as_f64() > Some(5.0),
        "{tcp}"
    );
    assert!(
        tcp["connects"]["refused_per_s"].as_f64() > Some(5.0),
        "{tcp}"
    );
    // `dsh trace`'s TCP section: the connects of those seconds.
    let trace = agent.ok(&["trace", &c.name, "--duration", "2s", "--json"]);
    let trace: Value = serde_json::from_str(&trace).expect("trace json");
    assert!(
        trace["tcp"]["refused"].as_u64() > Some(10),
        "{}",
        trace["tcp"]
    );
    assert_eq!(trace["tcp"]["established"], 0, "{}", trace["tcp"]);
    assert_eq!(
        trace["tcp"]["failing_destinations"][0]["addr"], "127.0.0.1:9",
        "{}",
        trace["tcp"]
    );
    let text = agent.ok(&["trace", &c.name, "--duration", "1s"]);
    assert!(text.contains("TCP connects: 0 established, "), "{text}");
    assert!(
        text.contains("TCP connects failed to: 127.0.0.1:9 ("),
        "{text}"
    );
    // The series, parsed by a strict parser.
    let text = curl(&metrics_url(&agent), &[]).body;
    promtool_check(&text);
    let failed = text
        .lines()
        .find(|l| {
            l.starts_with("dsh_container_tcp_connects_total{")
                && l.contains(&format!("id=\"{}\"", c.name))
                && l.contains("result=\"failed\"")
        })
        .unwrap_or_else(|| panic!("no failed connects of {} in\n{text}", c.name));
    let n: u64 = failed
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(n > 0, "{failed}");
    // The kernel's own count for the container's cgroup, by result.
    let refused = text
        .lines()
        .find(|l| {
            l.starts_with("dsh_container_tcp_connect_results_total{")
                && l.contains(&format!("id=\"{}\"", c.name))
                && l.contains("result=\"refused\"")
        })
        .unwrap_or_else(|| panic!("no refused connect results of {} in\n{text}", c.name));
    assert!(!refused.ends_with(" 0"), "{refused}");
    // The cost of the state-change program that counts them, and of the
    // reset program that saw each refusal's reset arrive.
    let status = agent.status();
    assert_eq!(status["tcp_sockets"], "per socket's cgroup", "{status}");
    for name in [
        "dsh_inet_sock_set_state",
        "dsh_tcp_receive_reset",
        "dsh_tcp_send_reset",
        "dsh_tcp_retransmit_skb",
    ] {
        let program = status["programs"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_default();
        eprintln!("{program}");
        // Listed (attached) whether or not it ran; these two ran.
        assert_eq!(program["attached"], true, "{status}");
        if name != "dsh_tcp_send_reset" && name != "dsh_tcp_retransmit_skb" {
            assert!(program["runs_total"].as_u64() > Some(0), "{status}");
        }
    }
    stop(&c);
    well_again(&agent, &c.name, "connects refused");
}

/// busybox httpd on the container's loopback and a client asking it ten
/// times a second (`background`: each request in the background, so one
/// whose segments are lost does not hold up the next).
fn web_and_client(port: u16, background: bool) -> String {
    let get = format!("wget -q -O /dev/null http://127.0.0.1:{port}/");
    let get = if background {
        format!("({get} &)")
    } else {
        get
    };
    format!(
        "mkdir -p /www && echo hello > /www/index.html && httpd -p 127.0.0.1:{port} -h /www && \
         while :; do {get}; sleep 0.1; done"
    )
}

#[test]
fn lost_segments_warn_as_retransmits() {
    let agent = Agent::fresh("tcp-lossy", &[]);
    // A busy healthy neighbour on the same host: the lossy container's
    // retransmits are its own sockets', not counted for whoever the CPU
    // ran when the retransmit timer fired.
    let busy = Container::run("tcp-busy", &[], &["sh", "-c", &web_and_client(8000, false)]);
    // A web server and its client, ten requests a second, on the
    // container's loopback (each request in the background: one whose
    // segments are lost does not hold up the next).
    let c = Container::run("tcp-lossy", &[], &["sh", "-c", &web_and_client(8000, true)]);
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &c.name]);
    let pid = pid.trim();
    let nft = |rules: &str| {
        let out = Command::new("nsenter")
            .args(["-t", pid, "-n", "nft", rules])
            .output()
            .expect("nsenter nft");
        assert!(
            out.status.success(),
            "nft {rules}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A third of the segments towards the receiver are dropped.
    nft("add table inet dsh_loss");
    nft("add chain inet dsh_loss out { type filter hook output priority 0 ; }");
    nft("add rule inet dsh_loss out tcp dport 8000 numgen random mod 3 == 0 drop");
    let row = sick_with(&agent, &c.name, "of segments retransmitted");
    assert!(
        row["tcp"]["counters"]["retrans_segs"].as_u64() > Some(0),
        "{row}"
    );
    // This kernel says each socket's cgroup: the retransmits are counted
    // for the sender, none for the neighbour.
    assert!(
        row["tcp"]["sockets"]["retransmits_per_s"].as_f64() > Some(0.0),
        "{}",
        row["tcp"]
    );
    let neighbour = agent.row(&busy.name).expect("the busy neighbour's row");
    eprintln!("neighbour: {}", neighbour["tcp"]);
    assert_eq!(
        neighbour["tcp"]["sockets"]["retransmits_per_s"].as_f64(),
        Some(0.0),
        "{}",
        neighbour["tcp"]
    );
    assert!(
        neighbour["tcp"]["connects"]["ok_per_s"].as_f64() > Some(3.0),
        "busy: {}",
        neighbour["tcp"]
    );
    assert_eq!(neighbour["health"], "Good", "{neighbour}");
    nft("delete table inet dsh_loss");
    well_again(&agent, &c.name, "of segments retransmitted");
}

#[test]
fn overflowing_listen_queue_names_its_port() {
    let agent = Agent::fresh("tcp-backlog", &SHORT_WINDOW);
    let mounts = workload_mounts();
    let opts: Vec<&str> = mounts.iter().map(String::as_str).collect();
    // A server with backlog 1 that never accepts, and about 60 connects a
    // second to it (each client gives up after a second).
    let c = Container::run(
        "tcp-backlog",
        &opts,
        &[
            "sh",
            "-c",
            &format!(
                "/dsh-workload backlog 7000 1 & sleep 0.2; {}",
                until_stopped(
                    "for i in 1 2 3 4 5 6; do nc -w 1 127.0.0.1 7000 </dev/null >/dev/null 2>&1 & done; sleep 0.1"
                )
            ),
        ],
    );
    let row = sick_with(&agent, &c.name, "queue overflowed");
    let text = reasons(&row).join("; ");
    assert!(text.contains("listen :7000 queue overflowed"), "{text}");
    let queues = &row["tcp"]["listen_queues"];
    assert_eq!(queues[0]["port"], 7000, "{queues}");
    assert!(queues[0]["backlog"].as_u64() <= Some(2), "{queues}");
    stop(&c);
    well_again(&agent, &c.name, "queue overflowed");
}

#[test]
fn busy_healthy_web_server_stays_good() {
    let agent = Agent::fresh("tcp-web", &SHORT_WINDOW);
    // busybox httpd answering a client ten times a second.
    let c = Container::run("tcp-web", &[], &["sh", "-c", &web_and_client(8080, false)]);
    wait_until(Duration::from_secs(20), "web's TCP rates", || {
        agent
            .row(&c.name)
            .filter(|r| r["tcp"]["rates"]["connects_per_s"].as_f64() > Some(3.0))
    });
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let row = agent.row(&c.name).expect("web row");
        assert_eq!(row["health"], "Good", "{row}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let row = agent.row(&c.name).expect("web row");
    eprintln!("web: {}", row["tcp"]);
    let connects = &row["tcp"]["connects"];
    assert!(connects["ok_per_s"].as_f64() > Some(3.0), "{connects}");
    assert!(
        connects["handshake_ms"]
            .as_f64()
            .is_some_and(|ms| ms < 100.0),
        "{connects}"
    );
}

/// Without Docker (the VM matrix): a plain cgroup whose process runs in a
/// network namespace of its own, its connects refused and its backlog-1
/// listener overflowing; both reasons show.
#[test]
fn plain_cgroup_in_its_own_netns_is_sick_with_both() {
    use std::process::Stdio;

    use crate::common::{TestCgroup, wait_ready};

    let agent = Agent::fresh("tcp-plain", &[]);
    let cg = TestCgroup::new("tcp-plain");
    let mut child = cg
        .command(&["netns-sick", "30", "90"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the sick workload");
    wait_ready(&mut child);
    let id = format!("/{}", cg.name);
    let row = sick_with(&agent, &id, "queue overflowed");
    // The refused connects' destination, from the kernel, on every kernel.
    let refused = sick_with(&agent, &id, "(to 127.0.0.1:9)");
    let text = reasons(&refused).join("; ");
    assert!(text.contains("connects refused "), "{text}");
    // Which listener overflowed comes from sock_diag; a kernel without
    // inet_diag (the VMs load only their disk's modules) says none.
    if row["tcp"]["listen_queues"]
        .as_array()
        .is_some_and(|q| !q.is_empty())
    {
        let text = reasons(&row).join("; ");
        assert!(text.contains("listen :7000 queue overflowed"), "{text}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
