//! Command-line parsing and dispatch; one file per subcommand.
mod agent;
mod completions;
mod duration;
mod exec;
mod live;
mod log;
mod man;
mod ps;
mod ssh;
mod status;
mod top;
mod trace;
mod which;

#[cfg(test)]
mod docs_flags;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dsh",
    version,
    about = "Per-container health table and event log, fed by the kernel"
)]
struct Cli {
    /// Where the agent keeps its journal and socket.
    #[arg(long, global = true, env = "DSH_STATE_DIR", default_value = dsh::api::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector in the foreground (root).
    // Boxed: its flags make it far larger than every other command's.
    Agent(Box<agent::AgentArgs>),
    /// Every container, one line each, with a health level.
    Ps(ps::PsArgs),
    /// A container's history of state changes, with the kernel's reasons.
    Log(log::LogArgs),
    /// The agent's own cost and health.
    Status(status::StatusArgs),
    /// The health table, live in the terminal (q quits).
    Top(top::TopArgs),
    /// One container's syscalls (count, errors, latency) and block I/O.
    Trace(trace::TraceArgs),
    /// Run a command inside a container's namespaces (root); exits with its code.
    Exec(exec::ExecArgs),
    /// An interactive shell inside a container's namespaces (root).
    Ssh(ssh::SshArgs),
    /// The container (and pod) a host pid belongs to.
    Which(which::WhichArgs),
    /// Shell completions on stdout, e.g. `dsh completions bash > /etc/bash_completion.d/dsh`.
    Completions(completions::CompletionsArgs),
    /// The man pages (roff): dsh.1 on stdout, or every page into --dir.
    #[command(hide = true)]
    Man(man::ManArgs),
}

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Agent(args)) => agent::run(*args, cli.state_dir),
        Some(Command::Ps(args)) => ps::run(args, &cli.state_dir),
        Some(Command::Log(args)) => log::run(args, &cli.state_dir),
        Some(Command::Status(args)) => status::run(args, &cli.state_dir),
        Some(Command::Trace(args)) => trace::run(args, &cli.state_dir),
        Some(Command::Top(args)) => top::run(args, &cli.state_dir),
        Some(Command::Exec(args)) => exec::run(args, &cli.state_dir),
        Some(Command::Ssh(args)) => ssh::run(args, &cli.state_dir),
        Some(Command::Which(args)) => which::run(args, &cli.state_dir),
        Some(Command::Completions(args)) => completions::run(args),
        Some(Command::Man(args)) => man::run(args),
        // No arguments: start the agent and show the live health table.
        None => live::run(cli.state_dir),
    }
}
