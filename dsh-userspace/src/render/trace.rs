//! `dsh trace` output: what `strace -c` would show, plus histograms.
use std::fmt::Write as _;

use super::sanitize;
use crate::{
    trace::{Bucket, TraceReport},
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

pub fn report(r: &TraceReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "trace of {} ({}) for {:.1}s: {} syscalls, {} errors",
        sanitize(&r.id),
        sanitize(&r.cgroup),
        r.duration_s,
        r.total_calls,
        r.total_errors
    );
    let _ = writeln!(
        o,
        "\n{:<20} {:>10} {:>9} {:<18} {:>9} {:>9} {:>9}",
        "syscall", "calls", "errors", "commonest errno", "p50", "p99", "max"
    );
    for s in &r.syscalls {
        let errno = match &s.top_errno {
            Some(e) => format!("{e} ({})", s.top_errno_count),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            o,
            "{:<20} {:>10} {:>9} {:<18} {:>9} {:>9} {:>9}",
            s.name,
            s.count,
            s.errors,
            errno,
            ns(s.p50_ns),
            ns(s.p99_ns),
            ns(s.max_ns)
        );
    }
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
    o
}

#[cfg(test)]
mod tests {
    use super::*;

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
