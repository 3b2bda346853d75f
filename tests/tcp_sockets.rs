//! Retransmits and resets counted in the kernel for the socket's own
//! cgroup, though they happen in timers and softirq (where `current` is
//! whoever the CPU ran), and failed connects' destinations per cgroup.
use std::net::SocketAddr;

use dsh::cgroup::layout::CgroupLayoutKind;

use crate::common::{TestCgroup, ensure_loaded, probe};

#[test]
fn retransmits_resets_and_destinations_count_for_the_sockets_cgroup() {
    const REFUSED: u64 = 12;
    const BLOCKED: u64 = 3;
    const RESETS: u64 = 4;
    let cg = TestCgroup::new("tcp-sockets");
    ensure_loaded();
    let out = cg
        .command(&[
            "tcp-trouble",
            &REFUSED.to_string(),
            &BLOCKED.to_string(),
            &RESETS.to_string(),
        ])
        .output()
        .expect("run the TCP workload");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "done",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loaded = probe();
    let p = &loaded.probe;
    // Destinations are kept on every kernel: the refused connects' one,
    // for the cgroup that connected, exactly.
    let dests = p.tcp_failed_destinations().expect("destinations");
    let closed: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mine: Vec<_> = dests.iter().filter(|(id, _)| *id == cg.id()).collect();
    assert!(
        mine.iter()
            .any(|(_, d)| d.addr == closed && d.failures == REFUSED),
        "{mine:?}"
    );
    let sockets = p.tcp_sockets().expect("socket counters");
    if !p.counts_tcp_sockets() {
        // Only a v1-only host has no cgroup2 for its sockets.
        assert_eq!(p.layout().kind, CgroupLayoutKind::V1);
        assert!(sockets.is_empty(), "{sockets:?}");
        return;
    }
    let s = sockets
        .get(&cg.id())
        .unwrap_or_else(|| panic!("nothing for cgroup {:?} in {sockets:?}", cg.id()));
    // Each blocked connect's SYN was sent again at least once, from the
    // retransmit timer.
    assert!(s.retransmits >= BLOCKED, "{s:?}");
    // The refused connects' resets arrived (softirq); the closes sent one
    // each from the accepted sockets, which inherit the listener's cgroup.
    assert!(s.resets_received >= REFUSED, "{s:?}");
    assert!(s.resets_sent >= RESETS, "{s:?}");
}
