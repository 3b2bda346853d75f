//! `dsh man`: the man pages, written by clap_mangen from the same
//! definitions that parse the command line (so they cannot drift).
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::CommandFactory as _;

#[derive(clap::Args)]
pub struct ManArgs {
    /// Write dsh.1 and one page per command (dsh-ps.1, ...) here instead of
    /// printing dsh.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = super::Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))?;
        }
        None => {
            // As generate_to renders it: built, and without `help`, which
            // has no page of its own.
            let mut cmd = cmd.disable_help_subcommand(true);
            cmd.build();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
