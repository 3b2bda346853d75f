//! build, run, test and bench: the commands the README promises.
use std::{os::unix::process::CommandExt as _, path::PathBuf, process::Command, time::Instant};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap::{self, Toolchain, require_root, say},
    docker, workspace_root,
};

fn check(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn profile_dir(release: bool) -> PathBuf {
    workspace_root()
        .join("target")
        .join(if release { "release" } else { "debug" })
}

fn cargo_build(tc: &Toolchain, release: bool, packages: &[&str]) -> anyhow::Result<()> {
    say("building the eBPF programs and dsh");
    let mut cmd = tc.cargo();
    cmd.arg("build");
    for p in packages {
        cmd.args(["--package", p]);
    }
    if release {
        cmd.arg("--release");
    }
    check(&mut cmd)
}

pub fn build(release: bool) -> anyhow::Result<PathBuf> {
    let tc = bootstrap::run()?;
    cargo_build(&tc, release, &["dsh-userspace"])?;
    let bin = profile_dir(release).join("dsh");
    say(&format!("built {}", bin.display()));
    Ok(bin)
}

pub fn run(release: bool, args: &[String]) -> anyhow::Result<()> {
    require_root()?;
    let bin = build(release)?;
    // exec: signals and the terminal go straight to dsh.
    let err = Command::new(&bin).args(args).exec();
    Err(err).with_context(|| format!("exec {}", bin.display()))
}

/// tracefs must be absent while the tests load the programs: they prove
/// dsh needs none.
fn unmount_tracefs() -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(2) == Some(&"tracefs") {
            say(&format!(
                "unmounting tracefs at {} (the tests run without it)",
                f[1]
            ));
            check(Command::new("umount").arg(f[1]))?;
        }
    }
    Ok(())
}

pub fn test(filter: &[String]) -> anyhow::Result<()> {
    require_root()?;
    let mut phases: Vec<(&str, f64)> = Vec::new();
    let mut timed = |name: &'static str, f: &mut dyn FnMut() -> anyhow::Result<()>| {
        let t = Instant::now();
        let r = f();
        phases.push((name, t.elapsed().as_secs_f64()));
        r
    };
    let mut tc = None;
    timed("bootstrap", &mut || {
        tc = Some(bootstrap::run()?);
        Ok(())
    })?;
    let tc = tc.expect("bootstrapped");
    timed("fmt", &mut || {
        say("cargo fmt --check");
        check(tc.cargo().args(["fmt", "--all", "--check"]))
    })?;
    timed("clippy", &mut || {
        say("cargo clippy (host crates, warnings are errors)");
        check(tc.cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    timed("unit tests", &mut || {
        say("unit tests");
        check(
            tc.cargo()
                .args(["test", "--workspace", "--exclude", "dsh-tests"]),
        )
    })?;
    timed("docker", &mut docker::ensure_engine)?;
    timed("integration tests", &mut || {
        unmount_tracefs()?;
        say("privileged integration tests (real programs, real cgroups, one thread)");
        check(
            tc.cargo()
                .args([
                    "test",
                    "--package",
                    "dsh-tests",
                    "--test",
                    "integration",
                    "--",
                ])
                .arg("--test-threads=1")
                .args(filter),
        )
    })?;
    if filter.is_empty() {
        timed("bench --quick", &mut || run_bench(&tc, true, false))?;
    }
    for (name, secs) in &phases {
        say(&format!("{name:>18}: {secs:6.1}s"));
    }
    Ok(())
}

fn run_bench(tc: &Toolchain, quick: bool, release: bool) -> anyhow::Result<()> {
    cargo_build(tc, release, &["dsh-tests"])?;
    let dir = profile_dir(release);
    say(&format!(
        "benchmarks{}",
        if quick { " (quick)" } else { "" }
    ));
    let mut cmd = Command::new(dir.join("dsh-bench"));
    cmd.current_dir(workspace_root())
        .env("DSH_WORKLOAD", dir.join("dsh-workload"))
        .env("DSH_BENCH_OUT", workspace_root().join("target/bench"));
    if quick {
        cmd.args(["--quick", "--no-bpftrace"]);
    }
    check(&mut cmd)
}

pub fn bench(quick: bool) -> anyhow::Result<()> {
    require_root()?;
    let tc = bootstrap::run()?;
    if !quick {
        docker::ensure_packages(&["bpftrace"])?;
    }
    unmount_tracefs()?;
    run_bench(&tc, quick, !quick)
}
