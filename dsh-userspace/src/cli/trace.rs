//! `dsh trace`: one container's syscalls (what `strace -c` shows, without
//! ptrace) and block I/O, switched on in the kernel only while it runs.
use std::{io::Write as _, path::Path, process::ExitCode, time::Duration};

use dsh::{
    api::{Reply, Request, client},
    render,
};

#[derive(clap::Args)]
pub struct TraceArgs {
    /// Container: name, id prefix (4+ hex chars) or cgroup path.
    container: String,
    /// How long to trace (e.g. 5s, 500ms, 1m).
    #[arg(short, long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// One JSON document instead of the report.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 5s, 500ms or 1m");
    let (num, mult_ms) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60_000)
    } else {
        (s, 1000)
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    Ok(Duration::from_millis(
        n.checked_mul(mult_ms).ok_or_else(bad)?,
    ))
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
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render::trace::report(&report)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
    }
}
