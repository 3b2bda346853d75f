//! Cargo invocations for the project: the environment aya-build needs, and
//! `cargo xtask build`.
use std::{path::PathBuf, process::Command};

use crate::{
    bootstrap::{self, Toolchain},
    cmd::{check, say},
    workspace_root,
};

impl Toolchain {
    /// `cargo` in the workspace root, with bpf-linker on PATH and
    /// `RUSTC_BOOTSTRAP=1`: aya-build adds `-Z build-std=core` for the eBPF
    /// crate only when that is set, which the stable toolchain needs.
    pub fn cargo(&self) -> Command {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(workspace_root())
            .env("PATH", &self.path)
            .env("RUSTC_BOOTSTRAP", "1");
        c
    }
}

/// `target/debug` or `target/release`.
pub fn profile_dir(release: bool) -> PathBuf {
    workspace_root()
        .join("target")
        .join(if release { "release" } else { "debug" })
}

/// `cargo build` of the given packages (the eBPF programs come along through
/// dsh-userspace's build script).
pub fn cargo_build(tc: &Toolchain, release: bool, packages: &[&str]) -> anyhow::Result<()> {
    say(&format!(
        "building {} ({})",
        packages.join(", "),
        if release { "release" } else { "dev" }
    ));
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

/// `cargo xtask build`: bootstrap, build, say where the binary is.
pub fn build(release: bool) -> anyhow::Result<PathBuf> {
    let tc = bootstrap::run()?;
    cargo_build(&tc, release, &["dsh-userspace"])?;
    let bin = profile_dir(release).join("dsh");
    say(&format!("built {}", bin.display()));
    Ok(bin)
}
