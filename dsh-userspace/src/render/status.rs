//! `dsh status`: what dsh itself costs, in one screen.
//!
//! The program and channel tables are free-form (no contract fixes them), so
//! tabled lays them out from one list of titles and the rows' values; the
//! contract's `ps` table keeps its hand-written, byte-exact header
//! (`render::table`).
use std::fmt::Write as _;

use tabled::{
    Table,
    builder::Builder,
    settings::{Alignment, Padding, Style, object::Columns},
};

use crate::untrusted;
use crate::{api::StatusReport, units::bytes};

/// Titles, then one record per row; the first column left-aligned, numbers right.
fn table<const N: usize>(titles: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> Table {
    let mut b = Builder::default();
    b.push_record(titles);
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::empty())
        .with(Padding::new(0, 2, 0, 0))
        .modify(Columns::new(1..), Alignment::right())
        .modify(Columns::last(), Padding::zero());
    t
}

pub fn screen(s: &StatusReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "dsh agent {}  up {}s  kernel {}  cgroups {}  interval {}ms",
        s.version,
        s.uptime_s,
        untrusted::name(&s.kernel),
        s.cgroup_layout,
        s.interval_ms
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
    if s.history_bytes > 0 {
        let _ = writeln!(o, "history (dsh top): {}", bytes(s.history_bytes));
    }
    descriptors(&mut o, s);
    let metrics = s
        .metrics_addr
        .as_ref()
        .map_or("off".to_owned(), |a| format!("http://{a}/metrics"));
    let _ = writeln!(o, "node {}  metrics {metrics}", untrusted::name(&s.node));
    let _ = match (s.syscall_window_ms, s.syscall_period_ms) {
        (Some(w), Some(p)) => writeln!(
            o,
            "syscalls: sampled, counted {w}ms in every {p}ms ({} windows so far; rates are estimates)",
            s.syscall_windows
        ),
        _ => writeln!(o, "syscalls: {}", s.syscall_accounting),
    };
    let _ = writeln!(o, "syscall counters: {}", s.syscall_counters);
    if !s.psi.is_empty() {
        let _ = writeln!(o, "pressure (PSI): {}", untrusted::name(&s.psi));
    }
    if !s.tcp_sockets.is_empty() {
        let _ = writeln!(
            o,
            "TCP retransmits and resets: {}",
            untrusted::name(&s.tcp_sockets)
        );
    }
    let programs = s.programs.iter().map(|p| {
        [
            p.name.clone(),
            if p.attached { "yes" } else { "no" }.to_owned(),
            format!("{:.1}", p.runs_per_s),
            format!("{:.1}", p.avg_ns_per_run),
        ]
    });
    let _ = writeln!(
        o,
        "\n{}",
        table(["program", "attached", "runs/s", "ns/run"], programs)
    );
    let channels = s.channels.iter().map(|c| {
        [
            c.name.clone(),
            c.events.to_string(),
            format!("{:.1}", c.events_per_s),
            c.lost.to_string(),
        ]
    });
    let _ = writeln!(
        o,
        "\n{}",
        table(["channel", "events", "events/s", "lost"], channels)
    );
    let failed: Vec<String> = s
        .kernel_failures
        .iter()
        .filter(|f| f.count > 0)
        .map(|f| format!("{} {}", f.name, f.count))
        .collect();
    let _ = writeln!(
        o,
        "kernel failures: {}",
        if failed.is_empty() {
            "none".to_owned()
        } else {
            failed.join(", ")
        }
    );
    if s.undecodable_events > 0 {
        let _ = writeln!(o, "undecodable events: {}", s.undecodable_events);
    }
    let _ = writeln!(
        o,
        "event order: {} ms margin, {} events read late (applied out of order), \
         {} cgroups found by id ahead of their mkdir",
        s.ordering_margin_ms, s.late_events, s.cgroups_found_by_id
    );
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
            untrusted::text(&r.detail)
        );
    }
    o
}

/// The agent's file descriptors: its limit, what it holds, and what it
/// reads less often or could not do for want of one.
fn descriptors(o: &mut String, s: &StatusReport) {
    let Some(f) = &s.fds else { return };
    let raised = f
        .raised_from
        .map_or(String::new(), |from| format!(", raised from {from}"));
    let _ = writeln!(
        o,
        "descriptors: {} open of {} (hard limit {}{raised}); containers' files hold {} \
         (at most {} for one), budget {} ({} kept for clients and the rest)",
        f.open,
        f.soft_limit,
        f.hard_limit,
        f.held_for_containers,
        f.most_held_by_one,
        f.container_budget,
        f.reserve
    );
    if f.containers_read_slowly > 0 {
        let _ = writeln!(
            o,
            "descriptors: BUDGET REACHED: {} containers are read every {}ms, their files \
             opened on each read; the {} busiest keep theirs open",
            f.containers_read_slowly, f.slow_every_ms, f.containers_kept_open
        );
    }
    if f.clients_refused > 0 {
        let _ = writeln!(
            o,
            "descriptors: {} clients turned away for want of a descriptor",
            f.clients_refused
        );
    }
    for failure in &f.failures {
        let _ = writeln!(o, "descriptors: out of them: {}", untrusted::text(failure));
    }
}

/// The journal's size, budget and condition: whether it can write, and
/// what it holds in memory or had to drop.
fn journal(o: &mut String, s: &StatusReport) {
    let j = &s.journal;
    let _ = writeln!(
        o,
        "journal {}: {}, {} entries ({} critical, {} chatty of at most {}; {:.0} bytes/line), {} write errors",
        untrusted::name(&s.journal_path),
        bytes(s.journal_bytes),
        s.journal_entries,
        j.critical_entries,
        j.chatty_entries,
        j.max_chatty_entries,
        j.bytes_per_line,
        s.journal_errors
    );
    if let Some(since) = j.health.failing_since {
        let _ = writeln!(
            o,
            "journal: NOT WRITABLE since {since}: {}; {} critical lines held in memory",
            untrusted::text(j.health.last_error.as_deref().unwrap_or("unknown error")),
            j.pending
        );
    } else if let Some(at) = j.health.recovered_at {
        let _ = writeln!(
            o,
            "journal: writable again since {at} (last error at {}: {})",
            j.health
                .last_error_at
                .map(|t| t.to_string())
                .unwrap_or_default(),
            untrusted::text(j.health.last_error.as_deref().unwrap_or("-"))
        );
    }
    if j.health.dropped_critical + j.health.dropped_chatty > 0 {
        let _ = writeln!(
            o,
            "journal: {} critical and {} chatty lines dropped (could not be written)",
            j.health.dropped_critical, j.health.dropped_chatty
        );
    }
    if j.health.skipped_records > 0 {
        let _ = writeln!(
            o,
            "journal: {} undecodable container records skipped at start-up (last: {})",
            j.health.skipped_records,
            untrusted::text(j.health.last_skipped.as_deref().unwrap_or("-"))
        );
    }
    if j.health.critical_evicted > 0 {
        let _ = writeln!(
            o,
            "journal: {} critical lines evicted (a container past {} critical lines loses its oldest)",
            j.health.critical_evicted, j.max_critical_per_container
        );
    }
    if let Some(m) = &j.health.moved_aside {
        let _ = writeln!(
            o,
            "journal: a damaged journal was moved aside to {} at {} ({})",
            m.path,
            m.at,
            untrusted::text(&m.reason)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ChannelStatus, ProgramStatus, RuntimeStatus};

    #[test]
    fn tables_align_under_their_titles() {
        let s = StatusReport {
            version: "0.1.0".into(),
            programs: vec![
                ProgramStatus {
                    name: "dsh_sys_exit".into(),
                    attached: true,
                    runs_per_s: 12345.67,
                    avg_ns_per_run: 88.0,
                    runs_total: 1,
                    run_time_ns_total: 88,
                },
                ProgramStatus {
                    name: "dsh_trace_enter".into(),
                    attached: false,
                    runs_per_s: 0.0,
                    avg_ns_per_run: 0.0,
                    runs_total: 0,
                    run_time_ns_total: 0,
                },
            ],
            channels: vec![ChannelStatus {
                name: "critical".into(),
                events: 42,
                lost: 0,
                events_per_s: 1.5,
            }],
            runtimes: vec![RuntimeStatus {
                name: "docker".into(),
                connected: false,
                detail: "no socket\x1b".into(),
            }],
            ..Default::default()
        };
        let out = screen(&s);
        let lines: Vec<&str> = out.lines().collect();
        let at = |prefix: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no line {prefix:?} in\n{out}"))
        };
        let head = at("program");
        let row = at("dsh_sys_exit");
        assert_eq!(head.len(), row.len(), "{out}");
        assert!(row.ends_with("yes  12345.7    88.0"), "{row:?}");
        assert!(
            at("dsh_trace_enter").ends_with("no      0.0     0.0"),
            "{out}"
        );
        assert_eq!(head, "program          attached   runs/s  ns/run");
        assert!(at("critical").ends_with("42       1.5     0"), "{out}");
        assert_eq!(
            at("runtime"),
            "runtime docker: not connected (no socket\\x1b)"
        );
    }

    #[test]
    fn the_journal_says_when_it_cannot_write() {
        let mut s = StatusReport {
            journal_path: "/var/lib/dsh/journal.redb".into(),
            journal_bytes: 3 << 20,
            journal_entries: 1200,
            journal_errors: 4,
            ..Default::default()
        };
        s.journal.critical_entries = 200;
        s.journal.chatty_entries = 1000;
        s.journal.max_chatty_entries = 1_000_000;
        s.journal.bytes_per_line = 55.4;
        s.journal.health.failing_since = Some("2026-01-01T00:00:00Z".parse().unwrap());
        s.journal.health.last_error = Some("journal commit: No space left on device\x1b".into());
        s.journal.pending = 3;
        s.journal.health.dropped_chatty = 9;
        let out = screen(&s);
        assert!(
            out.contains(
                "journal /var/lib/dsh/journal.redb: 3.0MiB, 1200 entries (200 critical, \
                 1000 chatty of at most 1000000; 55 bytes/line), 4 write errors\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "journal: NOT WRITABLE since 2026-01-01T00:00:00Z: journal commit: \
                 No space left on device\\x1b; 3 critical lines held in memory\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("0 critical and 9 chatty lines dropped"),
            "{out}"
        );
        s.journal.health.skipped_records = 2;
        s.journal.health.last_skipped = Some("container record /x\x1b is damaged".into());
        assert!(
            screen(&s).contains(
                "journal: 2 undecodable container records skipped at start-up \
                 (last: container record /x\\x1b is damaged)\n"
            ),
            "{out}"
        );
        s.journal.health.failing_since = None;
        s.journal.health.recovered_at = Some("2026-01-01T00:01:00Z".parse().unwrap());
        assert!(
            screen(&s).contains("journal: writable again since 2026-01-01T00:01:00Z"),
            "{out}"
        );
    }

    #[test]
    fn descriptors_say_the_limit_and_what_is_read_slowly() {
        let mut s = StatusReport {
            fds: Some(crate::api::FdStatus {
                open: 900,
                soft_limit: 1024,
                hard_limit: 1024,
                container_budget: 800,
                held_for_containers: 780,
                most_held_by_one: 13,
                reserve: 144,
                containers_kept_open: 60,
                containers_read_slowly: 240,
                slow_every_ms: 5000,
                failures: vec!["docker: 1 times, last: Too many open files".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let out = screen(&s);
        assert!(
            out.contains("descriptors: 900 open of 1024 (hard limit 1024); "),
            "{out}"
        );
        assert!(
            out.contains(
                "descriptors: BUDGET REACHED: 240 containers are read every 5000ms, \
                 their files opened on each read; the 60 busiest keep theirs open\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("descriptors: out of them: docker: 1 times"),
            "{out}"
        );
        s.fds = None;
        assert!(!screen(&s).contains("descriptors"));
    }

    #[test]
    fn events_read_late_are_shown() {
        let s = StatusReport {
            late_events: 3,
            ordering_margin_ms: 80,
            cgroups_found_by_id: 2,
            ..Default::default()
        };
        let out = screen(&s);
        assert!(
            out.contains(
                "event order: 80 ms margin, 3 events read late (applied out of order), \
                 2 cgroups found by id ahead of their mkdir\n"
            ),
            "{out}"
        );
    }
}
