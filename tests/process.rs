//! Process exec and exit: codes, signals, core dumps.
use std::process::Stdio;

use dsh::{
    probe::event::EventKind,
    signal::{ExitStatus, Signal},
};

use crate::common::{TestCgroup, WAIT, ensure_loaded, is_exit_of, probe};

#[test]
fn sigsegv_death_has_signal_11() {
    let cg = TestCgroup::new("segv");
    ensure_loaded();
    let child = cg
        .command(&["segv"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    child.wait_with_output().expect("wait");
    let ev = probe()
        .wait_for(WAIT, |e| is_exit_of(e, pid))
        .expect("no exit event");
    assert_eq!(ev.task.cgroup_id, cg.id());
    let EventKind::Exit { status, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(status.signal().map(Signal::number), Some(11));
    assert_eq!(status.code(), None);
}

#[test]
fn exit_3_has_exit_code_3() {
    let cg = TestCgroup::new("exit3");
    ensure_loaded();
    let child = cg.command(&["exit", "3"]).spawn().expect("spawn");
    let pid = child.id();
    let status = child.wait_with_output().expect("wait").status;
    assert_eq!(status.code(), Some(3));
    let ev = probe()
        .wait_for(WAIT, |e| is_exit_of(e, pid))
        .expect("no exit event");
    assert_eq!(ev.task.cgroup_id, cg.id());
    let EventKind::Exit { status, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(status, ExitStatus::Exited(3));
    // One process, one exit event: thread exits are not process exits.
    let n = probe().matching(|e| is_exit_of(e, pid)).len();
    assert_eq!(n, 1);
}

#[test]
fn exec_is_seen_with_filename_and_cgroup() {
    let cg = TestCgroup::new("exec");
    ensure_loaded();
    let child = cg.command(&["exec", "/bin/true"]).spawn().expect("spawn");
    let pid = child.id();
    assert!(child.wait_with_output().expect("wait").status.success());
    let id = cg.id();
    let ev = probe()
        .wait_for(WAIT, |e| {
            matches!(&e.kind, EventKind::Exec { filename, .. } if filename == "/bin/true")
                && e.task.tgid == pid
        })
        .expect("no exec event for /bin/true");
    assert_eq!(ev.task.cgroup_id, id);
    assert_eq!(ev.task.comm, "true");
}
