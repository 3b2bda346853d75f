//! OOM kills name the victim and its cgroup.
use dsh::probe::event::EventKind;

use crate::common::{TestCgroup, WAIT, ensure_loaded, probe};

#[test]
fn oom_kill_names_victim_pid_and_cgroup() {
    let cg = TestCgroup::new("oom");
    cg.set_memory_limit(32 << 20);
    ensure_loaded();
    let child = cg.command(&["hog", "256"]).spawn().expect("spawn hog");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait hog");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "hog over its limit should be OOM-killed"
    );
    let id = cg.id();
    let mut p = probe();
    let ev = p
        .wait_for(
            WAIT,
            |e| matches!(e.kind, EventKind::Oom { victim_tgid, .. } if victim_tgid == pid),
        )
        .expect("no OOM event for the victim");
    let EventKind::Oom {
        victim_cgroup_id,
        victim_comm,
        anon_rss_pages,
        ..
    } = ev.kind
    else {
        unreachable!()
    };
    assert_eq!(victim_cgroup_id, id, "OOM attributed to the wrong cgroup");
    assert_eq!(victim_comm, "dsh-workload");
    assert!(anon_rss_pages > 0, "victim's anonymous memory not reported");
    let ooms = p.matching(
        |e| matches!(e.kind, EventKind::Oom { victim_cgroup_id, .. } if victim_cgroup_id == id),
    );
    assert_eq!(ooms.len(), 1, "one OOM kill, {} events", ooms.len());
}
