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
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use dsh_testkit::{TestCgroup, TracefsForBpftrace};
use serde::Serialize;

use crate::{
    Budget,
    agent::Agent,
    forkheavy::{self, ForkHeavy},
    median,
    redis::Redis,
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
                // once; measure from the steady state (500 ms in every 10 s)
                // on.
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
    /// The median over rounds of this mode against the bare run of the same
    /// round: +0.05 is 5% more. Paired by round, so the machine's drift
    /// over the run (other guests, thermal) cancels.
    change: f64,
}

fn series(samples: &BTreeMap<Mode, Vec<f64>>) -> Vec<Series> {
    let bare = &samples[&Mode::Bare];
    samples
        .iter()
        .map(|(&mode, s)| {
            let ratios: Vec<f64> = s.iter().zip(bare).map(|(x, b)| x / b - 1.0).collect();
            Series {
                mode,
                samples: s.clone(),
                median: median(s),
                min: s.iter().copied().fold(f64::INFINITY, f64::min),
                max: s.iter().copied().fold(0.0, f64::max),
                change: median(&ratios),
            }
        })
        .collect()
}

fn change(s: &[Series], mode: Mode) -> f64 {
    s.iter()
        .find(|x| x.mode == mode)
        .map_or(f64::NAN, |x| x.change)
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

pub fn run(quick: bool, with_bpftrace: bool, out_dir: &Path) -> Vec<Budget> {
    let (requests, redis_rounds, spawns, spawn_rounds, window, kills) = if quick {
        (50_000, 2, 2_000, 2, Duration::from_secs(5), 2)
    } else {
        // A redis run covers several sampling periods (10 s), so the
        // sampled agent's windows average out; five rounds, as this
        // machine kind's throughput drifts by several percent. Process
        // start-up: nine shorter rounds (7 s) rather than five long ones,
        // as rounds without the agent alone spread by 7%: the median of
        // nine paired ratios moves less.
        (1_000_000, 5, 10_000, 9, Duration::from_secs(30), 10)
    };
    let started = Instant::now();
    let mut modes = vec![Mode::Bare, Mode::Agent];
    if !quick {
        modes.push(Mode::AgentExact);
    }
    let tracefs = TracefsForBpftrace::mount(with_bpftrace);
    if with_bpftrace {
        modes.push(Mode::Bpftrace);
    }
    let redis = Redis::start();
    redis.benchmark(requests / 4); // warm-up
    let redis_samples = rounds(&modes, redis_rounds, || redis.benchmark(requests));
    drop(redis);
    drop(tracefs);
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
        fork_heavy: forkheavy::run(window, kills),
    };

    println!(
        "\n## Production: the shipped agent, default flags ({:.0}s)\n",
        started.elapsed().as_secs_f64()
    );
    println!(
        "redis-benchmark -t set,get -n {requests} -c 50, loopback, {redis_rounds} rounds (requests/s, SET and GET averaged):\n"
    );
    println!(
        "| mode | median req/s | spread (min-max) | vs no agent (median of rounds) |\n|---|---|---|---|"
    );
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
    println!(
        "| mode | median µs | spread (min-max) | vs no agent (median of rounds) |\n|---|---|---|---|"
    );
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
    // mark_victim runs once per OOM kill (the killer itself takes
    // milliseconds) and reads the victim's memory cgroup: a budget of its own.
    for (name, limit) in [
        ("dsh_sched_process_exec", 1500.0),
        ("dsh_sched_process_exit", 1500.0),
        ("dsh_signal_generate", 1500.0),
        ("dsh_mark_victim", 3000.0),
        ("dsh_cgroup_mkdir", 1500.0),
        ("dsh_cgroup_rmdir", 1500.0),
    ] {
        let p = f.programs.iter().find(|p| p.program == name);
        let what = format!("production: {name} ns/run with the fork-heavy container");
        match p {
            Some(p) if p.runs > 0 => budgets.push(Budget::at_most(&what, p.avg_ns_per_run, limit)),
            // No run to average is a failed measurement, not a pass.
            _ => budgets.push(Budget::at_most(
                &format!("{what} (no runs)"),
                f64::NAN,
                limit,
            )),
        }
    }
    budgets
}
