//! `dsh trace` output: what `strace -c` would show, plus histograms.
//!
//! The syscall table is a `tabled` table: its columns size themselves to
//! the longest name and count, and the header and rows share one column
//! definition instead of repeating a format string. (`dsh ps` stays
//! hand-written: the contract fixes its header byte for byte.)
use std::fmt::Write as _;

use tabled::{
    builder::Builder,
    settings::{Alignment, Padding, Style, object::Columns},
};

use crate::untrusted;
use crate::{
    trace::{Bucket, SyscallRow, TraceReport},
    units::bytes,
};

/// "850ns", "12.3us", "4.1ms", "1.20s".
pub fn ns(v: u64) -> String {
    match v {
        0..1_000 => format!("{v}ns"),
        1_000..1_000_000 => format!("{:.1}us", v as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", v as f64 / 1e6),
        _ => format!("{:.2}s", v as f64 / 1e9),
    }
}

/// One bar per log2 bucket, scaled to the largest.
pub fn histogram(buckets: &[Bucket], width: usize) -> String {
    let max = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let mut out = String::new();
    for b in buckets {
        let bar = ((b.count as f64 / max as f64) * width as f64).ceil() as usize;
        let _ = writeln!(
            out,
            "  {:>8} - {:<8} {:>10} |{}",
            ns(b.low_ns),
            ns(b.low_ns.saturating_mul(2)),
            b.count,
            "#".repeat(bar.min(width))
        );
    }
    out
}

/// One row per syscall under its header; names and errnos left, numbers right.
pub fn syscall_table(rows: &[SyscallRow]) -> String {
    let mut b = Builder::default();
    b.push_record([
        "syscall",
        "calls",
        "errors",
        "commonest errno",
        "p50",
        "p99",
        "max",
    ]);
    for s in rows {
        let errno = match &s.top_errno {
            Some(e) => format!("{} ({})", untrusted::name(e), s.top_errno_count),
            None => "-".to_owned(),
        };
        b.push_record([
            untrusted::name(&s.name).into_owned(),
            s.count.to_string(),
            s.errors.to_string(),
            errno,
            ns(s.p50_ns),
            ns(s.p99_ns),
            ns(s.max_ns),
        ]);
    }
    let mut table = b.build();
    table
        .with(Style::empty())
        // Two spaces between columns, none before the first or after the last.
        .with(Padding::new(0, 2, 0, 0))
        .modify(Columns::last(), Padding::zero())
        .modify(Columns::new(1..3), Alignment::right())
        .modify(Columns::new(4..), Alignment::right());
    let mut out = table.to_string();
    out.push('\n');
    out
}

pub fn report(r: &TraceReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "trace of {} ({}) for {:.1}s: {} syscalls, {} errors",
        untrusted::name(&r.id),
        untrusted::name(&r.cgroup),
        r.duration_s,
        r.total_calls,
        r.total_errors
    );
    o.push('\n');
    o.push_str(&syscall_table(&r.syscalls));
    if !r.latency_histogram.is_empty() {
        let _ = writeln!(o, "\nsyscall latency (all syscalls):");
        o.push_str(&histogram(&r.latency_histogram, 40));
    }
    let b = &r.block;
    let _ = writeln!(
        o,
        "\nblock I/O: {} reads ({}), {} writes ({})",
        b.read_ops,
        bytes(b.read_bytes),
        b.write_ops,
        bytes(b.write_bytes)
    );
    if !b.latency_histogram.is_empty() {
        o.push_str(&histogram(&b.latency_histogram, 40));
    }
    let t = &r.tcp;
    let _ = write!(
        o,
        "\nTCP connects: {} established, {} refused, {} timed out, {} unreachable, {} reset, {} other errors, {} given up",
        t.established, t.refused, t.timed_out, t.unreachable, t.reset, t.other_error, t.aborted
    );
    if let Some(us) = t.handshake_mean_us {
        let _ = write!(o, "; handshake {us:.0} µs mean");
    }
    o.push('\n');
    o.push_str(&tcp_details(t));
    o
}

/// The failing destinations and the sockets' retransmits and resets (the
/// addresses are formatted by dsh, never text from the container).
fn tcp_details(t: &crate::trace::TcpRow) -> String {
    let mut o = String::new();
    if !t.failing_destinations.is_empty() {
        let mut to: Vec<String> = t
            .failing_destinations
            .iter()
            .map(|d| format!("{} ({})", d.addr, d.failures))
            .collect();
        if t.failing_destinations_other > 0 {
            to.push(format!("other ({})", t.failing_destinations_other));
        }
        let _ = writeln!(o, "TCP connects failed to: {}", to.join(", "));
    }
    if let Some(s) = t.sockets {
        let _ = writeln!(
            o,
            "TCP sockets: {} retransmits, {} resets sent, {} resets received",
            s.retransmits, s.resets_sent, s.resets_received
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_details_name_destinations_and_other() {
        let mut t = crate::trace::TcpRow::default();
        assert_eq!(tcp_details(&t), "");
        t.failing_destinations = vec![crate::probe::FailedDestination {
            addr: "127.0.0.1:9".parse().unwrap(),
            failures: 40,
        }];
        t.failing_destinations_other = 2;
        t.sockets = Some(crate::trace::TcpSocketRow {
            retransmits: 3,
            resets_sent: 0,
            resets_received: 40,
        });
        assert_eq!(
            tcp_details(&t),
            "TCP connects failed to: 127.0.0.1:9 (40), other (2)\n\
             TCP sockets: 3 retransmits, 0 resets sent, 40 resets received\n"
        );
    }

    fn syscall(name: &str, count: u64, errno: Option<&str>, p50_ns: u64) -> SyscallRow {
        SyscallRow {
            name: name.into(),
            nr: 0,
            count,
            errors: errno.map_or(0, |_| 3),
            top_errno: errno.map(str::to_owned),
            top_errno_count: 3,
            p50_ns,
            p99_ns: p50_ns * 4,
            max_ns: p50_ns * 90,
        }
    }

    #[test]
    fn syscall_table_columns_fit_their_widest_cell() {
        let t = syscall_table(&[
            syscall("read", 1_234_567, None, 850),
            syscall("set_mempolicy_home_node", 2, Some("EINVAL"), 12_300),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("syscall  "), "{t}");
        // Every line is as wide as the header: numbers right-aligned under
        // their titles, no trailing blanks past the last column.
        let width = lines[0].len();
        assert!(lines.iter().all(|l| l.len() == width), "{t}");
        for l in &lines {
            assert!(!l.ends_with(' ') && !l.starts_with(' '), "{l:?}");
        }
        let calls_end = lines[0].find("calls").unwrap() + "calls".len();
        assert_eq!(&lines[1][calls_end - 7..calls_end], "1234567", "{t}");
        assert_eq!(&lines[2][calls_end - 1..calls_end], "2", "{t}");
        assert!(lines[2].contains("EINVAL (3)"), "{t}");
        assert!(lines[1].ends_with("76.5us"), "{t}");
    }

    #[test]
    fn durations_and_bars() {
        assert_eq!(ns(850), "850ns");
        assert_eq!(ns(12_300), "12.3us");
        assert_eq!(ns(4_100_000), "4.1ms");
        let h = histogram(
            &[
                Bucket {
                    low_ns: 512,
                    count: 10,
                },
                Bucket {
                    low_ns: 1024,
                    count: 5,
                },
            ],
            10,
        );
        assert!(h.contains("|##########\n"), "{h}");
        assert!(h.contains("|#####\n"), "{h}");
    }
}
