//! Network I/O per container (from its own namespace, counted once when
//! containers share one) and memory as the kernel charges it (the working
//! set, kernel memory included), against the kernel's own figures and
//! `docker stats`.
use std::{io::Write as _, net::TcpStream, time::Duration};

use serde_json::Value;

use crate::agentkit::{Agent, Container, docker, wait_until, workload_mounts};

const RX_BYTES: u64 = 4 << 20;

fn net_rx(row: &Value) -> Option<u64> {
    row["net"]["rx_bytes"].as_u64()
}

#[test]
fn network_rx_per_namespace_counted_once() {
    let agent = Agent::fresh("net", &[]);
    let rx = Container::run(
        "netrx",
        &["-p", "127.0.0.1::9000"],
        &["sh", "-c", "while :; do nc -l -p 9000 > /dev/null; done"],
    );
    let net = format!("container:{}", rx.name);
    let side = Container::run("netside", &["--network", &net], &["sleep", "600"]);
    let before = wait_until(Duration::from_secs(20), "rx's counters", || {
        agent.row(&rx.name).as_ref().and_then(net_rx)
    });
    let port = docker(&["port", &rx.name, "9000/tcp"]);
    let port = port.lines().next().unwrap_or_default().to_owned();
    // A host client through the published port on loopback.
    let mut s = TcpStream::connect(&port).unwrap_or_else(|e| panic!("connect {port}: {e}"));
    let chunk = vec![0x5au8; 64 << 10];
    for _ in 0..RX_BYTES / chunk.len() as u64 {
        s.write_all(&chunk).expect("send");
    }
    drop(s);
    let got = wait_until(Duration::from_secs(10), "the bytes to be counted", || {
        let d = net_rx(&agent.row(&rx.name)?)? - before;
        (d >= RX_BYTES).then_some(d)
    });
    // One more tick: nothing else arrives.
    std::thread::sleep(Duration::from_secs(1));
    let row = agent.row(&rx.name).expect("rx row");
    let got = got.max(net_rx(&row).unwrap_or(0) - before);
    eprintln!(
        "net: sent {RX_BYTES} B, rx counted {got} B ({:+.1}%)",
        (got as f64 / RX_BYTES as f64 - 1.0) * 100.0
    );
    assert!(
        got <= RX_BYTES + RX_BYTES / 10,
        "rx within 10% of what was sent: {got}"
    );
    // The second container shares rx's namespace: it says so, no figures.
    let side_row = agent.row(&side.name).expect("side row");
    assert_eq!(side_row["net_shared_with"], rx.name.as_str(), "{side_row}");
    assert_eq!(side_row["net"], Value::Null, "{side_row}");
    assert_eq!(side_row["net_rx_bytes_per_s"], Value::Null, "{side_row}");
    let wide = agent.ok(&["ps", "--wide"]);
    let line = wide
        .lines()
        .find(|l| l.starts_with(&side.name))
        .expect("side in ps --wide");
    assert!(line.contains(" shared "), "{wide}");
    assert!(
        wide.lines().next().unwrap_or("").contains("net rx/s"),
        "{wide}"
    );
}

/// Sockets that were listening before the agent started (no listen event
/// for them) are read from the container's namespace, and a socket closed
/// since is dropped from the endpoint at the next re-read.
#[test]
fn listening_sockets_found_in_the_namespace() {
    // One connection ends nc; the container then listens on nothing. No
    // published port: the runtime's ports are part of the endpoint too.
    let c = Container::run(
        "listen-before",
        &[],
        &["sh", "-c", "nc -l -p 9000 > /dev/null; sleep 600"],
    );
    let ip = docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &c.name]);
    let port = format!("{}:9000", ip.trim());
    // Give nc a moment to listen before the agent looks.
    std::thread::sleep(Duration::from_secs(1));
    let agent = Agent::fresh("listen", &[]);
    let endpoint = |agent: &Agent| {
        agent
            .row(&c.name)
            .and_then(|r| r["endpoint"].as_str().map(str::to_owned))
    };
    wait_until(Duration::from_secs(20), "the port listened on", || {
        endpoint(&agent).filter(|e| e.ends_with(":{9000}"))
    });
    let s = TcpStream::connect(&port).unwrap_or_else(|e| panic!("connect {port}: {e}"));
    drop(s);
    // Addresses and sockets are read again every 10 s.
    let e = wait_until(Duration::from_secs(30), "the closed port to go", || {
        endpoint(&agent).filter(|e| !e.contains("9000"))
    });
    assert_eq!(e, "-", "it listens on nothing now");
}

/// The kernel's working set of a Docker container (cgroup v1 memory
/// controller on this host, else cgroup2).
fn kernel_working_set(id: &str) -> u64 {
    let read = |p: String| std::fs::read_to_string(p).ok();
    let key = |text: &str, k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0u64)
    };
    let v1 = format!("/sys/fs/cgroup/memory/docker/{id}");
    if let Some(u) = read(format!("{v1}/memory.usage_in_bytes")) {
        let stat = read(format!("{v1}/memory.stat")).unwrap_or_default();
        return u.trim().parse::<u64>().unwrap_or(0) - key(&stat, "total_inactive_file");
    }
    let v2 = format!("/sys/fs/cgroup/docker/{id}");
    let u: u64 = read(format!("{v2}/memory.current"))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let stat = read(format!("{v2}/memory.stat")).unwrap_or_default();
    u - key(&stat, "inactive_file")
}

/// `docker stats`' memory use ("12.5MiB / 1.9GiB") in bytes.
fn docker_stats_mem(name: &str) -> u64 {
    let out = docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", name]);
    let used = out.split('/').next().unwrap_or("").trim();
    let split = used
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(used.len());
    let (n, unit) = used.split_at(split);
    let n: f64 = n.parse().unwrap_or(0.0);
    let scale = match unit {
        "KiB" | "kB" => 1024.0,
        "MiB" | "MB" => 1048576.0,
        "GiB" | "GB" => 1073741824.0,
        _ => 1.0,
    };
    (n * scale) as u64
}

#[test]
fn memory_is_what_the_kernel_charges() {
    let agent = Agent::fresh("mem", &[]);
    let opts = workload_mounts();
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    // 18,000 descriptors: within the test engine's limit of 20,000 (a
    // container cannot raise its hard limit past dockerd's).
    let sockets = Container::run("sockets", &opts, &["/dsh-workload", "sockets", "9000"]);
    // The kernel memory settles once every socket is made.
    let row = wait_until(
        Duration::from_secs(30),
        "the sockets' kernel memory",
        || {
            let r = agent.row(&sockets.name)?;
            (r["mem_kernel_bytes"].as_u64()? > 8 << 20).then_some(r)
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let row = agent.row(&sockets.name).unwrap_or(row);
    let dsh = row["mem_used_bytes"].as_u64().expect("mem_used_bytes");
    let kernel = kernel_working_set(&sockets.id);
    let stats = docker_stats_mem(&sockets.name);
    let (anon, file, kmem) = (
        row["mem_anon_bytes"].as_u64().unwrap_or(0),
        row["mem_file_bytes"].as_u64().unwrap_or(0),
        row["mem_kernel_bytes"].as_u64().unwrap_or(0),
    );
    eprintln!(
        "mem: dsh {dsh} B, kernel working set {kernel} B, docker stats {stats} B; \
         anon {anon} + file {file} = {} B, kernel {kmem} B",
        anon + file
    );
    let near = |a: u64, b: u64| a.abs_diff(b) <= b / 10;
    assert!(near(dsh, kernel), "dsh {dsh} vs kernel {kernel}");
    assert!(near(dsh, stats), "dsh {dsh} vs docker stats {stats}");
    assert!(
        anon + file < dsh / 2,
        "the test must hinge on kernel memory (rss+cache {} of {dsh})",
        anon + file
    );

    // Filled to 92% of its limit with kernel memory (pipe buffers): a Warning.
    let mut opts = workload_mounts();
    opts.extend(["--memory", "32m", "--memory-swap", "32m"].map(String::from));
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let full = Container::run("kmem", &opts, &["/dsh-workload", "pipes-to", "92"]);
    let row = wait_until(Duration::from_secs(30), "the memory Warning", || {
        agent.row(&full.name).filter(|r| r["health"] == "Warning")
    });
    let reasons = row["health_reasons"].to_string();
    assert!(reasons.contains("memory at 9"), "{row}");
    assert!(
        row["mem_kernel_bytes"].as_u64().unwrap_or(0) > 16 << 20,
        "mostly kernel memory: {row}"
    );
}
