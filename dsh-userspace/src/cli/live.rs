//! `dsh` with no arguments: run the agent here and redraw the health table
//! after every sample.
use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::Parser as _;
use dsh::render::table;

use super::agent::AgentArgs;

#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    agent: AgentArgs,
}

pub fn run(state_dir: PathBuf) -> anyhow::Result<ExitCode> {
    let cfg = Defaults::parse_from(["dsh"]).agent.config(state_dir);
    let tty = std::io::stdout().is_terminal();
    let draw = Box::new(move |rows: &[dsh::model::row::ContainerRow]| {
        let mut out = std::io::stdout().lock();
        let mut rows = rows.to_vec();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let text = table::table(&rows, false);
        // Home + clear on a terminal; plain snapshots one after another otherwise.
        let _ = if tty {
            write!(out, "\x1b[H\x1b[2J{text}")
        } else {
            writeln!(out, "{text}")
        };
        let _ = out.flush();
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(dsh::agent::run(cfg, Some(draw)))?;
    Ok(ExitCode::SUCCESS)
}
