//! `cargo xtask test`: fmt, clippy, unit tests, a short run of every fuzz
//! target, the test engine, the privileged integration tests, the quick
//! benchmark and the VM matrix (Debian's 5.10, 6.1 and 6.12 kernels), timed
//! phase by phase.
use std::time::Instant;

use crate::{
    bench,
    bootstrap::{self, Toolchain, require_root},
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

/// The phases `--only` and `--skip` name; the bootstrap always runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// cargo fmt --check over both workspaces.
    Fmt,
    /// clippy for the host crates, the fuzz targets and the kernel programs.
    Clippy,
    /// Every crate's unit tests (no root needed by the tests themselves).
    Unit,
    /// Every fuzz target for a few seconds.
    Fuzz,
    /// The test engines (Docker, containerd, podman, Prometheus) and the
    /// privileged integration tests.
    Integration,
    /// The quick benchmark.
    Bench,
    /// The VM matrix.
    Vm,
}

/// Which phases a run takes.
pub struct Selection {
    pub only: Vec<Phase>,
    pub skip: Vec<Phase>,
    /// Filter passed to the integration test binary.
    pub filter: Vec<String>,
}

impl Selection {
    fn wants(&self, phase: Phase) -> bool {
        if self.skip.contains(&phase) {
            return false;
        }
        if !self.only.is_empty() {
            return self.only.contains(&phase);
        }
        // A filtered run is a partial one: no benchmark, no VMs.
        self.filter.is_empty() || !matches!(phase, Phase::Bench | Phase::Vm)
    }
}

pub fn test(selection: &Selection) -> anyhow::Result<()> {
    require_root()?;
    let mut phases = Phases::default();
    let result = chosen_phases(&mut phases, selection);
    phases.print();
    result
}

fn chosen_phases(phases: &mut Phases, selection: &Selection) -> anyhow::Result<()> {
    let tc = phases.run("bootstrap", bootstrap::run)?;
    let wants = |p| selection.wants(p);
    if wants(Phase::Fmt) {
        phases.run("fmt", || fmt(&tc))?;
    }
    if wants(Phase::Clippy) {
        phases.run("clippy", || clippy(&tc))?;
        phases.run("clippy (bpf)", || clippy_bpf(&tc))?;
    }
    if wants(Phase::Unit) {
        phases.run("unit tests", || {
            say("unit tests (cargo test --workspace --exclude dsh-tests)");
            check(
                tc.cargo()
                    .args(["test", "--workspace", "--exclude", "dsh-tests"]),
            )
        })?;
    }
    if wants(Phase::Fuzz) {
        phases.run("fuzz", || {
            say(&format!(
                "every fuzz target for {}s (cargo xtask fuzz runs longer)",
                fuzz::TEST_SECS
            ));
            fuzz::run(fuzz::TEST_SECS, &[], fuzz::Build::Quick)
        })?;
    }
    if wants(Phase::Integration) {
        phases.run("docker", docker::ensure_engine)?;
        phases.run("containerd, podman", runtimes::ensure)?;
        phases.run("test packages", peers::ensure)?;
        phases.run("integration tests", || integration(&tc, &selection.filter))?;
    }
    if wants(Phase::Bench) {
        phases.run("bench --quick", || bench::quick(&tc))?;
    }
    if wants(Phase::Vm) {
        phases.run("vm matrix", || vm::run_with(&tc, &vm::VmArgs::default()))?;
    }
    Ok(())
}

fn fmt(tc: &Toolchain) -> anyhow::Result<()> {
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
}

fn clippy(tc: &Toolchain) -> anyhow::Result<()> {
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
}

fn clippy_bpf(tc: &Toolchain) -> anyhow::Result<()> {
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
}

fn integration(tc: &Toolchain, filter: &[String]) -> anyhow::Result<()> {
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
            // Each test's time in the log: what to shorten when CI slows.
            .args(["-Z", "unstable-options", "--report-time"])
            .args(filter),
    )
}

#[cfg(test)]
mod tests {
    use super::{Phase, Selection};

    fn selection(only: &[Phase], skip: &[Phase], filter: &[&str]) -> Selection {
        Selection {
            only: only.to_vec(),
            skip: skip.to_vec(),
            filter: filter.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn a_plain_run_takes_every_phase() {
        let all = selection(&[], &[], &[]);
        assert!(all.wants(Phase::Fmt) && all.wants(Phase::Bench) && all.wants(Phase::Vm));
    }

    #[test]
    fn only_and_skip_choose_phases() {
        let unit = selection(&[Phase::Unit], &[], &[]);
        assert!(unit.wants(Phase::Unit));
        assert!(!unit.wants(Phase::Clippy) && !unit.wants(Phase::Integration));
        let fast = selection(&[], &[Phase::Fuzz, Phase::Vm], &[]);
        assert!(fast.wants(Phase::Integration) && fast.wants(Phase::Bench));
        assert!(!fast.wants(Phase::Fuzz) && !fast.wants(Phase::Vm));
    }

    #[test]
    fn a_filtered_run_skips_bench_and_vms_unless_asked() {
        let filtered = selection(&[], &[], &["agent_plain"]);
        assert!(filtered.wants(Phase::Integration));
        assert!(!filtered.wants(Phase::Bench) && !filtered.wants(Phase::Vm));
        let asked = selection(&[Phase::Integration, Phase::Vm], &[], &["agent_plain"]);
        assert!(asked.wants(Phase::Vm));
    }
}
