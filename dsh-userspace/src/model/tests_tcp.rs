//! TCP health from the kernel programs' figures (`tcp_kernel`) as the
//! reasons judge them (`tcp::evaluate`).
use std::net::SocketAddr;

use dsh_ebpf::TcpSocketStats;
use jiff::Timestamp;

use super::tcp::{TcpFinding, TcpRules, TcpWindow, evaluate};
use crate::cgroup::snmp::TcpCounters;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The health reasons use the kernel's figures: the commonest
/// destination names the failing connects; the cgroup's own
/// retransmits, over the namespace's segments, judge the share.
#[test]
fn reasons_use_the_kernels_figures() {
    let rules = TcpRules::default();
    let keep = rules.keep();
    let (closed, other) = (addr("127.0.0.1:9"), addr("127.0.0.1:10"));
    // A pod's namespace: 100 segments a second, 20 of them sent again
    // by a sibling container; this container's sockets: none, then 6.
    let mut quiet = TcpWindow::default();
    let mut lossy = TcpWindow::default();
    for s in 0..=10u64 {
        let ns = TcpCounters {
            out_segs: 100 * s,
            retrans_segs: 20 * s,
            ..Default::default()
        };
        for w in [&mut quiet, &mut lossy] {
            w.push(at(s as i64), ns, keep);
        }
        quiet
            .sockets
            .push(at(s as i64), TcpSocketStats::default(), keep);
        let mine = TcpSocketStats {
            retransmits: 6 * s,
            ..Default::default()
        };
        lossy.sockets.push(at(s as i64), mine, keep);
        lossy
            .destinations
            .push(at(s as i64), &[(closed, 20 * s), (other, s)], keep);
        lossy.push_connects(
            at(s as i64),
            dsh_ebpf::TcpConnectStats {
                refused: 21 * s,
                ..Default::default()
            },
            keep,
        );
    }
    assert_eq!(evaluate(&rules, &quiet, at(10)), (vec![], vec![]));
    let (_, warn) = evaluate(&rules, &lossy, at(10));
    assert!(
        matches!(warn[..], [
            TcpFinding::ConnectsFailing { to: Some(to), .. },
            TcpFinding::Retransmits { ratio },
        ] if to == closed && (ratio - 0.06).abs() < 1e-9),
        "{warn:?}"
    );
}
