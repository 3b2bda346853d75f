//! Command-line parsing and dispatch; one file per subcommand.
mod agent;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dsh",
    version,
    about = "Per-container health table and event log, fed by the kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector in the foreground (root).
    Agent(agent::AgentArgs),
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Agent(args)) => agent::run(args),
        // Until the health table lands, no arguments means: watch the events.
        None => agent::run(agent::AgentArgs {
            events: true,
            ..Default::default()
        }),
    }
}
