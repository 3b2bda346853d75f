//! The production section: the shipped `dsh agent` with its default flags,
//! measured on what users run rather than on a getppid loop. Modes take
//! turns round by round in one run (A/B/A/B, order rotated); medians with
//! their spread.
//!
//! - redis: `redis-benchmark -t set,get` against a `redis-server` on
//!   loopback, in a cgroup of its own (a container to the agent): no
//!   agent, the default agent, `--syscalls exact`, and bpftrace counting
//!   syscalls per cgroup (the peer).
//! - process start-up: fork + exec `/bin/true` + wait, with and without
//!   the agent.
//! - a fork-heavy container (a shell loop of `cat`, about a thousand
//!   processes a second) under the default agent: the agent's CPU, each
//!   program's ns/run, and the journal lines its churn costs; cgroups come
//!   and go, a process crashes and one is OOM-killed meanwhile, so every
//!   program has runs to average.
use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use dsh_testkit::{TestCgroup, tracefs_mounted};
use serde::Serialize;

use crate::{
    Budget,
    agent::{Agent, cpu_ticks, docker, docker_up, dsh_bin},
    median,
    syscalls::{start_bpftrace, stop_bpftrace},
};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// No agent.
    Bare,
    /// `dsh agent`, default flags.
    Agent,
    /// `dsh agent --syscalls exact` (always-on counting, for reference).
    AgentExact,
    /// `bpftrace -e 'tracepoint:raw_syscalls:sys_enter { @[cgroup] = count(); }'`.
    Bpftrace,
}

/// Lets a freshly started agent finish its start-up work (the first scan,
/// the journal, the runtime's container list) before anything is timed.
fn settle() {
    std::thread::sleep(Duration::from_secs(2));
}

/// What runs while a mode is measured; dropped when it is done.
enum Running {
    Nothing,
    Agent(Agent),
    Bpftrace(Child),
}

impl Running {
    fn start(mode: Mode) -> Running {
        match mode {
            Mode::Bare => Running::Nothing,
            Mode::Agent => {
                let agent = Agent::start();
                // The sampled agent counts syscalls for its first window at
                // once; measure from the steady state (1 s in every 10) on.
                let t0 = Instant::now();
                while agent.json(&["status"])["syscall_windows"].as_u64() < Some(1) {
                    assert!(
                        t0.elapsed() < Duration::from_secs(20),
                        "no sampling window closed"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                Running::Agent(agent)
            }
            Mode::AgentExact => {
                let agent = Agent::start_with(&["--syscalls", "exact"]);
                settle();
                Running::Agent(agent)
            }
            Mode::Bpftrace => Running::Bpftrace(start_bpftrace()),
        }
    }

    fn stop(self) {
        match self {
            Running::Nothing => {}
            Running::Agent(a) => drop(a),
            Running::Bpftrace(b) => stop_bpftrace(b),
        }
    }
}

#[derive(Serialize)]
struct Series {
    mode: Mode,
    samples: Vec<f64>,
    median: f64,
    min: f64,
    max: f64,
    /// Median against the bare median: +0.05 is 5% more.
    change: f64,
}

fn series(samples: &BTreeMap<Mode, Vec<f64>>) -> Vec<Series> {
    let bare = median(&samples[&Mode::Bare]);
    samples
        .iter()
        .map(|(&mode, s)| {
            let m = median(s);
            Series {
                mode,
                samples: s.clone(),
                median: m,
                min: s.iter().copied().fold(f64::INFINITY, f64::min),
                max: s.iter().copied().fold(0.0, f64::max),
                change: m / bare - 1.0,
            }
        })
        .collect()
}

fn change(s: &[Series], mode: Mode) -> f64 {
    s.iter()
        .find(|x| x.mode == mode)
        .map_or(f64::NAN, |x| x.change)
}

#[derive(Serialize, Default)]
struct ProgramCost {
    program: String,
    runs: u64,
    runs_per_s: f64,
    avg_ns_per_run: f64,
}

#[derive(Serialize, Default)]
struct ForkHeavy {
    seconds: f64,
    processes_per_s: f64,
    agent_cpu_percent: f64,
    churn_lines: u64,
    churn_lines_per_s: f64,
    critical_lost: u64,
    programs: Vec<ProgramCost>,
}

#[derive(Serialize)]
struct Report {
    redis_requests: u64,
    redis_rounds: usize,
    /// Requests per second, SET and GET averaged.
    redis: Vec<Series>,
    spawn_processes: u64,
    spawn_rounds: usize,
    /// Microseconds per fork + exec + exit + wait.
    spawn: Vec<Series>,
    fork_heavy: ForkHeavy,
}

/// A redis server on loopback in a cgroup of its own; killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _cg: TestCgroup,
}

impl Redis {
    fn start() -> Redis {
        let cg = TestCgroup::new("redis");
        let port = 17_000 + (std::process::id() % 1000) as u16;
        let child = cg
            .command_of(
                Path::new("/usr/bin/redis-server"),
                &[
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install redis-server and redis-tools; cargo xtask bench does)");
        let redis = Redis {
            child,
            port,
            _cg: cg,
        };
        let t0 = Instant::now();
        while !redis.ping() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        redis
    }

    fn ping(&self) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
    }

    /// `redis-benchmark -t set,get -n N` (50 clients): requests per second,
    /// the two tests averaged.
    fn benchmark(&self, requests: u64) -> f64 {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", "set,get", "-c", "50", "--csv", "-n"])
            .arg(requests.to_string())
            .stderr(Stdio::null())
            .output()
            .expect("redis-benchmark");
        assert!(out.status.success(), "redis-benchmark failed");
        let rps: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("\"SET\"") || l.starts_with("\"GET\""))
            .filter_map(|l| l.split(',').nth(1)?.trim_matches('"').parse().ok())
            .collect();
        assert_eq!(rps.len(), 2, "redis-benchmark --csv: {out:?}");
        rps.iter().sum::<f64>() / 2.0
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dsh-workload spawn-timed N` in `cg`: µs per process.
fn spawn_loop(cg: &TestCgroup, n: u64) -> f64 {
    let out = cg
        .command(&["spawn-timed", &n.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("spawn-timed");
    assert!(out.status.success(), "spawn-timed failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("µs per process")
}

/// Runs `measure` once per mode per round, the order rotated each round.
fn rounds(
    modes: &[Mode],
    rounds: usize,
    mut measure: impl FnMut() -> f64,
) -> BTreeMap<Mode, Vec<f64>> {
    let mut samples: BTreeMap<Mode, Vec<f64>> = BTreeMap::new();
    for round in 0..rounds {
        for i in 0..modes.len() {
            let mode = modes[(i + round) % modes.len()];
            let running = Running::start(mode);
            samples.entry(mode).or_default().push(measure());
            running.stop();
        }
    }
    samples
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
/// removed, a crash and an OOM kill during the window.
fn fork_heavy(window: Duration, kills: usize) -> ForkHeavy {
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

pub fn run(quick: bool, with_bpftrace: bool, out_dir: &Path) -> Vec<Budget> {
    let (requests, redis_rounds, spawns, spawn_rounds, window, kills) = if quick {
        (50_000, 2, 2_000, 2, Duration::from_secs(5), 2)
    } else {
        // A redis run covers several sampling periods (10 s), so the
        // sampled agent's windows average out.
        (1_000_000, 3, 20_000, 5, Duration::from_secs(30), 10)
    };
    let started = Instant::now();
    let mut modes = vec![Mode::Bare, Mode::Agent];
    if !quick {
        modes.push(Mode::AgentExact);
    }
    let mounted_tracefs = with_bpftrace && !tracefs_mounted();
    if with_bpftrace {
        if mounted_tracefs {
            // bpftrace attaches classic tracepoints through tracefs.
            let ok = Command::new("mount")
                .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
                .status();
            assert!(
                ok.is_ok_and(|s| s.success()),
                "mounting tracefs for bpftrace failed"
            );
        }
        modes.push(Mode::Bpftrace);
    }
    let redis = Redis::start();
    redis.benchmark(requests / 4); // warm-up
    let redis_samples = rounds(&modes, redis_rounds, || redis.benchmark(requests));
    drop(redis);
    if mounted_tracefs {
        let _ = Command::new("umount").arg("/sys/kernel/tracing").status();
    }
    let cg = TestCgroup::new("spawn");
    spawn_loop(&cg, spawns / 4); // warm-up
    let spawn_samples = rounds(&[Mode::Bare, Mode::Agent], spawn_rounds, || {
        spawn_loop(&cg, spawns)
    });
    drop(cg);
    let report = Report {
        redis_requests: requests,
        redis_rounds,
        redis: series(&redis_samples),
        spawn_processes: spawns,
        spawn_rounds,
        spawn: series(&spawn_samples),
        fork_heavy: fork_heavy(window, kills),
    };

    println!(
        "\n## Production: the shipped agent, default flags ({:.0}s)\n",
        started.elapsed().as_secs_f64()
    );
    println!(
        "redis-benchmark -t set,get -n {requests} -c 50, loopback, {redis_rounds} rounds (requests/s, SET and GET averaged):\n"
    );
    println!("| mode | median req/s | spread (min-max) | vs no agent |\n|---|---|---|---|");
    for s in &report.redis {
        println!(
            "| {:?} | {:.0} | {:.0}-{:.0} | {:+.1}% |",
            s.mode,
            s.median,
            s.min,
            s.max,
            s.change * 100.0
        );
    }
    println!(
        "\nfork + exec /bin/true + wait, {spawns} processes x {spawn_rounds} rounds (µs per process):\n"
    );
    println!("| mode | median µs | spread (min-max) | vs no agent |\n|---|---|---|---|");
    for s in &report.spawn {
        println!(
            "| {:?} | {:.1} | {:.1}-{:.1} | {:+.1}% |",
            s.mode,
            s.median,
            s.min,
            s.max,
            s.change * 100.0
        );
    }
    let f = &report.fork_heavy;
    println!(
        "\nfork-heavy container ({:.0} processes/s) for {:.0}s: agent {:.2}% of a core; {} churn lines ({:.2}/s); critical lost {}\n",
        f.processes_per_s,
        f.seconds,
        f.agent_cpu_percent,
        f.churn_lines,
        f.churn_lines_per_s,
        f.critical_lost
    );
    println!("| program | runs | runs/s | avg ns/run |\n|---|---|---|---|");
    for p in &f.programs {
        println!(
            "| {} | {} | {:.0} | {:.0} |",
            p.program, p.runs, p.runs_per_s, p.avg_ns_per_run
        );
    }
    crate::write_json(out_dir, "production.json", &report);

    let mut budgets = vec![
        Budget::at_most(
            "production: redis-benchmark throughput lost with the default agent (%)",
            -change(&report.redis, Mode::Agent) * 100.0,
            2.0,
        ),
        Budget::at_most(
            "production: fork+exec+exit of /bin/true slower with the default agent (%)",
            change(&report.spawn, Mode::Agent) * 100.0,
            3.0,
        ),
        Budget::at_most(
            "production: agent CPU % of a core with the fork-heavy container",
            f.agent_cpu_percent,
            2.0,
        ),
        Budget::at_most(
            "production: churn journal lines per container per second",
            f.churn_lines_per_s,
            1.0,
        ),
        Budget::at_most(
            "production: critical events lost with the fork-heavy container",
            f.critical_lost as f64,
            0.0,
        ),
    ];
    for name in [
        "dsh_sched_process_exec",
        "dsh_sched_process_exit",
        "dsh_signal_generate",
        "dsh_signal_deliver",
        "dsh_mark_victim",
        "dsh_cgroup_mkdir",
        "dsh_cgroup_rmdir",
    ] {
        let p = f.programs.iter().find(|p| p.program == name);
        let what = format!("production: {name} ns/run with the fork-heavy container");
        match p {
            Some(p) if p.runs > 0 => budgets.push(Budget::at_most(&what, p.avg_ns_per_run, 1500.0)),
            // No run to average is a failed measurement, not a pass.
            _ => budgets.push(Budget::at_most(
                &format!("{what} (no runs)"),
                f64::NAN,
                1500.0,
            )),
        }
    }
    budgets
}
