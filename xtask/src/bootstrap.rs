//! Installs what building Rust eBPF needs on a fresh machine:
//! rust-src (for `-Z build-std=core`) and bpf-linker, built against rustc's
//! own LLVM into `target/tools` (see CONTRIBUTING.md, "Building").
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{output, say},
    workspace_root,
};

const BPF_LINKER_VERSION: &str = "0.13.0";
/// cargo-fuzz drives libFuzzer; its sanitizer and coverage flags are
/// nightly features, which the stable toolchain takes with RUSTC_BOOTSTRAP=1.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What a cargo invocation for the project needs in its environment.
pub struct Toolchain {
    /// PATH with the tools dir first, so aya-build finds bpf-linker.
    pub path: String,
}

/// Root and BTF: what loading dsh's programs needs (run, test, bench).
pub fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "dsh needs root: loading eBPF programs requires CAP_BPF/CAP_SYS_ADMIN; \
             re-run with sudo"
        );
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        bail!(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux); dsh needs a kernel built with \
             CONFIG_DEBUG_INFO_BTF=y (5.8+)"
        );
    }
    Ok(())
}

fn sysroot() -> anyhow::Result<PathBuf> {
    Ok(PathBuf::from(
        output(Command::new("rustc").args(["--print", "sysroot"]))
            .context("asking rustc for its sysroot")?,
    ))
}

fn ensure_rust_src(sysroot: &Path) -> anyhow::Result<()> {
    if sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        return Ok(());
    }
    say("installing rust-src (needed to build core for the BPF target)");
    let started = Instant::now();
    let ok = Command::new("rustup")
        .args(["component", "add", "rust-src", "--toolchain", "stable"])
        .status()
        .context("running rustup (is it installed?)")?
        .success();
    if !ok {
        bail!(
            "rustup could not install rust-src (could it reach its server?); \
             run `rustup component add rust-src --toolchain stable` by hand"
        );
    }
    say(&format!(
        "rust-src installed in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// rustc's LLVM major version, from `rustc -vV` ("LLVM version: 22.1.2").
fn llvm_major(rustc_vv: &str) -> anyhow::Result<String> {
    rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.trim().split('.').next())
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
        .context("rustc -vV does not say its LLVM version")
}

/// The shared LLVM rustc ships, `libLLVM.so.<version>`. (The sysroot also
/// holds `libLLVM-<major>-rust-<ver>.so`, a tiny linker script: not that.)
fn find_libllvm(lib: &Path) -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(lib)
        .with_context(|| format!("listing {}", lib.display()))?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.len() > "libLLVM.so.".len() && n.starts_with("libLLVM.so."))
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found.pop().with_context(|| {
        format!(
            "no libLLVM.so.* in {} (rustc's own LLVM, which bpf-linker links against)",
            lib.display()
        )
    })
}

fn ensure_bpf_linker(tools: &Path, sysroot: &Path) -> anyhow::Result<()> {
    let rustc_vv = output(Command::new("rustc").arg("-vV")).context("running rustc -vV")?;
    let stamp_path = tools.join("bpf-linker.stamp");
    let stamp = format!("bpf-linker {BPF_LINKER_VERSION}\n{rustc_vv}\n");
    let bin = tools.join("bin/bpf-linker");
    if bin.exists() && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    // bpf-linker links against LLVM; rustc ships one in its sysroot, and a
    // prefix whose lib/libLLVM.so points at it is all bpf-linker's build
    // script needs. The rpath lets the binary find it at run time.
    let lib = sysroot.join("lib");
    let libllvm = find_libllvm(&lib)?;
    let prefix = tools.join("llvm");
    fs::create_dir_all(prefix.join("lib"))
        .with_context(|| format!("creating {}", prefix.display()))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    let major = llvm_major(&rustc_vv)?;
    say(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against rustc's LLVM {major} \
         into {} (about a minute, once)",
        tools.display()
    ));
    let started = Instant::now();
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ])
        .args(["--force", "--root"])
        .arg(tools)
        .env("LLVM_PREFIX", &prefix)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", lib.display()),
        )
        .env_remove("RUSTC_BOOTSTRAP")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running cargo install bpf-linker")?
        .success();
    if !ok {
        bail!(
            "building bpf-linker failed (see above); crates.io must be reachable and \
             rustc's LLVM must be {major}.x"
        );
    }
    fs::write(&stamp_path, stamp).with_context(|| format!("writing {}", stamp_path.display()))?;
    say(&format!(
        "bpf-linker built in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// cargo-fuzz in the tools dir, installed once from crates.io (about two
/// minutes); returns its path. Only `cargo xtask fuzz`, `test` and
/// `bootstrap` need it.
pub fn ensure_cargo_fuzz() -> anyhow::Result<PathBuf> {
    let tools = tools_dir()?;
    let bin = tools.join("bin/cargo-fuzz");
    let stamp_path = tools.join("cargo-fuzz.stamp");
    let stamp = format!("cargo-fuzz {CARGO_FUZZ_VERSION}\n");
    if bin.exists() && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(bin);
    }
    say(&format!(
        "installing cargo-fuzz {CARGO_FUZZ_VERSION} into {} (about two minutes, once)",
        tools.display()
    ));
    let started = Instant::now();
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["install", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION])
        .args(["--locked", "--force", "--root"])
        .arg(&tools)
        .env_remove("RUSTC_BOOTSTRAP")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("running cargo install cargo-fuzz")?
        .success();
    if !ok {
        bail!("installing cargo-fuzz failed (see above); crates.io must be reachable");
    }
    fs::write(&stamp_path, stamp).with_context(|| format!("writing {}", stamp_path.display()))?;
    say(&format!(
        "cargo-fuzz installed in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(bin)
}

fn tools_dir() -> anyhow::Result<PathBuf> {
    let tools = workspace_root().join("target/tools");
    fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    Ok(tools)
}

/// Makes sure the build can run; cheap (well under a second) when
/// everything is in place.
pub fn run() -> anyhow::Result<Toolchain> {
    // containerd-client generates its gRPC code with protoc at build time.
    if !crate::cmd::on_path("protoc") {
        require_root()?;
        crate::docker::ensure_packages(&["protobuf-compiler"])?;
    }
    let sysroot = sysroot()?;
    ensure_rust_src(&sysroot)?;
    let tools = tools_dir()?;
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

    #[test]
    fn libllvm_is_the_versioned_library_not_the_linker_script() {
        let dir = std::env::temp_dir().join(format!("xtask-libllvm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "libLLVM-22-rust-1.95.0-stable.so",
            "libLLVM.so.22.1-rust-1.95.0-stable",
            "librustc_driver-x.so",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let found = super::find_libllvm(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            found.file_name().unwrap(),
            "libLLVM.so.22.1-rust-1.95.0-stable"
        );
    }
}
