//! Process exec and exit: codes, signals, core dumps.
use std::process::Stdio;

use dsh::{
    probe::event::EventKind,
    signal::{ExitStatus, Signal},
};

use crate::common::{TestCgroup, WAIT, ensure_loaded, is_exit_of, probe};

/// The exit event of `pid`, which must be charged to `cg`: its status.
fn exit_status_in(cg: &TestCgroup, pid: u32) -> ExitStatus {
    let ev = probe()
        .wait_for(WAIT, |e| is_exit_of(e, pid))
        .expect("no exit event");
    assert_eq!(ev.task.cgroup_id, cg.id());
    let EventKind::Exit { status, .. } = ev.kind else {
        unreachable!("is_exit_of matched {:?}", ev.kind)
    };
    status
}

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
    let status = exit_status_in(&cg, pid);
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
    assert_eq!(exit_status_in(&cg, pid), ExitStatus::Exited(3));
    // One process, one exit event: thread exits are not process exits.
    let n = probe().matching(|e| is_exit_of(e, pid)).len();
    assert_eq!(n, 1);
}

#[test]
fn a_cgroups_first_exec_is_an_event_and_later_ones_are_counted() {
    let cg = TestCgroup::new("exec");
    ensure_loaded();
    // dsh-workload is the cgroup's first exec (its main process); it then
    // execs /bin/true, which is churn.
    let child = cg.command(&["exec", "/bin/true"]).spawn().expect("spawn");
    let pid = child.id();
    assert!(child.wait_with_output().expect("wait").status.success());
    let id = cg.id();
    let workload = dsh_testkit::workload();
    let ev = probe()
        .wait_for(WAIT, |e| {
            matches!(&e.kind, EventKind::Exec { filename, .. } if filename == workload)
                && e.task.tgid == pid
        })
        .expect("no exec event for the cgroup's first process");
    assert_eq!(ev.task.cgroup_id, id);
    assert_eq!(ev.task.comm, "dsh-workload");
    let mut p = probe();
    let execs_of_true = p.matching(|e| {
        matches!(&e.kind, EventKind::Exec { filename, .. } if filename == "/bin/true")
            && e.task.tgid == pid
    });
    assert!(
        execs_of_true.is_empty(),
        "a later exec was sent as an event: {execs_of_true:?}"
    );
    let counted = churn_of(&p, id);
    assert_eq!(
        counted.get("true").map(|c| c.execs),
        Some(1),
        "the exec of /bin/true is counted: {counted:?}"
    );
}

#[test]
fn children_are_counted_and_the_main_exit_is_an_event() {
    let cg = TestCgroup::new("churn");
    ensure_loaded();
    // Main process (first exec), 300 children that exec and exit 0, one that
    // exits 3 and one killed by SIGTERM (counted), one SIGSEGV (an event).
    let script = "for i in $(seq 300); do /bin/true; done; /bin/sh -c 'exit 3'; \
                  /bin/sh -c 'kill -TERM $$'; /bin/sh -c 'kill -SEGV $$'; exit 0";
    let child = cg
        .command_of(std::path::Path::new("/bin/sh"), &["-c", script])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    assert!(child.wait_with_output().expect("wait").status.success());
    let id = cg.id();
    let mut p = probe();
    let main_exit = p.wait_for(WAIT, |e| is_exit_of(e, pid));
    assert!(main_exit.is_some(), "the main process's exit is an event");
    let events: Vec<_> = p.matching(|e| e.task.cgroup_id == id);
    let exits = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Exit { .. }))
        .count();
    // The main exit and the SIGSEGV crash, nothing else.
    assert_eq!(exits, 2, "exit events: {events:?}");
    let counted = churn_of(&p, id);
    let t = counted.get("true").copied().unwrap_or_default();
    assert_eq!((t.execs, t.exits_ok), (300, 300), "{counted:?}");
    let sh = counted.get("sh").copied().unwrap_or_default();
    assert_eq!(sh.execs, 3, "{counted:?}");
    assert_eq!((sh.exits_failed, sh.exits_killed), (1, 1), "{counted:?}");
}

/// The kernel's churn counters of one cgroup, by command.
fn churn_of(
    p: &crate::common::Loaded,
    id: dsh::cgroup::CgroupId,
) -> std::collections::BTreeMap<String, dsh_ebpf::ChurnCounts> {
    p.probe
        .churn_counts()
        .expect("churn counters")
        .into_iter()
        .filter(|(k, _)| k.cgroup_id == id.get())
        .map(|(k, c)| (dsh::probe::event::c_str(&k.comm), c))
        .collect()
}
