//! `dsh status`: what dsh itself costs, in one screen.
use std::{io::Write as _, path::Path, process::ExitCode};

use dsh::{
    api::{Reply, Request, client},
    render::status,
    untrusted::json,
};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// One JSON document instead of the screen.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatusArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let Reply::Status(s) = client::call(state_dir, &Request::Status)? else {
        anyhow::bail!("the agent answered `status` with something else");
    };
    // Written, not print!ed: a closed pipe is an error to return, not a panic.
    let text = if args.json {
        json::to_string_pretty(&s)? + "\n"
    } else {
        status::screen(&s)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
