//! OOM kills name the victim, its cgroup, and its memory at the kill.
use dsh::probe::event::EventKind;
use dsh_ebpf::{OOM_SLOTS, channel};

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
        victim_pid,
        victim_cgroup_id,
        memory,
        ..
    } = ev.kind
    else {
        unreachable!()
    };
    // Read in the kernel at the kill: at the limit, and the limit itself.
    let memory = memory.expect("the kernel read the victim's memcg");
    assert_eq!(memory.limit_bytes, Some(32 << 20), "{memory:?}");
    assert!(
        (28 << 20..=33 << 20).contains(&memory.used_bytes),
        "about 32 MiB used at the kill: {memory:?}"
    );
    assert_eq!(victim_cgroup_id, id, "OOM attributed to the wrong cgroup");
    assert_eq!(
        victim_pid, pid,
        "a single-threaded victim's pid is its tgid"
    );
    let ooms = p.matching(
        |e| matches!(e.kind, EventKind::Oom { victim_cgroup_id, .. } if victim_cgroup_id == id),
    );
    assert_eq!(ooms.len(), 1, "one OOM kill, {} events", ooms.len());
}

/// More OOM kills than the mailbox has slots between two reads: the
/// newest `OOM_SLOTS - 1` arrive, in order, and every other one is counted
/// lost on the critical channel, none dropped silently.
#[test]
fn oom_kills_beyond_the_slots_are_counted_lost() {
    let cg = TestCgroup::new("oom-many");
    cg.set_memory_limit(32 << 20);
    ensure_loaded();
    // Held, so nothing reads the slots while the kills happen.
    let mut p = probe();
    p.collect();
    let lost0 = p.probe.channel_stats().expect("channel stats")[channel::CRITICAL as usize].lost;
    let kills = OOM_SLOTS as usize + 9;
    let mut victims = Vec::new();
    for _ in 0..kills {
        let child = cg.command(&["hog", "256"]).spawn().expect("spawn hog");
        victims.push(child.id());
        let out = child.wait_with_output().expect("wait hog");
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(out.status.signal(), Some(9), "hog should be OOM-killed");
    }
    let id = cg.id();
    let got: Vec<u32> = p
        .matching(
            |e| matches!(e.kind, EventKind::Oom { victim_cgroup_id, .. } if victim_cgroup_id == id),
        )
        .iter()
        .map(|e| match e.kind {
            EventKind::Oom { victim_tgid, .. } => victim_tgid,
            _ => unreachable!(),
        })
        .collect();
    let lost =
        p.probe.channel_stats().expect("channel stats")[channel::CRITICAL as usize].lost - lost0;
    let kept = OOM_SLOTS as usize - 1;
    assert_eq!(
        got,
        victims[kills - kept..],
        "the newest {kept} kills, in order"
    );
    assert_eq!(
        lost,
        (kills - kept) as u64,
        "every overwritten kill counted lost"
    );
}
