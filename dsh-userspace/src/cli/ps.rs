//! `dsh ps`: the health table.
use std::{io::Write as _, path::Path, process::ExitCode};

use dsh::{
    api::{Reply, Request, client},
    render::{health, table},
    untrusted::json,
};

#[derive(clap::Args)]
pub struct PsArgs {
    /// Also list containers that are no longer running.
    #[arg(short, long)]
    all: bool,
    /// One JSON array instead of the table.
    #[arg(long)]
    json: bool,
    /// More columns: runtime id, image, pids, OOM kills, core dumps, rates.
    #[arg(long)]
    wide: bool,
}

pub fn run(args: PsArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let Reply::Rows(rows) = client::call(state_dir, &Request::Ps { all: args.all })? else {
        anyhow::bail!("the agent answered `ps` with something else");
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        json::to_writer_pretty(&mut out, &health::rows_json(&rows)?)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(table::table(&rows, args.wide).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
