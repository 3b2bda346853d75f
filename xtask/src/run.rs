//! `cargo xtask run -- <dsh args>`: build, then become dsh.
use std::{os::unix::process::CommandExt as _, process::Command};

use anyhow::Context as _;

use crate::{bootstrap::require_root, cargo_build};

pub fn run(release: bool, args: &[String]) -> anyhow::Result<()> {
    require_root()?;
    let bin = cargo_build::build(release)?;
    // exec: signals and the terminal go straight to dsh.
    let err = Command::new(&bin).args(args).exec();
    Err(err).with_context(|| format!("exec {}", bin.display()))
}
