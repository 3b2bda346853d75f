//! Docker going away and coming back, and container churn: the agent keeps
//! going, and its memory returns to where it started.
use std::{fs, process::Command, time::Duration};

use crate::agentkit::{Agent, Container, docker, wait_until, xtask_bin};

fn dockerd_pids() -> Vec<i32> {
    let out = Command::new("pidof")
        .arg("dockerd")
        .output()
        .expect("pidof");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn docker_stopped_then_back() {
    let agent = Agent::fresh("dockerdown", &[]);
    let c = Container::run(
        "survivor",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.2; done",
        ],
    );
    wait_until(Duration::from_secs(20), "the container's name", || {
        agent.row(&c.name)
    });
    // Stop dockerd (it runs with --live-restore: containers keep running).
    for pid in dockerd_pids() {
        // SAFETY: kill(2) on dockerd's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    wait_until(Duration::from_secs(30), "dockerd to exit", || {
        dockerd_pids().is_empty().then_some(())
    });
    let cgroup = format!("/docker/{}", c.id);
    let row = wait_until(
        Duration::from_secs(20),
        "the container by cgroup name",
        || agent.row(&cgroup),
    );
    assert_eq!(row["state"], "kContainerRunning", "{row}");
    let status = agent.status();
    assert_eq!(status["runtimes"][0]["connected"], false, "{status}");
    // Sampling goes on without Docker.
    let before = agent.status()["uptime_s"].as_u64();
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.status()["uptime_s"].as_u64() > before);

    // Docker back: names return.
    let up = Command::new(xtask_bin())
        .arg("docker-up")
        .status()
        .expect("xtask docker-up");
    assert!(up.success(), "restarting dockerd");
    let row = wait_until(Duration::from_secs(30), "the name to return", || {
        agent.row(&c.name)
    });
    assert_eq!(row["state"], "kContainerRunning");
    assert_eq!(agent.status()["runtimes"][0]["connected"], true);
    docker(&["rm", "-f", &c.name]);
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// 200 cgroups made and removed in a loop for 30 s (about 30 rounds, 6,000
/// cgroups: a leak of 2 KiB each would show).
#[test]
fn churn_of_200_cgroups_for_30_seconds() {
    let agent = Agent::fresh("churn", &["--forget-after", "2s"]);
    let root = dsh::cgroup::layout::CgroupLayout::detect()
        .expect("mounts")
        .attribution_root()
        .expect("hierarchy")
        .to_owned();
    // Warm up for 10 s, so the start level includes the agent's steady state
    // (the journal's page cache, bounded at 8 MiB, fills as lines are written).
    let tag = format!("dsh-churn-{}", std::process::id());
    let round = |n: usize| {
        for i in 0..n {
            let _ = fs::create_dir(root.join(format!("{tag}-{i}")));
        }
        std::thread::sleep(Duration::from_millis(100));
        for i in 0..n {
            let _ = fs::remove_dir(root.join(format!("{tag}-{i}")));
        }
    };
    let warm = std::time::Instant::now();
    while warm.elapsed() < Duration::from_secs(10) {
        round(200);
    }
    // Forgotten after 2 s, trimmed at the next 10 s housekeeping.
    std::thread::sleep(Duration::from_secs(12));
    let start = rss_kib(agent.pid());
    let t0 = std::time::Instant::now();
    let mut rounds = 0;
    while t0.elapsed() < Duration::from_secs(30) {
        round(200);
        rounds += 1;
    }
    let peak = rss_kib(agent.pid());
    // Forgotten 2 s after removal; housekeeping runs every 10 s.
    let rows = wait_until(Duration::from_secs(30), "churned cgroups forgotten", || {
        let rows = agent.rows();
        rows.iter()
            .all(|r| !r["id"].as_str().unwrap_or("").contains(&tag))
            .then_some(rows)
    });
    std::thread::sleep(Duration::from_secs(10)); // one more housekeeping pass
    let end = rss_kib(agent.pid());
    eprintln!(
        "churn: {rounds} rounds x 200 cgroups; agent RSS start {start} KiB, peak {peak} KiB, after {end} KiB; {} rows left",
        rows.len()
    );
    assert!(rounds >= 5, "only {rounds} rounds in 30 s");
    assert!(
        end <= start + start / 4 + 4096,
        "agent memory must come back near its start level: {start} KiB -> {end} KiB"
    );
    let status = agent.status();
    assert_eq!(status["journal_errors"], 0);
    assert_eq!(status["channels"][0]["name"], "critical");
    assert_eq!(
        status["channels"][0]["lost"], 0,
        "no cgroup event lost: {status}"
    );
}
