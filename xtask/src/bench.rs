//! `cargo xtask bench`: dsh's cost per syscall, and the shipped agent's on
//! real workloads (redis, process start-up, a fork-heavy container),
//! measured by the `dsh-bench` binary of the tests package (figures land in
//! `target/bench/`).
use std::process::Command;

use crate::{
    bootstrap::{self, Toolchain, require_root},
    cargo_build::{cargo_build, profile_dir},
    cmd::{check, say},
    docker,
    host::unmount_tracefs,
    workspace_root,
};

fn bench(tc: &Toolchain, quick: bool, release: bool, scale_only: bool) -> anyhow::Result<()> {
    // dsh is measured as it runs in production: without tracefs (the
    // benchmark mounts it for bpftrace itself, and only then).
    unmount_tracefs()?;
    cargo_build(tc, release, &["dsh-tests", "dsh-userspace"])?;
    docker::ensure_engine()?;
    // The production section runs redis-benchmark against a redis-server on
    // loopback (the package's own service is not used); the scale section
    // opens `dsh top` in tmux.
    docker::ensure_packages(&["redis-server", "redis-tools", "tmux"])?;
    let dir = profile_dir(release);
    say(&format!(
        "benchmarks{}",
        if quick { " (quick)" } else { "" }
    ));
    let mut cmd = Command::new(dir.join("dsh-bench"));
    cmd.current_dir(workspace_root())
        .env("DSH_WORKLOAD", dir.join("dsh-workload"))
        .env("DSH_BIN", dir.join("dsh"))
        .env("DSH_BENCH_OUT", workspace_root().join("target/bench"));
    if quick {
        cmd.args(["--quick", "--no-bpftrace"]);
    }
    if scale_only {
        cmd.arg("--scale-only");
    }
    check(&mut cmd)
}

/// The quick run `cargo xtask test` ends with (dev build, no bpftrace).
pub fn quick(tc: &Toolchain) -> anyhow::Result<()> {
    bench(tc, true, false, false)
}

/// `cargo xtask bench [--quick]`; the full run is a release build and
/// compares against bpftrace, installed if missing.
pub fn run(quick: bool, scale_only: bool) -> anyhow::Result<()> {
    require_root()?;
    let tc = bootstrap::run()?;
    if !quick && !scale_only {
        docker::ensure_packages(&["bpftrace"])?;
    }
    bench(&tc, quick, !quick, scale_only)
}
