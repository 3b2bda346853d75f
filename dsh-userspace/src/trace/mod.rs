//! `dsh trace`: turning the kernel's per-syscall counters for one cgroup
//! into a report (counts, commonest errno, p50/p99/max, histograms).
pub mod syscall_names;

use dsh_ebpf::{
    BlockStats, LATENCY_BUCKETS, TRACE_BUCKETS, TcpConnectStats, TcpSocketStats, trace_bucket_low,
};

use crate::probe::FailedDestination;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::probe::RawTrace;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TraceReport {
    pub id: String,
    pub cgroup: String,
    pub duration_s: f64,
    pub total_calls: u64,
    pub total_errors: u64,
    /// By count, descending.
    pub syscalls: Vec<SyscallRow>,
    /// Every traced syscall's latency, log2 buckets.
    pub latency_histogram: Vec<Bucket>,
    pub block: BlockRow,
    /// TCP connects the container's tasks began, by how they ended.
    #[serde(default)]
    pub tcp: TcpRow,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyscallRow {
    pub name: String,
    pub nr: u32,
    pub count: u64,
    pub errors: u64,
    pub top_errno: Option<String>,
    pub top_errno_count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    pub low_ns: u64,
    pub count: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BlockRow {
    pub read_ops: u64,
    pub write_ops: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub latency_histogram: Vec<Bucket>,
}

/// "ENOENT" for 2.
pub fn errno_name(errno: u32) -> String {
    let e = nix::errno::Errno::from_raw(errno as i32);
    if e == nix::errno::Errno::UnknownErrno {
        format!("errno {errno}")
    } else {
        format!("{e:?}")
    }
}

fn percentiles(latency: &[u64; TRACE_BUCKETS]) -> (u64, u64) {
    let Ok(mut h) = Histogram::<u64>::new(2) else {
        return (0, 0);
    };
    for (b, &n) in latency.iter().enumerate() {
        if n > 0 {
            // The bucket's midpoint stands for its samples.
            let low = trace_bucket_low(b);
            let high = trace_bucket_low(b + 1).max(low + 1);
            let _ = h.record_n(low + (high - low) / 2, n);
        }
    }
    if h.is_empty() {
        return (0, 0);
    }
    (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
}

/// Folds the fine trace buckets into log2 ones for the text histogram.
fn log2_histogram(latency: impl Iterator<Item = (u64, u64)>) -> Vec<Bucket> {
    let mut by_pow: std::collections::BTreeMap<u32, u64> = Default::default();
    for (low, n) in latency.filter(|(_, n)| *n > 0) {
        let pow = 63 - low.max(1).leading_zeros();
        *by_pow.entry(pow).or_default() += n;
    }
    let (Some(&first), Some(&last)) = (by_pow.keys().next(), by_pow.keys().last()) else {
        return Vec::new();
    };
    (first..=last)
        .map(|p| Bucket {
            low_ns: 1 << p,
            count: by_pow.get(&p).copied().unwrap_or(0),
        })
        .collect()
}

pub fn block_row(before: Option<&BlockStats>, after: Option<&BlockStats>) -> BlockRow {
    let zero = BlockStats::ZERO;
    let (b, a) = (before.unwrap_or(&zero), after.unwrap_or(&zero));
    let d = |x: u64, y: u64| x.saturating_sub(y);
    BlockRow {
        read_ops: d(a.read_ops, b.read_ops),
        write_ops: d(a.write_ops, b.write_ops),
        read_bytes: d(a.read_bytes, b.read_bytes),
        write_bytes: d(a.write_bytes, b.write_bytes),
        latency_histogram: log2_histogram(
            (0..LATENCY_BUCKETS).map(|i| (1u64 << i, d(a.latency[i], b.latency[i]))),
        ),
    }
}

pub fn report(
    id: &str,
    cgroup: &str,
    duration_s: f64,
    raw: &RawTrace,
    block: BlockRow,
) -> TraceReport {
    let mut syscalls: Vec<SyscallRow> = raw
        .syscalls
        .iter()
        .filter(|(_, s)| s.count > 0)
        .map(|(&nr, s)| {
            let top = raw
                .errnos
                .iter()
                .filter(|((n, _), _)| *n == nr)
                .max_by_key(|&(&(_, errno), &c)| (c, std::cmp::Reverse(errno)));
            let (p50_ns, p99_ns) = percentiles(&s.latency);
            SyscallRow {
                name: syscall_names::name(nr),
                nr,
                count: s.count,
                errors: s.errors,
                top_errno: top.map(|((_, e), _)| errno_name(*e)),
                top_errno_count: top.map_or(0, |(_, c)| *c),
                p50_ns,
                p99_ns,
                max_ns: s.max_ns,
            }
        })
        .collect();
    syscalls.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
    let all = raw.syscalls.values().flat_map(|s| {
        s.latency
            .iter()
            .enumerate()
            .map(|(b, &n)| (trace_bucket_low(b), n))
    });
    TraceReport {
        id: id.to_owned(),
        cgroup: cgroup.to_owned(),
        duration_s,
        total_calls: syscalls.iter().map(|s| s.count).sum(),
        total_errors: syscalls.iter().map(|s| s.errors).sum(),
        syscalls,
        latency_histogram: log2_histogram(all),
        block,
        tcp: TcpRow::default(),
    }
}

/// Connects during the trace, by how they ended (the kernel's counters for
/// the container's cgroup, before and after).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TcpRow {
    pub established: u64,
    pub refused: u64,
    pub timed_out: u64,
    pub unreachable: u64,
    pub reset: u64,
    pub other_error: u64,
    /// Closed by their process before an answer.
    pub aborted: u64,
    /// Mean SYN-to-established time of those established.
    pub handshake_mean_us: Option<f64>,
    /// Retransmits and resets of the container's own sockets during the
    /// trace; null where the kernel cannot say a socket's cgroup.
    #[serde(default)]
    pub sockets: Option<TcpSocketRow>,
    /// The commonest destinations of the connects that failed, and the
    /// failures to all others.
    #[serde(default)]
    pub failing_destinations: Vec<FailedDestination>,
    #[serde(default)]
    pub failing_destinations_other: u64,
}

/// A container's sockets' retransmits and resets over a trace.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TcpSocketRow {
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
}

impl TcpSocketRow {
    pub fn between(before: &TcpSocketStats, after: &TcpSocketStats) -> Self {
        let d = |x: u64, y: u64| x.saturating_sub(y);
        Self {
            retransmits: d(after.retransmits, before.retransmits),
            resets_sent: d(after.resets_sent, before.resets_sent),
            resets_received: d(after.resets_received, before.resets_received),
        }
    }
}

pub fn tcp_row(before: Option<&TcpConnectStats>, after: Option<&TcpConnectStats>) -> TcpRow {
    let zero = TcpConnectStats::default();
    let (b, a) = (before.unwrap_or(&zero), after.unwrap_or(&zero));
    let d = |x: u64, y: u64| x.saturating_sub(y);
    let established = d(a.ok, b.ok);
    TcpRow {
        established,
        refused: d(a.refused, b.refused),
        timed_out: d(a.timed_out, b.timed_out),
        unreachable: d(a.unreachable, b.unreachable),
        reset: d(a.reset, b.reset),
        other_error: d(a.other_error, b.other_error),
        aborted: d(a.aborted, b.aborted),
        handshake_mean_us: (established > 0)
            .then(|| d(a.handshake_ns, b.handshake_ns) as f64 / established as f64 / 1e3),
        ..TcpRow::default()
    }
}

#[cfg(test)]
mod tcp_tests {
    use super::*;

    #[test]
    fn tcp_row_is_the_difference() {
        let before = TcpConnectStats {
            ok: 2,
            handshake_ns: 1_000,
            refused: 1,
            ..Default::default()
        };
        let after = TcpConnectStats {
            ok: 6,
            handshake_ns: 9_000,
            refused: 21,
            timed_out: 1,
            ..Default::default()
        };
        let r = tcp_row(Some(&before), Some(&after));
        assert_eq!((r.established, r.refused, r.timed_out), (4, 20, 1));
        assert_eq!(r.handshake_mean_us, Some(2.0));
        assert_eq!(tcp_row(None, None), TcpRow::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsh_ebpf::{TraceSyscall, trace_bucket};

    #[test]
    fn buckets_round_trip() {
        for ns in [0u64, 1, 3, 4, 5, 7, 8, 100, 1_000, 123_456, 1 << 32] {
            let b = trace_bucket(ns);
            assert!(trace_bucket_low(b) <= ns, "{ns} in bucket {b}");
            if b + 1 < TRACE_BUCKETS {
                assert!(ns < trace_bucket_low(b + 1), "{ns} below bucket {}", b + 1);
            }
        }
        // Two significant bits: a bucket spans at most a quarter octave... of its low end.
        assert_eq!(trace_bucket_low(trace_bucket(1000)), 896);
    }

    #[test]
    fn report_orders_and_names() {
        let mut raw = RawTrace::default();
        let mut stat = TraceSyscall::ZERO;
        stat.count = 1000;
        stat.errors = 1000;
        stat.max_ns = 9000;
        stat.latency[trace_bucket(1000)] = 980;
        stat.latency[trace_bucket(8000)] = 20;
        raw.syscalls.insert(262, stat);
        let mut read = TraceSyscall::ZERO;
        read.count = 5;
        read.latency[trace_bucket(300)] = 5;
        raw.syscalls.insert(0, read);
        raw.errnos.insert((262, 2), 999);
        raw.errnos.insert((262, 13), 1);
        let r = report("web", "/docker/x", 1.0, &raw, BlockRow::default());
        assert_eq!(r.total_calls, 1005);
        let top = &r.syscalls[0];
        if cfg!(target_arch = "x86_64") {
            assert_eq!(top.name, "newfstatat");
        }
        assert_eq!(top.top_errno.as_deref(), Some("ENOENT"));
        assert_eq!(top.top_errno_count, 999);
        assert!((896..=1024).contains(&top.p50_ns), "{}", top.p50_ns);
        assert!(top.p99_ns >= 7000, "{}", top.p99_ns);
        assert_eq!(top.max_ns, 9000);
        assert_eq!(r.latency_histogram.first().map(|b| b.low_ns), Some(256));
        assert_eq!(
            r.latency_histogram.iter().map(|b| b.count).sum::<u64>(),
            1005
        );
    }
}
