//! `cargo xtask test`: fmt, clippy, unit tests, a short run of every fuzz
//! target, the test engine, the privileged integration tests, the quick
//! benchmark and the VM matrix (Debian's 5.10, 6.1 and 6.12 kernels), timed
//! phase by phase.
use std::time::Instant;

use crate::{
    bench,
    bootstrap::{self, require_root},
    cmd::{check, say},
    docker, fuzz, host, peers, runtimes, vm,
};

/// Phases run so far and how long each took; printed whether or not the
/// run got to the end.
#[derive(Default)]
struct Phases(Vec<(&'static str, f64, bool)>);

impl Phases {
    fn run<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let r = f();
        self.0
            .push((name, started.elapsed().as_secs_f64(), r.is_ok()));
        r
    }

    fn print(&self) {
        for (name, secs, ok) in &self.0 {
            let mark = if *ok { "" } else { "  FAILED" };
            say(&format!("{name:>18}: {secs:6.1}s{mark}"));
        }
    }
}

pub fn test(filter: &[String]) -> anyhow::Result<()> {
    require_root()?;
    let mut phases = Phases::default();
    let result = all_phases(&mut phases, filter);
    phases.print();
    result
}

fn all_phases(phases: &mut Phases, filter: &[String]) -> anyhow::Result<()> {
    let tc = phases.run("bootstrap", bootstrap::run)?;
    phases.run("fmt", || {
        say("cargo fmt --all --check");
        check(tc.cargo().args(["fmt", "--all", "--check"]))?;
        // The fuzz targets are a workspace of their own.
        check(tc.cargo().args([
            "fmt",
            "--all",
            "--check",
            "--manifest-path",
            "fuzz/Cargo.toml",
        ]))
    })?;
    phases.run("clippy", || {
        say("cargo clippy (host crates, warnings are errors)");
        check(tc.cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        say("cargo clippy (fuzz targets, built as cargo-fuzz builds them)");
        check(
            tc.cargo()
                .args([
                    "clippy",
                    "--all-targets",
                    "--manifest-path",
                    "fuzz/Cargo.toml",
                ])
                .args(["--", "-D", "warnings"])
                .env("RUSTFLAGS", "--cfg fuzzing")
                .env(
                    "CARGO_TARGET_DIR",
                    crate::workspace_root().join("target/fuzz-clippy"),
                ),
        )
    })?;
    phases.run("clippy (bpf)", || {
        say("cargo clippy for bpfel-unknown-none (the kernel programs, warnings are errors)");
        // As aya's xtask does: the programs only build for the BPF target,
        // so the host run above never lints their code.
        check(tc.cargo().args([
            "clippy",
            "--package",
            "dsh-ebpf",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--lib",
            "--bins",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    phases.run("unit tests", || {
        say("unit tests (cargo test --workspace --exclude dsh-tests)");
        check(
            tc.cargo()
                .args(["test", "--workspace", "--exclude", "dsh-tests"]),
        )
    })?;
    phases.run("fuzz", || {
        say(&format!(
            "every fuzz target for {}s (cargo xtask fuzz runs longer)",
            fuzz::TEST_SECS
        ));
        fuzz::run(fuzz::TEST_SECS, &[])
    })?;
    phases.run("docker", docker::ensure_engine)?;
    phases.run("containerd, podman", runtimes::ensure)?;
    phases.run("test packages", peers::ensure)?;
    phases.run("integration tests", || {
        host::unmount_tracefs()?;
        // The tests drive the real `dsh` binary (agent and CLI) and, to bring
        // dockerd back after stopping it, `xtask docker-up`.
        check(
            tc.cargo()
                .args(["build", "--package", "dsh-userspace", "--bin", "dsh"]),
        )?;
        say("privileged integration tests (real programs, real cgroups, one thread)");
        check(
            tc.cargo()
                .args(["test", "--package", "dsh-tests", "--test", "integration"])
                .arg("--")
                .arg("--test-threads=1")
                .args(filter),
        )
    })?;
    // A filtered run is a partial one: no benchmark, no VMs.
    if filter.is_empty() {
        phases.run("bench --quick", || bench::quick(&tc))?;
        phases.run("vm matrix", || vm::run_with(&tc, &vm::VmArgs::default()))?;
    }
    Ok(())
}
