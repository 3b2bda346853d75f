//! `dsh log`: a container's history, oldest first, local time.
use std::{io::Write as _, path::Path, process::ExitCode, time::Duration};

use dsh::{
    api::{Reply, Request, client::Connection},
    render,
    untrusted::json,
};

#[derive(clap::Args)]
pub struct LogArgs {
    /// Container: name, id prefix (4+ hex chars) or cgroup path; all when omitted.
    container: Option<String>,
    /// Everything: events that are not state changes (signals, child OOM
    /// kills, process churn), and the earlier containers that bore the name.
    #[arg(short, long)]
    all: bool,
    /// Keep streaming new lines.
    #[arg(short, long)]
    follow: bool,
    /// Only lines newer than this (e.g. 500ms, 90s, 10m, 2h, 1d).
    #[arg(long, value_parser = super::duration::parse)]
    since: Option<Duration>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: LogArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let req = Request::Log {
        container: args.container,
        all: args.all,
        // Saturates at ~292 million years: "everything".
        since_ms: args
            .since
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        follow: args.follow,
    };
    let mut conn = Connection::open(state_dir, &req)?;
    let tz = jiff::tz::TimeZone::system();
    let mut out = std::io::stdout().lock();
    // With earlier incarnations shown, a heading wherever the container changes.
    let mut incarnations: Option<(String, Vec<String>)> = None;
    let mut shown_key = String::new();
    loop {
        match conn.recv()? {
            Reply::Incarnations { current, earlier } => incarnations = Some((current, earlier)),
            Reply::Warning(w) => eprintln!("dsh: {w}"),
            Reply::Entry(e) => {
                if let Some((current, _)) = &incarnations
                    && !args.json
                    && e.key != shown_key
                {
                    let which = if e.key == *current {
                        "current"
                    } else {
                        "earlier incarnation"
                    };
                    writeln!(out, "{}", render::log::heading(&e, which))?;
                    shown_key.clone_from(&e.key);
                }
                if args.json {
                    json::to_writer(&mut out, &render::log::json(&e)?)?;
                    out.write_all(b"\n")?;
                } else {
                    writeln!(out, "{}", render::log::line(&e, &tz))?;
                }
                if args.follow {
                    out.flush()?;
                }
            }
            Reply::End => break,
            _ => anyhow::bail!("the agent answered `log` with something else"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
