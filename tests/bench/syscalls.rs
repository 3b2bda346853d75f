//! Benchmarks 1 and 2: what dsh's syscall hook costs, measured against no
//! tracing, against an empty program on the same hook (the floor), and
//! against bpftrace counting per cgroup, all in one run.
//!
//! Method: a `getppid` loop in its own cgroup; modes alternate round by round
//! (A/B/A/B, order rotated), medians reported with their spread. The kernel's
//! own BPF statistics give each program's average run time.
use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use dsh::probe::{Probe, ProbeOptions, ProgramStats, SyscallCounterLayout};
use dsh_testkit::{TestCgroup, TracefsForBpftrace};
use serde::Serialize;

use crate::{Budget, median};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// No program on the hook.
    Bare,
    /// `dsh_bench_empty` on `sys_exit`.
    Floor,
    /// dsh's counting program (count + errors), cgroup local storage.
    Count,
    /// The same counting in the hash layout (kernels without cgroup local
    /// storage, or `--syscall-counters hash`).
    CountHash,
    /// dsh's counting with latency histograms (sys_enter + sys_exit).
    Latency,
    /// `bpftrace -e 'tracepoint:raw_syscalls:sys_enter { @[cgroup] = count(); }'`.
    Bpftrace,
}

impl Mode {
    fn programs(self) -> &'static [&'static str] {
        match self {
            Mode::Bare | Mode::Bpftrace => &[],
            Mode::Floor => &["dsh_bench_empty"],
            Mode::Count => &["dsh_sys_exit"],
            Mode::CountHash => &["dsh_sys_exit_hash"],
            Mode::Latency => &["dsh_sys_enter_latency", "dsh_sys_exit_latency"],
        }
    }
}

#[derive(Serialize)]
struct ModeResult {
    mode: Mode,
    samples_ns_per_call: Vec<f64>,
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
    added_ns: f64,
    ratio_to_bare: f64,
}

#[derive(Serialize)]
struct ProgramCost {
    mode: Mode,
    program: String,
    runs: u64,
    avg_ns_per_run: f64,
}

#[derive(Serialize)]
struct Accuracy {
    loop_calls: u64,
    cgroups: usize,
    summed_over_cgroups: u64,
    global: u64,
    ratio: f64,
}

#[derive(Serialize)]
struct Report {
    accuracy: Accuracy,
    calls_per_run: u64,
    rounds: usize,
    modes: Vec<ModeResult>,
    programs: Vec<ProgramCost>,
    budgets: Vec<Budget>,
}

/// One timed loop in the bench cgroup; the workload reports ns per call.
fn run_loop(cg: &TestCgroup, calls: u64) -> f64 {
    let out = cg
        .command(&["getppid-timed", &calls.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("run getppid-timed");
    assert!(out.status.success(), "getppid-timed failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ns per call")
}

/// Every cgroup directory in the attribution hierarchy, opened up front so
/// reading them all later costs one syscall each.
fn open_all_cgroups(probe: &Probe) -> Vec<std::fs::File> {
    let root = probe
        .layout()
        .attribution_root()
        .expect("hierarchy")
        .to_owned();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        if let Ok(f) = std::fs::File::open(&dir) {
            out.push(f);
        }
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

fn sum_counts(probe: &Probe, dirs: &[std::fs::File]) -> u64 {
    dirs.iter()
        .filter_map(|d| probe.syscall_stats_of(d).ok().flatten())
        .map(|s| s.count)
        .sum()
}

fn run_count(probe: &Probe, name: &str) -> u64 {
    probe
        .program_stats()
        .iter()
        .find(|p| p.name == name)
        .map_or(0, |p| p.run_count)
}

/// Benchmark 6 (syscalls): the per-cgroup counts, summed over every
/// cgroup, against the kernel's global run count of the same program over
/// a 10 M-call loop. The two readings bracket the loop; the few syscalls
/// of the reading itself are the only slack.
fn syscall_accuracy(probe: &mut Probe, cg: &TestCgroup) -> Accuracy {
    const CALLS: u64 = 10_000_000;
    let count = probe.syscall_counters().count_program();
    probe.attach(count).expect("attach");
    let dirs = open_all_cgroups(probe);
    let r0 = run_count(probe, count);
    let s0 = sum_counts(probe, &dirs);
    run_loop(cg, CALLS);
    let s1 = sum_counts(probe, &dirs);
    let r1 = run_count(probe, count);
    probe.detach_all();
    let (summed, global) = (s1 - s0, r1 - r0);
    Accuracy {
        loop_calls: CALLS,
        cgroups: dirs.len(),
        summed_over_cgroups: summed,
        global,
        ratio: summed as f64 / global.max(1) as f64,
    }
}

/// Starts bpftrace and waits until its probe is attached.
pub(crate) fn start_bpftrace() -> Child {
    let mut child = Command::new("bpftrace")
        .args([
            "-e",
            "tracepoint:raw_syscalls:sys_enter { @[cgroup] = count(); }",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bpftrace (is it installed? `cargo xtask bench` installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("bpftrace output");
    assert!(
        line.contains("Attaching"),
        "bpftrace did not attach: {line:?}"
    );
    // It prints "Attaching" just before the attach itself completes.
    std::thread::sleep(Duration::from_millis(300));
    child
}

pub(crate) fn stop_bpftrace(mut child: Child) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
}

pub fn run(quick: bool, with_bpftrace: bool, out_dir: &Path) -> Vec<Budget> {
    let (calls, rounds) = if quick { (300_000, 3) } else { (2_000_000, 7) };

    let mut probe = Probe::load_unattached(ProbeOptions::default()).unwrap_or_else(|e| {
        eprintln!("dsh-bench: {e:#}");
        std::process::exit(1)
    });
    let cg = TestCgroup::new("bench");
    let mut modes = vec![Mode::Bare, Mode::Floor, Mode::CountHash];
    if probe.syscall_counters() == SyscallCounterLayout::CgroupStorage {
        modes.extend([Mode::Count, Mode::Latency]);
    } else {
        println!("(this kernel has no cgroup local storage: the hash layout alone is measured)");
    }
    let tracefs = TracefsForBpftrace::mount(with_bpftrace);
    if with_bpftrace {
        modes.push(Mode::Bpftrace);
    }

    // Warm-up: page cache, CPU frequency.
    run_loop(&cg, calls / 4);
    let mut samples: BTreeMap<Mode, Vec<f64>> = BTreeMap::new();
    let mut prog_runs: BTreeMap<(Mode, String), (u64, u64)> = BTreeMap::new();
    let started = Instant::now();
    for round in 0..rounds {
        let n = modes.len();
        for i in 0..n {
            let mode = modes[(i + round) % n];
            probe.detach_all();
            for p in mode.programs() {
                probe.attach(p).expect("attach");
            }
            let bpftrace = (mode == Mode::Bpftrace).then(start_bpftrace);
            let before: Vec<ProgramStats> = probe.program_stats();
            let ns = run_loop(&cg, calls);
            let after = probe.program_stats();
            if let Some(b) = bpftrace {
                stop_bpftrace(b);
            }
            for (a, b) in after.iter().zip(before.iter()) {
                if mode.programs().contains(&a.name.as_str()) {
                    let e = prog_runs.entry((mode, a.name.clone())).or_default();
                    e.0 += a.run_count - b.run_count;
                    e.1 += a.run_time_ns - b.run_time_ns;
                }
            }
            samples.entry(mode).or_default().push(ns);
        }
    }
    probe.detach_all();
    let accuracy = syscall_accuracy(&mut probe, &cg);
    drop(tracefs);

    let bare = median(&samples[&Mode::Bare]);
    let results: Vec<ModeResult> = samples
        .iter()
        .map(|(&mode, s)| {
            let m = median(s);
            ModeResult {
                mode,
                samples_ns_per_call: s.clone(),
                median_ns: m,
                min_ns: s.iter().copied().fold(f64::INFINITY, f64::min),
                max_ns: s.iter().copied().fold(0.0, f64::max),
                added_ns: m - bare,
                ratio_to_bare: m / bare,
            }
        })
        .collect();
    let added = |m: Mode| results.iter().find(|r| r.mode == m).map(|r| r.added_ns);
    let floor = added(Mode::Floor).unwrap_or(f64::NAN);
    let mut budgets = vec![
        Budget {
            what: "counting added cost / floor added cost".into(),
            value: added(Mode::Count).unwrap_or(f64::NAN) / floor,
            limit: 1.5,
            met: false,
        },
        Budget {
            what: "latency added cost / floor added cost".into(),
            value: added(Mode::Latency).unwrap_or(f64::NAN) / floor,
            limit: 2.5,
            met: false,
        },
    ];
    if let (Some(hash), Some(storage)) = (added(Mode::CountHash), added(Mode::Count)) {
        budgets.push(Budget::at_most(
            "hash layout added cost / cgroup-storage added cost (ns per call)",
            hash / storage,
            1.25,
        ));
    }
    if let Some(bt) = added(Mode::Bpftrace) {
        budgets.push(Budget {
            what: "counting added cost / bpftrace added cost".into(),
            value: added(Mode::Count).unwrap_or(f64::NAN) / bt,
            limit: 1.0 / 3.0,
            met: false,
        });
    }
    for b in &mut budgets {
        b.met = b.value <= b.limit;
    }
    let programs: Vec<ProgramCost> = prog_runs
        .into_iter()
        .map(|((mode, program), (runs, ns))| ProgramCost {
            mode,
            program,
            runs,
            avg_ns_per_run: if runs == 0 {
                0.0
            } else {
                ns as f64 / runs as f64
            },
        })
        .collect();
    // The same comparison from the kernel's own run times, steadier than
    // the loop's wall clock on a noisy VM: ns per run above the empty program.
    let ns_per_run = |mode: Mode| {
        programs
            .iter()
            .find(|p| p.mode == mode)
            .map(|p| p.avg_ns_per_run)
    };
    if let (Some(hash), Some(storage), Some(empty)) = (
        ns_per_run(Mode::CountHash),
        ns_per_run(Mode::Count),
        ns_per_run(Mode::Floor),
    ) {
        budgets.push(Budget::at_most(
            "hash layout added cost / cgroup-storage added cost (kernel ns per run)",
            (hash - empty) / (storage - empty),
            1.25,
        ));
    }
    budgets.push(Budget::at_most(
        "|1 - syscalls summed over all cgroups / global count|",
        (1.0 - accuracy.ratio).abs(),
        0.00005,
    ));
    let report = Report {
        accuracy,
        calls_per_run: calls,
        rounds,
        modes: results,
        programs,
        budgets,
    };

    println!(
        "## Syscall overhead (getppid loop, {calls} calls x {rounds} rounds, {:.0}s)\n",
        started.elapsed().as_secs_f64()
    );
    println!("| mode | median ns/call | spread (min-max) | added ns | ratio to bare |");
    println!("|---|---|---|---|---|");
    for r in &report.modes {
        println!(
            "| {:?} | {:.1} | {:.1}-{:.1} | {:+.1} | {:.3} |",
            r.mode, r.median_ns, r.min_ns, r.max_ns, r.added_ns, r.ratio_to_bare
        );
    }
    println!(
        "\nAccuracy: syscalls summed over {} cgroups {} / global count {} = {:.4}",
        report.accuracy.cgroups,
        report.accuracy.summed_over_cgroups,
        report.accuracy.global,
        report.accuracy.ratio
    );
    println!("\n## Per-program cost (kernel BPF statistics; the statistics add ~20-40 ns each)\n");
    println!("| mode | program | runs | avg ns/run |");
    println!("|---|---|---|---|");
    for p in &report.programs {
        println!(
            "| {:?} | {} | {} | {:.1} |",
            p.mode, p.program, p.runs, p.avg_ns_per_run
        );
    }
    crate::write_json(out_dir, "syscalls.json", &report);
    report.budgets
}
