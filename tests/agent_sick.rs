//! Running but failing (issue 24): a container that hits its pids limit,
//! its open-files limit, or thrashes its page cache against its memory
//! limit turns Warning with the reason within 30 s, and Good again once
//! it stops; each start and end writes one `dsh log -a` line. A busy,
//! healthy container (heavy unthrottled I/O, forking) stays Good.
use std::{path::PathBuf, time::Duration};

use serde_json::Value;

use crate::{
    agentkit::{
        Agent, Container, health_reasons as reasons, log_msgs_with, wait_until, workload_mounts,
    },
    common::TestCgroup,
    promkit::{curl, metrics_url, promtool_check},
};

/// Conditions end this long after the last event (the default is 1m):
/// short, so that the tests see them end.
const SICK_WINDOW: &str = "15s";

/// A host directory mounted at /ctl: the container's script stops
/// misbehaving when `stop` appears there (a container at its pids limit
/// cannot be `docker exec`ed into).
struct Ctl(PathBuf);

impl Ctl {
    fn new(tag: &str) -> Ctl {
        let d = std::env::temp_dir().join(format!("dsh-it-ctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("ctl dir");
        Ctl(d)
    }
    fn mount(&self) -> String {
        format!("{}:/ctl", self.0.display())
    }
    fn stop(&self) {
        std::fs::write(self.0.join("stop"), "").expect("stop file");
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits for the condition (`needle` in a reason) to start, then stops the
/// container's misbehaviour and waits for it to end; checks the log has
/// one line for each. Returns the row while the condition held, and the
/// metrics scraped then.
fn starts_and_ends(agent: &Agent, c: &Container, ctl: &Ctl, needle: &str) -> (Value, String) {
    let started = std::time::Instant::now();
    let row = wait_until(Duration::from_secs(30), needle, || {
        let row = agent.row(&c.name)?;
        reasons(&row)
            .iter()
            .any(|r| r.contains(needle))
            .then_some(row)
    });
    eprintln!(
        "{}: {:?} after {:.1}s: {:?}",
        c.name,
        row["health"],
        started.elapsed().as_secs_f64(),
        reasons(&row)
    );
    assert_ne!(row["health"], "Good", "{row}");
    let start_line = format!("health Good -> {}: ", row["health"].as_str().unwrap_or(""));
    log_msgs_with(agent, &c.name, &start_line);
    let metrics = curl(&metrics_url(agent), &[]).body;
    promtool_check(&metrics);
    ctl.stop();
    let stopped = std::time::Instant::now();
    let ended = wait_until(Duration::from_secs(120), "the condition to end", || {
        let row = agent.row(&c.name)?;
        (!reasons(&row).iter().any(|r| r.contains(needle))).then_some(row)
    });
    // The condition is over; other reasons may stand (a page cache kept
    // at the memory limit is a memory Warning of its own).
    eprintln!(
        "{}: {needle:?} gone {:.1}s after it stopped: {:?}",
        c.name,
        stopped.elapsed().as_secs_f64(),
        reasons(&ended)
    );
    assert!(
        reasons(&ended).iter().all(|r| r.starts_with("memory at ")),
        "{ended}"
    );
    let msgs = log_msgs_with(agent, &c.name, &format!("ended: {needle}"));
    let health: Vec<&String> = msgs.iter().filter(|m| m.starts_with("health ")).collect();
    assert_eq!(
        health.len(),
        2,
        "one line when it started, one when it ended: {msgs:#?}"
    );
    assert!(health[0].contains(needle), "{health:?}");
    assert!(health[1].contains(needle), "{health:?}");
    (row, metrics)
}

/// `--sick-window` short, metrics served.
fn agent(tag: &str) -> Agent {
    Agent::fresh(
        tag,
        &[
            "--sick-window",
            SICK_WINDOW,
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    )
}

/// The value of `name` for container `id`, and whether it has `reason`.
fn series(metrics: &str, name: &str, id: &str) -> Option<f64> {
    let label = format!("id=\"{id}\"");
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

fn has_reason(metrics: &str, id: &str, reason: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("dsh_container_health_reason{")
            && l.contains(&format!("id=\"{id}\""))
            && l.contains(&format!("reason=\"{reason}\""))
    })
}

#[test]
fn forks_refused_at_the_pids_limit() {
    let agent = agent("sick-pids");
    let ctl = Ctl::new("pids");
    // Forks until refused, until /ctl/stop appears (busybox sh gives up
    // at its first refused fork: the test's workload does not).
    let mut opts = workload_mounts();
    opts.extend(["--pids-limit", "12", "-v", &ctl.mount()].map(str::to_owned));
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let c = Container::run(
        "sick-pids",
        &opts,
        &["/dsh-workload", "fork-until-refused", "600", "/ctl/stop"],
    );
    let (row, metrics) = starts_and_ends(&agent, &c, &ctl, "forks refused at pids limit 12");
    assert_eq!(row["pids_max"], 12, "{row}");
    assert!(row["pids_refused_total"].as_u64() > Some(0), "{row}");
    assert!(
        series(&metrics, "dsh_container_pids_refused_total", &c.name) > Some(0.0),
        "{metrics}"
    );
    assert!(has_reason(&metrics, &c.name, "pids_refused"), "{metrics}");
}

#[test]
fn open_files_at_their_limit() {
    // The default: syscalls counted in sampled windows.
    let agent = agent("sick-fds");
    let ctl = Ctl::new("fds");
    // Holds 61 descriptors, then tries to open one more every 100 ms.
    let script = "i=3; while [ $i -lt 64 ]; do eval \"exec $i</dev/null\"; i=$((i+1)); done; \
                  while [ ! -e /ctl/stop ]; do ( exec 65</dev/null ); sleep 0.1; done; \
                  exec sleep 600";
    let c = Container::run(
        "sick-fds",
        &["--ulimit", "nofile=64:64", "-v", &ctl.mount()],
        &["sh", "-c", script],
    );
    let (row, metrics) = starts_and_ends(&agent, &c, &ctl, "open files at limit 64");
    assert!(row["fd_limit_errors_total"].as_u64() > Some(0), "{row}");
    assert!(
        series(&metrics, "dsh_container_fd_limit_errors_total", &c.name) > Some(0.0),
        "{metrics}"
    );
    assert!(has_reason(&metrics, &c.name, "fd_limit"), "{metrics}");
    assert_eq!(agent.status()["psi"], "on");
}

#[test]
fn page_cache_thrashing_stalls_io_and_a_busy_container_stays_good() {
    let agent = agent("sick-io");
    let ctl = Ctl::new("io");
    // Heavy I/O and forking with no limit to hit: must stay Good.
    let busy = Container::run(
        "sick-busy",
        &[],
        &[
            "sh",
            "-c",
            "while :; do dd if=/dev/zero of=/tmp/x bs=1M count=64 2>/dev/null; \
             cat /tmp/x > /dev/null; rm /tmp/x; \
             for i in 1 2 3 4 5 6 7 8; do true & done; wait; done",
        ],
    );
    // A 160 MiB file read again and again under a 48 MiB limit.
    let c = Container::run(
        "sick-io",
        &["--memory", "48m", "-v", &ctl.mount()],
        &[
            "sh",
            "-c",
            "dd if=/dev/urandom of=/f bs=1M count=160 2>/dev/null; \
             while [ ! -e /ctl/stop ]; do cat /f > /dev/null; done; exec sleep 600",
        ],
    );
    let (row, metrics) = starts_and_ends(&agent, &c, &ctl, "io stalled");
    assert!(
        series(&metrics, "dsh_container_pressure_io_seconds_total", &c.name) > Some(0.0),
        "{metrics}"
    );
    assert!(has_reason(&metrics, &c.name, "io_stalled"), "{metrics}");
    assert!(
        row["pressure"]["io"]["some"]["avg10"].as_f64() > Some(0.15),
        "{row}"
    );
    // The busy one stayed Good all along, and its log has no health line.
    let busy_row = agent.row(&busy.name).expect("busy row");
    assert_eq!(busy_row["health"], "Good", "{busy_row}");
    let lines = agent.log_json(Some(&busy.name));
    assert!(!lines.iter().any(|l| l["kind"] == "health"), "{lines:#?}");
}

/// The pids case on a plain cgroup (no Docker: the VM matrix runs it on
/// every kernel and layout): a workload forking past pids.max until the
/// agent has seen it (at most 60 s), then stopped.
#[test]
fn plain_cgroup_forks_refused_at_the_pids_limit() {
    let agent = Agent::fresh("sick-plain", &["--sick-window", "10s"]);
    let cg = TestCgroup::new("sick-pids");
    cg.set_pids_limit(4);
    let stop = std::env::temp_dir().join(format!("dsh-it-sick-pids-stop-{}", std::process::id()));
    let _ = std::fs::remove_file(&stop);
    let stop_arg = stop.to_string_lossy().into_owned();
    let mut work = cg
        .command(&["fork-until-refused", "60", &stop_arg])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the workload");
    let id = format!("/{}", cg.name);
    let row = wait_until(Duration::from_secs(30), "forks refused", || {
        let row = agent.row(&id)?;
        reasons(&row)
            .iter()
            .any(|r| r.contains("forks refused at pids limit 4"))
            .then_some(row)
    });
    assert_eq!(row["health"], "Warning", "{row}");
    assert!(row["pids_refused_total"].as_u64() > Some(0), "{row}");
    std::fs::write(&stop, b"").expect("the stop file");
    // Stopped, it prints its refusals, then sleeps until killed.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(work.stdout.take().expect("piped stdout")),
        &mut line,
    )
    .expect("the workload's count");
    let _ = work.kill();
    let _ = work.wait();
    let _ = std::fs::remove_file(&stop);
    let refused: u64 = line.trim().parse().unwrap_or(0);
    assert!(refused > 0, "the workload saw refusals");
    // Its end: the row has no reason, the log one line each way.
    wait_until(Duration::from_secs(60), "the reason to go", || {
        agent.row(&id).filter(|r| reasons(r).is_empty())
    });
    let msgs = log_msgs_with(&agent, &id, "ended: forks refused");
    let health: Vec<&String> = msgs.iter().filter(|m| m.starts_with("health ")).collect();
    assert_eq!(health.len(), 2, "{msgs:#?}");
}
