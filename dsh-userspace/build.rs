//! Builds the kernel programs (`dsh-ebpf`, for `bpfel-unknown-none`) and
//! leaves the object in OUT_DIR for `include_bytes_aligned!`.
//!
//! Needs `RUSTC_BOOTSTRAP=1` (for `-Z build-std=core` on the stable
//! toolchain; `.cargo/config.toml` sets it) and `bpf-linker`: on PATH, or
//! where `cargo xtask bootstrap` installs it (`target/tools/bin`).
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=PATH");
    // cargo-fuzz builds the library with `--cfg fuzzing` (and sanitizer
    // flags the BPF target cannot take). Fuzz targets decode and parse; they
    // never load programs: empty objects stand in for both.
    if std::env::var_os("CARGO_CFG_FUZZING").is_some() {
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR")?);
        for object in ["dsh", "dsh-cgrp-storage"] {
            std::fs::write(out.join(object), b"").context("writing a stand-in object")?;
        }
        return Ok(());
    }
    if std::env::var_os("RUSTC_BOOTSTRAP").is_none_or(|v| v != "1") {
        return Err(anyhow!(
            "building dsh's eBPF programs needs RUSTC_BOOTSTRAP=1 and bpf-linker on PATH; \
             build with `cargo xtask build` (or `cargo xtask run`), which sets both up"
        ));
    }
    // Read when the script runs, not baked in when it is compiled: a build
    // script binary reused from another checkout (a copied target/) would
    // otherwise build that checkout's programs.
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").context("cargo did not set CARGO_MANIFEST_DIR")?;
    put_bootstrapped_tools_on_path(&manifest_dir)?;
    let root_dir = format!("{manifest_dir}/../dsh-ebpf");
    let package = Package {
        name: "dsh-ebpf",
        root_dir: &root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom("stable"))
        .context("building the eBPF programs (dsh-ebpf) failed")
}

/// Puts `target/tools/bin` (where `cargo xtask bootstrap` builds
/// bpf-linker) first on PATH for the nested build, so plain `cargo test`
/// works once the tools are there.
fn put_bootstrapped_tools_on_path(manifest_dir: &str) -> anyhow::Result<()> {
    let tools = std::path::Path::new(manifest_dir).join("../target/tools/bin");
    if !tools.join("bpf-linker").exists() {
        return Ok(());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<std::path::PathBuf> = std::env::split_paths(&path).collect();
    if dirs.iter().any(|d| d.join("bpf-linker").exists()) {
        return Ok(());
    }
    dirs.insert(0, tools);
    let joined = std::env::join_paths(dirs).context("joining PATH")?;
    // SAFETY: a build script is one thread; nothing else reads the
    // environment while it is changed.
    unsafe { std::env::set_var("PATH", joined) };
    Ok(())
}
