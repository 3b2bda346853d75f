//! `dsh status`: what dsh itself costs, in one screen.
use std::{path::Path, process::ExitCode};

use dsh::{
    api::{Reply, Request, client},
    render::status,
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", status::screen(&s));
    }
    Ok(ExitCode::SUCCESS)
}
