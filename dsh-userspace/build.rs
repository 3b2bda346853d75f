//! Builds the kernel programs (`dsh-ebpf`, for `bpfel-unknown-none`) and
//! leaves the object in OUT_DIR for `include_bytes_aligned!`.
//!
//! Needs `bpf-linker` on PATH and `RUSTC_BOOTSTRAP=1` (for `-Z build-std=core`
//! on the stable toolchain); `cargo xtask` provides both.
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
    let root_dir = format!("{manifest_dir}/../dsh-ebpf");
    let package = Package {
        name: "dsh-ebpf",
        root_dir: &root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom("stable"))
        .context("building the eBPF programs (dsh-ebpf) failed")
}
