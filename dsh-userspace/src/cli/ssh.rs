//! `dsh ssh`: an interactive shell inside a running container's namespaces.
use std::{ffi::OsString, path::Path, process::ExitCode};

use super::exec::{EnterOpts, enter_and_run};

#[derive(clap::Args)]
pub struct SshArgs {
    #[command(flatten)]
    opts: EnterOpts,
}

pub fn run(args: SshArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    // bash where the root has it, else sh, on a pty of its own (`enter::run`).
    let shells: Vec<Vec<OsString>> = vec![vec!["/bin/bash".into()], vec!["/bin/sh".into()]];
    enter_and_run(&args.opts, state_dir, &shells)
}
