//! Installs what building Rust eBPF needs on a fresh machine:
//! rust-src (for `-Z build-std=core`) and bpf-linker, built against rustc's
//! own LLVM into `target/tools` (see ../shared/docs/platform.md).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::workspace_root;

const BPF_LINKER_VERSION: &str = "0.13.0";

/// What a cargo invocation for the project needs in its environment.
pub struct Toolchain {
    /// PATH with the tools dir first, so aya-build finds bpf-linker.
    pub path: String,
}

impl Toolchain {
    pub fn cargo(&self) -> Command {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(workspace_root())
            .env("PATH", &self.path)
            // aya-build adds `-Z build-std=core` for the eBPF crate only
            // when this is set; the stable toolchain needs it for that.
            .env("RUSTC_BOOTSTRAP", "1");
        c
    }
}

pub fn say(what: &str) {
    eprintln!("xtask: {what}");
}

pub fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "dsh needs root: loading eBPF programs requires CAP_BPF and CAP_SYS_ADMIN; \
             re-run with sudo"
        );
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux); dsh needs a kernel built with \
             CONFIG_DEBUG_INFO_BTF=y (5.8 or newer)"
        );
    }
    Ok(())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn sysroot() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(output(
        Command::new("rustc").args(["--print", "sysroot"]),
    )?))
}

fn ensure_rust_src(sysroot: &Path) -> anyhow::Result<()> {
    if sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        return Ok(());
    }
    say("installing rust-src (needed to build core for the BPF target)");
    let ok = Command::new("rustup")
        .args(["component", "add", "rust-src", "--toolchain", "stable"])
        .status()
        .context("running rustup")?
        .success();
    if !ok {
        bail!(
            "rustup could not install rust-src (is its server reachable?); \
             run `rustup component add rust-src --toolchain stable` by hand"
        );
    }
    Ok(())
}

/// rustc's LLVM major version, from `rustc -vV` ("LLVM version: 22.1.2").
fn llvm_major(rustc_vv: &str) -> anyhow::Result<String> {
    rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .map(str::to_owned)
        .context("rustc -vV does not say its LLVM version")
}

fn ensure_bpf_linker(tools: &Path, sysroot: &Path) -> anyhow::Result<()> {
    let rustc_vv = output(Command::new("rustc").arg("-vV"))?;
    let stamp_path = tools.join("bpf-linker.stamp");
    let stamp = format!("bpf-linker {BPF_LINKER_VERSION}\n{rustc_vv}\n");
    let bin = tools.join("bin/bpf-linker");
    if bin.exists() && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    // bpf-linker links against LLVM; rustc ships one (libLLVM.so.<ver>) in
    // its sysroot, and a prefix whose lib/libLLVM.so points at it is all
    // bpf-linker's build script needs.
    let lib = sysroot.join("lib");
    let libllvm = fs::read_dir(&lib)
        .with_context(|| format!("listing {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM") && n.ends_with(".so"))
            })
        })
        .with_context(|| format!("no libLLVM in {}", lib.display()))?;
    let prefix = tools.join("llvm");
    fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link).context("linking libLLVM.so")?;
    let major = llvm_major(&rustc_vv)?;
    say(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against rustc's LLVM {major} (about a minute, once)"
    ));
    let started = Instant::now();
    let ok = Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
        ])
        .args(["--features", &format!("llvm-{major}"), "--force", "--root"])
        .arg(tools)
        .env("LLVM_PREFIX", &prefix)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", lib.display()),
        )
        .env_remove("RUSTC_BOOTSTRAP")
        .status()
        .context("running cargo install bpf-linker")?
        .success();
    if !ok {
        bail!("building bpf-linker failed (see above); crates.io must be reachable");
    }
    fs::write(&stamp_path, stamp)?;
    say(&format!(
        "bpf-linker built in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Makes sure the build can run; cheap when everything is in place.
pub fn run() -> anyhow::Result<Toolchain> {
    let sysroot = sysroot()?;
    ensure_rust_src(&sysroot)?;
    let tools = workspace_root().join("target/tools");
    fs::create_dir_all(&tools)?;
    ensure_bpf_linker(&tools, &sysroot)?;
    let path = format!(
        "{}:{}",
        tools.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Ok(Toolchain { path })
}

#[cfg(test)]
mod tests {
    #[test]
    fn llvm_major_from_rustc_vv() {
        let vv = "rustc 1.95.0 (59807616e 2026-04-14)\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.2\n";
        assert_eq!(super::llvm_major(vv).unwrap(), "22");
        assert!(super::llvm_major("rustc 1.0").is_err());
    }
}
