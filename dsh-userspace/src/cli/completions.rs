//! `dsh completions SHELL`: the completion script, on stdout.
use std::{io::Write as _, process::ExitCode};

use clap::CommandFactory as _;
use clap_complete::Shell;

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish (also elvish, powershell).
    shell: Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    // clap_complete panics on a write error; a buffer cannot fail, and
    // stdout's errors (a closed pipe) then reach main as errors.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "dsh", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}
