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
    let metrics = s
        .metrics_addr
        .as_ref()
        .map_or("off".to_owned(), |a| format!("http://{a}/metrics"));
    let _ = writeln!(o, "node {}  metrics {metrics}", sanitize(&s.node));
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
    let _ = writeln!(
        o,
        "journal {}: {}, {} entries, {} write errors",
        s.journal_path,
        bytes(s.journal_bytes),
        s.journal_entries,
        s.journal_errors
    );
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
