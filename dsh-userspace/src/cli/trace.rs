//! `dsh trace`: one container's syscalls (what `strace -c` shows, without
//! ptrace) and block I/O, switched on in the kernel only while it runs.
use std::{io::Write as _, path::Path, process::ExitCode, time::Duration};

use dsh::{
    api::{Reply, Request, client},
    render,
    untrusted::json,
};

#[derive(clap::Args)]
pub struct TraceArgs {
    /// Container: name, id prefix (4+ hex chars) or cgroup path.
    container: String,
    /// How long to trace (e.g. 500ms, 5s, 1m, 1h).
    #[arg(short, long, default_value = "5s", value_parser = super::duration::parse)]
    duration: Duration,
    /// One JSON document instead of the report.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TraceArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let req = Request::Trace {
        container: args.container,
        duration_ms: args.duration.as_millis() as u64,
    };
    let Reply::Trace(report) = client::call(state_dir, &req)? else {
        anyhow::bail!("the agent answered `trace` with something else");
    };
    // Written, not print!ed: a closed pipe is an error to return, not a panic.
    let text = if args.json {
        json::to_string_pretty(&report)? + "\n"
    } else {
        render::trace::report(&report)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
