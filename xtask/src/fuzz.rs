//! `cargo xtask fuzz [--secs N] [TARGET...]`: builds the fuzz targets
//! (`fuzz/`, cargo-fuzz, libFuzzer with AddressSanitizer, debug assertions
//! on) and runs each for N seconds, from the seeds in `fuzz/corpus/<t>` and
//! the inputs of past findings in `fuzz/regressions/<t>`. What a run
//! discovers goes to `target/fuzz-corpus/<t>` (kept between runs, never
//! committed); a failing input to `target/fuzz-artifacts/<t>/`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap,
    cmd::{check, output, say},
    workspace_root,
};

/// Seconds per target in `cargo xtask test`: enough to catch a regression
/// in a parser, short enough for every run (8 targets, about 80 s).
pub const TEST_SECS: u64 = 10;

/// How the targets are compiled.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Optimised, debug assertions on: the most executions per second, for
    /// `cargo xtask fuzz`'s long runs. A cold build takes about 5 minutes.
    Optimised,
    /// Unoptimised (`--dev`): a cold build in about a third of the time,
    /// for the short smoke run of `cargo xtask test`.
    Quick,
}

struct Fuzz {
    bin: PathBuf,
    path: String,
    build: Build,
}

impl Fuzz {
    /// `cargo fuzz SUB` on the project's fuzz dir and a target dir under
    /// `target/`, on the stable toolchain with its nightly features unlocked.
    fn cmd(&self, sub: &str) -> Command {
        let root = workspace_root();
        let mut c = Command::new(&self.bin);
        c.current_dir(&root)
            .args(["fuzz", sub, "--fuzz-dir"])
            .arg(root.join("fuzz"))
            .env("PATH", &self.path)
            .env("RUSTC_BOOTSTRAP", "1");
        if sub != "list" {
            c.arg("--target-dir").arg(root.join("target/fuzz"));
            match self.build {
                // Release speed, but overflow checks and debug assertions
                // on: the agent's own tests run with them.
                Build::Optimised => c.args(["-O", "--debug-assertions"]),
                Build::Quick => c.arg("--dev"),
            };
        }
        c
    }
}

/// One target's run: executions, and whether it failed.
struct Outcome {
    target: String,
    execs: Option<u64>,
    failure: Option<String>,
}

pub fn run(secs: u64, only: &[String], build: Build) -> anyhow::Result<()> {
    let tc = bootstrap::run()?;
    let fuzz = Fuzz {
        bin: bootstrap::ensure_cargo_fuzz()?,
        path: tc.path,
        build,
    };
    let all: Vec<String> = output(&mut fuzz.cmd("list"))?
        .lines()
        .map(str::to_owned)
        .collect();
    let targets: Vec<String> = if only.is_empty() {
        all
    } else {
        for t in only {
            if !all.contains(t) {
                bail!("no fuzz target {t}; there are: {}", all.join(", "));
            }
        }
        only.to_vec()
    };
    say(&format!(
        "building the fuzz targets (cargo fuzz build: ASan, debug assertions{})",
        if build == Build::Quick {
            ", unoptimised"
        } else {
            ""
        }
    ));
    check(&mut fuzz.cmd("build"))?;
    let mut outcomes = Vec::new();
    for t in &targets {
        say(&format!("fuzzing {t} for {secs}s"));
        outcomes.push(run_one(&fuzz, t, secs)?);
    }
    say("fuzz targets: executions in this run");
    for o in &outcomes {
        let execs = o.execs.map_or("?".to_owned(), |n| n.to_string());
        let mark = o.failure.as_deref().unwrap_or("ok");
        say(&format!("{:>18}: {execs:>10}  {mark}", o.target));
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.failure.is_some())
        .map(|o| o.target.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {}; the inputs are in target/fuzz-artifacts/, \
             reproduce with `cargo fuzz run --fuzz-dir fuzz TARGET INPUT`",
            failed.join(", ")
        );
    }
    Ok(())
}

fn run_one(fuzz: &Fuzz, target: &str, secs: u64) -> anyhow::Result<Outcome> {
    let root = workspace_root();
    let scratch = root.join("target/fuzz-corpus").join(target);
    let artifacts = root.join("target/fuzz-artifacts").join(target);
    let log = root.join("target/fuzz-logs").join(format!("{target}.log"));
    for d in [&scratch, &artifacts] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    fs::create_dir_all(log.parent().expect("a parent"))?;
    let mut cmd = fuzz.cmd("run");
    // The first corpus dir is where libFuzzer writes; the others are read.
    cmd.arg(target).arg(&scratch);
    for seeds in ["fuzz/corpus", "fuzz/regressions"] {
        let d = root.join(seeds).join(target);
        if d.is_dir() {
            cmd.arg(d);
        }
    }
    let mut prefix = artifacts.into_os_string();
    prefix.push("/");
    cmd.arg("--")
        .arg(format!("-max_total_time={secs}"))
        // One input taking seconds is a hang, reported as a failure.
        .arg("-timeout=10")
        .arg("-print_final_stats=1")
        .arg({
            let mut a = std::ffi::OsString::from("-artifact_prefix=");
            a.push(prefix);
            a
        });
    let out = cmd
        .output()
        .with_context(|| format!("running cargo fuzz run {target}"))?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    fs::write(&log, &text).with_context(|| format!("writing {}", log.display()))?;
    let failure = (!out.status.success()).then(|| {
        eprintln!("{}", tail(&text, 40));
        format!("FAILED ({}; log {})", out.status, shown(&log))
    });
    Ok(Outcome {
        target: target.to_owned(),
        execs: executions(&text),
        failure,
    })
}

/// libFuzzer's `stat::number_of_executed_units: N` (printed with
/// `-print_final_stats=1`).
fn executions(log: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn shown(p: &Path) -> String {
    p.strip_prefix(workspace_root())
        .unwrap_or(p)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn executions_from_final_stats() {
        let log = "INFO: ...\nDone 349716 runs in 21 second(s)\n\
            stat::number_of_executed_units: 349716\nstat::average_exec_per_sec:     16653\n";
        assert_eq!(super::executions(log), Some(349716));
        assert_eq!(super::executions("==1== ERROR: AddressSanitizer"), None);
    }
}
