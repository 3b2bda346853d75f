//! Signals record the sender and the target's cgroup.
use std::process::Stdio;

use dsh::probe::event::EventKind;

use crate::common::{TestCgroup, WAIT, ensure_loaded, probe, wait_ready};

#[test]
fn kill_from_another_cgroup_names_sender_and_target_cgroup() {
    let target_cg = TestCgroup::new("sig-target");
    let sender_cg = TestCgroup::new("sig-sender");
    ensure_loaded();
    let mut target = target_cg
        .command(&["sleep"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn target");
    wait_ready(&mut target);
    let tpid = target.id();
    let mut sender = sender_cg
        .command(&["kill", &tpid.to_string(), "15"])
        .spawn()
        .expect("spawn sender");
    let spid = sender.id();
    assert!(sender.wait().expect("wait sender").success());
    target.wait().expect("wait target");
    let ev = probe()
        .wait_for(WAIT, |e| {
            matches!(e.kind, EventKind::SignalGenerate { signal, target_tgid, .. } if signal.number() == 15 && target_tgid == tpid)
        })
        .expect("no SIGTERM event for the target");
    assert_eq!(ev.task.tgid, spid, "sender pid");
    assert_eq!(ev.task.comm, "dsh-workload", "sender comm");
    assert_eq!(ev.task.cgroup_id, sender_cg.id(), "sender cgroup");
    let EventKind::SignalGenerate {
        target_cgroup_id,
        result,
        ..
    } = ev.kind
    else {
        unreachable!()
    };
    assert_eq!(target_cgroup_id, target_cg.id(), "target cgroup");
    assert_eq!(result, 0, "delivered");
}
