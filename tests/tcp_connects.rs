//! TCP connects counted in the kernel for the cgroup of the task that began
//! them, by how they ended, though the answer (a reset, a SYN-ACK) arrives in
//! softirq: the program keys them by socket.
use std::net::TcpListener;

use crate::common::{TestCgroup, ensure_loaded, probe};

#[test]
fn connects_are_counted_for_their_cgroup_by_how_they_ended() {
    const REFUSED: u64 = 25;
    const OK: u64 = 5;
    let cg = TestCgroup::new("tcp-connects");
    ensure_loaded();
    // A port nobody listens on: taken from the kernel, then let go.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let out = cg
        .command(&[
            "connect",
            &format!("127.0.0.1:{closed}"),
            &REFUSED.to_string(),
        ])
        .output()
        .expect("run the refused connects");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    let out = cg
        .command(&["connect", &format!("127.0.0.1:{open}"), &OK.to_string()])
        .output()
        .expect("run the connects");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), OK.to_string());
    let stats = probe().probe.tcp_connects().expect("TCP connect counters");
    let mine = stats
        .get(&cg.id())
        .unwrap_or_else(|| panic!("no connects for cgroup {:?} in {stats:?}", cg.id()));
    assert_eq!(mine.refused, REFUSED, "{mine:?}");
    assert_eq!(mine.ok, OK, "{mine:?}");
    assert_eq!(mine.failed(), REFUSED, "{mine:?}");
    assert!(mine.handshake_ns > 0, "{mine:?}");
    // The listener's side is accepted, not connected: nothing counted for
    // the test's own cgroup by these.
    drop(listener);
}
