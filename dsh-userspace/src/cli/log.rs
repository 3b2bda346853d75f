//! `dsh log`: a container's history, oldest first, local time.
use std::{io::Write as _, path::Path, process::ExitCode};

use dsh::{
    api::{Reply, Request, client::Connection},
    render,
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
    /// Only lines newer than this (e.g. 90s, 10m, 2h, 1d).
    #[arg(long, value_parser = parse_duration)]
    since: Option<i64>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// "90s", "10m", "2h", "1d" (or plain seconds) → seconds.
fn parse_duration(s: &str) -> Result<i64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 10m, 2h or 1d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}; use s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))
}

pub fn run(args: LogArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let req = Request::Log {
        container: args.container,
        all: args.all,
        since_s: args.since,
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
                    let mut v = serde_json::to_value(&*e)?;
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("ts".into(), e.ts.to_string().into());
                    }
                    serde_json::to_writer(&mut out, &v)?;
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

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("10m"), Ok(600));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("15"), Ok(15));
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("m").is_err());
    }
}
