//! `cargo xtask bench`: dsh's cost and speed, side by side with no tracing
//! and with the tools an operator would otherwise use, in the same run.
//! Prints Markdown; raw figures go to JSON under `DSH_BENCH_OUT`.
mod agent;
mod burst;
mod forkheavy;
mod journal;
mod production;
mod redis;
mod scale;
mod syscalls;

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Serialize)]
pub struct Budget {
    pub what: String,
    pub value: f64,
    pub limit: f64,
    pub met: bool,
}

impl Budget {
    /// A budget met when `value <= limit`.
    pub fn at_most(what: &str, value: f64, limit: f64) -> Self {
        Self {
            what: what.to_owned(),
            value,
            limit,
            met: value <= limit,
        }
    }
}

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile (p in 0..=100) of the samples.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if p == 50.0 && s.len().is_multiple_of(2) {
        return (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) {
    std::fs::create_dir_all(dir).expect("create bench output dir");
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json"))
        .expect("write bench json");
    println!("\nraw figures: {}", path.display());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let quick = has("--quick");
    let out_dir = std::env::var("DSH_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("target/bench"));
    let mut budgets = Vec::new();
    let only_journal = has("--journal-only");
    if has("--scale-only") {
        budgets.extend(scale::run(quick, &out_dir));
        print_budgets(&budgets);
        return;
    }
    if has("--production-only") {
        budgets.extend(production::run(quick, !has("--no-bpftrace"), &out_dir));
        print_budgets(&budgets);
        return;
    }
    if !has("--agent-only") && !only_journal {
        budgets.extend(syscalls::run(quick, !has("--no-bpftrace"), &out_dir));
    }
    if !has("--syscalls-only") && !only_journal {
        budgets.extend(burst::run(quick, &out_dir));
    }
    if !has("--syscalls-only") {
        budgets.extend(journal::run(quick, &out_dir));
    }
    if !has("--syscalls-only") && !only_journal {
        budgets.extend(agent::run(quick, &out_dir));
        budgets.extend(production::run(quick, !has("--no-bpftrace"), &out_dir));
        budgets.extend(scale::run(quick, &out_dir));
    }
    print_budgets(&budgets);
}

fn print_budgets(budgets: &[Budget]) {
    println!("\n## Budgets\n");
    println!("| what | value | limit | met |");
    println!("|---|---|---|---|");
    for b in budgets {
        println!(
            "| {} | {:.3} | {:.3} | {} |",
            b.what,
            b.value,
            b.limit,
            if b.met { "yes" } else { "NO" }
        );
    }
}
