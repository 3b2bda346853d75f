//! Benchmarks 4 and 5: `dsh ps` latency (50 Docker containers, against
//! `docker stats --no-stream` on the same containers; and 500 plain cgroups
//! each holding a process) and the agent's footprint (CPU, RSS) at the
//! default interval with 50 containers and with 10, 100 and 500 cgroups.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use dsh_testkit::Sleepers;
use serde::Serialize;

use crate::{Budget, median, percentile};

#[derive(Serialize, Default)]
struct Report {
    docker_containers: usize,
    dsh_ps_ms: Vec<f64>,
    dsh_ps_median_ms: f64,
    dsh_ps_p99_ms: f64,
    docker_stats_ms: Vec<f64>,
    docker_stats_median_ms: f64,
    docker_stats_over_dsh_ps: f64,
    footprint: Vec<Footprint>,
    cgroups_ps_ms: Vec<(usize, f64, f64)>,
    /// Each program's runs/s and ns/run as `dsh status` reported them at the end.
    programs: Vec<(String, f64, f64)>,
}

#[derive(Serialize, Clone)]
struct Footprint {
    what: String,
    seconds: f64,
    cpu_percent: f64,
    rss_mib: f64,
}

pub(crate) fn dsh_bin() -> PathBuf {
    if let Ok(p) = std::env::var("DSH_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.with_file_name("dsh")
}

pub(crate) struct Agent {
    child: Child,
    pub(crate) state_dir: PathBuf,
}

impl Agent {
    /// The shipped agent with its default flags.
    pub(crate) fn start() -> Agent {
        Self::start_with(&[])
    }

    /// The agent with `args` after `dsh agent`.
    pub(crate) fn start_with(args: &[&str]) -> Agent {
        let state_dir = std::env::temp_dir().join(format!("dsh-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let child = Command::new(dsh_bin())
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("agent")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dsh agent (build it: cargo xtask bench does)");
        let agent = Agent { child, state_dir };
        let t0 = Instant::now();
        while !agent.ps_ok() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "agent did not come up"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        agent
    }

    fn ps(&self) -> std::process::Output {
        Command::new(dsh_bin())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["ps", "--json"])
            .output()
            .expect("dsh ps")
    }

    fn ps_ok(&self) -> bool {
        self.ps().status.success()
    }

    pub(crate) fn rows(&self) -> Vec<serde_json::Value> {
        serde_json::from_slice(&self.ps().stdout).unwrap_or_default()
    }

    /// `dsh <args> --json` against this agent, parsed.
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(dsh_bin())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .arg("--json")
            .output()
            .expect("dsh");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    fn ids(&self) -> Vec<String> {
        let out = self.ps();
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        rows.iter()
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Wall time of `dsh ps` (table), as an operator runs it, in ms.
    fn time_ps(&self, runs: usize) -> Vec<f64> {
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let out = Command::new(dsh_bin())
                    .arg("--state-dir")
                    .arg(&self.state_dir)
                    .arg("ps")
                    .stdout(Stdio::null())
                    .status()
                    .expect("dsh ps");
                assert!(out.success());
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU (% of one core) and RSS of the agent over `window`.
    fn footprint(&self, what: String, window: Duration) -> Footprint {
        let pid = self.child.id();
        let (c0, t0) = (cpu_ticks(pid), Instant::now());
        std::thread::sleep(window);
        let (c1, dt) = (cpu_ticks(pid), t0.elapsed().as_secs_f64());
        let hz = 100.0; // USER_HZ: /proc/PID/stat counts in clock ticks.
        Footprint {
            what,
            seconds: dt,
            cpu_percent: (c1 - c0) as f64 / hz / dt * 100.0,
            rss_mib: rss_kib(pid) as f64 / 1024.0,
        }
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) {
        let t0 = Instant::now();
        while !pred(&self.ids()) {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15: indexes 11 and 12 after comm.
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

pub(crate) fn docker_up() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn docker(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn run(quick: bool, out_dir: &Path) -> Vec<Budget> {
    let (n_docker, ps_runs, stats_runs, window) = if quick {
        (10, 10, 1, Duration::from_secs(2))
    } else {
        (50, 50, 5, Duration::from_secs(60))
    };
    let sizes: &[usize] = if quick { &[10, 100] } else { &[10, 100, 500] };
    let agent = Agent::start();
    let mut report = Report::default();
    let started = Instant::now();

    if docker_up() {
        let names: Vec<String> = (0..n_docker)
            .map(|i| format!("dsh-bench-{}-{i}", std::process::id()))
            .collect();
        for n in &names {
            let ok = docker(&[
                "run",
                "-d",
                "--name",
                n,
                "dsh-test/busybox:latest",
                "sh",
                "-c",
                "while :; do sleep 1; done",
            ]);
            assert!(ok, "docker run {n}");
        }
        agent.wait_for("the containers by name", |ids| {
            names.iter().all(|n| ids.contains(n))
        });
        report.docker_containers = n_docker;
        // Interleave the two tools so both see the same machine state.
        for _ in 0..stats_runs {
            report.dsh_ps_ms.extend(agent.time_ps(ps_runs / stats_runs));
            let t = Instant::now();
            let mut args = vec!["stats", "--no-stream"];
            args.extend(names.iter().map(String::as_str));
            assert!(docker(&args), "docker stats");
            report.docker_stats_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        report
            .footprint
            .push(agent.footprint(format!("{n_docker} docker containers"), window));
        for n in &names {
            docker(&["rm", "-f", n]);
        }
    } else {
        println!("(docker is not running: the docker comparison is skipped)");
    }
    report.dsh_ps_median_ms = median(&report.dsh_ps_ms);
    report.dsh_ps_p99_ms = percentile(&report.dsh_ps_ms, 99.0);
    report.docker_stats_median_ms = median(&report.docker_stats_ms);
    report.docker_stats_over_dsh_ps = report.docker_stats_median_ms / report.dsh_ps_median_ms;

    // Plain cgroups, each holding a sleeping process.
    let mut cgroups = Sleepers::new("bpc", 0);
    for &size in sizes {
        cgroups.grow(size);
        let prefix = "/dsh-test-bpc";
        agent.wait_for("the cgroups", |ids| {
            ids.iter().filter(|i| i.starts_with(prefix)).count() >= size
        });
        let ps = agent.time_ps(ps_runs);
        report
            .cgroups_ps_ms
            .push((size, median(&ps), percentile(&ps, 99.0)));
        report
            .footprint
            .push(agent.footprint(format!("{size} cgroups"), window));
    }
    let status = agent.json(&["status"]);
    for p in status["programs"].as_array().into_iter().flatten() {
        if p["attached"] == true {
            report.programs.push((
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["runs_per_s"].as_f64().unwrap_or(0.0),
                p["avg_ns_per_run"].as_f64().unwrap_or(0.0),
            ));
        }
    }
    drop(cgroups);

    println!(
        "\n## dsh ps latency and agent footprint ({:.0}s)\n",
        started.elapsed().as_secs_f64()
    );
    if report.docker_containers > 0 {
        println!(
            "| {} docker containers | median ms | p99 ms | runs |\n|---|---|---|---|",
            report.docker_containers
        );
        println!(
            "| dsh ps | {:.1} | {:.1} | {} |",
            report.dsh_ps_median_ms,
            report.dsh_ps_p99_ms,
            report.dsh_ps_ms.len()
        );
        println!(
            "| docker stats --no-stream | {:.1} | {:.1} | {} |",
            report.docker_stats_median_ms,
            percentile(&report.docker_stats_ms, 99.0),
            report.docker_stats_ms.len()
        );
        println!(
            "\ndocker stats takes {:.1}x as long as dsh ps\n",
            report.docker_stats_over_dsh_ps
        );
    }
    println!("| plain cgroups | dsh ps median ms | p99 ms |\n|---|---|---|");
    for (n, med, p99) in &report.cgroups_ps_ms {
        println!("| {n} | {med:.1} | {p99:.1} |");
    }
    println!(
        "\n| agent (default 1 s interval) | window s | CPU % of a core | RSS MiB |\n|---|---|---|---|"
    );
    for f in &report.footprint {
        println!(
            "| {} | {:.0} | {:.2} | {:.1} |",
            f.what, f.seconds, f.cpu_percent, f.rss_mib
        );
    }
    println!("\n| program (agent, end of run, dsh status) | runs/s | avg ns/run |\n|---|---|---|");
    for (name, rate, ns) in &report.programs {
        println!("| {name} | {rate:.0} | {ns:.1} |");
    }
    crate::write_json(out_dir, "agent.json", &report);

    let mut budgets = Vec::new();
    if let Some((n, _, p99)) = report.cgroups_ps_ms.last() {
        budgets.push(Budget::at_most(
            &format!("dsh ps p99 ms with {n} cgroups (budget at 500)"),
            *p99,
            50.0,
        ));
    }
    if let Some(f) = report.footprint.iter().find(|f| f.what == "100 cgroups") {
        budgets.push(Budget::at_most(
            "agent CPU % of a core at 100 cgroups",
            f.cpu_percent,
            1.0,
        ));
        budgets.push(Budget::at_most(
            "agent RSS MiB at 100 cgroups",
            f.rss_mib,
            64.0,
        ));
    }
    if let Some(f) = report.footprint.iter().find(|f| f.what == "500 cgroups") {
        budgets.push(Budget::at_most(
            "agent CPU % of a core at 500 cgroups",
            f.cpu_percent,
            3.0,
        ));
        budgets.push(Budget::at_most(
            "agent RSS MiB at 500 cgroups",
            f.rss_mib,
            64.0,
        ));
    }
    budgets
}
