//! `dsh status`: what dsh itself costs, in one screen.
use std::{fmt::Write as _, path::Path, process::ExitCode};

use dsh::{
    api::{Reply, Request, StatusReport, client},
    render::{bytes, sanitize},
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
        print!("{}", render(&s));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(s: &StatusReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "dsh agent {}  up {}s  kernel {}  cgroups {}  interval {}ms",
        s.version, s.uptime_s, s.kernel, s.cgroup_layout, s.interval_ms
    );
    let _ = writeln!(
        o,
        "agent: cpu {:.2}% of a core, rss {}; last sample took {:.1}ms, {:.1}ms late; {} containers",
        s.agent_cpu_percent,
        bytes(s.agent_rss_bytes),
        s.sample_duration_ms,
        s.sample_lag_ms,
        s.containers
    );
    let _ = writeln!(
        o,
        "\n{:<28} {:>8} {:>12} {:>10}",
        "program", "attached", "runs/s", "ns/run"
    );
    for p in &s.programs {
        let _ = writeln!(
            o,
            "{:<28} {:>8} {:>12.1} {:>10.1}",
            p.name,
            if p.attached { "yes" } else { "no" },
            p.runs_per_s,
            p.avg_ns_per_run
        );
    }
    let _ = writeln!(
        o,
        "\n{:<10} {:>14} {:>10} {:>10}",
        "channel", "events", "events/s", "lost"
    );
    for c in &s.channels {
        let _ = writeln!(
            o,
            "{:<10} {:>14} {:>10.1} {:>10}",
            c.name, c.events, c.events_per_s, c.lost
        );
    }
    if s.undecodable_events > 0 {
        let _ = writeln!(o, "undecodable events: {}", s.undecodable_events);
    }
    let _ = writeln!(o);
    for m in &s.maps {
        let _ = writeln!(
            o,
            "map {}: {} of {} entries ({:.1}%)",
            m.name,
            m.entries,
            m.capacity,
            m.entries as f64 * 100.0 / m.capacity.max(1) as f64
        );
    }
    journal(&mut o, s);
    for r in &s.runtimes {
        let _ = writeln!(
            o,
            "runtime {}: {} ({})",
            r.name,
            if r.connected {
                "connected"
            } else {
                "not connected"
            },
            sanitize(&r.detail)
        );
    }
    o
}

/// The journal's size, budget and condition: whether it can write, and
/// what it holds in memory or had to drop.
fn journal(o: &mut String, s: &StatusReport) {
    let j = &s.journal;
    let _ = writeln!(
        o,
        "journal {}: {}, {} entries ({} critical, {} chatty of at most {}; {:.0} bytes/line), {} write errors",
        s.journal_path,
        bytes(s.journal_bytes),
        s.journal_entries,
        j.critical_entries,
        j.chatty_entries,
        j.max_chatty_entries,
        j.bytes_per_line,
        s.journal_errors
    );
    if let Some(since) = j.failing_since {
        let _ = writeln!(
            o,
            "journal: NOT WRITABLE since {since}: {}; {} critical lines held in memory",
            sanitize(j.last_error.as_deref().unwrap_or("unknown error")),
            j.pending
        );
    } else if let Some(at) = j.recovered_at {
        let _ = writeln!(
            o,
            "journal: writable again since {at} (last error at {}: {})",
            j.last_error_at.map(|t| t.to_string()).unwrap_or_default(),
            sanitize(j.last_error.as_deref().unwrap_or("-"))
        );
    }
    if j.dropped_critical + j.dropped_chatty > 0 {
        let _ = writeln!(
            o,
            "journal: {} critical and {} chatty lines dropped (could not be written)",
            j.dropped_critical, j.dropped_chatty
        );
    }
    if let Some(m) = &j.moved_aside {
        let _ = writeln!(
            o,
            "journal: a damaged journal was moved aside to {} at {} ({})",
            m.path,
            m.at,
            sanitize(&m.reason)
        );
    }
}
